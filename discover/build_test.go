package discover

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/sqltable"
)

// A host is a mail host's files for a test, keyed by host path.
type host map[string]string

// baseHost is a small, healthy host: Postfix with 465 and 587, Dovecot with
// IMAP and POP3, one certificate for mail.example.org.
func baseHost(t testing.TB) host {
	return host{
		"/etc/postfix/main.cf": `myhostname = mail.example.org
mydomain = example.org
virtual_mailbox_domains = example.org example.com
smtpd_tls_cert_file = /etc/ssl/mail.pem
smtpd_tls_key_file = /etc/ssl/mail.key
smtpd_tls_security_level = may
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
`,
		"/etc/postfix/master.cf": `smtp      inet  n       -       y       -       -       smtpd
submission inet n       -       y       -       -       smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
smtps     inet  n       -       y       -       -       smtpd
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
`,
		"/etc/dovecot/dovecot.conf": `protocols = imap pop3
listen = *, ::
ssl = required
ssl_cert = </etc/ssl/mail.pem
ssl_key = </etc/ssl/mail.key
auth_mechanisms = plain login
`,
		"/etc/ssl/mail.pem": certPEM(t, "mail.example.org", "mail.example.org", "imap.example.org"),
	}
}

// writeRoot writes h under a temporary directory and returns it as a root.
func writeRoot(t *testing.T, h host) hostfs.Root {
	t.Helper()
	dir := t.TempDir()
	testtool.WriteFiles(t, dir, h)
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// build writes h under a temporary root and builds its Snapshot.
func build(t *testing.T, h host) (*Snapshot, error) {
	t.Helper()
	root := writeRoot(t, h)
	s, err := Build(context.Background(), Options{Root: root, MySQL: sqltable.Options{ConnectTimeout: time.Second}})
	if s != nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, err
}

func mustBuild(t *testing.T, h host) *Snapshot {
	t.Helper()
	s, err := build(t, h)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return s
}

// certPEM returns a self-signed certificate for names, valid for a year.
func certPEM(t testing.TB, cn string, names ...string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// endpoints renders the snapshot's endpoints as "protocol/port/security".
func endpoints(s *Snapshot) []string {
	var out []string
	for _, e := range s.Endpoints() {
		out = append(out, fmt.Sprintf("%s/%d/%s", e.Protocol, e.Port, e.Security))
	}
	return out
}

func hasWarning(s *Snapshot, substr string) bool {
	return slices.ContainsFunc(s.Warnings(), func(w string) bool { return strings.Contains(w, substr) })
}

func TestEndpointRules(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(h host)
		want    []string
		warning string // a warning that must be given, "" for none in particular
	}{
		{
			name: "healthy host, implicit TLS first",
			edit: func(h host) {},
			want: []string{"imap/993/tls", "imap/143/starttls", "pop3/995/tls", "pop3/110/starttls", "smtp/465/tls", "smtp/587/starttls"},
		},
		{
			name: "POP3 not in protocols",
			edit: func(h host) {
				h["/etc/dovecot/dovecot.conf"] = strings.Replace(h["/etc/dovecot/dovecot.conf"], "protocols = imap pop3", "protocols = imap lmtp", 1)
			},
			want: []string{"imap/993/tls", "imap/143/starttls", "smtp/465/tls", "smtp/587/starttls"},
		},
		{
			name: "Dovecot on loopback only",
			edit: func(h host) {
				h["/etc/dovecot/dovecot.conf"] = strings.Replace(h["/etc/dovecot/dovecot.conf"], "listen = *, ::", "listen = 127.0.0.1, ::1", 1)
			},
			want:    []string{"smtp/465/tls", "smtp/587/starttls"},
			warning: "no IMAP endpoint",
		},
		{
			name: "disabled and HAProxy listeners",
			edit: func(h host) {
				h["/etc/dovecot/dovecot.conf"] += `service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    haproxy = yes
  }
}
`
			},
			want:    []string{"pop3/995/tls", "pop3/110/starttls", "smtp/465/tls", "smtp/587/starttls"},
			warning: "HAProxy PROXY header",
		},
		{
			name: "no TLS and cleartext refused: port not advertised",
			edit: func(h host) {
				h["/etc/dovecot/dovecot.conf"] = strings.Replace(h["/etc/dovecot/dovecot.conf"], "ssl = required", "ssl = no", 1)
			},
			want:    []string{"smtp/465/tls", "smtp/587/starttls"},
			warning: "ssl = no (/etc/dovecot/dovecot.conf:3) disables TLS",
		},
		{
			name: "no TLS and cleartext allowed: advertised as none, with a warning",
			edit: func(h host) {
				h["/etc/dovecot/dovecot.conf"] = strings.Replace(h["/etc/dovecot/dovecot.conf"], "ssl = required", "ssl = no\ndisable_plaintext_auth = no", 1)
			},
			want:    []string{"imap/143/none", "pop3/110/none", "smtp/465/tls", "smtp/587/starttls"},
			warning: "takes passwords without TLS",
		},
		{
			name: "submission without SASL is not advertised",
			edit: func(h host) {
				h["/etc/postfix/master.cf"] = strings.Replace(h["/etc/postfix/master.cf"], "  -o smtpd_tls_security_level=encrypt\n  -o smtpd_sasl_auth_enable=yes\n", "  -o smtpd_tls_security_level=encrypt\n", 1)
			},
			want:    []string{"imap/993/tls", "imap/143/starttls", "pop3/995/tls", "pop3/110/starttls", "smtp/465/tls"},
			warning: "(/etc/postfix/master.cf:2) on port 587 is not advertised for submission: SASL off",
		},
		{
			name: "Postfix listening on loopback only",
			edit: func(h host) {
				h["/etc/postfix/main.cf"] += "inet_interfaces = loopback-only\n"
			},
			want:    []string{"imap/993/tls", "imap/143/starttls", "pop3/995/tls", "pop3/110/starttls"},
			warning: "no SMTP endpoint",
		},
		{
			name: "465 behind the proxy protocol",
			edit: func(h host) {
				h["/etc/postfix/master.cf"] += "  -o smtpd_upstream_proxy_protocol=haproxy\n"
			},
			want: []string{"imap/993/tls", "imap/143/starttls", "pop3/995/tls", "pop3/110/starttls", "smtp/587/starttls"},
		},
		{
			name: "Dovecot submission instead of Postfix's",
			edit: func(h host) {
				h["/etc/postfix/master.cf"] = "smtp      inet  n       -       y       -       -       smtpd\n"
				h["/etc/dovecot/dovecot.conf"] = strings.Replace(h["/etc/dovecot/dovecot.conf"], "protocols = imap pop3", "protocols = imap submission", 1)
			},
			want: []string{"imap/993/tls", "imap/143/starttls", "smtp/587/starttls"},
		},
		{
			name: "no Dovecot at all",
			edit: func(h host) {
				delete(h, "/etc/dovecot/dovecot.conf")
			},
			want:    []string{"smtp/465/tls", "smtp/587/starttls"},
			warning: "no Dovecot configuration at /etc/dovecot/dovecot.conf",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := baseHost(t)
			tt.edit(h)
			s := mustBuild(t, h)
			if got := endpoints(s); !slices.Equal(got, tt.want) {
				t.Errorf("endpoints = %v, want %v\nwarnings: %q", got, tt.want, s.Warnings())
			}
			if tt.warning != "" && !hasWarning(s, tt.warning) {
				t.Errorf("warnings = %q, want one containing %q", s.Warnings(), tt.warning)
			}
		})
	}
}

