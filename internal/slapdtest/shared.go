package slapdtest

import (
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

// shared holds the test binary's servers, one per Config.
var shared testtool.Servers[*Server]

// Main runs the tests of a package that uses Shared, then stops the shared
// servers: func TestMain(m *testing.M) { slapdtest.Main(m) }. A package that
// uses several harnesses calls testtool.Main with each one's CloseShared.
func Main(m *testing.M) { testtool.Main(m, CloseShared) }

// CloseShared stops the shared servers, if started, and removes their files.
func CloseShared() { shared.Close((*Server).close) }

// Shared returns the test binary's one server for c, starting it on first
// use. Never Stop it, and add entries only under names no other test uses:
// tests that stop a server use Start. Without Main the server is killed
// when the binary exits, but its files stay behind.
func Shared(t testing.TB, c Config) *Server {
	t.Helper()
	s, err := shared.Get(c.key(), func() (*Server, error) { return start(c) })
	if err != nil {
		fail(t, err)
	}
	return s
}
