package check

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/dnstest"
	"github.com/mailautoconf/mailautoconf/serve"
)

// TestClientWalks follows each client's lookup order against the real
// serve.Handler (HTTPS and plain HTTP, as behind a web server) and DNS
// from a loopback server, for a host serving example.test and other.test:
// autoconfig.<d> works; only Thunderbird's MX fallback works; the MX
// fallback would work but its name is missing; nothing works.
func TestClientWalks(t *testing.T) {
	pki := newPKI(t)
	chain, key, cert := pki.leaf(t, 90*24*time.Hour, allNames...)
	dir := t.TempDir()
	writeRoot(t, dir, chain, key)
	mainCF := filepath.Join(dir, "etc/postfix/main.cf")
	b, err := os.ReadFile(mainCF)
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.Replace(string(b), "virtual_mailbox_domains = example.test", "virtual_mailbox_domains = example.test, other.test", 1))
	if err := os.WriteFile(mainCF, b, 0o644); err != nil {
		t.Fatal(err)
	}
	snap, root := buildSnapshot(t, dir)

	site, err := serve.NewSite(root, snap, nil)
	if err != nil {
		t.Fatal(err)
	}
	var store serve.Store
	store.Swap(site)
	h := serve.NewHandler(&store, nil)
	web := httptest.NewUnstartedServer(h)
	web.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	web.Config.ErrorLog = log.New(io.Discard, "", 0)
	web.StartTLS()
	t.Cleanup(web.Close)
	// Plain HTTP as a web server in front passes it: X-Forwarded-Proto.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("X-Forwarded-Proto", "http")
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(plain.Close)

	const base = "example.test. 60 IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 60\n" +
		"example.test. 60 IN NS ns.example.test.\nns.example.test. 60 IN A 127.0.0.1\nmail.example.test. 60 IN A 127.0.0.1\n" +
		"example.test. 60 IN MX 10 mail.example.test.\n" +
		"other.test. 60 IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 60\nother.test. 60 IN NS ns.example.test.\n" +
		"elsewhere.test. 60 IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 60\nelsewhere.test. 60 IN NS ns.example.test.\n" +
		"mx.elsewhere.test. 60 IN A 192.0.2.25\n"
	const (
		autoconfig   = "autoconfig.example.test. 60 IN CNAME mail.example.test.\n"
		autodiscover = "autodiscover.example.test. 60 IN CNAME mail.example.test.\n"
	)
	dnsSrv := dnstest.Start(t, base)

	type row struct {
		status Status
		url    string // the URL used or first tried
		told   string // substrings of Told, Detail, Fix
		detail string
		fix    string
	}
	tests := []struct {
		name   string
		target Target
		zone   string
		served []string          // names --connect sends to the web server
		extra  map[string]string // more --connect overrides ("closed": a closed port)
		want   map[string]row
	}{
		{"autoconfig.<d> works", Target{Domain: testDomain}, base + autoconfig + autodiscover,
			[]string{"autoconfig." + testDomain, "autodiscover." + testDomain}, nil, map[string]row{
				ClientThunderbird: {OK, "https://autoconfig.example.test/mail/config-v1.1.xml?emailaddress=postmaster%40example.test", "mail.example.test:", "", ""},
				ClientAndroid:     {OK, "https://autoconfig.example.test/mail/config-v1.1.xml", "IMAP mail.example.test:", "", ""},
				ClientOutlook: {OK, "https://autodiscover.example.test/autodiscover/autodiscover.json/v1.0/postmaster@example.test?Protocol=AutodiscoverV1 → https://autodiscover.example.test/Autodiscover/Autodiscover.xml",
					"SMTP mail.example.test:", "", ""},
				ClientApple: {OK, "https://autoconfig.example.test/mobileconfig?emailaddress=postmaster%40example.test", "SMTP mail.example.test:", "", ""},
			}},
		{"only the MX fallback works", Target{Domain: "other.test", Address: "bob@other.test"}, base + autoconfig + autodiscover + "other.test. 60 IN MX 10 mail.example.test.\n",
			[]string{"autoconfig." + testDomain, "autodiscover." + testDomain}, nil, map[string]row{
				ClientThunderbird: {OK, "https://autoconfig.example.test/mail/config-v1.1.xml?emailaddress=bob%40other.test", "user name bob@other.test", "", ""},
				// No address: the answer is example.test's, with the
				// placeholder Thunderbird for Android fills in.
				ClientAndroid: {OK, "https://autoconfig.example.test/mail/config-v1.1.xml", "IMAP mail.example.test:", "", ""},
				ClientOutlook: {Fail, "https://autodiscover.other.test/autodiscover/autodiscover.json/v1.0/bob@other.test?Protocol=AutodiscoverV1", "",
					"autodiscover.other.test does not resolve",
					`publish "autodiscover.other.test. 3600 IN CNAME mail.example.test." and add autodiscover.other.test to the certificate the web server presents; or, with a prompt in Outlook, publish "_autodiscover._tcp.other.test. 3600 IN SRV 0 0 443 mail.example.test."`},
				ClientApple: {Fail, "https://autoconfig.other.test/mobileconfig?emailaddress=bob%40other.test", "", "autoconfig.other.test does not resolve",
					`publish "autoconfig.other.test. 3600 IN CNAME mail.example.test."`},
			}},
		{"MX fallback name missing", Target{Domain: "other.test"}, base + autodiscover + "other.test. 60 IN MX 10 mail.example.test.\n",
			[]string{"autodiscover." + testDomain}, nil, map[string]row{
				ClientThunderbird: {Fail, "https://autoconfig.other.test/mail/config-v1.1.xml?emailaddress=postmaster%40other.test", "",
					"https://autoconfig.example.test/mail/config-v1.1.xml: autoconfig.example.test does not resolve",
					`publish "autoconfig.example.test. 3600 IN CNAME mail.example.test." and add autoconfig.example.test to the certificate the web server presents (one name, autoconfig.example.test, serves every domain whose first MX is under example.test, through Thunderbird's MX fallback); or for other.test alone: publish "autoconfig.other.test. 3600 IN CNAME mail.example.test."`},
				ClientAndroid: {Fail, "https://autoconfig.other.test/mail/config-v1.1.xml", "", "autoconfig.example.test does not resolve", "one name, autoconfig.example.test"},
			}},
		{"MX in the domain itself", Target{Domain: testDomain}, base + autodiscover,
			[]string{"autodiscover." + testDomain}, nil, map[string]row{
				ClientThunderbird: {Fail, "https://autoconfig.example.test/mail/config-v1.1.xml?emailaddress=postmaster%40example.test", "",
					"no MX fallback: the first MX mail.example.test is in example.test itself",
					`publish "autoconfig.example.test. 3600 IN CNAME mail.example.test." and add autoconfig.example.test to the certificate the web server presents`},
				ClientOutlook: {OK, "https://autodiscover.example.test/autodiscover/autodiscover.json/v1.0/", "IMAP mail.example.test:993", "", ""},
				// The settings page is on autodiscover.<d> too.
				ClientApple: {OK, "https://autodiscover.example.test/mobileconfig?emailaddress=postmaster%40example.test", "signed", "", ""},
			}},
		{"only plain HTTP", Target{Domain: "other.test"}, base + autodiscover + "autoconfig.other.test. 60 IN CNAME mail.example.test.\nother.test. 60 IN MX 10 mail.example.test.\n",
			[]string{"autoconfig.other.test"}, map[string]string{"autoconfig.other.test:443": "closed"}, map[string]row{
				ClientThunderbird: {Warn, "http://autoconfig.other.test/mail/config-v1.1.xml?emailaddress=postmaster%40other.test", "user name postmaster@other.test",
					"over plain HTTP", `serve https://autoconfig.other.test: make autoconfig.other.test reach a web server on port 443 that passes discovery requests to mailautoconf (or serve --listen-tls)`},
			}},
		{"nothing works", Target{Domain: "other.test"}, base + autoconfig + autodiscover + "other.test. 60 IN MX 10 mx.elsewhere.test.\n",
			[]string{"autoconfig." + testDomain, "autodiscover." + testDomain}, nil, map[string]row{
				ClientThunderbird: {Fail, "https://autoconfig.other.test/mail/config-v1.1.xml?emailaddress=postmaster%40other.test", "",
					"autoconfig.elsewhere.test does not resolve; the MX fallback follows the first MX mx.elsewhere.test, outside this host's domain example.test",
					`publish "autoconfig.other.test. 3600 IN CNAME mail.example.test."`},
				ClientAndroid: {Fail, "https://autoconfig.other.test/mail/config-v1.1.xml", "", "http://other.test/.well-known/autoconfig/mail/config-v1.1.xml: other.test does not resolve", `publish "autoconfig.other.test.`},
				ClientOutlook: {Fail, "", "", "SRV _autodiscover._tcp.other.test: no record", "autodiscover.other.test"},
				ClientApple:   {Fail, "", "", "autodiscover.other.test does not resolve", "autoconfig.other.test"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dnsSrv.SetZone(t, tt.zone)
			connect := map[string]string{}
			for _, n := range tt.served {
				connect[n+":443"] = web.Listener.Addr().String()
				connect[n+":80"] = plain.Listener.Addr().String()
			}
			for k, v := range tt.extra {
				if v == "closed" {
					v = closedPort(t)
				}
				connect[k] = v
			}
			r, err := newRun(Options{Snapshot: snap, Targets: []Target{tt.target}, Resolver: dnsSrv.Addr, Roots: pki.pool, Connect: connect, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			results := runJobs(context.Background(), 8, r.clientJobs())
			t.Logf("%v\n%s", time.Since(start), dump(results))
			if len(results) != len(clientWalks)-2 {
				t.Fatalf("%d client results, want %d (no CalDAV or CardDAV rows for a host without groupware)", len(results), len(clientWalks)-2)
			}
			for client, w := range tt.want {
				got := find(t, results, client+" "+tt.target.Domain)
				if got.Status != w.status || !strings.HasPrefix(got.URL, w.url) || !strings.Contains(got.Told, w.told) ||
					!strings.Contains(got.Detail, w.detail) || !strings.Contains(got.Fix, w.fix) {
					t.Errorf("%s = %+v\nwant %s, URL %q, told with %q, detail with %q, fix with %q", client, got, w.status, w.url, w.told, w.detail, w.fix)
				}
				if got.Client != client || got.Domain != tt.target.Domain || got.Group != GroupClient {
					t.Errorf("%s: client %q, domain %q, group %q", client, got.Client, got.Domain, got.Group)
				}
			}
		})
	}
}

// TestBaseDomain checks the registrable domain Thunderbird's MX fallback
// derives from the first MX.
func TestBaseDomain(t *testing.T) {
	for name, want := range map[string]string{
		"mail.example.com.":                       "example.com",
		"mx1.mail.provider.net":                   "provider.net",
		"mx.example.co.uk":                        "example.co.uk",
		"example-com.mail.protection.outlook.com": "outlook.com",
		"mail.example.test":                       "example.test",
	} {
		if got := baseDomain(name); got != want {
			t.Errorf("baseDomain(%s) = %s, want %s", name, got, want)
		}
	}
}