func TestEndpointDetails(t *testing.T) {
	h := baseHost(t)
	h["/etc/dovecot/dovecot.conf"] += "auth_username_format = %Ln\nauth_mechanisms = plain login cram-md5\n"
	s := mustBuild(t, h)
	for _, e := range s.Endpoints() {
		if e.Username != UsernameLocalPart {
			t.Errorf("%s/%d username = %q, want %q (auth_username_format = %%Ln)", e.Protocol, e.Port, e.Username, UsernameLocalPart)
		}
		if !slices.Equal(e.Auth, []string{"PLAIN", "LOGIN", "CRAM-MD5"}) {
			t.Errorf("%s/%d auth = %v, want Dovecot's mechanisms [PLAIN LOGIN CRAM-MD5]", e.Protocol, e.Port, e.Auth)
		}
		if e.Host != "mail.example.org" {
			t.Errorf("%s/%d host = %q, want mail.example.org", e.Protocol, e.Port, e.Host)
		}
		if !strings.HasPrefix(e.Source, "/etc/") || !strings.Contains(e.Source, ":") {
			t.Errorf("%s/%d source = %q, want a file:line", e.Protocol, e.Port, e.Source)
		}
	}
}

func TestDovecot24(t *testing.T) {
	h := baseHost(t)
	h["/etc/dovecot/dovecot.conf"] = `dovecot_config_version = 2.4.0
dovecot_storage_version = 2.4.0
protocols = imap
listen = *
ssl = required
ssl_server_cert_file = /etc/ssl/mail.pem
ssl_server_key_file = /etc/ssl/mail.key
auth_allow_cleartext = no
auth_mechanisms = plain
`
	s := mustBuild(t, h)
	want := []string{"imap/993/tls", "imap/143/starttls", "smtp/465/tls", "smtp/587/starttls"}
	if got := endpoints(s); !slices.Equal(got, want) {
		t.Errorf("endpoints = %v, want %v\nwarnings: %q", got, want, s.Warnings())
	}
	if certs := s.Certificates(); len(certs) != 2 || certs[1].Path != "/etc/ssl/mail.pem" || certs[1].Server != "dovecot" {
		t.Errorf("certificates = %+v, want Postfix's and Dovecot's /etc/ssl/mail.pem", certs)
	}
}

