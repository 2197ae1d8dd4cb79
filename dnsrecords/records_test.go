package dnsrecords

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// host is a small mail host for tests.
type host struct {
	hostname string
	domains  string   // virtual_mailbox_domains
	certFor  []string // names of the one certificate both servers present
	pop3     bool     // Dovecot offers POP3 (995 and 110)
	smtps    bool     // Postfix offers 465 besides 587
}

// snapshot writes h under a temporary root and builds its snapshot.
func (h host) snapshot(t *testing.T) *discover.Snapshot {
	t.Helper()
	dir := t.TempDir()
	protocols, pop3 := "imap", ""
	if h.pop3 {
		protocols = "imap pop3"
		pop3 = "service pop3-login {\n  inet_listener pop3 {\n    port = 110\n  }\n  inet_listener pop3s {\n    port = 995\n    ssl = yes\n  }\n}\n"
	}
	master := "smtp inet n - y - - smtpd\nsubmission inet n - y - - smtpd\n  -o smtpd_tls_security_level=encrypt\n  -o smtpd_sasl_auth_enable=yes\n"
	if h.smtps {
		master += "smtps inet n - y - - smtpd\n  -o smtpd_tls_wrappermode=yes\n  -o smtpd_sasl_auth_enable=yes\n"
	}
	files := map[string]string{
		"etc/postfix/main.cf": "compatibility_level = 3.6\nmyhostname = " + h.hostname + "\nmydestination = localhost\n" +
			"virtual_mailbox_domains = " + h.domains + "\n" +
			"smtpd_tls_chain_files = /etc/ssl/key.pem, /etc/ssl/cert.pem\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = private/auth\n",
		"etc/postfix/master.cf": master,
		"etc/dovecot/dovecot.conf": "protocols = " + protocols + "\nssl = required\nssl_cert = </etc/ssl/cert.pem\nssl_key = </etc/ssl/key.pem\n" +
			"auth_mechanisms = plain login\nservice imap-login {\n  inet_listener imap {\n    port = 143\n  }\n  inet_listener imaps {\n    port = 993\n    ssl = yes\n  }\n}\n" + pop3,
	}
	cert, key := selfSigned(t, h.certFor)
	files["etc/ssl/cert.pem"], files["etc/ssl/key.pem"] = string(cert), string(key)
	testtool.WriteFiles(t, dir, files)
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := discover.Build(context.Background(), discover.Options{Root: root})
	if err != nil {
		t.Fatalf("discover.Build: %v", err)
	}
	t.Cleanup(func() { snap.Close() })
	return snap
}

