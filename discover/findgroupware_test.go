package discover

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/listening"
)

// sogoRoot lays iRedMail's nginx tree with SOGo (and sogo-activesync's
// bundle) over a corpus set without a database, and lets edit change it.
func sogoRoot(t *testing.T, edit func(dir string)) hostfs.Root {
	t.Helper()
	dir := t.TempDir()
	testtool.CopyTree(t, "../testdata/corpus/handmade-static-domains", dir)
	testtool.CopyTree(t, "../testdata/groupware/iredmail-sogo", dir)
	if edit != nil {
		edit(dir)
	}
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// sogoRootAt is sogoRoot with sogo.tmpl's backend at addr instead of
// 127.0.0.1:20000, for a test's own loopback backend.
func sogoRootAt(t *testing.T, addr string) hostfs.Root {
	t.Helper()
	return sogoRoot(t, func(dir string) {
		p := filepath.Join(dir, "etc/nginx/templates/sogo.tmpl")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.ReplaceAll(b, []byte("127.0.0.1:20000"), []byte(addr)), 0o644); err != nil {
			t.Fatal(err)
		}
	})
}

// sogoAnswers stands in for SOGo's answers without credentials: 401 on
// its DAV and ActiveSync paths (what SOGo 5.8 answers, see
// internal/sogotest), 404 elsewhere.
func sogoAnswers(calls *[]string) ProbeFunc {
	return func(ctx context.Context, addr, method, path string) (int, error) {
		*calls = append(*calls, method+" "+addr+path)
		switch path {
		case "/SOGo/dav/", "/SOGo/Microsoft-Server-ActiveSync":
			return 401, nil
		}
		return 404, nil
	}
}

