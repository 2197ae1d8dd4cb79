package hostfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

// tree builds a host root in a temp dir: files map host paths to contents,
// links map host paths to link targets.
func tree(t *testing.T, files, links map[string]string) Root {
	t.Helper()
	dir := t.TempDir()
	testtool.WriteFiles(t, dir, files)
	for p, target := range links {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
	r, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReadFileFollowsLinksInsideRoot(t *testing.T) {
	r := tree(t, map[string]string{
		"/etc/letsencrypt/archive/mail.example.net/fullchain3.pem": "cert3",
		"/etc/ssl/certs/snakeoil.pem":                              "snakeoil",
		"/etc/postfix/main.cf":                                     "main",
	}, map[string]string{
		// certbot: live/ holds relative links into archive/
		"/etc/letsencrypt/live/mail.example.net/fullchain.pem": "../../archive/mail.example.net/fullchain3.pem",
		// Debian: an absolute link, which must stay inside the root
		"/etc/dovecot/private/dovecot.pem": "/etc/ssl/certs/snakeoil.pem",
		// a directory link
		"/etc/pf": "/etc/postfix",
		// a link that tries to climb out of the root
		"/etc/escape": "../../../../../../etc/postfix/main.cf",
	})
	tests := []struct{ path, want string }{
		{"/etc/letsencrypt/live/mail.example.net/fullchain.pem", "cert3"},
		{"/etc/dovecot/private/dovecot.pem", "snakeoil"},
		{"/etc/pf/main.cf", "main"},
		{"/etc/pf/../postfix/./main.cf", "main"},
		{"/etc/escape", "main"}, // ".." stops at the root, as in a chroot
		{"/../../etc/postfix/main.cf", "main"},
	}
	for _, tt := range tests {
		got, err := r.ReadFile(tt.path)
		if err != nil || string(got) != tt.want {
			t.Errorf("ReadFile(%q) = %q, %v, want %q", tt.path, got, err, tt.want)
		}
	}
}

func TestErrorsNameHostPath(t *testing.T) {
	r := tree(t, nil, map[string]string{"/a": "/b", "/b": "/a"})
	_, err := r.ReadFile("/etc/postfix/missing.cf")
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "read /etc/postfix/missing.cf: ") {
		t.Errorf("ReadFile(missing) error = %v, want a not-exist error naming the host path", err)
	}
	if strings.Contains(err.Error(), r.Dir()) {
		t.Errorf("ReadFile(missing) error = %v, names the root directory", err)
	}
	if _, err := r.ReadFile("/a"); err == nil || !strings.Contains(err.Error(), "too many levels") {
		t.Errorf("ReadFile(link loop) error = %v, want too many levels of symbolic links", err)
	}
	if _, err := r.ReadFile("relative/path"); err == nil {
		t.Errorf("ReadFile(relative) error = nil, want an error")
	}
}

func TestGlob(t *testing.T) {
	r := tree(t, map[string]string{
		"/etc/dovecot/conf.d/10-auth.conf":                 "",
		"/etc/dovecot/conf.d/10-ssl.conf":                  "",
		"/etc/dovecot/conf.d/README":                       "",
		"/usr/share/dovecot/protocols.d/imapd.protocol":    "",
		"/usr/share/dovecot/protocols.d/pop3d.protocol":    "",
		"/usr/share/dovecot/protocols.d/pop3d.protocol.bk": "",
	}, map[string]string{"/etc/dovecot/shared": "/usr/share/dovecot"})
	tests := []struct {
		pattern string
		want    []string
	}{
		{"/etc/dovecot/conf.d/*.conf", []string{"/etc/dovecot/conf.d/10-auth.conf", "/etc/dovecot/conf.d/10-ssl.conf"}},
		{"/etc/dovecot/shared/protocols.d/*.protocol", []string{"/etc/dovecot/shared/protocols.d/imapd.protocol", "/etc/dovecot/shared/protocols.d/pop3d.protocol"}},
		{"/etc/dovecot/conf.d/README", []string{"/etc/dovecot/conf.d/README"}},
		{"/etc/dovecot/missing.d/*.conf", nil},
		{"/etc/dovecot/conf.d/nothere", nil},
	}
	for _, tt := range tests {
		got, err := r.Glob(tt.pattern)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("Glob(%q) = %q, %v, want %q", tt.pattern, got, err, tt.want)
		}
	}
	if _, err := r.Glob("/etc/[x"); err == nil {
		t.Errorf("Glob(bad pattern) error = nil, want an error")
	}
}

func TestZeroRootIsRealFileSystem(t *testing.T) {
	var r Root
	if r.Dir() != "/" {
		t.Errorf("Root{}.Dir() = %q, want /", r.Dir())
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "x")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := r.ReadFile(p); err != nil || string(got) != "x" {
		t.Errorf("Root{}.ReadFile(%q) = %q, %v, want x", p, got, err)
	}
}

