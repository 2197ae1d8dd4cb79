package testtool

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Servers holds a test binary's shared throwaway servers of one kind
// (MariaDB, PostgreSQL, slapd): one per key, started on first use and
// stopped by Close. The zero value is ready to use; it is safe for
// concurrent use.
type Servers[S any] struct {
	mu sync.Mutex
	m  map[string]*sharedServer[S]
}

type sharedServer[S any] struct {
	once    sync.Once
	s       S
	err     error
	started bool
}

// Get returns the server for key, calling start the first time it is
// asked for; a start that failed fails every Get of that key alike.
func (p *Servers[S]) Get(key string, start func() (S, error)) (S, error) {
	p.mu.Lock()
	if p.m == nil {
		p.m = map[string]*sharedServer[S]{}
	}
	ss := p.m[key]
	if ss == nil {
		ss = &sharedServer[S]{}
		p.m[key] = ss
	}
	p.mu.Unlock()
	ss.once.Do(func() {
		ss.s, ss.err = start()
		ss.started = ss.err == nil
	})
	return ss.s, ss.err
}

// Close calls stop on every server that started, and forgets them all.
func (p *Servers[S]) Close(stop func(S)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ss := range p.m {
		if ss.started {
			stop(ss.s)
		}
	}
	p.m = nil
}

// StopProcess sends cmd's process sig and waits for done (closed when the
// process has exited and been waited for); after timeout it kills the
// process, waits, and returns an error naming it.
func StopProcess(name string, cmd *exec.Cmd, done <-chan struct{}, sig syscall.Signal, timeout time.Duration) error {
	syscall.Kill(cmd.Process.Pid, sig)
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
	}
	syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	<-done
	return fmt.Errorf("%s did not stop within %s; killed", name, timeout)
}

// Main runs a package's tests, then closers (each harness's CloseShared,
// which stops its shared servers and removes their files), and exits with
// the tests' code. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testtool.Main(m, mariadbtest.CloseShared, pgtest.CloseShared) }
func Main(m *testing.M, closers ...func()) {
	code := m.Run()
	for _, c := range closers {
		c()
	}
	os.Exit(code)
}

// SocketDir makes a temporary directory for a server's files whose path is
// short enough for the unix sockets in it (a socket path must fit in 108
// bytes): under os.TempDir, or /tmp when that is too long.
func SocketDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	if len(dir) > 70 {
		os.RemoveAll(dir)
		return os.MkdirTemp("/tmp", prefix)
	}
	return dir, nil
}
