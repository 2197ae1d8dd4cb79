package serve

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// countingListener counts the writes its connections make to the socket.
type countingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func (c countingConn) CloseWrite() error {
	return c.Conn.(*net.TCPConn).CloseWrite()
}

// body returns n bytes of a pattern that shows any lost or reordered byte.
func body(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%23)
	}
	return b
}

// sizedServer serves GET /?n=N with N bytes of body, through wrap.
func sizedServer(t *testing.T, wrap func(net.Listener) net.Listener) (addr string, writes *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	writes = new(atomic.Int64)
	srv := NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(body(n))
	}), nil)
	go srv.Serve(wrap(countingListener{l, writes}))
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String(), writes
}

// get sends one request for n bytes on c and reads the response.
func get(t *testing.T, c net.Conn, r *bufio.Reader, n int, header string) *http.Response {
	t.Helper()
	// A response held back for good fails here, not at the test's timeout.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /?n=%d HTTP/1.1\r\nHost: example.com\r\n%s\r\n", n, header)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("%d bytes: %v", n, err)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%d bytes: body: %v", n, err)
	}
	if !bytes.Equal(got, body(n)) {
		t.Fatalf("%d bytes: got %d other bytes", n, len(got))
	}
	return resp
}

// sizes: small answers, every size around one and two full write buffers
// (headers included), and answers past maxHeld.
func sizes() []int {
	s := []int{0, 1, 100, 2048, 12000, 40000, maxHeld - 200, maxHeld + 5000, 3 * maxHeld}
	for n := connWriteBuffer - 300; n <= connWriteBuffer+100; n++ {
		s = append(s, n)
	}
	for n := 2*connWriteBuffer - 200; n <= 2*connWriteBuffer; n++ {
		s = append(s, n)
	}
	return s
}

func TestListenerOneWritePerResponse(t *testing.T) {
	addr, writes := sizedServer(t, Listener)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for _, n := range sizes() {
		before := writes.Load()
		get(t, c, r, n, "")
		// The whole response has arrived, so every write of it was made.
		got := writes.Load() - before
		want := int64(1)
		if n > maxHeld-connWriteBuffer {
			want = int64(n/maxHeld + 2) // pieces of about maxHeld, at most
			if got < 1 || got > want {
				t.Errorf("%d bytes of body: %d writes, want 1 to %d", n, got, want)
			}
			continue
		}
		if got != want {
			t.Errorf("%d bytes of body: %d writes, want 1", n, got)
		}
	}

	// "Connection: close": the response, then the end of the stream.
	resp := get(t, c, r, connWriteBuffer, "Connection: close\r\n")
	if !resp.Close {
		t.Error("no Connection: close in the response")
	}
	if b, err := r.ReadByte(); err != io.EOF {
		t.Errorf("after Connection: close: read %q, %v; want EOF", b, err)
	}
}

// Pipelined requests: answers in order, whole, even when the next request
// is already read when a response is held back.
func TestListenerPipelined(t *testing.T) {
	addr, _ := sizedServer(t, Listener)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ns := []int{5000, 10, connWriteBuffer, 70000, 3000, 2 * connWriteBuffer}
	var reqs bytes.Buffer
	for _, n := range ns {
		fmt.Fprintf(&reqs, "GET /?n=%d HTTP/1.1\r\nHost: example.com\r\n\r\n", n)
	}
	if _, err := c.Write(reqs.Bytes()); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	for _, n := range ns {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		got, err := io.ReadAll(resp.Body)
		if err != nil || !bytes.Equal(got, body(n)) {
			t.Fatalf("%d bytes: got %d bytes, %v", n, len(got), err)
		}
	}
}

// Without Listener, net/http writes a response over its buffer in
// two pieces: what connWriteBuffer and the wrapper assume.
func TestConnWriteBufferOfNetHTTP(t *testing.T) {
	addr, writes := sizedServer(t, func(l net.Listener) net.Listener { return l })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for _, tc := range []struct{ n, writes int }{{connWriteBuffer - 400, 1}, {connWriteBuffer, 2}} {
		before := writes.Load()
		get(t, c, r, tc.n, "")
		if got := writes.Load() - before; got != int64(tc.writes) {
			t.Errorf("net/http, %d bytes of body: %d writes, want %d (has its connection buffer changed from %d?)",
				tc.n, got, tc.writes, connWriteBuffer)
		}
	}
}

