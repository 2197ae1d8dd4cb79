package main

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

// TestTightenGC: a large rebuild runs with GOGC 25 and the previous
// setting comes back after it; a lower GOGC (or GC off) set by the admin
// is never raised.
func TestTightenGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, tt := range []struct{ before, during int }{
		{100, rebuildGCPercent},
		{400, rebuildGCPercent},
		{10, 10},
		{-1, rebuildGCPercent},
	} {
		debug.SetGCPercent(tt.before)
		restore := tightenGC()
		if got := debug.SetGCPercent(tt.during); got != tt.during {
			t.Errorf("GOGC %d: %d during the rebuild, want %d", tt.before, got, tt.during)
		}
		restore()
		if got := debug.SetGCPercent(tt.before); got != tt.before {
			t.Errorf("GOGC %d: %d after the rebuild", tt.before, got)
		}
	}
}

// TestRefreshOnlyOnChange: with a refresh every 100 ms, a daemon whose
// domains come from MariaDB, PostgreSQL or slapd rebuilds nothing while
// the table does not change, and rebuilds once when a domain is added
// (answering for it at once, before that, by a per-request lookup); a
// daemon whose domains come from files is never rebuilt by the timer,
// and still reloads a changed file.
func TestRefreshOnlyOnChange(t *testing.T) {
	testtool.Need(t, "systemd-socket-activate")
	bin := buildDaemon(t)
	published := func(d *runningDaemon) int { return strings.Count(d.stderr.String(), "snapshot published") }
	for _, server := range domainServers {
		t.Run(server.name, func(t *testing.T) {
			root := t.TempDir()
			flags, _, _, addDomain := server.start(t, root)
			d := startDaemon(t, bin, root, append(flags, "--refresh", "100ms")...)
			if code, body := d.get(t, autoconfigURL); code != 200 {
				t.Fatalf("first request: %d\n%s", code, body)
			}
			_, next := d.notify.wait(t, 0, 5*time.Second, "READY=1", "STATUS=serving 3 domains")
			time.Sleep(time.Second) // ten refreshes
			if n := published(d); n != 0 {
				t.Errorf("%d rebuilds in 1 s with nothing changed, want 0", n)
			}
			if !strings.Contains(d.stderr.String(), "snapshot built") {
				t.Fatalf("no first build in the log:\n%s", d.stderr.String())
			}

			added := time.Now()
			addDomain("new.example")
			newURL := "http://autoconfig.new.example/mail/config-v1.1.xml?emailaddress=a%40new.example"
			if code, body := d.get(t, newURL); code != 200 {
				t.Errorf("a domain just added: %d\n%s", code, body)
			}
			served := time.Since(added)
			d.notify.wait(t, next, 3*time.Second, "STATUS=serving 4 domains")
			t.Logf("new domain answered %v after the insert, listed after %v", served.Round(time.Millisecond), time.Since(added).Round(time.Millisecond))
			time.Sleep(time.Second)
			if n := published(d); n != 1 {
				t.Errorf("%d rebuilds for one added domain, want 1", n)
			}
		})
	}
	t.Run("files", func(t *testing.T) {
		root := t.TempDir()
		staticHost(t, root)
		d := startDaemon(t, bin, root, "--refresh", "50ms")
		if code, body := d.get(t, autoconfigURL); code != 200 {
			t.Fatalf("first request: %d\n%s", code, body)
		}
		d.notify.wait(t, 0, 5*time.Second, "READY=1", "STATUS=serving 2 domains")
		time.Sleep(time.Second) // twenty refreshes
		if n := published(d); n != 0 {
			t.Errorf("%d rebuilds of a file-only host in 1 s, want 0", n)
		}
		// The watcher still reloads a changed file.
		mainCF := filepath.Join(root, "etc/postfix/main.cf")
		b, err := os.ReadFile(mainCF)
		if err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, mainCF, strings.Replace(string(b), "example.com, example.net", "example.com, example.net, example.org", 1))
		d.notify.wait(t, 0, 5*time.Second, "STATUS=serving 3 domains")
	})
}
