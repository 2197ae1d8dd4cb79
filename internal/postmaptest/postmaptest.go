// Package postmaptest runs the real postmap(1) for differential tests: it
// finds postmap and Postfix's support for a table type (Need), writes
// lookup files Postfix opens at once (WriteTable) and asks postmap -q about
// keys (Query).
package postmaptest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

// Need returns the path of postmap, or ends t through testtool.Missing (a
// failure with CI=true) when postmap or postconf is missing or postconf -m
// does not list the table type typ (mysql, pgsql, sqlite, ldap).
func Need(t testing.TB, typ string) string {
	t.Helper()
	postmap := testtool.Need(t, "postmap")
	out, err := exec.Command(testtool.Need(t, "postconf"), "-m").Output()
	if err != nil || !slices.Contains(strings.Fields(string(out)), typ) {
		testtool.Missing(t, "postconf -m lists no %s table type (postfix-%s not installed): %v", typ, typ, err)
	}
	return postmap
}

// WriteTable writes a lookup file (creating its directory) and dates it
// back an hour: Postfix waits about 2 s before it opens a table file
// modified in the last seconds.
func WriteTable(t testing.TB, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
}

// An Option changes how Query runs postmap.
type Option func(*config)

type config struct {
	configDir string
	timeout   time.Duration
}

// ConfigDir makes postmap read main.cf from dir (postmap -c dir).
func ConfigDir(dir string) Option { return func(c *config) { c.configDir = dir } }

// Timeout kills postmap after d (an exit status of -1 in the Result).
func Timeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// Result is what one postmap -q run said.
type Result struct {
	Found    map[string]string // each key it printed, with its value
	Stderr   string
	ExitCode int // 0: every key found, 1: some not found; -1: killed
}

// Fatal reports a fatal error on stderr: a lookup failed, and postmap
// asked no more keys after it.
func (r Result) Fatal() bool { return strings.Contains(r.Stderr, "fatal:") }

// BadExit reports an exit status other than 0 or 1.
func (r Result) BadExit() bool { return r.ExitCode != 0 && r.ExitCode != 1 }

// Failed reports whether postmap failed: a bad exit status or a fatal
// error.
func (r Result) Failed() bool { return r.BadExit() || r.Fatal() }

// Query asks postmap (the path Need returns) about keys, one per line of
// postmap -q -, in the table typ:path. Its error says only that postmap
// could not be run; how postmap itself fared is in the Result.
func Query(postmap, typ, path string, keys []string, opts ...Option) (Result, error) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	ctx := context.Background()
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var args []string
	if c.configDir != "" {
		args = append(args, "-c", c.configDir)
	}
	args = append(args, "-q", "-", typ+":"+path)
	cmd := exec.CommandContext(ctx, postmap, args...)
	cmd.Stdin = strings.NewReader(strings.Join(keys, "\n") + "\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		return Result{}, fmt.Errorf("postmap %s: %w", strings.Join(args, " "), err)
	}
	r := Result{Found: map[string]string{}, Stderr: stderr.String(), ExitCode: cmd.ProcessState.ExitCode()}
	for _, line := range strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n") {
		if k, v, ok := strings.Cut(line, "\t"); ok {
			r.Found[k] = v
		}
	}
	return r, nil
}
