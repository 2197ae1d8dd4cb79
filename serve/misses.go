package serve

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/internal/tokenbucket"
)

// Defaults of a MissGuard: with them, requests for names the snapshot
// does not list make at most 20 database lookups a second (bursts of 40)
// for names the database does not host, a name found unhosted is not
// asked about again for a minute, and a name found hosted is answered from
// memory for a minute (or until the next snapshot).
const (
	DefaultMissRate     = 20
	DefaultMissBurst    = 40
	DefaultMissTTL      = 60 * time.Second
	DefaultMissCacheCap = 10000
)

// hostedKeep is how long a name the database said is hosted keeps
// bypassing the token buckets: its answer is re-checked every TTL and
// every snapshot, each check that finds it hosted again extends this.
const hostedKeep = time.Hour

// A MissGuard bounds the database lookups made for domains the snapshot
// does not list, so that requests with random Host names or addresses
// cannot hammer the database, and so that they cannot starve the hosted
// domains that only a lookup finds (a table whose query cannot be listed,
// a domain added since the last refresh). One MissGuard outlives the
// Sites that use it, so reloads do not reset it. It is safe for
// concurrent use.
//
// What it remembers, each bounded by the capacity:
//   - a negative cache: names found unhosted, for the TTL;
//   - a positive cache: names found hosted, with the answer. The answer
//     serves the Site (snapshot) that found it, for the TTL; a newer
//     snapshot, or the TTL's end, asks the database again. The name itself
//     is kept for an hour (hostedKeep) as one the database hosts;
//   - the names recently refused or failed, as "asked again" if they come
//     back.
//
// Concurrent lookups of one name (for one Site) are coalesced: the first
// request asks the database, the others wait for its answer, each for as
// long as its own context lets it. The shared query is not cancelled when
// the request that started it ends, only by lookupTimeout.
//
// Why the budget is split. A lookup that finds nothing costs the same as
// one that finds a domain, and nothing tells a hosted name from a random
// one before the database is asked. With one bucket for every lookup, a
// flood of random names takes the tokens and the hosted domains' requests
// are refused with the flood's (TestFaultHostedDomainUnderFlood: 85 of 95
// answers for a hosted domain were 503 at 100 random names a second). So:
//
//  1. A name the database reported hosted at its last lookup (within
//     hostedKeep) is looked up without a token. A flood of names the
//     database does not host cannot add any of these lookups.
//  2. Every other lookup takes a token. The rate and burst are split in
//     two buckets: names seen the first time draw on one half only; a
//     name asked again after a refusal or a failure (clients retry, and
//     ask several URLs: autoconfig, .well-known, Autodiscover) may draw
//     on both. A flood of names each asked once empties the first half and
//     never touches the second, so a hosted domain's first request may be
//     refused during such a flood, its next one is answered, and from
//     then on it is remembered (1.).
//
// The bound on the database, over any t seconds and whatever the flood:
// at most burst + rate·t lookups that take a token (of which at most half
// for names seen the first time), plus, for each name the database
// reported hosted, at most one lookup per TTL and per snapshot published.
// Requests for one name share one lookup in flight (per snapshot). A
// flood that asks each random name twice can empty the second bucket too:
// the bound still holds, and domains already found hosted are still
// answered (1.); only a domain asked for the first time while it lasts
// may be refused more than once.
type MissGuard struct {
	ttl time.Duration
	cap int
	now func() time.Time // tests replace it

	gens atomic.Uint64 // the last generation handed to a Site

	mu      sync.Mutex
	first   tokenbucket.Bucket   // for names seen the first time
	again   tokenbucket.Bucket   // reserved for names asked again
	miss    map[string]time.Time // name → when its negative entry expires
	hosted  map[string]hostedName
	asked   map[string]time.Time // names refused or failed → when (see markAsked)
	asked0  map[string]time.Time // the generation of asked before it
	flights map[flightKey]*flight
}

// A hostedName is a name a lookup found hosted.
type hostedName struct {
	d     discover.Domain
	gen   uint64    // the Site whose lookup found it
	fresh time.Time // until then, d answers for that Site
	keep  time.Time // until then, the name is looked up without a token
}

// A flight is one database lookup that several requests wait for.
type flightKey struct {
	gen  uint64
	name string
}

type flight struct {
	done chan struct{} // closed when d, ok, err are set
	d    discover.Domain
	ok   bool
	err  error
}

// errNoAnswer is a flight's result when its lookup panicked.
var errNoAnswer = errors.New("the lookup ended without an answer")

// NewMissGuard returns a MissGuard allowing rate lookups a second with
// bursts of burst (half of each reserved for names asked again),
// remembering unhosted and hosted names for ttl, at most capacity of each.
func NewMissGuard(rate, burst int, ttl time.Duration, capacity int) *MissGuard {
	// The reserve gets half the burst, rounded down, and the rate in
	// proportion: with a burst of 1 there is no reserve.
	againBurst := float64(burst / 2)
	againRate := 0.0
	if burst > 0 {
		againRate = float64(rate) * againBurst / float64(burst)
	}
	firstBurst, firstRate := float64(burst)-againBurst, float64(rate)-againRate
	return &MissGuard{
		ttl: ttl, cap: max(capacity, 2), now: time.Now,
		first:   tokenbucket.New(firstRate, firstBurst),
		again:   tokenbucket.New(againRate, againBurst),
		miss:    map[string]time.Time{},
		hosted:  map[string]hostedName{},
		asked:   map[string]time.Time{},
		asked0:  map[string]time.Time{},
		flights: map[flightKey]*flight{},
	}
}