func TestHostnameFollowsCertificate(t *testing.T) {
	tests := []struct {
		name     string
		names    []string
		want     string
		warning  string
		wantWarn bool
	}{
		{"covers myhostname", []string{"mail.example.org"}, "mail.example.org", "", false},
		{"wildcard covers myhostname", []string{"*.example.org"}, "mail.example.org", "", false},
		{"covers another name", []string{"smtp.example.net"}, "smtp.example.net", "not myhostname mail.example.org", true},
		{"covers nothing usable", []string{"*.example.net"}, "mail.example.org", "no postfix certificate covers mail.example.org", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := baseHost(t)
			h["/etc/ssl/mail.pem"] = certPEM(t, tt.names[0], tt.names...)
			s := mustBuild(t, h)
			if s.Hostname() != tt.want {
				t.Errorf("Hostname() = %q, want %q", s.Hostname(), tt.want)
			}
			if tt.wantWarn && !hasWarning(s, tt.warning) {
				t.Errorf("warnings = %q, want one containing %q", s.Warnings(), tt.warning)
			}
			if !tt.wantWarn && hasWarning(s, "covers") {
				t.Errorf("warnings = %q, want none about certificate coverage", s.Warnings())
			}
		})
	}
}

func TestDomainSources(t *testing.T) {
	h := baseHost(t)
	h["/etc/postfix/main.cf"] += `virtual_mailbox_domains = Example.ORG, ALL localhost texthash:/etc/postfix/more memcache:/etc/postfix/mc.cf
virtual_alias_domains = alias.example.org
`
	h["/etc/postfix/more"] = "# more domains\nexample.net OK\nbücher.example OK\n"
	s := mustBuild(t, h)
	var got []string
	for _, d := range s.Domains() {
		got = append(got, fmt.Sprintf("%s alias=%v", d.Name, d.Alias))
	}
	want := []string{"alias.example.org alias=true", "example.net alias=false", "example.org alias=false", "xn--bcher-kva.example alias=false"}
	if !slices.Equal(got, want) {
		t.Errorf("domains = %q, want %q", got, want)
	}
	if s.DomainsListed() {
		t.Errorf("DomainsListed() = true, want false: the memcache table cannot be read")
	}
	if !hasWarning(s, "memcache:/etc/postfix/mc.cf (/etc/postfix/main.cf:") || !hasWarning(s, "memcache tables cannot be listed or queried") {
		t.Errorf("warnings = %q, want one about memcache naming main.cf's line", s.Warnings())
	}
	if d, ok, err := s.Lookup(context.Background(), "EXAMPLE.net."); err != nil || !ok || d.Name != "example.net" {
		t.Errorf("Lookup(EXAMPLE.net.) = %+v, %v, %v, want example.net", d, ok, err)
	}
}

