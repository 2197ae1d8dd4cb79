package serve

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/discover"
)

// fakeClock is a settable time for MissGuard tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newGuard(c *fakeClock, rate, burst int, ttl time.Duration, capacity int) *MissGuard {
	g := NewMissGuard(rate, burst, ttl, capacity)
	g.now = c.now
	return g
}

// fakeTables stands for the database tables: it hosts the names in
// hosted, fails while fail is set, and counts the lookups.
type fakeTables struct {
	mu     sync.Mutex
	hosted map[string]bool
	fail   bool
	asked  atomic.Int64
}

func (db *fakeTables) ask(_ context.Context, name string) (discover.Domain, bool, error) {
	db.asked.Add(1)
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.fail {
		return discover.Domain{}, false, errors.New("database down")
	}
	if db.hosted[name] {
		return discover.Domain{Name: name, Source: "test"}, true, nil
	}
	return discover.Domain{}, false, nil
}

func (db *fakeTables) set(hosted string, on bool) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.hosted == nil {
		db.hosted = map[string]bool{}
	}
	db.hosted[hosted] = on
}

// tally is what a series of requests got.
type tally struct{ asked, found, unhosted, refused, failed int }

// ask makes one request per name, as Site.domain does for the Site of
// generation gen, and counts the answers and the database lookups.
func ask(g *MissGuard, db *fakeTables, gen uint64, names ...string) tally {
	var r tally
	before := db.asked.Load()
	for _, n := range names {
		_, ok, err := g.lookup(context.Background(), gen, n, db.ask)
		switch {
		case errors.Is(err, errThrottled):
			r.refused++
		case err != nil:
			r.failed++
		case ok:
			r.found++
		default:
			r.unhosted++
		}
	}
	r.asked = int(db.asked.Load() - before)
	return r
}

// randomNames returns n names never asked before.
func randomNames(n int) []string {
	var out []string
	for range n {
		out = append(out, fmt.Sprintf("r%d.example", nameSeq.Add(1)))
	}
	return out
}

var nameSeq atomic.Int64

// TestMissGuardBudgets floods the guard with unhosted names: names seen
// the first time get half the budget, names asked again the other half,
// and both together never more than burst + rate·t.
func TestMissGuardBudgets(t *testing.T) {
	c := &fakeClock{t: time.Unix(1e9, 0)}
	g := newGuard(c, 20, 40, time.Minute, 10000)
	var db fakeTables

	first := randomNames(100)
	if got := ask(g, &db, 1, first...); got.asked != 20 || got.refused != 80 {
		t.Errorf("100 new names: %+v; want 20 asked, 80 refused", got)
	}
	if got := ask(g, &db, 1, first[20:]...); got.asked != 20 || got.refused != 60 {
		t.Errorf("the 80 refused ones again: %+v; want 20 asked (the reserve), 60 refused", got)
	}
	if got := ask(g, &db, 1, first[:20]...); got.asked != 0 || got.unhosted != 20 {
		t.Errorf("the 20 found unhosted again: %+v; want 20 from the negative cache", got)
	}
	c.advance(500 * time.Millisecond) // 5 tokens back in each bucket
	if got := ask(g, &db, 1, randomNames(100)...); got.asked != 5 {
		t.Errorf("after 0.5 s, 100 new names: %d asked, want 5", got.asked)
	}
	if got := ask(g, &db, 1, first[40:]...); got.asked != 5 {
		t.Errorf("after 0.5 s, 60 names asked again: %d asked, want 5", got.asked)
	}

	// 10 s of 1000 new names a second: 10 lookups a second, and the
	// reserve fills up meanwhile.
	total := 0
	var refused []string
	for range 100 {
		c.advance(100 * time.Millisecond)
		names := randomNames(100)
		total += ask(g, &db, 1, names...).asked
		refused = names
	}
	if total != 100 {
		t.Errorf("10 s of new names: %d lookups, want 100", total)
	}
	if got := ask(g, &db, 1, refused[:30]...); got.asked != 20 {
		t.Errorf("after the flood of new names, 30 asked again: %d asked, want the reserve's 20", got.asked)
	}

	// 10 s of 1000 new names a second, each asked again 100 ms later: both
	// buckets drained, and no more than burst + rate·t in all.
	g = newGuard(c, 20, 40, time.Minute, 10000)
	total, refused = 0, nil
	for range 100 {
		c.advance(100 * time.Millisecond)
		names := randomNames(100)
		total += ask(g, &db, 1, append(names, refused...)...).asked
		refused = names
	}
	// The buckets start full and refill from their first use (the first
	// round for new names, the second for names asked again): 237.
	if bound := 40 + 10*20; total > bound || total < bound-5 {
		t.Errorf("10 s of names each asked twice: %d lookups, want just under %d", total, bound)
	}

	// A burst of 1 keeps no reserve.
	g = newGuard(c, 1, 1, time.Minute, 10000)
	names := randomNames(2)
	if got := ask(g, &db, 1, names[0], names[1], names[1]); got.asked != 1 || got.refused != 2 {
		t.Errorf("rate 1, burst 1: %+v; want 1 asked, 2 refused", got)
	}
}

