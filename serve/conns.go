package serve

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync"
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
