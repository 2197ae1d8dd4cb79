package serve

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// Server timeouts. A discovery request is one small GET or a POST of a few
// hundred bytes, answered from memory (or after one database query bounded
// by lookupTimeout), so every limit can be tight; they exist to shed
// slow-loris clients, not to wait for honest ones.
const (
	// ReadHeaderTimeout: clients send the request line and headers at
	// once; 5 s is what Thunderbird allows for the whole request.
	ReadHeaderTimeout = 5 * time.Second
	// ReadTimeout covers headers and a body of at most 64 KiB.
	ReadTimeout = 10 * time.Second
	// WriteTimeout runs from the end of the headers to the end of the
	// response: a domain lookup (≤ 2 s), signing a profile, and a client
	// reading a few KiB.
	WriteTimeout = 15 * time.Second
	// IdleTimeout keeps a reverse proxy's keep-alive connection open
	// between requests, but not for long: a mail client asks its few
	// questions within a second or two, and a proxy on the same host
	// reconnects in microseconds. Idle connections are also the first
	// closed when MaxConns is reached.
	IdleTimeout = 15 * time.Second
	// MaxHeaderBytes bounds the request line and headers. Discovery
	// requests need well under 4 KiB, but on the apex domain a proxy
	// forwards the web site's cookies too; nginx's own default allows
	// 8 KiB per line.
	MaxHeaderBytes = 32 << 10
)

// NewServer returns an http.Server for h with the timeouts above, keeping
// at most MaxConns connections open (see connLimiter: idle and slow ones
// are closed first). Its own errors (a client's broken connection, say)
// are logged at debug level.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	srv, _ := newServer(h, log, MaxConns)
	return srv
}

func newServer(h http.Handler, log *slog.Logger, maxConns int) (*http.Server, *connLimiter) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lim := newConnLimiter(maxConns, log)
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnState:         lim.connState,
	}, lim
}

// Listen opens a listening socket for addr: "unix:/path" for a unix
// socket (a stale socket file is removed first; the socket is made
// read-write for its owner and group, 0660, for a web server in the group),
// anything else a TCP host:port.
func Listen(addr string) (net.Listener, error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		return l, nil
	}
	if path == "" {
		return nil, errors.New("listen on unix: no path after unix:")
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("listen on %s: %s exists and is not a socket", addr, path)
		}
		// A socket file left by an earlier run that did not stop cleanly:
		// nothing answers on it, or the dial below would succeed.
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen on %s: another process is listening on %s", addr, path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("listen on %s: remove stale socket: %w", addr, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return l, nil
}