// generation returns a number for a new Site: answers found for one Site
// are not served by another.
func (g *MissGuard) generation() uint64 { return g.gens.Add(1) }

// lookup tells whether name, which the snapshot of the Site of generation
// gen does not list, is hosted: from memory when it can, otherwise by
// ask, within the guard's bounds (errThrottled when refused). ask gets a
// context without the caller's cancellation, since other requests may
// wait for its answer; it must bound the query's time itself.
func (g *MissGuard) lookup(ctx context.Context, gen uint64, name string,
	ask func(ctx context.Context, name string) (discover.Domain, bool, error)) (discover.Domain, bool, error) {
	key := flightKey{gen, name}
	g.mu.Lock()
	now := g.now()
	h, isHosted := g.hosted[name]
	if isHosted && h.gen == gen && now.Before(h.fresh) {
		g.mu.Unlock()
		return h.d, true, nil
	}
	if exp, ok := g.miss[name]; ok {
		if now.Before(exp) {
			g.mu.Unlock()
			return discover.Domain{}, false, nil
		}
		delete(g.miss, name)
	}
	if f := g.flights[key]; f != nil {
		g.mu.Unlock()
		select {
		case <-f.done:
			return f.d, f.ok, f.err
		case <-ctx.Done():
			return discover.Domain{}, false, ctx.Err()
		}
	}
	admitted := isHosted && now.Before(h.keep) || // 1. found hosted lately
		g.first.Take(now) || // 2. a token of new names'
		g.askedAgain(name, now) && g.again.Take(now) // ...or the reserve
	if !admitted {
		g.markAsked(name, now)
		g.mu.Unlock()
		return discover.Domain{}, false, errThrottled
	}
	f := &flight{done: make(chan struct{}), err: errNoAnswer}
	g.flights[key] = f
	g.mu.Unlock()

	defer g.land(key, f)
	f.d, f.ok, f.err = ask(context.WithoutCancel(ctx), name)
	return f.d, f.ok, f.err
}

// land records what flight f found and hands it to the requests waiting.
func (g *MissGuard) land(key flightKey, f *flight) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.flights, key)
	defer close(f.done)
	now := g.now()
	switch {
	case f.err != nil:
		// Asked again, it may use the reserve; meanwhile it needs a
		// token even if it was hosted, so that a failing database is
		// not asked more than the buckets allow.
		g.markAsked(key.name, now)
		if h, ok := g.hosted[key.name]; ok {
			h.keep = time.Time{}
			g.hosted[key.name] = h
		}
	case f.ok:
		delete(g.asked, key.name)
		delete(g.asked0, key.name)
		if h, ok := g.hosted[key.name]; ok && h.gen > key.gen {
			h.keep = now.Add(hostedKeep) // a newer Site's answer stays
			g.hosted[key.name] = h
			return
		}
		if _, ok := g.hosted[key.name]; !ok && len(g.hosted) >= g.cap {
			g.evictHosted(now)
		}
		g.hosted[key.name] = hostedName{d: f.d, gen: key.gen, fresh: now.Add(g.ttl), keep: now.Add(hostedKeep)}
	default:
		delete(g.asked, key.name)
		delete(g.asked0, key.name)
		if h, ok := g.hosted[key.name]; ok && h.gen > key.gen {
			return // an older Site's answer: a newer one found it hosted
		}
		delete(g.hosted, key.name)
		g.missed(key.name, now)
	}
}

// evictHosted makes room in the positive cache: it drops the names kept
// past hostedKeep, then arbitrary ones (map order) down to 90 % of the
// capacity. Only names the database hosts get there, so this takes many
// hosted domains asked for within an hour.
func (g *MissGuard) evictHosted(now time.Time) {
	for n, h := range g.hosted {
		if !now.Before(h.keep) && !now.Before(h.fresh) {
			delete(g.hosted, n)
		}
	}
	for n := range g.hosted {
		if len(g.hosted) < g.cap-g.cap/10 {
			break
		}
		delete(g.hosted, n)
	}
}

// askedAgain reports whether name was refused or failed within the TTL.
func (g *MissGuard) askedAgain(name string, now time.Time) bool {
	t, ok := g.asked[name]
	if !ok {
		t, ok = g.asked0[name]
	}
	return ok && now.Before(t.Add(g.ttl))
}

// markAsked remembers that name was refused or failed. The names are kept
// in two generations of half the capacity each: a flood of distinct names
// can push a name out only after capacity/2 others.
func (g *MissGuard) markAsked(name string, now time.Time) {
	if len(g.asked) >= g.cap/2 {
		g.asked0, g.asked = g.asked, make(map[string]time.Time, len(g.asked))
	}
	g.asked[name] = now
}

// missed records that name is not hosted.
func (g *MissGuard) missed(name string, now time.Time) {
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
