package serve

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

// fakeProcs records the GOMAXPROCS values a procsGovernor sets.
type fakeProcs struct {
	mu   sync.Mutex
	sets []int
}

func (f *fakeProcs) set(n int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sets = append(f.sets, n)
	return 0
}

func (f *fakeProcs) calls() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.sets...)
}

// waitProcs waits until f has recorded want, in order.
func waitProcs(t *testing.T, f *fakeProcs, want ...int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		got := f.calls()
		if equalInts(got, want) {
			return
		}
		if len(got) > len(want) || time.Now().After(deadline) {
			t.Fatalf("GOMAXPROCS set to %v, want %v", got, want)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestProcsGovernor feeds requests (connection, time) to a governor and
// checks when it raises GOMAXPROCS.
func TestProcsGovernor(t *testing.T) {
	const window = 10 * time.Millisecond
	base := time.Unix(1_700_000_000, 0) // on a window boundary
	ms := func(n int) time.Time { return base.Add(time.Duration(n) * time.Millisecond) }
	type req struct {
		conn int
		at   time.Time
	}
	tests := []struct {
		name  string
		reqs  []req
		raise bool
	}{
		{"one request", []req{{0, ms(0)}}, false},
		{"one connection, many requests", []req{{0, ms(0)}, {0, ms(1)}, {0, ms(2)}, {0, ms(9)}, {0, ms(10)}, {0, ms(11)}}, false},
		{"two connections, one after the other", []req{{0, ms(0)}, {0, ms(5)}, {1, ms(10)}, {1, ms(15)}, {0, ms(20)}}, false},
		{"two connections in one window", []req{{0, ms(0)}, {1, ms(9)}}, true},
		{"many connections", []req{{0, ms(20)}, {1, ms(21)}, {2, ms(21)}, {3, ms(22)}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeProcs{}
			g := &procsGovernor{max: 4, set: f.set, window: window, hold: time.Hour}
			t.Cleanup(func() {
				if g.timer != nil {
					g.timer.Stop()
				}
			})
			nodes := map[int]*connNode{}
			for _, r := range tt.reqs {
				if nodes[r.conn] == nil {
					nodes[r.conn] = &connNode{}
				}
				g.active(nodes[r.conn], r.at)
			}
			var want []int
			if tt.raise {
				want = []int{4}
			}
			if got := f.calls(); !equalInts(got, want) {
				t.Errorf("GOMAXPROCS set to %v, want %v", got, want)
			}
		})
	}
}

// TestProcsGovernorHold: raised, GOMAXPROCS stays up while concurrent
// requests keep coming and goes back to one a hold after they stop.
func TestProcsGovernorHold(t *testing.T) {
	f := &fakeProcs{}
	const hold = 100 * time.Millisecond
	g := &procsGovernor{max: 2, set: f.set, window: time.Millisecond, hold: hold}
	a, b := &connNode{}, &connNode{}
	now := time.Unix(1_700_000_000, 0)
	g.active(a, now)
	g.active(b, now)
	waitProcs(t, f, 2)
	// Busy for three holds: still up.
	for end := time.Now().Add(3 * hold); time.Now().Before(end); time.Sleep(hold / 10) {
		now = now.Add(time.Millisecond)
		g.active(a, now)
		g.active(b, now)
	}
	if got := f.calls(); !equalInts(got, []int{2}) {
		t.Fatalf("GOMAXPROCS set to %v while busy, want [2]", got)
	}
	waitProcs(t, f, 2, 1)
	// And up again at the next concurrent requests.
	now = now.Add(time.Millisecond)
	g.active(a, now)
	g.active(b, now)
	waitProcs(t, f, 2, 1, 2, 1)
}

// TestProcsGovernorServer: through a real server, requests one at a time
// on one connection leave GOMAXPROCS alone; requests on two connections
// raise it, and it drops back when they stop.
func TestProcsGovernorServer(t *testing.T) {
	f := &fakeProcs{}
	g := &procsGovernor{max: 2, set: f.set, window: time.Hour, hold: 50 * time.Millisecond}
	governor.Store(g)
	t.Cleanup(func() { governor.Store(nil) })
	addr, _ := limitedServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	}), 16)

	c, br := keepAlive(t, addr)
	for range 20 {
		if _, err := c.Write([]byte(okRequest)); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	if got := f.calls(); len(got) != 0 {
		t.Fatalf("one connection: GOMAXPROCS set to %v, want untouched", got)
	}
	keepAlive(t, addr) // a second connection within the window
	waitProcs(t, f, 2)
	waitProcs(t, f, 2, 1)
}

// TestAdaptProcsOneCPU: with one CPU there is nothing to adapt.
func TestAdaptProcsOneCPU(t *testing.T) {
	AdaptProcs(1)
	if governor.Load() != nil {
		t.Fatal("AdaptProcs(1) installed a governor")
	}
}