// connPair returns the server's side of a connection accepted through
// wrap (on network "tcp" or "unix") and the client's side.
func connPair(t *testing.T, network string, wrap func(net.Listener) net.Listener) (server, client net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = t.TempDir() + "/s"
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.Dial(network, l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = wrap(l).Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// errorKind is what net/http tells apart in a connection's error.
func errorKind(err error) string {
	var oe *net.OpError
	switch {
	case err == nil:
		return "nil"
	case err == io.EOF:
		return "EOF"
	case !errors.As(err, &oe):
		return fmt.Sprintf("not an OpError: %T %v", err, err)
	case errors.Is(err, os.ErrDeadlineExceeded) && oe.Timeout():
		return oe.Op + ": timeout"
	case errors.Is(err, net.ErrClosed):
		return oe.Op + ": closed"
	case errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNRESET):
		return oe.Op + ": peer gone"
	}
	return fmt.Sprintf("%s: %v", oe.Op, err)
}

// The raw reads and writes fail as net.Conn's do: net/http tells a
// timeout, an end of stream, a closed connection and a gone peer apart.
func TestListenerConnErrors(t *testing.T) {
	plain := func(l net.Listener) net.Listener { return l }
	for _, network := range []string{"tcp", "unix"} {
		for _, tc := range []struct {
			name string
			want string
			do   func(server, client net.Conn) error
		}{
			{"read deadline", "read: timeout", func(s, c net.Conn) error {
				s.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				_, err := s.Read(make([]byte, 10))
				return err
			}},
			{"deadline in the past", "read: timeout", func(s, c net.Conn) error {
				s.SetReadDeadline(time.Unix(1, 0))
				_, err := s.Read(make([]byte, 10))
				return err
			}},
			{"peer closed", "EOF", func(s, c net.Conn) error {
				c.Write([]byte("x"))
				c.Close()
				b, _ := io.ReadAll(io.LimitReader(s, 1))
				if string(b) != "x" {
					return fmt.Errorf("read %q before the end", b)
				}
				_, err := s.Read(make([]byte, 10))
				return err
			}},
			{"read after Close", "read: closed", func(s, c net.Conn) error {
				s.Close()
				_, err := s.Read(make([]byte, 10))
				return err
			}},
			{"Close during a read", "read: closed", func(s, c net.Conn) error {
				go func() { time.Sleep(20 * time.Millisecond); s.Close() }()
				_, err := s.Read(make([]byte, 10))
				return err
			}},
			{"write to a gone peer", "write: peer gone", func(s, c net.Conn) error {
				c.Close()
				time.Sleep(10 * time.Millisecond)
				for range 100 {
					if _, err := s.Write(make([]byte, 1000)); err != nil {
						return err
					}
					time.Sleep(time.Millisecond)
				}
				return nil
			}},
			{"write deadline, peer not reading", "write: timeout", func(s, c net.Conn) error {
				s.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
				for range 10000 {
					if _, err := s.Write(make([]byte, 1000)); err != nil {
						return err
					}
				}
				return nil
			}},
		} {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				want := errorKind(tc.do(connPair(t, network, plain)))
				if want != tc.want {
					t.Fatalf("net.Conn: %s, the test expects %s", want, tc.want)
				}
				if got := errorKind(tc.do(connPair(t, network, Listener))); got != want {
					t.Errorf("Listener's conn: %s, net.Conn: %s", got, want)
				}
			})
		}
	}
}

// Many megabytes each way through the raw reads and writes, with full
// socket buffers (the writes wait in the poller) and short reads.
func TestListenerConnBulk(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			s, c := connPair(t, network, Listener)
			data := body(8 << 20)
			go func() {
				s.Write(data) // held and flushed: one 8 MiB write call, in pieces of maxHeld
				s.SetWriteDeadline(time.Time{})
			}()
			got := make([]byte, 0, len(data))
			buf := make([]byte, 1500)
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			for len(got) < len(data) {
				n, err := c.Read(buf)
				if err != nil {
					t.Fatalf("client read after %d bytes: %v", len(got), err)
				}
				got = append(got, buf[:n]...)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("the server's bytes arrived changed")
			}
			go c.Write(data)
			got = got[:0]
			s.SetReadDeadline(time.Now().Add(20 * time.Second))
			for len(got) < len(data) {
				n, err := s.Read(buf)
				if err != nil {
					t.Fatalf("server read after %d bytes: %v", len(got), err)
				}
				got = append(got, buf[:n]...)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("the client's bytes arrived changed")
			}
		})
	}
}