func TestFindGroupware(t *testing.T) {
	commentOutEAS := func(dir string) {
		p := filepath.Join(dir, "etc/nginx/templates/sogo.tmpl")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.Replace(string(b), "location ^~ /Microsoft-Server-ActiveSync", "location ^~ /Microsoft-Server-ActiveSync-off", 1)
		if s == string(b) {
			t.Fatal("sogo.tmpl has no ActiveSync location")
		}
		os.WriteFile(p, []byte(s), 0o644)
	}
	removeBundle := func(dir string) {
		os.RemoveAll(filepath.Join(dir, "usr/lib/GNUstep/SOGo/ActiveSync.SOGo"))
	}
	down := func(ctx context.Context, addr, method, path string) (int, error) {
		return 0, errors.New("dial tcp " + addr + ": connect: connection refused")
	}
	tests := []struct {
		name     string
		edit     func(dir string)
		probe    ProbeFunc // nil: sogoAnswers
		services []string  // protocol URL
		missing  []string  // substrings of Missing, in order
	}{
		{name: "all three", services: []string{
			"caldav https://mail.example.net/SOGo/dav/",
			"carddav https://mail.example.net/SOGo/dav/",
			"activesync https://mail.example.net/Microsoft-Server-ActiveSync",
		}},
		{name: "EAS location disabled", edit: commentOutEAS, services: []string{
			"caldav https://mail.example.net/SOGo/dav/",
			"carddav https://mail.example.net/SOGo/dav/",
		}, missing: []string{"ActiveSync: nginx does not proxy /Microsoft-Server-ActiveSync"}},
		{name: "no bundle", edit: removeBundle, services: []string{
			"caldav https://mail.example.net/SOGo/dav/",
			"carddav https://mail.example.net/SOGo/dav/",
		}, missing: []string{"ActiveSync: SOGo's ActiveSync bundle is not installed (package sogo-activesync"}},
		{name: "SOGo down", probe: down, missing: []string{
			"CalDAV, CardDAV: nginx proxies /SOGo/dav/ to http://127.0.0.1:20000 at /etc/nginx/templates/sogo.tmpl:",
			"ActiveSync: nginx proxies /Microsoft-Server-ActiveSync to http://127.0.0.1:20000/SOGo/Microsoft-Server-ActiveSync at /etc/nginx/templates/sogo.tmpl:",
		}},
		{name: "404", probe: func(ctx context.Context, addr, method, path string) (int, error) { return 404, nil }, missing: []string{
			"answered 404 Not Found", "answered 404 Not Found",
		}},
		{name: "no nginx", edit: func(dir string) { os.RemoveAll(filepath.Join(dir, "etc/nginx")) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls []string
			probe := tt.probe
			if probe == nil {
				probe = sogoAnswers(&calls)
			}
			root := sogoRoot(t, tt.edit)
			s, err := Build(context.Background(), Options{Root: root, Probe: probe})
			if err != nil {
				t.Fatal(err)
			}
			g := s.Groupware()
			var got []string
			for _, svc := range g.Services {
				got = append(got, svc.Protocol+" "+svc.URL())
				if svc.Source == "" || len(svc.Evidence) < 2 {
					t.Errorf("%s: source %q evidence %q", svc.Protocol, svc.Source, svc.Evidence)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.services, "\n") {
				t.Errorf("services:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.services, "\n"))
			}
			if len(g.Missing) != len(tt.missing) {
				t.Fatalf("missing = %q, want %d like %q", g.Missing, len(tt.missing), tt.missing)
			}
			for i, m := range tt.missing {
				if !strings.Contains(g.Missing[i], m) {
					t.Errorf("missing[%d] = %q\nwant it to contain %q", i, g.Missing[i], m)
				}
			}
			if tt.name == "no nginx" && s.Fingerprint() != plainFingerprint(t) {
				t.Error("a host without nginx has another fingerprint than before")
			}
		})
	}
}

// plainFingerprint is the corpus set's fingerprint with no groupware tree.
func plainFingerprint(t *testing.T) uint64 {
	root, err := hostfs.New("../testdata/corpus/handmade-static-domains")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Build(context.Background(), Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	return s.Fingerprint()
}

// TestFindGroupwareNotProbedUnderRoot: files under --root are not this
// host, so nothing is advertised without a probe.
func TestFindGroupwareNotProbedUnderRoot(t *testing.T) {
	s, err := Build(context.Background(), Options{Root: sogoRoot(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	g := s.Groupware()
	if len(g.Services) != 0 || len(g.Missing) != 2 || !strings.Contains(g.Missing[0], "not probed") {
		t.Errorf("groupware = %+v", g)
	}
}

// TestGroupwareBackendStartsLater: SOGo starts after mailautoconf (at
// boot, sogo.service is slower). The real probe's connection is refused,
// nothing is advertised, and WatchListening asks for a rebuild once the
// backend's port listens; the rebuild advertises it. The backend is a
// loopback HTTP server answering as SOGo does without credentials.
func TestGroupwareBackendStartsLater(t *testing.T) {
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	root := sogoRootAt(t, addr)
	opt := Options{Root: root, Probe: HTTPProbe, ProcNet: listening.DefaultDir}
	a, err := Build(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if g := a.Groupware(); len(g.Services) != 0 || len(g.Missing) != 2 || !strings.Contains(g.Missing[0], "connection refused") {
		t.Fatalf("groupware with the backend stopped = %+v", g)
	}
	var cur atomic.Pointer[Snapshot]
	cur.Store(a)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan struct{}, 1)
	go WatchListening(ctx, 10*time.Millisecond, cur.Load, func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	time.Sleep(50 * time.Millisecond)
	select {
	case <-changed:
		t.Fatal("WatchListening told before the backend listened")
	default:
	}

	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	// As SOGo does while its workers start: the port listens, the first
	// requests fail.
	var early atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case early.Add(1) <= 3:
			w.WriteHeader(http.StatusServiceUnavailable)
		case r.Method == "PROPFIND" && r.URL.Path == "/SOGo/dav/",
			r.Method == "OPTIONS" && r.URL.Path == "/SOGo/Microsoft-Server-ActiveSync":
			w.Header().Set("WWW-Authenticate", `Basic realm="SOGo"`)
			w.WriteHeader(http.StatusUnauthorized)
		default:
			http.NotFound(w, r)
		}
	})}
	go srv.Serve(l)
	defer srv.Close()
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("WatchListening did not tell when the backend listened")
	}
	opt.Previous = a
	b, err := Build(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if g := b.Groupware(); len(g.Services) != 3 || len(g.Missing) != 0 {
		t.Errorf("groupware once the backend answers = %+v", g)
	}
	// SOGo stopped: the next refresh sees its port closed.
	if changed, _ := b.SocketsChanged(); changed {
		t.Error("SocketsChanged with the backend still listening")
	}
	srv.Close()
	if changed, p := b.SocketsChanged(); !changed || p != port {
		t.Errorf("SocketsChanged after the backend stopped = %v, %d; want true, %d", changed, p, port)
	}
}

// TestGroupwareBackendListeningBeforeFirstPoll: SOGo refused the build's
// probe and listens before WatchListening first looks; the refusal at
// build time counts as the port seen closed.
func TestGroupwareBackendListeningBeforeFirstPoll(t *testing.T) {
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	root := sogoRootAt(t, addr)
	a, err := Build(context.Background(), Options{Root: root, Probe: HTTPProbe, ProcNet: listening.DefaultDir})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan struct{}, 1)
	go WatchListening(ctx, 10*time.Millisecond, func() *Snapshot { return a }, func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("WatchListening did not tell about a backend that listened before its first poll")
	}
}

// TestGroupwareBackendRestarted: the probe fails while a stopping backend
// still holds its port (it hangs up on every connection); WatchListening
// must not take that socket for a new start, and must tell once another
// socket listens on the port.
func TestGroupwareBackendRestarted(t *testing.T) {
	dying, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := dying.Addr().String()
	go func() {
		for {
			c, err := dying.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	root := sogoRootAt(t, addr)
	a, err := Build(context.Background(), Options{Root: root, Probe: HTTPProbe, ProcNet: listening.DefaultDir})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if g := a.Groupware(); len(g.Services) != 0 || len(a.awaited) != 1 {
		t.Fatalf("groupware %+v, awaited %v: want nothing advertised and the port awaited", g, a.awaited)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan struct{}, 1)
	go WatchListening(ctx, 10*time.Millisecond, func() *Snapshot { return a }, func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	time.Sleep(100 * time.Millisecond)
	select {
	case <-changed:
		t.Fatal("WatchListening told while the same socket listened")
	default:
	}
	dying.Close()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("WatchListening did not tell about the new socket")
	}
}

// TestFindGroupwareApache: a host with Apache (no nginx) and SOGo's own
// sample configuration, which proxies /SOGo and leaves ActiveSync
// commented out; with ActiveSync's ProxyPass enabled, it is proven too.
func TestFindGroupwareApache(t *testing.T) {
	enableEAS := func(dir string) {
		p := filepath.Join(dir, "etc/apache2/conf-enabled/SOGo.conf")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		// Uncomment the three lines of the ActiveSync ProxyPass.
		s := strings.Replace(string(b), "#ProxyPass /Microsoft-Server-ActiveSync \\\n# http://127.0.0.1:20000/SOGo/Microsoft-Server-ActiveSync \\\n# retry",
			"ProxyPass /Microsoft-Server-ActiveSync \\\n http://127.0.0.1:20000/SOGo/Microsoft-Server-ActiveSync \\\n retry", 1)
		if s == string(b) {
			t.Fatal("SOGo.conf has no commented ActiveSync ProxyPass")
		}
		os.WriteFile(p, []byte(s), 0o644)
	}
	for _, tt := range []struct {
		name     string
		edit     func(dir string)
		services int
		missing  string
	}{
		{"as shipped", nil, 2, "ActiveSync: Apache does not proxy /Microsoft-Server-ActiveSync"},
		{"ActiveSync enabled", enableEAS, 3, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			testtool.CopyTree(t, "../testdata/corpus/handmade-static-domains", dir)
			testtool.CopyTree(t, "../testdata/groupware/apache-sogo", dir)
			testtool.CopyTree(t, "../testdata/groupware/iredmail-sogo/usr", filepath.Join(dir, "usr"))
			if tt.edit != nil {
				tt.edit(dir)
			}
			root, err := hostfs.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			var calls []string
			s, err := Build(context.Background(), Options{Root: root, Probe: sogoAnswers(&calls)})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			g := s.Groupware()
			if len(g.Services) != tt.services {
				t.Fatalf("services %+v, want %d; missing %q", g.Services, tt.services, g.Missing)
			}
			dav, _ := s.Service(ServiceCalDAV)
			if dav.URL() != "https://mail.example.net/SOGo/dav/" || !strings.Contains(dav.Source, "/etc/apache2/conf-enabled/SOGo.conf:") ||
				!strings.Contains(strings.Join(dav.Evidence, "\n"), "Apache proxies /SOGo/dav/ to http://127.0.0.1:20000/SOGo") {
				t.Errorf("CalDAV: %+v", dav)
			}
			if got := strings.Join(g.Missing, "\n"); (tt.missing == "") != (got == "") || !strings.Contains(got, tt.missing) {
				t.Errorf("missing %q, want %q", got, tt.missing)
			}
			if !slices.Contains(s.Files(), "/etc/apache2/conf-enabled/SOGo.conf") {
				t.Error("SOGo.conf is not among the watched files")
			}
		})
	}
}

// TestGroupwareBackendStillStarting: the backend listens but answers 503
// (SOGo's workers not ready) at the build; with the same socket still
// listening, WatchListening rebuilds after retryAwaited, a few times,
// and no more once the tries are spent.
func TestGroupwareBackendStillStarting(t *testing.T) {
	saved, savedStart := retryAwaited, startRetry
	retryAwaited = []time.Duration{20 * time.Millisecond, 40 * time.Millisecond}
	startRetry = 50 * time.Millisecond
	defer func() { retryAwaited, startRetry = saved, savedStart }()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})}
	go srv.Serve(l)
	defer srv.Close()
	root := sogoRootAt(t, addr)
	opt := Options{Root: root, Probe: HTTPProbe, ProcNet: listening.DefaultDir}
	var cur atomic.Pointer[Snapshot]
	build := func() *Snapshot {
		opt.Previous = cur.Load()
		s, err := Build(context.Background(), opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		cur.Store(s)
		return s
	}
	s := build()
	if len(s.awaited) != 1 || s.awaited[0].tries != 0 || len(s.awaited[0].listeners) == 0 {
		t.Fatalf("awaited %+v: want the port, its socket, no tries yet", s.awaited)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan struct{}, 1)
	go WatchListening(ctx, 5*time.Millisecond, cur.Load, func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	for try := 1; try <= len(retryAwaited); try++ {
		select {
		case <-changed:
		case <-time.After(5 * time.Second):
			t.Fatalf("no retry %d", try)
		}
		s = build() // the retry's rebuild: 503 again, after startRetry
		if s.awaited[0].tries != try {
			t.Fatalf("retry %d: tries = %d", try, s.awaited[0].tries)
		}
	}
	select {
	case <-changed:
		t.Fatal("WatchListening retried after the tries were spent")
	case <-time.After(200 * time.Millisecond):
	}
}