// TestMissGuardHosted: a name found hosted is answered from memory for the
// TTL and for its Site only; after that it is looked up again without a
// token, so that a flood cannot refuse it; a database failure takes that
// privilege away until it answers again.
func TestMissGuardHosted(t *testing.T) {
	c := &fakeClock{t: time.Unix(1e9, 0)}
	g := newGuard(c, 20, 40, time.Minute, 10000)
	var db fakeTables
	const name = "hosted.example"
	db.set(name, true)
	drainNew := func() { ask(g, &db, 1, randomNames(50)...) }
	drainAll := func() {
		names := randomNames(50)
		ask(g, &db, 1, names...)
		ask(g, &db, 1, names...)
	}

	drainNew()
	if got := ask(g, &db, 1, name); got.refused != 1 {
		t.Fatalf("first ask during a flood of new names: %+v; want refused", got)
	}
	if got := ask(g, &db, 1, name); got.found != 1 || got.asked != 1 {
		t.Fatalf("asked again: %+v; want found by one lookup (the reserve)", got)
	}
	drainAll()
	if got := ask(g, &db, 1, name, name, name); got.found != 3 || got.asked != 0 {
		t.Errorf("asked thrice within the TTL: %+v; want found 3 times from memory", got)
	}
	c.advance(time.Minute)
	drainAll()
	if got := ask(g, &db, 1, name, name); got.found != 2 || got.asked != 1 {
		t.Errorf("after the TTL, buckets empty: %+v; want one lookup without a token, then memory", got)
	}
	drainAll()
	if got := ask(g, &db, 2, name, name); got.found != 2 || got.asked != 1 {
		t.Errorf("for the next Site, buckets empty: %+v; want one lookup without a token, then memory", got)
	}

	// A failing database: the error, and then the name needs a token.
	c.advance(time.Minute)
	db.mu.Lock()
	db.fail = true
	db.mu.Unlock()
	drainAll()
	if got := ask(g, &db, 2, name); got.failed != 1 || got.asked != 1 {
		t.Errorf("database down: %+v; want one failed lookup", got)
	}
	if got := ask(g, &db, 2, name); got.refused != 1 || got.asked != 0 {
		t.Errorf("database down, asked again with the buckets empty: %+v; want refused", got)
	}
	db.mu.Lock()
	db.fail = false
	db.mu.Unlock()
	c.advance(time.Second) // a token for the reserve, where a failed name may draw
	if got := ask(g, &db, 2, name); got.found != 1 || got.asked != 1 {
		t.Errorf("database back: %+v; want found by one lookup", got)
	}

	// Removed from the database: found unhosted after the TTL, then
	// answered by the negative cache.
	db.set(name, false)
	c.advance(time.Minute)
	if got := ask(g, &db, 2, name, name, name); got.unhosted != 3 || got.asked != 1 {
		t.Errorf("removed: %+v; want unhosted 3 times after one lookup", got)
	}
}

