package slapdtest

import (
	"os"
	"sync"
	"testing"
)

var shared struct {
	mu      sync.Mutex
	servers map[string]*sharedServer
}

type sharedServer struct {
	once sync.Once
	s    *Server
	err  error
}

// Main runs the tests of a package that uses Shared, then stops the shared
// servers and removes their files. Call it from TestMain:
//
//	func TestMain(m *testing.M) { slapdtest.Main(m) }
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain with more to clean up: it returns the exit
// code instead of exiting.
func Run(m *testing.M) int {
	code := m.Run()
	CloseShared()
	return code
}

// CloseShared stops the shared servers, if any were started, and removes
// their files: for a TestMain that uses several harnesses' shared servers
// and so cannot call each one's Run.
func CloseShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	for _, ss := range shared.servers {
		if ss.s != nil {
			ss.s.close()
		}
	}
	shared.servers = nil
}

// Shared returns the test binary's one server for c, starting it on first
// use. Never Stop it, and add entries only under names no other test uses:
// tests that stop a server use Start. Without Main the server is killed
// when the binary exits, but its files stay behind.
func Shared(t testing.TB, c Config) *Server {
	t.Helper()
	shared.mu.Lock()
	if shared.servers == nil {
		shared.servers = map[string]*sharedServer{}
	}
	ss := shared.servers[c.key()]
	if ss == nil {
		ss = &sharedServer{}
		shared.servers[c.key()] = ss
	}
	shared.mu.Unlock()
	ss.once.Do(func() { ss.s, ss.err = start(c) })
	if ss.err != nil {
		fail(t, ss.err)
	}
	return ss.s
}
