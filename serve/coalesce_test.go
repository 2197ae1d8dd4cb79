package serve

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
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
// (headers included), and answers past maxCoalesce.
func sizes() []int {
	s := []int{0, 1, 100, 2048, 12000, 40000, maxCoalesce - 200, maxCoalesce + 5000, 3 * maxCoalesce}
	for n := connWriteBuffer - 300; n <= connWriteBuffer+100; n++ {
		s = append(s, n)
	}
	for n := 2*connWriteBuffer - 200; n <= 2*connWriteBuffer; n++ {
		s = append(s, n)
	}
	return s
}

func TestCoalesceWrites(t *testing.T) {
	addr, writes := sizedServer(t, CoalesceWrites)
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
		if n > maxCoalesce-connWriteBuffer {
			want = int64(n/maxCoalesce + 2) // pieces of about maxCoalesce, at most
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
func TestCoalesceWritesPipelined(t *testing.T) {
	addr, _ := sizedServer(t, CoalesceWrites)
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

// Without CoalesceWrites, net/http writes a response over its buffer in
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
