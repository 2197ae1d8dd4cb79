package serve

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// MaxConns bounds the connections a server made by NewServer keeps open
// at once, over all its sockets. Each costs about 20 KiB while it waits
// (a goroutine and net/http's two 4 KiB buffers; more with TLS), so the
// bound keeps idle keep-alive connections and slow clients under about
// 20–40 MiB. Mail clients open one connection for a request or two, and a
// web server in front opens one per request in flight, so honest use is
// far below it. The unit's LimitNOFILE= leaves room for it and for the
// database connections and files a rebuild opens.
const MaxConns = 1024

// limitLogEvery spaces the warnings that the connection bound was reached.
const limitLogEvery = time.Minute

// A connLimiter keeps a server's open connections at most max, as its
// http.Server.ConnState hook. When a new connection would pass the bound
// it closes, in this order: the connection idle longest between two
// requests (a keep-alive connection), else the oldest that has not yet
// sent a whole request header (a slow or silent client, which the server
// would drop at ReadHeaderTimeout anyway), else the new connection itself:
// every other one is in the middle of a request. So a flood of idle or
// slow connections cannot lock out a new client, and nothing waits in
// the kernel's accept queue: the excess is closed at once.
//
// Closing skips TLS's close_notify (the raw connection is closed), so it
// never blocks the accept loop on a client that does not read.
type connLimiter struct {
	max int
	log *slog.Logger

	mu    sync.Mutex
	conns map[net.Conn]*connNode
	open  int      // connections counted against max
	idle  connList // StateIdle, oldest first
	fresh connList // StateNew: no whole request header read yet, oldest first

	evictedIdle, evictedNew, refused int
	lastLog                          time.Time
}

// A connNode is one tracked connection, on at most one list.
type connNode struct {
	c          net.Conn
	list       *connList
	prev, next *connNode
	window     int64 // procsGovernor: the last window this connection was counted in
}

// A connList is an intrusive doubly linked list of connNodes.
type connList struct {
	head, tail *connNode
}

func (l *connList) push(n *connNode) {
	n.list, n.prev, n.next = l, l.tail, nil
	if l.tail != nil {
		l.tail.next = n
	} else {
		l.head = n
	}
	l.tail = n
}

func (l *connList) remove(n *connNode) {
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		l.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		l.tail = n.prev
	}
	n.list, n.prev, n.next = nil, nil, nil
}

func newConnLimiter(max int, log *slog.Logger) *connLimiter {
	return &connLimiter{max: max, log: log, conns: map[net.Conn]*connNode{}}
}

// connState is the http.Server.ConnState hook.
func (l *connLimiter) connState(c net.Conn, state http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.conns[c]
	switch state {
	case http.StateNew:
		if n != nil {
			return
		}
		if l.open >= l.max {
			victim := l.idle.head
			if victim != nil {
				l.evictedIdle++
			} else if victim = l.fresh.head; victim != nil {
				l.evictedNew++
			}
			if victim == nil {
				l.refused++
				l.warn()
				closeRaw(c) // net/http reports it closed; it was never counted
				return
			}
			l.warn()
			l.drop(victim)
			closeRaw(victim.c)
		}
		n = &connNode{c: c}
		l.conns[c] = n
		l.open++
		l.fresh.push(n)
	case http.StateActive:
		if n != nil && n.list != nil {
			n.list.remove(n)
		}
		if g := governor.Load(); g != nil && n != nil {
			g.active(n, time.Now())
		}
	case http.StateIdle:
		if n != nil {
			if n.list != nil {
				n.list.remove(n)
			}
			l.idle.push(n)
		}
	case http.StateHijacked, http.StateClosed:
		if n != nil {
			l.drop(n)
		}
	}
}

// drop stops counting n; l.mu must be held.
func (l *connLimiter) drop(n *connNode) {
	if n.list != nil {
		n.list.remove(n)
	}
	delete(l.conns, n.c)
	l.open--
}

