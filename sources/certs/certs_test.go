package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// makeCert returns a PEM self-signed certificate for the names, valid from
// notBefore to notAfter, preceded by its key as certbot's privkey+cert files
// and Postfix's chain files are.
func makeCert(t *testing.T, cn string, names []string, notBefore, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     names,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
}

func TestCovers(t *testing.T) {
	now := time.Now()
	c, err := Parse("x.pem", makeCert(t, "mail.example.com", []string{"mail.example.com", "*.example.org", "Autoconfig.Example.NET."}, now, now.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		want bool
	}{
		{"mail.example.com", true},
		{"MAIL.example.com.", true},
		{"example.com", false},
		{"imap.example.org", true},
		{"example.org", false},
		{"a.b.example.org", false},
		{"autoconfig.example.net", true},
		{"", false},
	}
	for _, tt := range tests {
		if got := c.Covers(tt.host); got != tt.want {
			t.Errorf("Covers(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

func TestCommonNameOnly(t *testing.T) {
	now := time.Now()
	c, err := Parse("x.pem", makeCert(t, "Mail.Example.com", nil, now, now.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Covers("mail.example.com") {
		t.Errorf("Covers(mail.example.com) = false for a CN-only certificate, want true")
	}
}

func TestProblems(t *testing.T) {
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		from, to  time.Time
		wantMatch string
	}{
		{"expired", now.Add(-48 * time.Hour), now.Add(-time.Hour), "expired on 2026-11-22"},
		{"soon", now.Add(-time.Hour), now.Add(72 * time.Hour), "expires on 2026-11-26"},
		{"future", now.Add(time.Hour), now.Add(1000 * time.Hour), "not valid before"},
		{"fine", now.Add(-time.Hour), now.Add(1000 * time.Hour), ""},
	}
	for _, tt := range tests {
		c, err := Parse("x.pem", makeCert(t, "a.example", []string{"a.example"}, tt.from, tt.to))
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(c.Problems(now, 14*24*time.Hour), "; ")
		if !strings.Contains(got, "self-signed") {
			t.Errorf("%s: Problems = %q, want a self-signed warning", tt.name, got)
		}
		if tt.wantMatch != "" && !strings.Contains(got, tt.wantMatch) {
			t.Errorf("%s: Problems = %q, want it to contain %q", tt.name, got, tt.wantMatch)
		}
		if tt.wantMatch == "" && strings.Count(got, ";") != 0 {
			t.Errorf("%s: Problems = %q, want only the self-signed warning", tt.name, got)
		}
	}
}

func TestNoCertificate(t *testing.T) {
	_, err := Parse("/etc/letsencrypt/live/x/privkey.pem", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	if !errors.Is(err, ErrNoCertificate) || !strings.HasPrefix(err.Error(), "/etc/letsencrypt/live/x/privkey.pem: ") {
		t.Errorf("Parse(key only) error = %v, want ErrNoCertificate naming the file", err)
	}
}

// TestLoadThroughRootSymlink reads the Debian set's dovecot.pem, an absolute
// symlink to the snakeoil certificate that must resolve inside the root.
func TestLoadThroughRootSymlink(t *testing.T) {
	root, err := hostfs.New("../../testdata/corpus/debian12-packages-default")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(root, "/etc/dovecot/private/dovecot.pem")
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != "/etc/dovecot/private/dovecot.pem" || !c.Covers("vm") {
		t.Errorf("Load = %s covering %v, want /etc/dovecot/private/dovecot.pem covering vm", c.Path, c.Names)
	}
	if _, err := Load(root, "/etc/ssl/private/missing.pem"); err == nil || !strings.Contains(err.Error(), "/etc/ssl/private/missing.pem") {
		t.Errorf("Load(missing) error = %v, want one naming the host path", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.pem", data)
		if err == nil && c.Leaf == nil {
			t.Fatal("Parse returned no error and no leaf")
		}
	})
}
