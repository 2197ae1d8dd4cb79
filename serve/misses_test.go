package serve

import (
	"fmt"
	"testing"
	"time"
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

// lookups asks g about each name as Site.domain does, with every name
// unhosted, and returns how many reached the database.
func lookups(g *MissGuard, names ...string) (asked, cached, refused int) {
	for _, n := range names {
		known, allowed := g.allow(n)
		switch {
		case known:
			cached++
		case !allowed:
			refused++
		default:
			asked++
			g.missed(n)
		}
	}
	return
}

func TestMissGuardRateLimit(t *testing.T) {
	c := &fakeClock{t: time.Unix(1e9, 0)}
	g := newGuard(c, 20, 40, time.Minute, 10000)
	random := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("r%d-%d.example", c.t.UnixNano(), i))
		}
		return out
	}
	if asked, _, refused := lookups(g, random(100)...); asked != 40 || refused != 60 {
		t.Errorf("a burst of 100 random names: %d asked, %d refused; want 40, 60", asked, refused)
	}
	c.advance(500 * time.Millisecond) // 10 tokens come back
	if asked, _, _ := lookups(g, random(100)...); asked != 10 {
		t.Errorf("after 0.5 s: %d asked, want 10", asked)
	}
	// A sustained flood for 10 s at 1000 names a second: 20 a second.
	total := 0
	for range 100 {
		c.advance(100 * time.Millisecond)
		asked, _, _ := lookups(g, random(100)...)
		total += asked
	}
	if total != 200 {
		t.Errorf("10 s of flooding: %d lookups, want 200", total)
	}
	c.advance(time.Hour) // the bucket refills to the burst, no more
	if asked, _, _ := lookups(g, random(100)...); asked != 40 {
		t.Errorf("after an idle hour: %d asked, want the burst of 40", asked)
	}
}

func TestMissGuardNegativeCache(t *testing.T) {
	c := &fakeClock{t: time.Unix(1e9, 0)}
	g := newGuard(c, 20, 40, time.Minute, 3)
	if asked, cached, _ := lookups(g, "a.example", "a.example", "a.example"); asked != 1 || cached != 2 {
		t.Errorf("one name thrice: %d asked, %d cached; want 1, 2", asked, cached)
	}
	c.advance(59 * time.Second)
	if asked, _, _ := lookups(g, "a.example"); asked != 0 {
		t.Errorf("after 59 s: asked again")
	}
	c.advance(time.Second)
	if asked, _, _ := lookups(g, "a.example"); asked != 1 {
		t.Errorf("after 60 s: not asked again")
	}
	// The cache never holds more than its capacity.
	lookups(g, "b.example", "c.example", "d.example", "e.example")
	if n := len(g.miss); n > 3 {
		t.Errorf("cache holds %d names, capacity 3", n)
	}
}