// warn logs that the bound was reached, at most once per limitLogEvery;
// l.mu must be held.
func (l *connLimiter) warn() {
	if now := time.Now(); now.Sub(l.lastLog) >= limitLogEvery {
		l.lastLog = now
		l.log.Warn("connection limit reached: closing idle and slow connections first, then refusing new ones",
			"max", l.max, "closed_idle", l.evictedIdle, "closed_slow", l.evictedNew, "refused", l.refused)
	}
}

// closeRaw closes c without TLS's close_notify, which could block on a
// client that does not read.
func closeRaw(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	c.Close()
}

// connStats is what a connLimiter has done, for tests.
type connStats struct {
	open, evictedIdle, evictedNew, refused int
	idle                                   int // connections on the idle list now
}

func (l *connLimiter) stats() connStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	idle := 0
	for n := l.idle.head; n != nil; n = n.next {
		idle++
	}
	return connStats{l.open, l.evictedIdle, l.evictedNew, l.refused, idle}
}

// governor, when set (AdaptProcs), sees every request a server made by
// NewServer starts.
var governor atomic.Pointer[procsGovernor]

// AdaptProcs runs Go code on one thread (GOMAXPROCS=1) while requests come
// one at a time, and on up to max threads while two or more connections
// send requests within the same few milliseconds, back to one after a
// second without. One thread answers a lone request fastest: the goroutine
// the network poller wakes runs on the thread that woke, with no other
// thread to wake and hand work to (a futex wake and a cold cache per
// request, which doubles the latency on an idle server; docs/bench.md).
// Several threads answer concurrent requests on every core, as a web
// server with one worker per core does. A max of 1 or less leaves
// GOMAXPROCS alone.
func AdaptProcs(max int) {
	if max <= 1 {
		return
	}
	g := &procsGovernor{max: max, set: runtime.GOMAXPROCS, window: procsWindow, hold: procsHold}
	g.set(1)
	governor.Store(g)
}

const (
	// procsWindow: requests from two connections within it raise
	// GOMAXPROCS. Under load many arrive in each; a client that asks a
	// few questions one after the other on one connection never does.
	procsWindow = 10 * time.Millisecond
	// procsHold: GOMAXPROCS goes back to one after this long without
	// concurrent requests. Each change stops the world for some µs.
	procsHold = time.Second
)

// A procsGovernor switches GOMAXPROCS between 1 and max (AdaptProcs).
type procsGovernor struct {
	max          int
	set          func(int) int // runtime.GOMAXPROCS; tests replace it
	window, hold time.Duration

	win   atomic.Int64 // the current window's number
	conns atomic.Int32 // connections counted in it
	busy  atomic.Bool  // concurrent requests seen since the last check
	up    atomic.Bool  // GOMAXPROCS is max

	mu    sync.Mutex // serializes set and the timer
	timer *time.Timer
}

// active counts n's request in the window of now, once per connection
// and window, and raises GOMAXPROCS at the second connection.
func (g *procsGovernor) active(n *connNode, now time.Time) {
	w := now.UnixNano() / int64(g.window)
	if n.window == w {
		return
	}
	n.window = w
	if g.win.Load() != w {
		// Racy between servers, which only miscounts one window.
		g.win.Store(w)
		g.conns.Store(0)
	}
	if g.conns.Add(1) < 2 {
		return
	}
	if !g.busy.Load() {
		g.busy.Store(true)
	}
	if g.up.Load() {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.up.Load() {
		return
	}
	g.set(g.max)
	g.up.Store(true)
	g.busy.Store(false)
	if g.timer == nil {
		g.timer = time.AfterFunc(g.hold, g.check)
	} else {
		g.timer.Reset(g.hold)
	}
}

// check lowers GOMAXPROCS to one when no concurrent requests came since
// the last check, else checks again after hold.
func (g *procsGovernor) check() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.busy.Swap(false) {
		g.timer.Reset(g.hold)
		return
	}
	g.set(1)
	g.up.Store(false)
}
