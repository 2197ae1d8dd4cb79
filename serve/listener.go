package serve

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// connWriteBuffer is the size of the buffer net/http writes a connection's
// responses through (bufio, 4 KiB in every Go release so far). A response
// of status line, headers and body longer than it reaches the connection
// in several writes: a full buffer, then the rest.
const connWriteBuffer = 4 << 10

// maxHeld bounds what a connection holds back: a response larger than
// this leaves in pieces of about this size.
const maxHeld = 64 << 10

// Listener wraps a plain HTTP/1.1 listening socket (TCP or unix; not TLS,
// not HTTP/2) for a server made by NewServer. Its connections do two
// things net/http's do not, each measured in docs/bench.md:
//
// One write per response. net/http writes a response over its 4 KiB
// buffer (the settings page with its headers, say) in two or more pieces,
// and each is a system call and, for the client or the proxy in front, a
// separate segment to wake up for; nginx sends one writev. A write smaller
// than the buffer, with nothing held back, goes out at once: a whole
// response, or the last piece of one. A write of a full buffer or more is
// held back until the next smaller write (the rest of the response), or
// until net/http clears the write deadline, which it does after every
// response (and sets before every request), or CloseWrite or Close. Not on
// a read: net/http reads in the background while a handler runs, and a
// flush there would split the response again. (HTTP/2 reads and writes at
// once, and a held frame would wait for the peer's next frame: hence
// plain HTTP/1.1 only.) A handler's Flush (http.Flusher) does not reach
// a held write, nor does a hijacked connection's next read: a server
// whose handlers stream or hijack must not use a Listener. Ours answer
// with whole documents and do neither.
//
// No wake-up of the runtime's monitor thread. Reads and writes are
// non-blocking system calls made without telling the scheduler that a
// system call begins (syscall.RawSyscall inside syscall.RawConn, which
// waits in the network poller as net.Conn does). A blocking system call
// must tell it, so that another thread can run Go code meanwhile; but when
// every thread was idle, telling it also wakes the monitor thread (sysmon)
// from its deep sleep, which then runs and sleeps again in 20 µs steps.
// That is two more context switches per request on an otherwise idle
// server, on the same core as the request when it is pinned: behind nginx
// at one connection the daemon's context switches per request went from
// 4.5 to 2.5. A read or write on a non-blocking socket never blocks.
func Listener(l net.Listener) net.Listener {
	return listener{l}
}

type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	hc := &conn{Conn: c}
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			hc.raw = raw
			hc.readFn, hc.writeFn = hc.readRaw, hc.writeRaw
		}
	}
	return hc, nil
}

// A conn is a connection of a Listener. A handler's writes and a
// shutdown's Close can run on different goroutines, so held is guarded by
// mu.
type conn struct {
	net.Conn
	raw syscall.RawConn // nil: read and write through Conn

	mu   sync.Mutex
	held *[]byte // from heldBuffers while a response is held back, else nil
	err  error   // a failed flush: the stream lost bytes, every later write fails

	// The state of the read or write in progress, and the functions
	// syscall.RawConn calls with it, made once per connection: a closure
	// per call would be three allocations per read and per write.
	wbuf    []byte // guarded by mu
	wn      int
	werrno  syscall.Errno
	writeFn func(fd uintptr) bool

	rmu    sync.Mutex // one Read at a time (net/http never has two)
	rbuf   []byte
	rn     int
	rerrno syscall.Errno
	readFn func(fd uintptr) bool
}

// heldBuffers lends the buffers responses are held back in: a connection
// has one only between the first held write of a response and its flush,
// so an idle connection keeps none, and a busy server does not allocate
// one per response (the settings page, 8.8 KB, at 25 000 responses a
// second would be 200 MB/s of garbage for the collector of a one-thread
// daemon).
var heldBuffers = sync.Pool{New: func() any {
	b := make([]byte, 0, 4*connWriteBuffer)
	return &b
}}