// TestMissGuardCoalesce asks for one name from many requests at once: one
// lookup, whose answer every request gets; a request whose context ends
// stops waiting, and the one that started the lookup can go without
// cancelling it for the others.
func TestMissGuardCoalesce(t *testing.T) {
	g := NewMissGuard(20, 40, time.Minute, 10000)
	const name = "hosted.example"
	var asked atomic.Int64
	started, release := make(chan struct{}), make(chan struct{})
	slow := func(ctx context.Context, n string) (discover.Domain, bool, error) {
		if asked.Add(1) == 1 {
			close(started)
		}
		<-release
		if err := ctx.Err(); err != nil {
			return discover.Domain{}, false, err
		}
		return discover.Domain{Name: n}, true, nil
	}

	leaderCtx, leave := context.WithCancel(context.Background())
	type result struct {
		ok  bool
		err error
	}
	results := make(chan result, 20)
	go func() {
		_, ok, err := g.lookup(leaderCtx, 1, name, slow)
		results <- result{ok, err}
	}()
	<-started
	for range 15 {
		go func() {
			_, ok, err := g.lookup(context.Background(), 1, name, slow)
			results <- result{ok, err}
		}()
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := g.lookup(gone, 1, name, slow); !errors.Is(err, context.Canceled) {
		t.Errorf("a waiter whose client went away: error %v, want context.Canceled", err)
	}
	leave() // the request that started the lookup ends: the lookup goes on
	time.Sleep(10 * time.Millisecond)
	close(release)
	for range 16 {
		if r := <-results; !r.ok || r.err != nil {
			t.Errorf("a request waiting for the shared lookup: %v, %v; want found", r.ok, r.err)
		}
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("%d lookups for 16 concurrent requests, want 1", n)
	}
	if len(g.flights) != 0 {
		t.Errorf("%d flights left", len(g.flights))
	}
}

func TestMissGuardNegativeCache(t *testing.T) {
	c := &fakeClock{t: time.Unix(1e9, 0)}
	g := newGuard(c, 20, 40, time.Minute, 3)
	var db fakeTables
	if got := ask(g, &db, 1, "a.example", "a.example", "a.example"); got.asked != 1 || got.unhosted != 3 {
		t.Errorf("one name thrice: %+v; want 1 asked, 3 unhosted", got)
	}
	c.advance(59 * time.Second)
	if got := ask(g, &db, 1, "a.example"); got.asked != 0 {
		t.Errorf("after 59 s: asked again")
	}
	c.advance(time.Second)
	if got := ask(g, &db, 1, "a.example"); got.asked != 1 {
		t.Errorf("after 60 s: not asked again")
	}
}

// TestMissGuardBounded: what the guard remembers never exceeds its
// capacity, whatever the names.
func TestMissGuardBounded(t *testing.T) {
	c := &fakeClock{t: time.Unix(1e9, 0)}
	const capacity = 10
	g := newGuard(c, 1000, 1000, time.Minute, capacity)
	var db fakeTables
	hosted := randomNames(100)
	for _, n := range hosted {
		db.set(n, true)
	}
	ask(g, &db, 1, hosted...)
	ask(g, &db, 1, randomNames(100)...)
	if len(g.hosted) > capacity || len(g.miss) > capacity {
		t.Errorf("remembered %d hosted and %d unhosted names; capacity %d", len(g.hosted), len(g.miss), capacity)
	}
	g = newGuard(c, 0, 0, time.Minute, capacity) // refuses all
	ask(g, &db, 1, randomNames(100)...)
	if n := len(g.asked) + len(g.asked0); n > capacity {
		t.Errorf("remembered %d refused names; capacity %d", n, capacity)
	}
}

// TestMissGuardStaleMiss: an old Site's lookup that lands "not hosted"
// after a newer Site's found the name hosted (the row was added in
// between) neither wipes the newer answer nor caches a miss.
func TestMissGuardStaleMiss(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	g := newGuard(clk, 20, 40, time.Minute, 100)
	oldGen, newGen := g.generation(), g.generation()
	release := make(chan struct{})
	done := make(chan struct{})
	go func() {
		g.lookup(context.Background(), oldGen, "new.example", func(context.Context, string) (discover.Domain, bool, error) {
			<-release // the old snapshot's query ran before the row was committed
			return discover.Domain{}, false, nil
		})
		close(done)
	}()
	time.Sleep(50 * time.Millisecond)
	_, found, _ := g.lookup(context.Background(), newGen, "new.example", func(context.Context, string) (discover.Domain, bool, error) {
		return discover.Domain{Name: "new.example"}, true, nil
	})
	close(release)
	<-done
	clk.advance(time.Second)
	asked := false
	_, found2, _ := g.lookup(context.Background(), newGen, "new.example", func(context.Context, string) (discover.Domain, bool, error) {
		asked = true
		return discover.Domain{Name: "new.example"}, true, nil
	})
	t.Logf("new Site: first %v, then %v (asked db: %v)", found, found2, asked)
	if !found2 {
		t.Errorf("new Site answers a hosted domain as unhosted for the TTL after an old Site's stale miss")
	}
}