func selfSigned(t *testing.T, names []string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(90 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// lines returns a domain's records as zone lines.
func lines(d Domain) []string {
	var out []string
	for _, r := range d.Records {
		out = append(out, r.String())
	}
	return out
}

func TestFor(t *testing.T) {
	tests := []struct {
		name string
		host host
		want []string // the records of the first domain
	}{
		{"everything offered", host{hostname: "mail.example.com", domains: "example.com", certFor: []string{"mail.example.com"}, pop3: true, smtps: true}, []string{
			"autoconfig.example.com. 3600 IN CNAME mail.example.com.",
			"autodiscover.example.com. 3600 IN CNAME mail.example.com.",
			"_autodiscover._tcp.example.com. 3600 IN SRV 0 0 443 mail.example.com.",
			"_imaps._tcp.example.com. 3600 IN SRV 0 1 993 mail.example.com.",
			"_imap._tcp.example.com. 3600 IN SRV 10 1 143 mail.example.com.",
			"_pop3s._tcp.example.com. 3600 IN SRV 20 1 995 mail.example.com.",
			"_pop3._tcp.example.com. 3600 IN SRV 30 1 110 mail.example.com.",
			"_submissions._tcp.example.com. 3600 IN SRV 0 1 465 mail.example.com.",
			"_submission._tcp.example.com. 3600 IN SRV 10 1 587 mail.example.com.",
		}},
		{"no POP3, no 465", host{hostname: "mail.example.com", domains: "example.com", certFor: []string{"mail.example.com"}}, []string{
			"autoconfig.example.com. 3600 IN CNAME mail.example.com.",
			"autodiscover.example.com. 3600 IN CNAME mail.example.com.",
			"_autodiscover._tcp.example.com. 3600 IN SRV 0 0 443 mail.example.com.",
			"_imaps._tcp.example.com. 3600 IN SRV 0 1 993 mail.example.com.",
			"_imap._tcp.example.com. 3600 IN SRV 10 1 143 mail.example.com.",
			"_pop3s._tcp.example.com. 3600 IN SRV 0 0 0 .",
			"_pop3._tcp.example.com. 3600 IN SRV 0 0 0 .",
			"_submissions._tcp.example.com. 3600 IN SRV 0 0 0 .",
			"_submission._tcp.example.com. 3600 IN SRV 0 1 587 mail.example.com.",
		}},
		{"host is the domain", host{hostname: "example.org", domains: "example.org", certFor: []string{"example.org"}}, []string{
			"autoconfig.example.org. 3600 IN CNAME example.org.",
			"autodiscover.example.org. 3600 IN CNAME example.org.",
			"_autodiscover._tcp.example.org. 3600 IN SRV 0 0 443 example.org.",
			"_imaps._tcp.example.org. 3600 IN SRV 0 1 993 example.org.",
			"_imap._tcp.example.org. 3600 IN SRV 10 1 143 example.org.",
			"_pop3s._tcp.example.org. 3600 IN SRV 0 0 0 .",
			"_pop3._tcp.example.org. 3600 IN SRV 0 0 0 .",
			"_submissions._tcp.example.org. 3600 IN SRV 0 0 0 .",
			"_submission._tcp.example.org. 3600 IN SRV 0 1 587 example.org.",
		}},
		{"host is autoconfig.<domain>", host{hostname: "autoconfig.example.net", domains: "example.net", certFor: []string{"autoconfig.example.net"}}, []string{
			"autodiscover.example.net. 3600 IN CNAME autoconfig.example.net.",
			"_autodiscover._tcp.example.net. 3600 IN SRV 0 0 443 autoconfig.example.net.",
			"_imaps._tcp.example.net. 3600 IN SRV 0 1 993 autoconfig.example.net.",
			"_imap._tcp.example.net. 3600 IN SRV 10 1 143 autoconfig.example.net.",
			"_pop3s._tcp.example.net. 3600 IN SRV 0 0 0 .",
			"_pop3._tcp.example.net. 3600 IN SRV 0 0 0 .",
			"_submissions._tcp.example.net. 3600 IN SRV 0 0 0 .",
			"_submission._tcp.example.net. 3600 IN SRV 0 1 587 autoconfig.example.net.",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := tt.host.snapshot(t)
			p, err := For(snap, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Domains) == 0 {
				t.Fatalf("For: no domains (snapshot warnings %q)", snap.Warnings())
			}
			if got := lines(p.Domains[0]); !slices.Equal(got, tt.want) {
				t.Errorf("For(%s) records =\n%s\nwant\n%s", tt.name, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			mx := p.Domains[0].Suggested
			if len(mx) != 1 || mx[0].String() != p.Domains[0].Name+". 3600 IN MX 10 "+p.Host+"." {
				t.Errorf("suggested = %v, want the MX to the host", mx)
			}
		})
	}
}

func TestForNamesLoopsAndNotes(t *testing.T) {
	snap := host{hostname: "autoconfig.example.net", domains: "example.net", certFor: []string{"autoconfig.example.net"}}.snapshot(t)
	p, err := For(snap, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := p.Domains[0].Notes; len(n) != 1 || !strings.Contains(n[0], "autoconfig.example.net. is the mail host's own name") {
		t.Errorf("notes = %q, want one about the host being autoconfig.example.net", n)
	}
}

func TestCertificateNames(t *testing.T) {
	snap := host{hostname: "mail.example.com", domains: "example.com, example.org",
		certFor: []string{"mail.example.com", "autoconfig.example.com", "*.example.org"}, pop3: true}.snapshot(t)
	p, err := For(snap, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range p.Certificates {
		got[c.Name] = c.Status()
	}
	want := map[string]string{
		"autoconfig.example.com":   "ok",
		"autodiscover.example.com": "MISSING (https)",
		"example.com":              "optional, not covered",
		"autoconfig.example.org":   "ok",
		"autodiscover.example.org": "ok",
		"example.org":              "optional, not covered", // a wildcard covers one label only
		"mail.example.com":         "ok",
	}
	for name, status := range want {
		if got[name] != status {
			t.Errorf("certificate name %s: status %q, want %q", name, got[name], status)
		}
	}
	if len(got) != len(want) {
		t.Errorf("certificate names = %v, want %v", got, want)
	}
	if n := p.MissingNames(); n != 1 {
		t.Errorf("MissingNames = %d, want 1", n)
	}
	for _, c := range p.Certificates {
		if c.Name == "mail.example.com" && !slices.Equal(c.Servers, []string{"https", "dovecot", "postfix"}) {
			t.Errorf("mail.example.com servers = %v, want https, dovecot, postfix", c.Servers)
		}
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		cert, host string
		want       bool
	}{
		{"mail.example.com", "mail.example.com", true},
		{"Mail.Example.COM.", "mail.example.com", true},
		{"*.example.com", "autoconfig.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "a.b.example.com", false},
		{"*.", "com", false},
		{"example.com", "autoconfig.example.com", false},
		{"", "", true},
	}
	for _, tt := range tests {
		if got := Covers(tt.cert, tt.host); got != tt.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tt.cert, tt.host, got, tt.want)
		}
	}
}

func TestNoHost(t *testing.T) {
	snap := host{hostname: "mail.example.com", domains: "example.com", certFor: []string{"mail.example.com"}}.snapshot(t)
	if _, err := For(snap, []string{"bad..name"}); err == nil {
		t.Error(`For(snap, ["bad..name"]) succeeded, want an error`)
	}
}
