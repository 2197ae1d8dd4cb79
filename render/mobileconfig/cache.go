package mobileconfig

import (
	"sync"

	"github.com/mailautoconf/mailautoconf/render"
)

// DefaultCacheBytes bounds a Cache made by NewCache(0): a signed profile is
// 3 to 6 KB (the plist and the certificate chain), so some 1 000 profiles.
// It is a bound on what the cache holds, counted generously (entryOverhead);
// the garbage collector may keep as much again as garbage between cycles.
const DefaultCacheBytes = 4 << 20

// entryOverhead is what one cache entry costs beyond the profile's bytes
// and the key's strings: the map slot, the key and the slice header.
const entryOverhead = 160

// A cacheKey is what a signed profile depends on: the Signer's certificate
// and the parts of the snapshot a profile shows (inputs, see
// profileInputs.key), and the address (an empty Local for a domain's
// profile).
type cacheKey struct {
	inputs  string
	address render.Address
}

func (k cacheKey) cost() int {
	return entryOverhead + len(k.inputs) + len(k.address.Local) + len(k.address.Domain) + len(k.address.LoginDomain)
}

// A Cache holds signed profiles, bounded by their total size. One Cache
// outlives the Signers that use it: Signer.Keep hands it from the Signer of
// one snapshot to the next while the certificate stays the same, so a
// reload or a periodic refresh does not make every profile be signed again.
// Its entries are keyed by everything the profile shows, so an entry made
// before a change of the servers is simply never asked for again (and
// evicted in time).
//
// When full it evicts a random entry (Go's map iteration order is random):
// no bookkeeping on hits, and a burst of one-off addresses cannot flush a
// whole working set at once the way it would in a strict LRU. Concurrent
// first requests for one key wait for a single signing. It is safe for
// concurrent use.
type Cache struct {
	maxBytes int
	mu       sync.RWMutex
	entries  map[cacheKey][]byte
	size     int // bytes held in entries, with their keys and overhead
	inflight map[cacheKey]*call
}

// NewCache returns an empty Cache holding at most maxBytes (counted as
// entryOverhead plus the key and the profile for each entry);
// DefaultCacheBytes when maxBytes is 0.
func NewCache(maxBytes int) *Cache {
	if maxBytes <= 0 {
		maxBytes = DefaultCacheBytes
	}
	return &Cache{maxBytes: maxBytes}
}

// A call is a signing in progress that other requests for its key wait for.
type call struct {
	done chan struct{}
	val  []byte
	err  error
}

func (c *Cache) get(k cacheKey) ([]byte, bool) {
	c.mu.RLock()
	v, ok := c.entries[k]
	c.mu.RUnlock()
	return v, ok
}

// do returns the cached value for k, or runs fn once for all concurrent
// callers and caches what it returns when it succeeds.
func (c *Cache) do(k cacheKey, fn func() ([]byte, error)) ([]byte, error) {
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
func (c *Cache) put(k cacheKey, v []byte) {
	cost := k.cost() + len(v)
	if cost > c.maxBytes {
		return
	}
	if c.entries == nil {
		c.entries = map[cacheKey][]byte{}
	}
	for c.size+cost > c.maxBytes {
		for old, ov := range c.entries {
			delete(c.entries, old)
			c.size -= old.cost() + len(ov)
			break
		}
	}
	c.entries[k] = v
	c.size += cost
}

func (c *Cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// Bytes is what the Cache holds now, counted as its bound counts.
func (c *Cache) Bytes() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.size
}
