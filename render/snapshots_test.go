package render

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/internal/mariadbtest"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/sqltable"
)

func TestMain(m *testing.M) { mariadbtest.Main(m) }

// A testSet is a snapshot and the addresses the renderers are tried with;
// the first address is the one its golden files show.
type testSet struct {
	name  string
	snap  *discover.Snapshot
	addrs []Address
	// noAutoconfig: the set has no IMAP/POP3 or no SMTP server with TLS.
	noAutoconfig bool
}

const corpusDir = "../testdata/corpus"

// synthetic is a host with IMAP and POP3 on both ports, SMTP on 465 (Cyrus
// SASL: whole-address logins) and 587 (Dovecot SASL), Dovecot logins by
// local part (%Ln), CRAM-MD5 and SCRAM besides PLAIN, and an alias domain.
func synthetic(t testing.TB) map[string]string {
	return map[string]string{
		"/etc/postfix/main.cf": `myhostname = mail.example.net
mydomain = example.net
virtual_mailbox_domains = example.net
virtual_alias_domains = alias.example.net
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
  -o smtpd_sasl_type=cyrus
`,
		"/etc/postfix/sasl/smtpd.conf": "pwcheck_method: saslauthd\nmech_list: PLAIN LOGIN\n",
		"/etc/dovecot/dovecot.conf": `protocols = imap pop3
listen = *, ::
ssl = required
ssl_cert = </etc/ssl/mail.pem
ssl_key = </etc/ssl/mail.key
auth_mechanisms = plain login cram-md5 scram-sha-256
auth_username_format = %Ln
`,
		"/etc/ssl/mail.pem": certPEM(t, "mail.example.net"),
	}
}

// plainHost has an IMAP port without TLS (ssl = no) and SMTP on 465 only.
func plainHost(t testing.TB) map[string]string {
	return map[string]string{
		"/etc/postfix/main.cf": `myhostname = mail.example.org
virtual_mailbox_domains = example.org
smtpd_tls_cert_file = /etc/ssl/mail.pem
smtpd_tls_key_file = /etc/ssl/mail.key
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
`,
		"/etc/postfix/master.cf": `smtps     inet  n       -       y       -       -       smtpd
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
`,
		"/etc/dovecot/dovecot.conf": `protocols = imap
listen = *
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
`,
		"/etc/ssl/mail.pem": certPEM(t, "mail.example.org"),
	}
}

// certPEM returns a self-signed certificate for name.
func certPEM(t testing.TB, name string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// buildTree writes files (keyed by host path) under a temporary root and
// builds its snapshot.
func buildTree(t testing.TB, files map[string]string) *discover.Snapshot {
	t.Helper()
	dir := t.TempDir()
	testtool.WriteFiles(t, dir, files)
	return buildRoot(t, dir, sqltable.Options{})
}

func buildRoot(t testing.TB, dir string, my sqltable.Options) *discover.Snapshot {
	t.Helper()
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	my.ConnectTimeout = 2 * time.Second
	s, err := discover.Build(context.Background(), discover.Options{Root: root, MySQL: my})
	if err != nil {
		t.Fatalf("Build(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var loadSQLOnce sync.Once

// sqlSnapshot builds a SQL corpus set's snapshot against the shared
// MariaDB with every SQL set's schema and seed loaded.
func sqlSnapshot(t *testing.T, set string) *discover.Snapshot {
	db := mariadbtest.Shared(t)
	sets, _ := filepath.Glob(filepath.Join(corpusDir, "*", "schema.sql"))
	loadSQLOnce.Do(func() {
		for _, schema := range sets {
			db.LoadFile(t, schema)
			db.LoadFile(t, filepath.Join(filepath.Dir(schema), "seed.sql"))
		}
	})
	return buildRoot(t, filepath.Join(corpusDir, set), sqltable.Options{Override: db.Socket()})
}

// address is local@domain as the server answers it: LoginDomain is the
// alias target the snapshot knows, else the domain.
func address(s *discover.Snapshot, local, domain string) Address {
	a := Address{Local: local, Domain: domain, LoginDomain: domain}
	for _, d := range s.Domains() {
		if d.Name == domain && d.AliasOf != "" {
			a.LoginDomain = d.AliasOf
		}
	}
	return a
}

// aliasesOf returns the alias domains whose users log in at a's login
// domain, other than a's own: the server's extraDomains.
func aliasesOf(s *discover.Snapshot, a Address) []string {
	var out []string
	for _, d := range s.Domains() {
		if d.Name != a.Domain && (d.AliasOf == a.LoginDomain || d.Name == a.LoginDomain) {
			out = append(out, d.Name)
		}
	}
	slices.Sort(out)
	return out
}

func testSets(t *testing.T) []testSet {
	const special = `"a<b>&"`
	var sets []testSet
	s := buildRoot(t, filepath.Join(corpusDir, "handmade-static-domains"), sqltable.Options{})
	sets = append(sets, testSet{name: "handmade-static-domains", snap: s,
		addrs: []Address{address(s, "fred", "example.net"), address(s, special, "example.net"), address(s, "Mixed.Case", "example.biz")}})
	s = buildRoot(t, filepath.Join(corpusDir, "debian12-packages-default"), sqltable.Options{})
	sets = append(sets, testSet{name: "debian12-packages-default", snap: s, noAutoconfig: true,
		addrs: []Address{address(s, "fred", "example.org")}})
	s = buildTree(t, synthetic(t))
	sets = append(sets, testSet{name: "synthetic", snap: s,
		addrs: []Address{address(s, special, "example.net"), address(s, "fred", "alias.example.net")}})
	s = buildTree(t, plainHost(t))
	sets = append(sets, testSet{name: "plain-imap", snap: s, noAutoconfig: true,
		addrs: []Address{address(s, "fred", "example.org")}})
	for _, set := range []string{"iredmail-mysql-debian12", "postfixadmin-mysql-debian12"} {
		s = sqlSnapshot(t, set)
		sets = append(sets, testSet{name: set, snap: s,
			addrs: []Address{address(s, "fred", "alias.example.com"), address(s, special, "example.com"), address(s, "x", "example.org")}})
	}
	return sets
}
