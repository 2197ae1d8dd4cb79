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

// inputsOverhead is what one distinct cacheKey.inputs costs beyond its
// bytes: its slot in Cache.inputs.
const inputsOverhead = 64

// A cacheKey is what a signed profile depends on: the Signer's certificate
// and the parts of the snapshot a profile shows (inputs, see
// profileInputs.key), and the address (an empty Local for a domain's
// profile).
type cacheKey struct {
	inputs  string
	address render.Address
}

// cost is what the entry for k costs beyond its profile, except k.inputs:
// the entries of one Signer share that string, so the Cache counts each
// distinct one once (Cache.inputs).
func (k cacheKey) cost() int {
	return entryOverhead + len(k.address.Local) + len(k.address.Domain) + len(k.address.LoginDomain)
}

// An inputsRef is a distinct cacheKey.inputs and how many entries use it.
type inputsRef struct {
	s string // the copy the entries' keys share
	n int
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
	inputs   map[string]*inputsRef // the entries' distinct cacheKey.inputs
	size     int                   // bytes held in entries and inputs, with overhead
	inflight map[cacheKey]*call
}

// NewCache returns an empty Cache holding at most maxBytes (counted as
// entryOverhead plus the address and the profile for each entry, and
// inputsOverhead plus the bytes of each distinct snapshot-and-certificate
// key, however many entries share it); DefaultCacheBytes when maxBytes is
// 0.
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
	if cost+inputsOverhead+len(k.inputs) > c.maxBytes {
		return
	}
	if c.entries == nil {
		c.entries = map[cacheKey][]byte{}
		c.inputs = map[string]*inputsRef{}
	}
	// The bytes k adds: its entry, and its inputs unless an entry
	// already holds them (which eviction may change).
	need := func() int {
		if _, ok := c.inputs[k.inputs]; ok {
			return cost
		}
		return cost + inputsOverhead + len(k.inputs)
	}
	for c.size+need() > c.maxBytes {
		for old, ov := range c.entries {
			c.remove(old, ov)
			break
		}
	}
	if r, ok := c.inputs[k.inputs]; ok {
		k.inputs = r.s // share the copy already held
		r.n++
	} else {
		c.inputs[k.inputs] = &inputsRef{s: k.inputs, n: 1}
		c.size += inputsOverhead + len(k.inputs)
	}
	c.entries[k] = v
	c.size += cost
}

// remove deletes the entry for k, whose profile is v; c.mu must be held
// for writing.
func (c *Cache) remove(k cacheKey, v []byte) {
	delete(c.entries, k)
	c.size -= k.cost() + len(v)
	if r := c.inputs[k.inputs]; r != nil {
		if r.n--; r.n == 0 {
			delete(c.inputs, k.inputs)
			c.size -= inputsOverhead + len(k.inputs)
		}
	}
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
