package serve

import (
	"net"
	"sync"
	"time"
)

// connWriteBuffer is the size of the buffer net/http writes a connection's
// responses through (bufio, 4 KiB in every Go release so far). A response
// of status line, headers and body longer than it reaches the connection
// in several writes: a full buffer, then the rest.
const connWriteBuffer = 4 << 10

// maxCoalesce bounds what a coalescing connection holds back: a response
// larger than this leaves in pieces of about this size.
const maxCoalesce = 64 << 10

// CoalesceWrites returns a listener whose connections send each HTTP/1.1
// response that net/http writes in several pieces (one over its 4 KiB
// write buffer, such as the settings page with its headers) in one write,
// as nginx does with one writev: each write is a system call and, to a
// client or a proxy on the other end, a separate segment to wake up for.
//
// A write smaller than the buffer, with nothing held back, goes out at
// once: that is a whole response, or the last piece of one. A write of a
// full buffer or more is held back until the next smaller write (the rest
// of the response), or until net/http clears the write deadline, which it
// does after every response (and sets before every request), or
// CloseWrite or Close. Not on a read: net/http reads in the background
// while a handler runs, and a flush there would split the response again.
// Only for plain HTTP/1.1: an HTTP/2 connection reads and writes at once,
// and a held frame would wait for the peer's next frame.
func CoalesceWrites(l net.Listener) net.Listener {
	return coalescingListener{l}
}

type coalescingListener struct{ net.Listener }

func (l coalescingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &coalescingConn{Conn: c}, nil
}

// A coalescingConn holds back full-buffer writes (CoalesceWrites). A
// handler's writes and a shutdown's Close can run on different
// goroutines, so held is guarded by mu.
type coalescingConn struct {
	net.Conn
	mu   sync.Mutex
	held []byte
	err  error // the failed flush: the stream lost bytes, every later write fails
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if len(c.held) == 0 && len(p) < connWriteBuffer {
		return c.Conn.Write(p)
	}
	c.held = append(c.held, p...)
	if len(p) >= connWriteBuffer && len(c.held) < maxCoalesce {
		return len(p), nil // the rest of the response may follow
	}
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flushLocked writes what is held back; c.mu must be held. After an
// error (a client that stopped reading until the write deadline, say) the
// stream has lost bytes, so every later write fails with the same error
// and net/http closes the connection.
func (c *coalescingConn) flushLocked() error {
	if c.err != nil || len(c.held) == 0 {
		return c.err
	}
	_, err := c.Conn.Write(c.held)
	c.err = err
	if cap(c.held) > 2*connWriteBuffer {
		c.held = nil // do not keep a large response's buffer per idle connection
	} else {
		c.held = c.held[:0]
	}
	return err
}

func (c *coalescingConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushLocked()
}

// SetWriteDeadline flushes, then sets the deadline: net/http sets or
// clears it between responses.
func (c *coalescingConn) SetWriteDeadline(t time.Time) error {
	c.flush() // an error fails the next write
	return c.Conn.SetWriteDeadline(t)
}

func (c *coalescingConn) SetDeadline(t time.Time) error {
	c.flush()
	return c.Conn.SetDeadline(t)
}

// CloseWrite flushes, then shuts down the writing side where the
// connection can (TCP and unix sockets): net/http does so after a response
// with "Connection: close".
func (c *coalescingConn) CloseWrite() error {
	if err := c.flush(); err != nil {
		return err
	}
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *coalescingConn) Close() error {
	c.flush() // best effort; the write deadline net/http set bounds it
	return c.Conn.Close()
}