// TestUnsupportedTableTypes: each table type that cannot be listed is one
// warning naming the table and the main.cf line.
func TestUnsupportedTableTypes(t *testing.T) {
	for _, typ := range []string{"memcache", "socketmap", "tcp", "regexp", "pcre", "static", "nis"} {
		t.Run(typ, func(t *testing.T) {
			h := baseHost(t)
			h["/etc/postfix/main.cf"] += "virtual_mailbox_domains = example.org " + typ + ":/etc/postfix/x\n"
			s := mustBuild(t, h)
			var n int
			for _, w := range s.Warnings() {
				if strings.Contains(w, typ+":/etc/postfix/x (/etc/postfix/main.cf:") {
					n++
				}
			}
			if dw := s.DomainWarnings(); len(dw) != 1 || !strings.Contains(dw[0], typ+":/etc/postfix/x") {
				t.Errorf("DomainWarnings() = %q, want the one about %s", dw, typ)
			}
			if n != 1 || s.DomainsListed() {
				t.Errorf("warnings = %q (%d about %s), DomainsListed() = %v; want one warning, false", s.Warnings(), n, typ, s.DomainsListed())
			}
			if _, ok, err := s.Lookup(context.Background(), "example.org"); !ok || err != nil {
				t.Errorf("Lookup(example.org) = %v, %v: the other domains must still be served", ok, err)
			}
		})
	}
}

// TestDatabaseDown: a vmail database that cannot be reached is a warning
// naming it, the snapshot still builds, and per-domain lookups fail with an
// error rather than a panic.
func TestDatabaseDown(t *testing.T) {
	h := baseHost(t)
	h["/etc/postfix/main.cf"] += "virtual_mailbox_domains = proxy:mysql:/etc/postfix/mysql/domains.cf\n"
	h["/etc/postfix/mysql/domains.cf"] = "hosts = unix:/nonexistent/mysqld.sock\nuser = vmail\npassword = s3cret#x\ndbname = vmail\nquery = SELECT domain FROM domain WHERE domain='%s' AND active=1\n"
	s := mustBuild(t, h)
	if s.DomainsListed() || len(s.Domains()) != 0 {
		t.Errorf("DomainsListed() = %v with %d domains, want false and none", s.DomainsListed(), len(s.Domains()))
	}
	if !hasWarning(s, "/nonexistent/mysqld.sock") {
		t.Errorf("warnings = %q, want one naming the database socket", s.Warnings())
	}
	for _, w := range s.Warnings() {
		if strings.Contains(w, "s3cret") {
			t.Errorf("warning %q shows the database password", w)
		}
	}
	_, ok, err := s.Lookup(context.Background(), "example.net")
	if ok || err == nil || !strings.Contains(err.Error(), "/nonexistent/mysqld.sock") {
		t.Errorf("Lookup with the database down = %v, %v, want an error naming the socket", ok, err)
	}
	// The literal domain list still answers without the database.
	h = baseHost(t)
	s = mustBuild(t, h)
	if _, ok, err := s.Lookup(context.Background(), "example.com"); !ok || err != nil {
		t.Errorf("Lookup(example.com) = %v, %v, want a hit", ok, err)
	}
}

