package testtool

import (
	"net"
	"path/filepath"
	"sync"
	"testing"
)

// SilentListener listens on network (tcp on loopback, or a unix socket in
// a temporary directory), accepts connections and never answers: a server
// that hangs, or a firewall that lets the handshake through. It returns
// the address; the listener and every connection it accepted are closed
// when t ends.
func SilentListener(t testing.TB, network string) string {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "silent.sock")
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}
