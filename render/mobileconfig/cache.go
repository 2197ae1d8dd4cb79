package mobileconfig

import (
	"sync"

	"github.com/mailautoconf/mailautoconf/render"
)

// Cache bounds. A signed profile is a few kilobytes (the plist and the
// certificate chain), so a full cache holds at most maxCacheBytes.
const (
	maxCacheEntries = 10000
	maxCacheBytes   = 64 << 20
)

// A cacheKey is what a profile of one Signer depends on besides its
// Snapshot and certificate, which are fixed for the Signer.
type cacheKey struct {
	address render.Address
	name    string
}

// A signCache holds signed profiles, bounded by entry count and total size.
// When full it evicts a random entry (Go's map iteration order is random):
// no bookkeeping on hits, and a burst of one-off addresses cannot flush a
// whole working set at once the way it would in a strict LRU. Concurrent
// first requests for one key wait for a single signing.
type signCache struct {
	mu       sync.RWMutex
	entries  map[cacheKey][]byte
	size     int // bytes held in entries
	inflight map[cacheKey]*call
}

// A call is a signing in progress that other requests for its key wait for.
type call struct {
	done chan struct{}
	val  []byte
	err  error
}

func (c *signCache) get(k cacheKey) ([]byte, bool) {
	c.mu.RLock()
	v, ok := c.entries[k]
	c.mu.RUnlock()
	return v, ok
}

// do returns the cached value for k, or runs fn once for all concurrent
// callers and caches what it returns when it succeeds.
func (c *signCache) do(k cacheKey, fn func() ([]byte, error)) ([]byte, error) {
	if v, ok := c.get(k); ok {
		return v, nil
	}
	c.mu.Lock()
	if v, ok := c.entries[k]; ok {
		c.mu.Unlock()
		return v, nil
	}
	if cl, ok := c.inflight[k]; ok {
		c.mu.Unlock()
		<-cl.done
		return cl.val, cl.err
	}
	cl := &call{done: make(chan struct{})}
	if c.inflight == nil {
		c.inflight = map[cacheKey]*call{}
	}
	c.inflight[k] = cl
	c.mu.Unlock()

	cl.val, cl.err = fn()

	c.mu.Lock()
	delete(c.inflight, k)
	if cl.err == nil {
		c.put(k, cl.val)
	}
	c.mu.Unlock()
	close(cl.done)
	return cl.val, cl.err
}

// put stores v under k; c.mu must be held for writing.
func (c *signCache) put(k cacheKey, v []byte) {
	if len(v) > maxCacheBytes {
		return
	}
	if c.entries == nil {
		c.entries = map[cacheKey][]byte{}
	}
	for len(c.entries) >= maxCacheEntries || c.size+len(v) > maxCacheBytes {
		for old, ov := range c.entries {
			delete(c.entries, old)
			c.size -= len(ov)
			break
		}
	}
	c.entries[k] = v
	c.size += len(v)
}

func (c *signCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