func TestPosString(t *testing.T) {
	tests := []struct {
		p    Pos
		want string
	}{
		{Pos{}, "default"},
		{Pos{File: "/etc/postfix/main.cf"}, "/etc/postfix/main.cf"},
		{Pos{File: "/etc/postfix/master.cf", Line: 17}, "/etc/postfix/master.cf:17"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.p, got, tt.want)
		}
	}
	err := Errorf("/etc/dovecot/dovecot.conf", 3, "unexpected %q", "}")
	if err.Error() != `/etc/dovecot/dovecot.conf:3: unexpected "}"` {
		t.Errorf("Errorf = %q", err)
	}
}

func TestWalk(t *testing.T) {
	r := tree(t, map[string]string{
		"/etc/letsencrypt/archive/m/privkey1.pem": "key",
	}, map[string]string{
		"/etc/letsencrypt/live/m/privkey.pem": "../../archive/m/privkey1.pem",
		"/etc/le":                             "/etc/letsencrypt",
		"/a":                                  "/b",
		"/b":                                  "/a",
	})
	tests := []struct {
		path, want string
		dirs       []string // the directories fn is called with, in order
	}{
		{"/etc/letsencrypt/live/m/privkey.pem", "/etc/letsencrypt/archive/m/privkey1.pem",
			[]string{"/", "/etc", "/etc/letsencrypt", "/etc/letsencrypt/live", "/etc/letsencrypt/live/m",
				"/etc/letsencrypt/live/m", "/etc/letsencrypt/live", "/etc/letsencrypt", "/etc/letsencrypt/archive", "/etc/letsencrypt/archive/m"}},
		{"/etc/le/./archive/../archive/m/privkey1.pem", "/etc/letsencrypt/archive/m/privkey1.pem",
			[]string{"/", "/etc", "/", "/etc", "/etc/letsencrypt", "/etc/letsencrypt/archive", "/etc/letsencrypt", "/etc/letsencrypt/archive", "/etc/letsencrypt/archive/m"}},
		{"/etc/letsencrypt/missing.pem", "/etc/letsencrypt/missing.pem", []string{"/", "/etc", "/etc/letsencrypt"}},
	}
	for _, tt := range tests {
		var dirs []string
		got, err := r.Walk(tt.path, func(dir string, fi fs.FileInfo) error {
			if !fi.IsDir() {
				t.Errorf("Walk(%q): fn(%q) with a %v, want a directory", tt.path, dir, fi.Mode().Type())
			}
			dirs = append(dirs, dir)
			return nil
		})
		if err != nil || got != tt.want || !slices.Equal(dirs, tt.dirs) {
			t.Errorf("Walk(%q) = %q, %v, visiting %q; want %q, visiting %q", tt.path, got, err, dirs, tt.want, tt.dirs)
		}
		// Resolve takes the same walk.
		if real, err := r.Resolve(tt.path); err != nil || real != filepath.Join(r.Dir(), tt.want) {
			t.Errorf("Resolve(%q) = %q, %v, want %q under the root", tt.path, real, err, tt.want)
		}
	}

	// A missing directory on the way ends the walk, naming its host path;
	// Resolve, which calls no fn, appends the rest unresolved.
	visit := func(string, fs.FileInfo) error { return nil }
	if _, err := r.Walk("/etc/missing/x.pem", visit); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "stat /etc/missing:") {
		t.Errorf("Walk(missing directory) error = %v, want not-exist naming /etc/missing", err)
	}
	if real, err := r.Resolve("/etc/missing/x.pem"); err != nil || real != filepath.Join(r.Dir(), "etc/missing/x.pem") {
		t.Errorf("Resolve(missing directory) = %q, %v", real, err)
	}
	// fn's error stops the walk where fn returned it.
	stop := errors.New("stop")
	var last string
	_, err := r.Walk("/etc/letsencrypt/live/m/privkey.pem", func(dir string, _ fs.FileInfo) error {
		last = dir
		if dir == "/etc/letsencrypt/live" {
			return stop
		}
		return nil
	})
	if err != stop || last != "/etc/letsencrypt/live" {
		t.Errorf("Walk with fn failing at /etc/letsencrypt/live = %v (last %q), want stop there", err, last)
	}
	// The zero Root walks the real file system's links too.
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(dir, "target"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if got, err := (Root{}).Walk(filepath.Join(dir, "link"), nil); err != nil || got != filepath.Join(dir, "target") {
		t.Errorf("Root{}.Walk(link) = %q, %v, want %q", got, err, filepath.Join(dir, "target"))
	}
	if _, err := r.Walk("/a", nil); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("Walk(link loop) error = nil, want too many levels of symbolic links")
	}
}

// TestOpenRegular: a regular file opens; a FIFO (which would block a
// plain open), a directory and, with O_NOFOLLOW, a link are refused at
// once.
func TestOpenRegular(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		flag int
		want error // nil: opens
	}{
		{file, 0, nil},
		{link, 0, nil},
		{fifo, 0, ErrNotRegular},
		{dir, 0, ErrNotRegular},
		{link, syscall.O_NOFOLLOW, syscall.ELOOP},
		{filepath.Join(dir, "missing"), 0, fs.ErrNotExist},
	}
	for _, tt := range tests {
		f, err := OpenRegular(tt.name, tt.flag)
		if f != nil {
			f.Close()
		}
		if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("OpenRegular(%s, %#x) = %v, want %v", filepath.Base(tt.name), tt.flag, err, tt.want)
		}
	}
}