func (c *conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.held == nil && len(p) < connWriteBuffer {
		return c.write(p)
	}
	if c.held == nil {
		c.held = heldBuffers.Get().(*[]byte)
	}
	*c.held = append(*c.held, p...)
	if len(p) >= connWriteBuffer && len(*c.held) < maxHeld {
		return len(p), nil // the rest of the response may follow
	}
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flushLocked writes what is held back; c.mu must be held. After an
// error (a client that stopped reading until the write deadline, say) the
// stream has lost bytes, so every later write fails with the same error,
// and the connection is closed at once: a flush net/http asked for by
// clearing the write deadline reports its error to no one, and net/http
// would otherwise keep the connection and wait for a next request while
// the client waits for the rest of the response.
func (c *conn) flushLocked() error {
	if c.err != nil || c.held == nil {
		return c.err
	}
	b := c.held
	c.held = nil
	if _, c.err = c.write(*b); c.err != nil {
		c.Conn.Close()
	}
	if cap(*b) <= 2*maxHeld { // not one very large write's buffer
		*b = (*b)[:0]
		heldBuffers.Put(b)
	}
	return c.err
}

func (c *conn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushLocked()
}

// SetWriteDeadline flushes what is held and sets the deadline: net/http
// clears it after every response. A deadline is set before the flush,
// so that one in the past unblocks a write in progress (which holds c.mu)
// as it does on a net.Conn, and the flush runs under it; clearing it comes
// after the flush, which the previous deadline bounds.
func (c *conn) SetWriteDeadline(t time.Time) error {
	return c.setDeadline(t, c.Conn.SetWriteDeadline)
}

func (c *conn) SetDeadline(t time.Time) error {
	return c.setDeadline(t, c.Conn.SetDeadline)
}

func (c *conn) setDeadline(t time.Time, set func(time.Time) error) error {
	if t.IsZero() {
		c.flush() // an error closes the connection
		return set(t)
	}
	err := set(t)
	c.flush()
	return err
}

// CloseWrite flushes, then shuts down the writing side where the
// connection can (TCP and unix sockets): net/http does so after a response
// with "Connection: close".
func (c *conn) CloseWrite() error {
	if err := c.flush(); err != nil {
		return err
	}
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close flushes what is held, best effort, unless a write is in progress:
// then it closes at once, which fails that write, as on a net.Conn
// (http.Server.Close, say, must not wait for a client that stopped
// reading).
func (c *conn) Close() error {
	if c.mu.TryLock() {
		c.flushLocked()
		c.mu.Unlock()
	}
	return c.Conn.Close()
}

// maxRW bounds one read or write system call, as internal/poll does.
const maxRW = 1 << 30

// Read reads as net.Conn's Read does (deadlines, io.EOF, *net.OpError),
// without the scheduler's system call bookkeeping (see Listener).
func (c *conn) Read(p []byte) (int, error) {
	if c.raw == nil || len(p) == 0 {
		return c.Conn.Read(p)
	}
	if len(p) > maxRW {
		p = p[:maxRW]
	}
	c.rmu.Lock()
	c.rbuf, c.rn, c.rerrno = p, 0, 0
	err := c.raw.Read(c.readFn)
	n, errno := c.rn, c.rerrno
	c.rbuf = nil
	c.rmu.Unlock()
	if err == nil && errno != 0 {
		err = os.NewSyscallError("read", errno)
	}
	if err != nil {
		return 0, c.opError("read", err)
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// readRaw is Read's function for syscall.RawConn.Read: one read(2) of
// c.rbuf, false to wait in the poller (EAGAIN) and be called again.
func (c *conn) readRaw(fd uintptr) bool {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(len(c.rbuf)))
		if e == syscall.EINTR {
			continue
		}
		c.rn, c.rerrno = int(r), e
		return e != syscall.EAGAIN
	}
}

// write writes all of p as net.Conn's Write does, without the scheduler's
// system call bookkeeping (see Listener); c.mu must be held.
func (c *conn) write(p []byte) (int, error) {
	if c.raw == nil {
		return c.Conn.Write(p)
	}
	c.wbuf, c.wn, c.werrno = p, 0, 0
	err := c.raw.Write(c.writeFn)
	n, errno := c.wn, c.werrno
	c.wbuf = nil
	if err == nil && errno != 0 {
		err = os.NewSyscallError("write", errno)
	}
	if err != nil {
		return n, c.opError("write", err)
	}
	return n, nil
}

// writeRaw is write's function for syscall.RawConn.Write: write(2) until
// c.wbuf is written, false to wait in the poller (EAGAIN: the socket
// buffer is full) and be called again.
func (c *conn) writeRaw(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		b := c.wbuf[c.wn:min(len(c.wbuf), c.wn+maxRW)]
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch e {
		case 0:
			c.wn += int(r)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werrno = e
			return true
		}
	}
	return true
}

// opError wraps err as net.Conn's Read and Write do (net/http tells a
// client's timeout or reset from other errors by it). syscall.RawConn
// reports its own errors (a deadline, a closed connection) as an
// *net.OpError of its own: that one is unwrapped.
func (c *conn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
