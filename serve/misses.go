package serve

import (
	"sync"
	"time"
)

// Defaults of a MissGuard: with them, requests for names the snapshot
// does not list make at most 20 database lookups a second (bursts of 40),
// and a name found unhosted is not asked about again for a minute.
const (
	DefaultMissRate     = 20
	DefaultMissBurst    = 40
	DefaultMissTTL      = 60 * time.Second
	DefaultMissCacheCap = 10000
)

// A MissGuard bounds the database lookups made for domains the snapshot
// does not list, so that requests with random Host names or addresses
// cannot hammer the database: a negative cache remembers names found
// unhosted for a while, and a token bucket limits the lookups per second.
// One MissGuard outlives the Sites that use it, so reloads do not reset it.
// It is safe for concurrent use.
type MissGuard struct {
	rate  float64 // tokens per second
	burst float64
	ttl   time.Duration
	cap   int
	now   func() time.Time // tests replace it

	mu     sync.Mutex
	tokens float64
	last   time.Time            // when tokens was last refilled
	miss   map[string]time.Time // name → when its negative entry expires
}

// NewMissGuard returns a MissGuard allowing rate lookups a second with
// bursts of burst, remembering unhosted names for ttl, at most capacity of
// them.
func NewMissGuard(rate, burst int, ttl time.Duration, capacity int) *MissGuard {
	return &MissGuard{
		rate: float64(rate), burst: float64(burst), ttl: ttl, cap: capacity,
		now: time.Now, tokens: float64(burst), miss: map[string]time.Time{},
	}
}

// allow reports whether name may be looked up now: it is not a recent
// miss, and the bucket has a token left (which it takes).
func (g *MissGuard) allow(name string) (known bool, allowed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if exp, ok := g.miss[name]; ok {
		if now.Before(exp) {
			return true, false
		}
		delete(g.miss, name)
	}
	if !g.last.IsZero() {
		g.tokens = min(g.burst, g.tokens+now.Sub(g.last).Seconds()*g.rate)
	}
	g.last = now
	if g.tokens < 1 {
		return false, false
	}
	g.tokens--
	return false, true
}

// missed records that name is not hosted.
func (g *MissGuard) missed(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if len(g.miss) >= g.cap {
		for n, exp := range g.miss { // drop what has expired
			if !now.Before(exp) {
				delete(g.miss, n)
			}
		}
		if len(g.miss) >= g.cap {
			clear(g.miss) // a flood of distinct names: start over rather than grow
		}
	}
	g.miss[name] = now.Add(g.ttl)
}
