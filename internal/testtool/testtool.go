// Package testtool lets integration tests find the real programs they talk
// to (postconf, doveconf, mariadbd, openssl, xmllint, ...). On a developer
// machine without one, the test is skipped; in CI (CI=true) it fails, so a
// CI run never passes by skipping. It also writes the host trees tests
// build snapshots from (WriteFiles).
package testtool

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// InCI reports whether the tests run in CI, where nothing may be skipped
// for want of a tool.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing ends t because something it needs is not here: a skip on a
// developer machine, a failure in CI.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatal(msg + " (CI=true: a missing tool fails the run)")
	}
	t.Skip(msg)
}

// Need returns the path of the program name, looking in PATH and then in
// /usr/sbin and /sbin (where Debian keeps postconf and mariadbd, outside a
// normal user's PATH), or ends t through Missing.
func Need(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	Missing(t, "%s not found in PATH, /usr/sbin or /sbin", name)
	return ""
}

// NeedRoot ends t through Missing unless the test runs as root (mount
// namespaces, dpkg).
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "needs root: %s", why)
	}
}

// WriteFiles writes files (slash-separated paths under dir → contents)
// under dir, creating the directories they need.
func WriteFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// AsUser returns the command prefix that runs a program as the user uid,
// with uid as its primary group too and exactly the supplementary groups
// gids (none when there are none): setpriv's path (ended through Missing
// when it is not installed) and its options, up to "--". Append the
// program and its arguments. As root, tests use it to run the daemon as
// an unprivileged service user, which a file's mode can stop.
func AsUser(t testing.TB, uid int, gids ...int) []string {
	t.Helper()
	u := strconv.Itoa(uid)
	groups := "--clear-groups"
	if len(gids) > 0 {
		gs := make([]string, len(gids))
		for i, g := range gids {
			gs[i] = strconv.Itoa(g)
		}
		groups = "--groups=" + strings.Join(gs, ",")
	}
	return []string{Need(t, "setpriv"), "--reuid=" + u, "--regid=" + u, groups, "--"}
}

// CopyTree copies the tree at src (files, directories and symbolic
// links, as they are) into dst, merging with what dst holds: a test lays
// several trees over one root this way.
func CopyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			os.Remove(out)
			return os.Symlink(target, out)
		case fi.IsDir():
			return os.MkdirAll(out, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}
