// Package groupwaretest builds, for tests, the snapshot of a mail host
// running SOGo behind iRedMail's nginx: testdata/groupware/iredmail-sogo
// laid over a mail host's files, with SOGo's answers to discover's probe
// standing in for a running SOGo (internal/sogotest runs the real one).
package groupwaretest

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// Tree returns the directory of iRedMail's nginx tree with SOGo (and
// sogo-activesync's bundle), laid out as a root.
func Tree() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "groupware", "iredmail-sogo")
}

// SOGoAnswers is a discover.ProbeFunc answering as SOGo 5.8 does without
// credentials (see internal/sogotest): 401 on its DAV root and its
// ActiveSync path, 404 elsewhere.
func SOGoAnswers(ctx context.Context, addr, method, path string) (int, error) {
	switch path {
	case "/SOGo/dav/", "/SOGo/Microsoft-Server-ActiveSync":
		return 401, nil
	}
	return 404, nil
}

// Snapshot lays Tree over the mail host's files in dir and builds its
// snapshot, the backend answering through probe (nil: SOGoAnswers).
// The snapshot is closed when t ends.
func Snapshot(t testing.TB, dir string, probe discover.ProbeFunc) *discover.Snapshot {
	t.Helper()
	testtool.CopyTree(t, Tree(), dir)
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if probe == nil {
		probe = SOGoAnswers
	}
	s, err := discover.Build(context.Background(), discover.Options{Root: root, Probe: probe})
	if err != nil {
		t.Fatalf("discover.Build: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Corpus copies the corpus set (a directory) into a new directory and
// returns Snapshot of it.
func Corpus(t testing.TB, set string, probe discover.ProbeFunc) *discover.Snapshot {
	t.Helper()
	dir := t.TempDir()
	testtool.CopyTree(t, set, dir)
	return Snapshot(t, dir, probe)
}