// TestListenerConnAllocs: a response held back and flushed, and the reads
// and writes of a connection, allocate nothing once warm. A buffer per
// held response was 13 KB of garbage per settings page, and a closure per
// read and write three allocations each, which cost a one-thread daemon a
// fifth of its throughput (docs/bench.md, 2026-12-03).
func TestListenerConnAllocs(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			server, client := connPair(t, network, Listener)
			head, rest := body(connWriteBuffer), body(connWriteBuffer+600)
			got := make([]byte, len(head)+len(rest))
			req := []byte("GET / HTTP/1.1\r\n\r\n")
			buf := make([]byte, 64)
			exchange := func() {
				// As net/http writes a response over its buffer: a full
				// buffer, the rest, then it clears the write deadline.
				if _, err := server.Write(head); err != nil {
					t.Fatal(err)
				}
				if _, err := server.Write(rest); err != nil {
					t.Fatal(err)
				}
				if err := server.SetWriteDeadline(time.Time{}); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(client, got); err != nil {
					t.Fatal(err)
				}
				if _, err := client.Write(req); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(server, buf[:len(req)]); err != nil {
					t.Fatal(err)
				}
			}
			exchange()
			if allocs := testing.AllocsPerRun(200, exchange); allocs >= 0.5 {
				t.Errorf("%.1f allocations per response held back and request read, want 0", allocs)
			}
			if !bytes.Equal(got, append(append([]byte(nil), head...), rest...)) {
				t.Error("the client read other bytes than were written")
			}
		})
	}
}

// TestListenerConnCloseDuringWrite: Close, or a deadline in the past,
// ends a write blocked on a client that does not read, as on a net.Conn,
// instead of waiting for the write to end.
func TestListenerConnCloseDuringWrite(t *testing.T) {
	for _, how := range []string{"Close", "SetWriteDeadline", "SetDeadline"} {
		t.Run(how, func(t *testing.T) {
			server, client := connPair(t, "tcp", Listener)
			// Cleanups run last first: the client's close ends a write still
			// blocked when the test fails, so the server's Close can return.
			t.Cleanup(func() { client.Close() })
			wrote := make(chan error, 1)
			go func() {
				_, err := server.Write(make([]byte, 64<<20)) // more than the socket buffers hold
				wrote <- err
			}()
			time.Sleep(200 * time.Millisecond) // the write is blocked by now
			ended := make(chan struct{})
			go func() {
				defer close(ended)
				past := time.Now().Add(-time.Second)
				switch how {
				case "Close":
					server.Close()
				case "SetWriteDeadline":
					server.SetWriteDeadline(past)
				case "SetDeadline":
					server.SetDeadline(past)
				}
			}()
			select {
			case <-ended:
			case <-time.After(5 * time.Second):
				t.Fatalf("%s waited for the blocked write", how)
			}
			select {
			case err := <-wrote:
				if err == nil {
					t.Error("the blocked write succeeded")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the blocked write did not end")
			}
		})
	}
}

// TestListenerConnFailedFlushCloses: when the flush net/http asks for by
// clearing the write deadline fails, nobody sees the error (net/http
// ignores it), so the connection is closed: the next read fails at once
// instead of waiting for a request while the client waits for the rest.
func TestListenerConnFailedFlushCloses(t *testing.T) {
	server, _ := connPair(t, "tcp", Listener)
	under := server.(*conn).Conn
	// Fill the socket buffers (the client never reads) until not a byte
	// more goes in, then hold a write.
	fill := make([]byte, 1<<20)
	for i := 0; ; i++ {
		under.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		if n, _ := under.Write(fill); n == 0 {
			break
		}
		if i == 100 {
			t.Fatal("the socket buffers took 100 MiB")
		}
	}
	under.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := server.Write(body(maxHeld - connWriteBuffer)); err != nil {
		t.Fatal(err)
	}
	server.SetWriteDeadline(time.Time{}) // the flush times out
	read := make(chan error, 1)
	go func() {
		_, err := server.Read(make([]byte, 1))
		read <- err
	}()
	select {
	case err := <-read:
		if err == nil {
			t.Error("read succeeded on a connection whose response was cut")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the connection was kept after its response was cut")
	}
	if _, err := server.Write([]byte("x")); err == nil {
		t.Error("a write after the failed flush succeeded")
	}
}