func TestBrokenConfigNamesFileAndLine(t *testing.T) {
	tests := []struct {
		name string
		edit func(h host)
		want string
	}{
		{"main.cf line without =", func(h host) { h["/etc/postfix/main.cf"] += "this line is broken\n" }, "/etc/postfix/main.cf:9: "},
		{"master.cf short line", func(h host) { h["/etc/postfix/master.cf"] += "broken inet n\n" }, "/etc/postfix/master.cf:8: "},
		{"dovecot.conf unbalanced brace", func(h host) { h["/etc/dovecot/dovecot.conf"] += "}\n" }, "/etc/dovecot/dovecot.conf:7: "},
		{"dovecot include missing", func(h host) { h["/etc/dovecot/dovecot.conf"] += "!include /etc/dovecot/missing.conf\n" }, "/etc/dovecot/dovecot.conf:7: "},
		{"no Postfix", func(h host) { delete(h, "/etc/postfix/main.cf") }, "/etc/postfix/main.cf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := baseHost(t)
			tt.edit(h)
			_, err := build(t, h)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Build error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestPermissionErrorsSayHowToFix(t *testing.T) {
	err := withHint(&fs.PathError{Op: "read", Path: "/etc/postfix/mysql/domains.cf", Err: fs.ErrPermission})
	if !strings.Contains(err.Error(), "/etc/postfix/mysql/domains.cf") || !strings.Contains(err.Error(), "root:postfix 0640") {
		t.Errorf("withHint(permission error) = %v, want the file and the group hint", err)
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("withHint lost the wrapped error")
	}
}

func TestJSONForm(t *testing.T) {
	s := mustBuild(t, baseHost(t))
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"hostname", "domains", "domains_listed", "endpoints", "certificates", "warnings"} {
		if _, ok := doc[key]; !ok {
			t.Errorf("JSON lacks %q: %s", key, b)
		}
	}
}

// TestUnreadableTableIsAnOutage: a lookup table file that exists but
// cannot be read (here: replaced by a directory; a chmod 0600 as non-root
// reads the same way) keeps the domains the previous snapshot had from
// it, with a warning, as a database outage does; once readable, the file
// is read again; a removed file drops its domains.
func TestUnreadableTableIsAnOutage(t *testing.T) {
	h := baseHost(t)
	h["/etc/postfix/main.cf"] = strings.Replace(h["/etc/postfix/main.cf"], "virtual_mailbox_domains = example.org example.com",
		"virtual_mailbox_domains = example.org texthash:/etc/postfix/vdomains", 1)
	h["/etc/postfix/vdomains"] = "a.example OK\nb.example OK\n"
	root := writeRoot(t, h)
	build := func(prev *Snapshot) *Snapshot {
		t.Helper()
		s, err := Build(context.Background(), Options{Root: root, Previous: prev})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	names := func(s *Snapshot) []string {
		var out []string
		for _, d := range s.Domains() {
			out = append(out, d.Name+" "+d.Source)
		}
		return out
	}
	good := build(nil)
	want := []string{"a.example /etc/postfix/vdomains:1", "b.example /etc/postfix/vdomains:2", "example.org /etc/postfix/main.cf:3"}
	if got := names(good); !slices.Equal(got, want) {
		t.Fatalf("readable: %q, want %q", got, want)
	}
	file := filepath.Join(root.Dir(), "etc/postfix/vdomains")
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(file, 0o755); err != nil {
		t.Fatal(err)
	}
	out := build(good)
	if got := names(out); !slices.Equal(got, want) {
		t.Errorf("unreadable: %q, want the previous domains %q", got, want)
	}
	if !hasWarning(out, "serving the 2 domains it listed before until it can be read") || out.DomainsListed() || !slices.Contains(out.Unreachable(), "/etc/postfix/vdomains") {
		t.Errorf("unreadable: warnings %q, listed %v, unreachable %q", out.Warnings(), out.DomainsListed(), out.Unreachable())
	}
	if first := build(nil); first.NumDomains() != 1 {
		t.Errorf("unreadable with no previous snapshot: %q, want only example.org", names(first))
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if gone := build(out); gone.NumDomains() != 1 {
		t.Errorf("removed: %q, want only example.org", names(gone))
	}
	testtool.WriteFiles(t, root.Dir(), map[string]string{"/etc/postfix/vdomains": "c.example OK\n"})
	if back := build(out); !slices.Equal(names(back), []string{"c.example /etc/postfix/vdomains:1", "example.org /etc/postfix/main.cf:3"}) || !back.DomainsListed() {
		t.Errorf("readable again: %q (listed %v)", names(back), back.DomainsListed())
	}
}
