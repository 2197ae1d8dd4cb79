package check

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/dnsrecords"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// The test mail host.
const (
	testHost   = "mail.example.test"
	testDomain = "example.test"
)

// A testPKI is a throwaway CA issuing leaf certificates.
type testPKI struct {
	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
	caPEM []byte
	pool  *x509.CertPool
	next  atomic.Int64
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mailautoconf check test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &testPKI{ca: ca, caKey: key, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.next.Store(1)
	return p
}

// leaf issues a certificate for names valid for the given time from now;
// it returns the chain (leaf then CA) and key as PEM, and as a
// tls.Certificate.
func (p *testPKI) leaf(t testing.TB, valid time.Duration, names ...string) (chainPEM, keyPEM []byte, cert tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.next.Add(1)),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(valid),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	chainPEM = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), p.caPEM...)
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	cert, err = tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return chainPEM, keyPEM, cert
}

// allNames are the names the healthy certificate covers.
var allNames = []string{testHost, "autoconfig." + testDomain, "autodiscover." + testDomain, testDomain}

// writeRoot writes the mail host's configuration as check sees it: the
// standard ports (993, 143, 995, 110, 465, 587) on mail.example.test,
// domain example.test, and the given certificate for both servers.
func writeRoot(t testing.TB, dir string, chainPEM, keyPEM []byte) {
	t.Helper()
	files := map[string]string{
		"etc/postfix/main.cf": `compatibility_level = 3.6
myhostname = ` + testHost + `
mydomain = ` + testDomain + `
mydestination = localhost
virtual_mailbox_domains = ` + testDomain + `
smtpd_tls_chain_files = /etc/ssl/mail/key.pem, /etc/ssl/mail/fullchain.pem
smtpd_tls_security_level = may
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
`,
		"etc/postfix/master.cf": `smtp      inet  n       -       y       -       -       smtpd
submission inet n       -       y       -       -       smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
smtps     inet  n       -       y       -       -       smtpd
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
`,
		"etc/dovecot/dovecot.conf": `protocols = imap pop3
listen = *, ::
ssl = required
ssl_cert = </etc/ssl/mail/fullchain.pem
ssl_key = </etc/ssl/mail/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain login
service imap-login {
  inet_listener imap {
    port = 143
  }
  inet_listener imaps {
    port = 993
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 110
  }
  inet_listener pop3s {
    port = 995
    ssl = yes
  }
}
`,
		"etc/ssl/mail/fullchain.pem": string(chainPEM),
		"etc/ssl/mail/key.pem":       string(keyPEM),
	}
	testtool.WriteFiles(t, dir, files)
}

// buildSnapshot reads the configuration under dir.
func buildSnapshot(t testing.TB, dir string) (*discover.Snapshot, hostfs.Root) {
	t.Helper()
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := discover.Build(context.Background(), discover.Options{Root: root})
	if err != nil {
		t.Fatalf("discover.Build(%s): %v", dir, err)
	}
	t.Cleanup(func() { snap.Close() })
	if snap.Hostname() != testHost {
		t.Fatalf("snapshot host name = %q, want %q (warnings: %q)", snap.Hostname(), testHost, snap.Warnings())
	}
	return snap, root
}

// goodZone is the zone a careful admin publishes: dns's records plus
// SOA, NS, the host's address and the MX.
func goodZone(t testing.TB, snap *discover.Snapshot) string {
	t.Helper()
	plan, err := dnsrecords.For(snap, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s. 60 IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 60\n", testDomain, testDomain, testDomain)
	fmt.Fprintf(&b, "%s. 60 IN NS ns.%s.\n", testDomain, testDomain)
	fmt.Fprintf(&b, "ns.%s. 60 IN A 127.0.0.1\n", testDomain)
	fmt.Fprintf(&b, "%s. 60 IN A 127.0.0.1\n", testHost)
	for _, d := range plan.Domains {
		for _, r := range d.Records {
			fmt.Fprintln(&b, r.String())
		}
		for _, r := range d.Suggested {
			fmt.Fprintln(&b, r.String())
		}
	}
	return b.String()
}

// without returns zone without the lines containing s.
func without(zone, s string) string {
	var out []string
	for _, l := range strings.Split(zone, "\n") {
		if !strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// find returns the result named name, failing t when there is none.
func find(t testing.TB, results []Result, name string) Result {
	t.Helper()
	for _, r := range results {
		if r.Name == name {
			return r
		}
	}
	var names []string
	for _, r := range results {
		names = append(names, r.Name)
	}
	t.Fatalf("no result %q among %q", name, names)
	return Result{}
}

func dump(results []Result) string {
	var b strings.Builder
	WriteText(&b, results)
	return b.String()
}
