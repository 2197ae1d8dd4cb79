package serve

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// limitedServer serves h on loopback with at most max connections.
func limitedServer(t *testing.T, h http.Handler, max int) (string, *connLimiter) {
	t.Helper()
	srv, lim := newServer(h, nil, max)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String(), lim
}

const okRequest = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"

// keepAlive opens a connection, has one request answered on it, and
// leaves it open and idle.
func keepAlive(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, okRequest); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return c, br
}

// closedByServer reports whether the server closed c: a read returns EOF
// or a reset within wait.
func closedByServer(c net.Conn, br *bufio.Reader, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	_, err := br.ReadByte()
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

func waitOpen(t *testing.T, lim *connLimiter, want int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); lim.stats().open != want; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections counted, want %d", lim.stats().open, want)
		}
	}
}

func waitIdle(t *testing.T, lim *connLimiter, want int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); lim.stats().idle != want; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections idle, want %d", lim.stats().idle, want)
		}
	}
}

func TestConnLimitIdleFirst(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	addr, lim := limitedServer(t, ok, 4)
	type conn struct {
		c  net.Conn
		br *bufio.Reader
	}
	var idle []conn
	for i := range 4 {
		c, br := keepAlive(t, addr)
		idle = append(idle, conn{c, br})
		// The server marks a connection idle after the client has read
		// its answer: wait for it, so that the idle order is the
		// order of the connections.
		waitIdle(t, lim, i+1)
	}
	waitOpen(t, lim, 4)
	// A fifth client is served; the connection idle longest makes room.
	keepAlive(t, addr)
	if !closedByServer(idle[0].c, idle[0].br, time.Second) {
		t.Error("the oldest idle connection is still open")
	}
	for i, k := range idle[1:] {
		if closedByServer(k.c, k.br, 50*time.Millisecond) {
			t.Errorf("idle connection %d was closed too", i+1)
		}
	}
	if st := lim.stats(); st.open != 4 || st.evictedIdle != 1 || st.refused != 0 {
		t.Errorf("stats %+v, want 4 open, 1 idle closed, none refused", st)
	}
}

// waitNoFresh waits until every connection has sent a whole request
// header (none is on the limiter's fresh list).
func waitNoFresh(t *testing.T, lim *connLimiter, msg string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		lim.mu.Lock()
		fresh := lim.fresh.head
		lim.mu.Unlock()
		if fresh == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
	}
}

func TestConnLimitSlowBeforeRefusing(t *testing.T) {
	release := make(chan struct{})
	block := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			<-release
		}
		io.WriteString(w, "ok")
	})
	addr, lim := limitedServer(t, block, 3)
	defer close(release)

	// Two requests in progress and one silent client.
	var busy []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /block HTTP/1.1\r\nHost: example.com\r\n\r\n")
		busy = append(busy, c)
	}
	// Both must be in their request before the silent client comes, or
	// one of them would still count as the oldest without a header.
	waitNoFresh(t, lim, "the two blocking requests did not start")
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	waitOpen(t, lim, 3)

	// A new client takes the silent one's place and is answered.
	c, _ := keepAlive(t, addr)
	if !closedByServer(silent, bufio.NewReader(silent), time.Second) {
		t.Error("the silent connection is still open")
	}
	waitOpen(t, lim, 3)
	// Now every connection is busy or just answered (idle): the idle one
	// goes next; with it gone too, a newcomer is refused at once.
	c.Close()
	waitOpen(t, lim, 2)
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	io.WriteString(third, "GET /block HTTP/1.1\r\nHost: example.com\r\n\r\n")
	waitOpen(t, lim, 3)
	waitNoFresh(t, lim, "the third request did not start")
	refusedAt := time.Now()
	late, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	io.WriteString(late, okRequest)
	if !closedByServer(late, bufio.NewReader(late), time.Second) {
		t.Error("a connection over the bound with every other one busy was not closed")
	}
	t.Logf("refused in %v", time.Since(refusedAt).Round(time.Microsecond))
	if st := lim.stats(); st.refused != 1 || st.evictedNew != 1 || st.open != 3 {
		t.Errorf("stats %+v, want 1 refused, 1 slow closed, 3 open", st)
	}
	for _, b := range busy {
		b.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := b.Read(make([]byte, 1)); err != nil && !strings.Contains(err.Error(), "timeout") {
			t.Errorf("a busy connection was closed: %v", err)
		}
	}
}
