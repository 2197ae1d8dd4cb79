package ldaptable

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/postmaptest"
	"github.com/mailautoconf/mailautoconf/internal/slapdtest"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// writeCert writes a throwaway self-signed certificate for localhost and
// 127.0.0.1 and its key to dir, and returns their paths.
func writeCert(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// TestPostmapDifferentialTLS compares Lookup with postmap over STARTTLS
// and ldaps://, with and without certificate checks.
func TestPostmapDifferentialTLS(t *testing.T) {
	postmap := postmaptest.Need(t, "ldap")
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	caDir := filepath.Join(dir, "cadir")
	if err := os.Mkdir(caDir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(cert)
	os.WriteFile(filepath.Join(caDir, "ca.pem"), b, 0o644)
	other, _ := writeCert(t, t.TempDir()) // a CA that did not sign the server's certificate

	c := slapdtest.Corpus(corpusSet)
	c.TLSCertFile, c.TLSKeyFile = cert, key
	s := slapdtest.Start(t, c)
	port := strings.TrimPrefix(strings.TrimSuffix(s.LDAPS(), "/"), "ldaps://127.0.0.1:")
	plain := strings.TrimPrefix(strings.TrimSuffix(s.URL(), "/"), "ldap://127.0.0.1:")
	// libldap checks the certificate of "localhost" against this machine's
	// own name, which the throwaway certificate does not have.
	specs := []string{
		"server_host = ldap://localhost:" + plain + "\nstart_tls = yes\n",
		"server_host = ldap://127.0.0.1:" + plain + "\nstart_tls = yes\ntls_require_cert = yes\ntls_ca_cert_file = " + cert + "\n",
		"server_host = ldap://localhost:" + plain + "\nstart_tls = yes\ntls_require_cert = yes\ntls_ca_cert_file = " + cert + "\n",
		"server_host = 127.0.0.1:" + plain + "\nstart_tls = yes\ntls_require_cert = yes\ntls_ca_cert_file = " + other + "\n",
		"server_host = ldap://127.0.0.1:" + plain + "\nstart_tls = yes\ntls_require_cert = yes\ntls_ca_cert_dir = " + caDir + "\n",
		"server_host = ldaps://127.0.0.1:" + port + "\n",
		"server_host = ldaps://127.0.0.1:" + port + "/\ntls_require_cert = yes\ntls_ca_cert_file = " + cert + "\n",
		"server_host = ldaps://localhost:" + port + "/\ntls_require_cert = yes\ntls_ca_cert_file = " + cert + "\n",
		"server_host = ldaps://127.0.0.1:" + port + "/\ntls_require_cert = yes\ntls_ca_cert_file = " + other + "\n",
		"server_host = ldaps://127.0.0.1:" + port + "/\nversion = 2\ntls_require_cert = yes\ntls_ca_cert_file = " + cert + "\n",
		"server_host = ldap://127.0.0.1:" + plain + "\nversion = 2\nstart_tls = yes\n",
		"server_host = ldap://127.0.0.1:" + plain + "\nstart_tls = yes\ntls_require_cert = yes\ntls_ca_cert_file = /nonexistent/ca.pem\n",
		"server_host = ldap://127.0.0.1:" + plain + "\nstart_tls = yes\ntls_require_cert = yes\n",
	}
	keys := []string{"example.com", "alias.example.com", "Shop.Example.NET", "oldalias.example.org", "nonexistent.example"}
	body := strings.Replace(corpusTable("X", "secret"), "server_host = X\n", "", 1)
	body = strings.Replace(body, "version = 3\n", "", 1)
	var runs []*diffRun
	for i, sp := range specs {
		text := sp + body
		cf := writeCF(t, dir, fmt.Sprintf("tls%d.cf", i), text)
		runs = append(runs, &diffRun{name: sp, cf: cf, tb: openCF(t, text, Options{}), keys: keys})
	}
	askPostmap(t, postmap, runs)
	for i, r := range runs {
		for _, k := range keys {
			got, err := lookupAnswer(r.tb, k)
			if got != r.postmap[k] {
				t.Errorf("table:\n%s\nLookup(%q) = %q (err %v), postmap says %q", r.name, k, got, err, r.postmap[k])
			}
		}
		a, err := lookupAnswer(r.tb, "example.com")
		t.Logf("table %d: example.com %q %v", i, a, err)
	}
}

// TestTLSUnderRoot reads the TLS files under Options.Root, as the daemon
// does with --root.
func TestTLSUnderRoot(t *testing.T) {
	rootDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(rootDir, "etc/ssl"), 0o755); err != nil {
		t.Fatal(err)
	}
	cert, key := writeCert(t, filepath.Join(rootDir, "etc/ssl"))
	c := slapdtest.Corpus(corpusSet)
	c.TLSCertFile, c.TLSKeyFile = cert, key
	s := slapdtest.Start(t, c)
	root, err := hostfs.New(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	ldaps := s.LDAPS()
	text := corpusTable(ldaps, "secret") + "tls_require_cert = yes\ntls_ca_cert_file = /etc/ssl/cert.pem\n"
	tb := openCF(t, text, Options{Root: root})
	if a, err := lookupAnswer(tb, "alias.example.com"); err != nil || a != "example.com" {
		t.Errorf("Lookup over ldaps with the CA under the root = %q, %v", a, err)
	}
	tb = openCF(t, text, Options{})
	if _, err := lookupAnswer(tb, "alias.example.com"); err == nil || !strings.Contains(err.Error(), "/etc/ssl/cert.pem") {
		t.Errorf("Lookup with the CA missing: %v, want an error naming it", err)
	}
}
