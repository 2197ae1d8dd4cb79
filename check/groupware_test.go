package check

import (
	"context"
	"crypto/tls"
	"github.com/mailautoconf/mailautoconf/internal/groupwaretest"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/internal/dnstest"
	"github.com/mailautoconf/mailautoconf/serve"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// sogoSnapshot is the test host with iRedMail's nginx tree and SOGo laid
// over it, built with SOGo's real answers without credentials (401 on
// /SOGo/dav/ and ActiveSync): it serves CalDAV, CardDAV and ActiveSync.
func sogoSnapshot(t *testing.T) (*discover.Snapshot, hostfs.Root) {
	t.Helper()
	pki := newPKI(t)
	chain, key, _ := pki.leaf(t, 90*24*time.Hour, allNames...)
	dir := t.TempDir()
	writeRoot(t, dir, chain, key)
	snap := groupwaretest.Snapshot(t, dir, nil)
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if g := snap.Groupware(); len(g.Services) != 3 {
		t.Fatalf("groupware = %+v, want CalDAV, CardDAV and ActiveSync", g)
	}
	return snap, root
}

// A fakeSOGo answers as SOGo behind nginx does without credentials, or,
// per its mode, as a broken setup does.
type fakeSOGo struct {
	mode atomic.Value // "ok", "down" (502), "gone" (404), "not eas" (200 to OPTIONS without MS-ASProtocolVersions)
}

func (f *fakeSOGo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mode, _ := f.mode.Load().(string)
	switch mode {
	case "down":
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return
	case "gone":
		http.NotFound(w, r)
		return
	}
	switch {
	case r.Method == "PROPFIND" && strings.HasPrefix(r.URL.Path, "/SOGo/dav/") && r.Header.Get("Depth") == "0":
		w.Header().Set("WWW-Authenticate", `Basic realm="SOGo"`)
		w.WriteHeader(http.StatusUnauthorized)
	case r.Method == "OPTIONS" && r.URL.Path == "/Microsoft-Server-ActiveSync" && mode == "not eas":
		w.WriteHeader(http.StatusOK)
	case r.Method == "OPTIONS" && r.URL.Path == "/Microsoft-Server-ActiveSync":
		w.Header().Set("WWW-Authenticate", `Basic realm="SOGo"`)
		w.WriteHeader(http.StatusUnauthorized)
	default:
		http.NotFound(w, r)
	}
}

// TestGroupware checks a host serving CalDAV, CardDAV and ActiveSync: the
// real serve.Handler over HTTPS for the discovery names, a stand-in for
// SOGo on the mail host's name (the paths nginx sends to it, and
// /.well-known/caldav and carddav redirected there as iRedMail's nginx
// does), DNS from a loopback server; then records missing or wrong, and
// SOGo down.
func TestGroupware(t *testing.T) {
	pki := newPKI(t)
	_, _, cert := pki.leaf(t, 90*24*time.Hour, allNames...)
	snap, root := sogoSnapshot(t)

	site, err := serve.NewSite(root, snap, nil)
	if err != nil {
		t.Fatal(err)
	}
	var store serve.Store
	store.Swap(site)
	daemon := serve.NewHandler(&store, nil)
	sogo := &fakeSOGo{}
	sogo.mode.Store("ok")
	web := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/.well-known/caldav" || r.URL.Path == "/.well-known/carddav":
			http.Redirect(w, r, "https://"+testHost+"/SOGo/dav/", http.StatusMovedPermanently)
		case strings.HasPrefix(r.URL.Path, "/SOGo/") || r.URL.Path == "/Microsoft-Server-ActiveSync":
			sogo.ServeHTTP(w, r)
		default:
			daemon.ServeHTTP(w, r)
		}
	}))
	web.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	web.Config.ErrorLog = log.New(io.Discard, "", 0)
	web.StartTLS()
	t.Cleanup(web.Close)

	zone := goodZone(t, snap)
	if !strings.Contains(zone, `_caldavs._tcp.example.test. 3600 IN TXT "path=/SOGo/dav/"`) {
		t.Fatalf("the zone lacks the CalDAV TXT record:\n%s", zone)
	}
	dnsSrv := dnstest.Start(t, zone)

	type want struct {
		status      Status
		detail, fix string
		url         string // for client rows: the URL's start
	}
	tests := []struct {
		name   string
		zone   string
		mode   string
		apex   bool // example.test's web server answers (its /.well-known/caldav redirect)
		checks map[string]want
	}{
		{"healthy", zone, "ok", false, map[string]want{
			"SRV _caldavs._tcp.example.test":                                             {status: OK, detail: "0 1 443 mail.example.test."},
			"TXT _caldavs._tcp.example.test":                                             {status: OK, detail: `"path=/SOGo/dav/"`},
			"SRV _carddavs._tcp.example.test":                                            {status: OK},
			"TXT _carddavs._tcp.example.test":                                            {status: OK},
			"certificate mail.example.test:443":                                          {status: OK},
			"PROPFIND https://mail.example.test/SOGo/dav/ (CalDAV, CardDAV)":             {status: OK, detail: "HTTP 401 Unauthorized: asks for a password"},
			"OPTIONS https://mail.example.test/Microsoft-Server-ActiveSync (ActiveSync)": {status: OK, detail: "HTTP 401"},
			ClientThunderbirdCalDAV + " " + testDomain:                                   {status: OK, url: "SRV _caldavs._tcp.example.test (TXT path=/SOGo/dav/) → https://mail.example.test/SOGo/dav/"},
			ClientThunderbirdCardDAV + " " + testDomain:                                  {status: OK, url: "SRV _carddavs._tcp.example.test (TXT path=/SOGo/dav/) → https://mail.example.test/SOGo/dav/"},
			ClientThunderbird + " " + testDomain:                                         {status: OK},
		}},
		{"records missing, /.well-known redirects", without(zone, "dav"), "ok", true, map[string]want{
			"SRV _caldavs._tcp.example.test": {status: Fail, detail: "missing", fix: `publish "_caldavs._tcp.example.test. 3600 IN SRV 0 1 443 mail.example.test."`},
			"TXT _caldavs._tcp.example.test": {status: Fail, detail: "missing", fix: `publish "_caldavs._tcp.example.test. 3600 IN TXT \"path=/SOGo/dav/\""`},
			ClientThunderbirdCalDAV + " " + testDomain: {status: OK,
				url: "https://example.test/.well-known/caldav → https://mail.example.test/SOGo/dav/"},
		}},
		{"records missing, no /.well-known", without(zone, "dav"), "ok", false, map[string]want{
			ClientThunderbirdCardDAV + " " + testDomain: {status: Fail, url: "SRV _carddavs._tcp.example.test",
				detail: "finds no CardDAV server: SRV _carddavs._tcp.example.test: no record; https://example.test/.well-known/carddav: example.test does not resolve",
				fix:    `publish "_carddavs._tcp.example.test. 3600 IN SRV 0 1 443 mail.example.test." and "_carddavs._tcp.example.test. 3600 IN TXT \"path=/SOGo/dav/\"" (the principal of postmaster@example.test is then found under /SOGo/dav/, at /SOGo/dav/postmaster@example.test/); or make https://example.test/.well-known/carddav redirect to https://mail.example.test/SOGo/dav/`},
		}},
		{"wrong path", strings.ReplaceAll(zone, `"path=/SOGo/dav/"`, `"path=/dav/"`), "ok", false, map[string]want{
			"TXT _caldavs._tcp.example.test": {status: Fail, detail: `wrong path: "path=/dav/", want "path=/SOGo/dav/"`, fix: `replace the records: publish "_caldavs._tcp.example.test. 3600 IN TXT \"path=/SOGo/dav/\""`},
			ClientThunderbirdCalDAV + " " + testDomain: {status: Fail, url: "SRV _caldavs._tcp.example.test (TXT path=/dav/) → https://mail.example.test/dav/",
				detail: "HTTP 404 Not Found", fix: `replace the records: publish "_caldavs._tcp.example.test. 3600 IN SRV`},
		}},
		{"SOGo down", zone, "down", false, map[string]want{
			"PROPFIND https://mail.example.test/SOGo/dav/ (CalDAV, CardDAV)": {status: Fail, detail: "HTTP 502 Bad Gateway: SOGo does not answer behind the web server",
				fix: "start SOGo (systemctl start sogo); check that the web server proxies /SOGo/dav/ to SOGo (/etc/nginx/templates/sogo.tmpl:"},
			ClientThunderbirdCalDAV + " " + testDomain: {status: Fail, detail: "HTTP 502", fix: "make https://mail.example.test/SOGo/dav/ lead to a DAV server (it answers HTTP 502)"},
		}},
		{"not ActiveSync", zone, "not eas", false, map[string]want{
			"OPTIONS https://mail.example.test/Microsoft-Server-ActiveSync (ActiveSync)": {status: Fail, detail: "without an MS-ASProtocolVersions header: not an ActiveSync server",
				fix: "check that the web server proxies /Microsoft-Server-ActiveSync to SOGo"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dnsSrv.SetZone(t, tt.zone)
			sogo.mode.Store(tt.mode)
			connect := map[string]string{}
			for _, n := range []string{testHost, "autoconfig." + testDomain, "autodiscover." + testDomain} {
				connect[n+":443"] = web.Listener.Addr().String()
			}
			if tt.apex {
				connect[testDomain+":443"] = web.Listener.Addr().String()
			}
			r, err := newRun(Options{Snapshot: snap, Resolver: dnsSrv.Addr, Roots: pki.pool, Connect: connect, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			jobs := append(r.dnsJobs(), r.groupwareJobs()...)
			jobs = append(jobs, r.clientJobs()...)
			results := runJobs(context.Background(), 8, jobs)
			t.Logf("\n%s", dump(results))
			for name, w := range tt.checks {
				got := find(t, results, name)
				if got.Status != w.status || !strings.Contains(got.Detail, w.detail) || !strings.Contains(got.Fix, w.fix) || !strings.HasPrefix(got.URL, w.url) {
					t.Errorf("%s = %+v\nwant %s, detail with %q, fix with %q, URL %q", name, got, w.status, w.detail, w.fix, w.url)
				}
			}
		})
	}

	// The Apple row says whether the profile sets up Calendar and
	// Contacts: the profile mailautoconf serves for this host must carry
	// both accounts.
	t.Run("Apple profile", func(t *testing.T) {
		dnsSrv.SetZone(t, zone)
		sogo.mode.Store("ok")
		connect := map[string]string{"autoconfig." + testDomain + ":443": web.Listener.Addr().String(), "autodiscover." + testDomain + ":443": web.Listener.Addr().String()}
		r, err := newRun(Options{Snapshot: snap, Resolver: dnsSrv.Addr, Roots: pki.pool, Connect: connect, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		got := r.walkApple(context.Background(), Target{Domain: testDomain, Address: "postmaster@" + testDomain})
		if got.Status != OK || !strings.Contains(got.Told, "CalDAV account, CardDAV account") {
			t.Errorf("Apple row = %+v\nwant ok, told with the CalDAV and CardDAV accounts", got)
		}
	})

	// A daemon built from a configuration without SOGo (an old snapshot)
	// serves a profile for mail only: the row says what it lacks.
	t.Run("Apple profile without DAV", func(t *testing.T) {
		chain, key, _ := pki.leaf(t, 90*24*time.Hour, allNames...)
		dir := t.TempDir()
		writeRoot(t, dir, chain, key)
		plain, plainRoot := buildSnapshot(t, dir)
		site, err := serve.NewSite(plainRoot, plain, nil)
		if err != nil {
			t.Fatal(err)
		}
		var store serve.Store
		store.Swap(site)
		old := httptest.NewUnstartedServer(serve.NewHandler(&store, nil))
		old.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		old.Config.ErrorLog = log.New(io.Discard, "", 0)
		old.StartTLS()
		t.Cleanup(old.Close)
		dnsSrv.SetZone(t, zone)
		connect := map[string]string{"autoconfig." + testDomain + ":443": old.Listener.Addr().String(), "autodiscover." + testDomain + ":443": old.Listener.Addr().String()}
		r, err := newRun(Options{Snapshot: snap, Resolver: dnsSrv.Addr, Roots: pki.pool, Connect: connect, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		got := r.walkApple(context.Background(), Target{Domain: testDomain, Address: "postmaster@" + testDomain})
		if got.Status != Warn || strings.Contains(got.Told, "CalDAV") ||
			!strings.Contains(got.Detail, "without the CalDAV (com.apple.caldav.account) and CardDAV (com.apple.carddav.account) payloads") ||
			!strings.Contains(got.Fix, "systemctl reload mailautoconf") {
			t.Errorf("Apple row = %+v\nwant warn, naming the missing payloads", got)
		}
	})
}

// TestNoGroupwareNoRows: a host without groupware gets no groupware probe,
// no RFC 6764 record check and no CalDAV or CardDAV row.
func TestNoGroupwareNoRows(t *testing.T) {
	pki := newPKI(t)
	chain, key, _ := pki.leaf(t, 90*24*time.Hour, allNames...)
	dir := t.TempDir()
	writeRoot(t, dir, chain, key)
	snap, _ := buildSnapshot(t, dir)
	r, err := newRun(Options{Snapshot: snap, Resolver: blackhole(t)})
	if err != nil {
		t.Fatal(err)
	}
	if jobs := r.groupwareJobs(); len(jobs) != 0 {
		t.Errorf("%d groupware jobs, want none", len(jobs))
	}
	for _, j := range append(r.dnsJobs(), r.clientJobs()...) {
		if strings.Contains(strings.ToLower(j.name), "dav") {
			t.Errorf("job %q for a host without groupware", j.name)
		}
	}
}

// TestProfilePayloads reads the payload types of a profile.
func TestProfilePayloads(t *testing.T) {
	const profile = `<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict><key>PayloadContent</key><array>
<dict><key>PayloadType</key><string>com.apple.mail.managed</string>
<key>EmailAccountType</key><string>EmailTypeIMAP</string>
<key>IncomingMailServerHostName</key><string>mail.example.test</string><key>IncomingMailServerPortNumber</key><integer>993</integer>
<key>IncomingMailServerUseSSL</key><true/>
<key>OutgoingMailServerHostName</key><string>mail.example.test</string><key>OutgoingMailServerPortNumber</key><integer>465</integer>
<key>OutgoingMailServerUseSSL</key><true/></dict>
<dict><key>PayloadType</key><string>com.apple.caldav.account</string></dict>
</array><key>PayloadType</key><string>Configuration</string></dict></plist>`
	told, err := readProfile([]byte(profile))
	if err != nil {
		t.Fatal(err)
	}
	if want := "IMAP mail.example.test:993 SSL, SMTP mail.example.test:465 SSL, CalDAV account, unsigned"; told != want {
		t.Errorf("readProfile = %q, want %q", told, want)
	}
}
