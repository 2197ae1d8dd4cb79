package discover

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

func TestSnapshotFiles(t *testing.T) {
	root, err := hostfs.New("../testdata/corpus/handmade-static-domains")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Build(context.Background(), Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	files := s.Files()
	for _, want := range []string{
		"/etc/postfix/main.cf", "/etc/postfix/master.cf", "/etc/services",
		"/etc/postfix/vmail_domains", // a list file
		"/etc/dovecot/dovecot.conf", "/etc/dovecot/conf.d/10-ssl.conf", "/etc/dovecot/local.conf",
		"/etc/letsencrypt/live/mail.example.net/fullchain.pem", "/etc/letsencrypt/live/mail.example.net/privkey.pem",
	} {
		if !slices.Contains(files, want) {
			t.Errorf("Files() lacks %s: %q", want, files)
		}
	}
	if !slices.IsSorted(files) {
		t.Errorf("Files() not sorted: %q", files)
	}
	if g := s.Globs(); !slices.Contains(g, "/etc/dovecot/conf.d/*.conf") {
		t.Errorf("Globs() = %q, want the conf.d include", g)
	}
}

func TestBuildFilesOfTables(t *testing.T) {
	h := baseHost(t)
	h["/etc/postfix/main.cf"] += "virtual_mailbox_domains = hash:/etc/postfix/vdomains, proxy:mysql:/etc/postfix/mysql/domains.cf\n"
	h["/etc/postfix/vdomains"] = "example.net x\n"
	h["/etc/postfix/mysql/domains.cf"] = "hosts = unix:/nonexistent/mysqld.sock\nuser = vmail\npassword = x\ndbname = vmail\noption_group = client\nquery = SELECT domain FROM domain WHERE domain='%s'\n"
	s := mustBuild(t, h)
	for _, want := range []string{"/etc/postfix/vdomains", "/etc/postfix/vdomains.db", "/etc/postfix/mysql/domains.cf", "/etc/my.cnf", "/etc/mysql/my.cnf", "/etc/ssl/mail.pem", "/etc/ssl/mail.key"} {
		if !slices.Contains(s.Files(), want) {
			t.Errorf("Files() lacks %s: %q", want, s.Files())
		}
	}
}

// TestCarryForward: a rebuild whose database cannot be listed keeps the
// domains the previous snapshot had from that table, with a warning.
func TestCarryForward(t *testing.T) {
	const table = "/etc/postfix/mysql/domains.cf"
	h := baseHost(t)
	h["/etc/postfix/main.cf"] += "virtual_mailbox_domains = proxy:mysql:" + table + "\n"
	h[table] = "hosts = unix:/nonexistent/mysqld.sock\nuser = vmail\npassword = x\ndbname = vmail\nquery = SELECT domain FROM domain WHERE domain='%s' AND active=1\n"
	prev := &Snapshot{
		domains: domainsOf(map[string]domainInfo{
			"a.example":      packDomainInfo(0, 0, false),
			"b.example":      packDomainInfo(0, 0, false),
			"static.example": packDomainInfo(1, 3, false),
		}),
		aliasOf: map[string]string{"b.example": "a.example"},
		sources: []string{table, "/etc/postfix/main.cf"},
	}
	root := writeRoot(t, h)
	s, err := Build(context.Background(), Options{Root: root, Previous: prev})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range s.Domains() {
		names = append(names, d.Name)
	}
	if !slices.Equal(names, []string{"a.example", "b.example"}) {
		t.Errorf("domains = %q, want the two the table listed before", names)
	}
	if d, _, _ := s.Lookup(context.Background(), "b.example"); d.AliasOf != "a.example" {
		t.Errorf("b.example AliasOf = %q, want a.example", d.AliasOf)
	}
	if !slices.Equal(s.Unreachable(), []string{table}) {
		t.Errorf("Unreachable() = %q", s.Unreachable())
	}
	if !hasWarning(s, "serving the 2 domains it listed before") {
		t.Errorf("warnings = %q, want one about the carried domains", s.Warnings())
	}
}

func TestErrorFiles(t *testing.T) {
	h := baseHost(t)
	h["/etc/dovecot/dovecot.conf"] += "!include conf.d/broken.conf\n"
	h["/etc/dovecot/conf.d/broken.conf"] = "service imap {\n"
	_, err := build(t, h)
	if err == nil {
		t.Fatal("Build of a broken include: no error")
	}
	if files := ErrorFiles(err); !slices.Contains(files, "/etc/dovecot/conf.d/broken.conf") {
		t.Errorf("ErrorFiles(%v) = %q, want the broken include", err, files)
	}
}

// TestWatcher changes files as editors, certbot and postmap do, and
// checks which changes call back.
func TestWatcher(t *testing.T) {
	dir := t.TempDir()
	write := func(p, content string) {
		t.Helper()
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full+".tmp", []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(full+".tmp", full); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, p string) {
		t.Helper()
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.Remove(full + ".new")
		if err := os.Symlink(target, full+".new"); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(full+".new", full); err != nil {
			t.Fatal(err)
		}
	}
	write("/etc/postfix/main.cf", "a")
	write("/etc/dovecot/conf.d/10-auth.conf", "a")
	write("/etc/letsencrypt/archive/x/fullchain1.pem", "1")
	link("../../archive/x/fullchain1.pem", "/etc/letsencrypt/live/x/fullchain.pem")

	root, _ := hostfs.New(dir)
	w, err := NewWatcher(root, 50*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Set([]string{"/etc/postfix/main.cf", "/etc/postfix/vdomains.db", "/etc/letsencrypt/live/x/fullchain.pem", "/etc/dovecot/conf.d/10-auth.conf"},
		[]string{"/etc/dovecot/conf.d/*.conf"})
	var calls atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx, func() { calls.Add(1) })

	expect := func(what string, change func(), want bool) {
		t.Helper()
		before := calls.Load()
		change()
		deadline := time.Now().Add(2 * time.Second)
		if !want {
			deadline = time.Now().Add(300 * time.Millisecond) // several quiet periods
		}
		for time.Now().Before(deadline) && calls.Load() == before {
			time.Sleep(10 * time.Millisecond)
		}
		if got := calls.Load() > before; got != want {
			t.Errorf("%s: called back = %v, want %v", what, got, want)
		}
		time.Sleep(100 * time.Millisecond) // let the quiet period pass
	}
	expect("editor saves main.cf", func() { write("/etc/postfix/main.cf", "b") }, true)
	expect("a sibling file changes", func() { write("/etc/postfix/other.cf", "b") }, false)
	// A file made unreadable (or readable again) is a change: item 2 of
	// issue 11 wants the outage and the recovery seen at once.
	expect("chmod of a watched file", func() { os.Chmod(filepath.Join(dir, "etc/postfix/main.cf"), 0o600) }, true)
	expect("chmod of a sibling file", func() { os.Chmod(filepath.Join(dir, "etc/postfix/other.cf"), 0o600) }, false)
	expect("postmap creates the .db", func() { write("/etc/postfix/vdomains.db", "db") }, true)
	expect("certbot writes the new archive file", func() { write("/etc/letsencrypt/archive/x/fullchain2.pem", "2") }, false)
	expect("certbot swaps the live link", func() { link("../../archive/x/fullchain2.pem", "/etc/letsencrypt/live/x/fullchain.pem") }, true)
	expect("a new conf.d file", func() { write("/etc/dovecot/conf.d/99-new.conf", "x") }, true)
	expect("a new conf.d backup file", func() { write("/etc/dovecot/conf.d/99-new.conf~", "x") }, false)

	// Three saves in a row: one call.
	before := calls.Load()
	for _, c := range []string{"c", "d", "e"} {
		write("/etc/postfix/main.cf", c)
	}
	time.Sleep(400 * time.Millisecond)
	if n := calls.Load() - before; n != 1 {
		t.Errorf("three saves in a row: %d calls, want 1", n)
	}

	// After Set drops a file, its changes no longer count.
	w.Set([]string{"/etc/letsencrypt/live/x/fullchain.pem"}, nil)
	expect("main.cf after it is no longer watched", func() { write("/etc/postfix/main.cf", "f") }, false)
}
