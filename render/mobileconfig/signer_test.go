package mobileconfig

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/render"
	"github.com/mailautoconf/mailautoconf/sources/certs"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// A testPKI is a throwaway root CA, an intermediate and a leaf for
// mail.example.net, as a public CA would issue them.
type testPKI struct {
	root, inter, leaf *x509.Certificate
	leafKey           crypto.Signer
}

func newKey(t testing.TB, alg string) crypto.Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch alg {
	case "rsa":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ecdsa":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func issue(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, parentKey crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newPKI issues a chain whose leaf key uses alg and whose leaf is valid
// from notBefore to notAfter.
func newPKI(t testing.TB, alg string, notBefore, notAfter time.Time) *testPKI {
	t.Helper()
	now := time.Now()
	rootKey, interKey, leafKey := newKey(t, "ecdsa"), newKey(t, "rsa"), newKey(t, alg)
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailautoconf test root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	root := issue(t, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	inter := issue(t, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "mailautoconf test intermediate"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, root, interKey.Public(), rootKey)
	leaf := issue(t, &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "mail.example.net"},
		DNSNames:  []string{"mail.example.net"},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, inter, leafKey.Public(), interKey)
	return &testPKI{root: root, inter: inter, leaf: leaf, leafKey: leafKey}
}

func certPEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// keyPEM encodes k in the given form: "pkcs8", "pkcs1" (RSA) or "sec1" (ECDSA).
func keyPEM(t testing.TB, k crypto.Signer, form string) []byte {
	t.Helper()
	var (
		b   *pem.Block
		der []byte
		err error
	)
	switch form {
	case "pkcs8":
		der, err = x509.MarshalPKCS8PrivateKey(k)
		b = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	case "pkcs1":
		b = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.(*rsa.PrivateKey))}
	case "sec1":
		der, err = x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
		b = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	}
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(b)
}

// copyTree copies the corpus set into a temporary directory, symbolic
// links as links, so a test can replace files.
func copyTree(t testing.TB, set string) string {
	t.Helper()
	src := filepath.Join("..", "..", "testdata", "corpus", set)
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// Where the handmade set's Postfix and Dovecot find their certificate.
const (
	handmadeCert = "etc/letsencrypt/live/mail.example.net/fullchain.pem"
	handmadeKey  = "etc/letsencrypt/live/mail.example.net/privkey.pem"
)

// handmadeWith returns the handmade set with its certificate file and key
// file replaced (nil key: the key file removed).
func handmadeWith(t testing.TB, cert, key []byte) (hostfs.Root, *discover.Snapshot) {
	t.Helper()
	dir := copyTree(t, "handmade-static-domains")
	if err := os.WriteFile(filepath.Join(dir, handmadeCert), cert, 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, handmadeKey)
	if key == nil {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	} else if err := os.WriteFile(p, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return buildSnapshot(t, dir)
}

func needOpenSSL(t *testing.T) string {
	t.Helper()
	return testtool.Need(t, "openssl")
}

// TestSignVerifiesWithOpenSSL checks a signed profile the way a device
// does: openssl cms -verify with only the root CA trusted, so the
// intermediate must come from the SignedData itself.
func TestSignVerifiesWithOpenSSL(t *testing.T) {
	openssl := needOpenSSL(t)
	now := time.Now()
	for _, tt := range []struct{ alg, form string }{
		{"rsa", "pkcs8"}, {"rsa", "pkcs1"}, {"ecdsa", "sec1"}, {"ecdsa", "pkcs8"},
	} {
		t.Run(tt.alg+"-"+tt.form, func(t *testing.T) {
			pki := newPKI(t, tt.alg, now.Add(-time.Hour), now.Add(24*time.Hour))
			root, s := handmadeWith(t, certPEM(pki.leaf, pki.inter), keyPEM(t, pki.leafKey, tt.form))
			sg, err := NewSigner(root, s)
			if err != nil {
				t.Fatal(err)
			}
			a := render.Address{Local: "o'hara&co", Domain: "example.net"}
			signed, err := sg.Sign(s, a)
			if err != nil {
				t.Fatal(err)
			}
			want, err := Profile(s, a, "") // a signed profile never has a display name
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			in, ca, out := filepath.Join(dir, "p.der"), filepath.Join(dir, "ca.pem"), filepath.Join(dir, "content")
			os.WriteFile(in, signed, 0o644)
			os.WriteFile(ca, certPEM(pki.root), 0o644)
			cmd := exec.Command(openssl, "cms", "-verify", "-inform", "DER", "-in", in, "-CAfile", ca, "-purpose", "any", "-out", out)
			if msg, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("openssl cms -verify: %v\n%s", err, msg)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("signed content =\n%s\nwant the unsigned profile\n%s", got, want)
			}

			// The SignedData carries the leaf and the intermediate.
			cmd = exec.Command(openssl, "pkcs7", "-print_certs", "-noout", "-inform", "DER", "-in", in)
			msg, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("openssl pkcs7 -print_certs: %v\n%s", err, msg)
			}
			for _, cn := range []string{"CN=mail.example.net", "CN=mailautoconf test intermediate"} {
				if !strings.Contains(strings.ReplaceAll(string(msg), " = ", "="), "subject="+cn) {
					t.Errorf("SignedData certificates lack %s:\n%s", cn, msg)
				}
			}
			// A tampered profile must not verify.
			bad := bytes.Replace(signed, []byte("mail.example.net</string>"), []byte("evil.example.ne</string>"), 1)
			os.WriteFile(in, bad, 0o644)
			if err := exec.Command(openssl, "cms", "-verify", "-inform", "DER", "-in", in, "-CAfile", ca, "-purpose", "any", "-out", out).Run(); err == nil {
				t.Error("openssl verified a tampered profile")
			}
		})
	}
}

func TestNewSignerCorpus(t *testing.T) {
	tests := []struct{ set, cert, key string }{
		{"handmade-static-domains", "/etc/letsencrypt/live/mail.example.net/fullchain.pem", "/etc/letsencrypt/live/mail.example.net/privkey.pem"},
		// PostfixAdmin's set: key and certificate in one file.
		{"postfixadmin-mysql-debian12", "/etc/dovecot/private/dovecot.pem", "/etc/dovecot/private/dovecot.pem"},
		{"debian12-packages-default", "/etc/ssl/certs/ssl-cert-snakeoil.pem", "/etc/ssl/private/ssl-cert-snakeoil.key"},
		{"iredmail-mysql-debian12", "/etc/ssl/certs/iRedMail.crt", "/etc/ssl/private/iRedMail.key"},
	}
	for _, tt := range tests {
		t.Run(tt.set, func(t *testing.T) {
			root, s := corpusSnapshot(t, tt.set)
			sg, err := NewSigner(root, s)
			if err != nil {
				t.Fatalf("NewSigner: %v", err)
			}
			// discover's verdict (STATUS, show, check) agrees.
			if _, why := s.ProfileSigning(); why != "" {
				t.Errorf("ProfileSigning says unsigned: %s", why)
			}
			if sg.CertificatePath() != tt.cert || sg.KeyPath() != tt.key {
				t.Errorf("NewSigner picked %s with key %s, want %s with %s", sg.CertificatePath(), sg.KeyPath(), tt.cert, tt.key)
			}
			if _, err := sg.Sign(s, render.Address{Local: "fred", Domain: "example.net"}); err != nil && !errors.Is(err, ErrNoServer) {
				t.Errorf("Sign: %v", err)
			}
		})
	}
}

func TestNewSignerRefuses(t *testing.T) {
	now := time.Now()
	good := newPKI(t, "ecdsa", now.Add(-time.Hour), now.Add(24*time.Hour))
	expired := newPKI(t, "ecdsa", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	future := newPKI(t, "ecdsa", now.Add(24*time.Hour), now.Add(48*time.Hour))
	tests := []struct {
		name      string
		cert, key []byte
		want      string
	}{
		{"key file missing", certPEM(good.leaf, good.inter), nil,
			"certificate /etc/letsencrypt/live/mail.example.net/fullchain.pem: private key read /etc/letsencrypt/live/mail.example.net/privkey.pem: no such file or directory"},
		{"key does not match", certPEM(good.leaf, good.inter), keyPEM(t, newKey(t, "ecdsa"), "pkcs8"),
			"certificate /etc/letsencrypt/live/mail.example.net/fullchain.pem: private key /etc/letsencrypt/live/mail.example.net/privkey.pem: no usable private key: it does not match the certificate"},
		{"expired", certPEM(expired.leaf, expired.inter), keyPEM(t, expired.leafKey, "pkcs8"),
			"certificate /etc/letsencrypt/live/mail.example.net/fullchain.pem: it expired on"},
		{"not yet valid", certPEM(future.leaf, future.inter), keyPEM(t, future.leafKey, "pkcs8"),
			"certificate /etc/letsencrypt/live/mail.example.net/fullchain.pem: it is not valid before"},
		{"no key in file", certPEM(good.leaf, good.inter), []byte("-----BEGIN DH PARAMETERS-----\nMAA=\n-----END DH PARAMETERS-----\n"),
			"certificate /etc/letsencrypt/live/mail.example.net/fullchain.pem: private key /etc/letsencrypt/live/mail.example.net/privkey.pem: no PEM private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, s := handmadeWith(t, tt.cert, tt.key)
			_, err := NewSigner(root, s)
			if !errors.Is(err, ErrNoSigningKey) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewSigner error = %v, want ErrNoSigningKey with %q", err, tt.want)
			}
			// discover's verdict (STATUS, show, check) agrees.
			if _, why := s.ProfileSigning(); why == "" {
				t.Error("ProfileSigning says signed")
			}
			// Postfix and Dovecot share the pair: one reason, not two.
			if n := strings.Count(err.Error(), "fullchain.pem"); n != 1 {
				t.Errorf("error names the certificate %d times: %v", n, err)
			}
		})
	}

	// A host name the certificate does not cover.
	root, s := corpusSnapshot(t, "handmade-static-domains")
	_, err := loadSigner(root, discover.Certificate{Path: "/etc/letsencrypt/live/mail.example.net/fullchain.pem", KeyPath: "/etc/letsencrypt/live/mail.example.net/privkey.pem"}, "mx.example.net", now)
	if err == nil || !strings.Contains(err.Error(), "does not cover the host name mx.example.net") {
		t.Errorf("loadSigner(other host) error = %v", err)
	}
	_, err = loadSigner(root, discover.Certificate{Path: "/etc/letsencrypt/live/mail.example.net/fullchain.pem"}, "mail.example.net", now)
	if err == nil || !strings.Contains(err.Error(), "no private key is configured") {
		t.Errorf("loadSigner(no key path) error = %v", err)
	}
	_ = s

	// An expired staged copy: the certificate may have been renewed
	// without a reload (of Postfix or Dovecot, which propagates, or of
	// mailautoconf): the reason says which reload stages the new one.
	const le = "/etc/letsencrypt/live/mail.example.net/"
	root, _ = handmadeWith(t, certPEM(expired.leaf, expired.inter), keyPEM(t, expired.leafKey, "pkcs8"))
	_, err = loadSigner(root, discover.Certificate{Path: le + "fullchain.pem", KeyPath: le + "privkey.pem", CertCopy: le + "fullchain.pem"}, "mail.example.net", now)
	if err == nil || !strings.Contains(err.Error(), "expired on") || !strings.Contains(err.Error(), "systemctl reload mailautoconf stages the renewed one") {
		t.Errorf("loadSigner(expired staged copy) error = %v, want the reload hint", err)
	}
}

func TestMatchingKey(t *testing.T) {
	now := time.Now()
	rsaPKI := newPKI(t, "rsa", now.Add(-time.Hour), now.Add(time.Hour))
	ecPKI := newPKI(t, "ecdsa", now.Add(-time.Hour), now.Add(time.Hour))
	edPKI := newPKI(t, "ed25519", now.Add(-time.Hour), now.Add(time.Hour))
	ecParams := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}})
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0}})
	legacy := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: []byte{0x30, 0}})
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name string
		data []byte
		leaf *x509.Certificate
		err  string
	}{
		{"rsa pkcs1", keyPEM(t, rsaPKI.leafKey, "pkcs1"), rsaPKI.leaf, ""},
		{"rsa pkcs8", keyPEM(t, rsaPKI.leafKey, "pkcs8"), rsaPKI.leaf, ""},
		{"ec sec1 after parameters", join(ecParams, keyPEM(t, ecPKI.leafKey, "sec1")), ecPKI.leaf, ""},
		{"ec pkcs8", keyPEM(t, ecPKI.leafKey, "pkcs8"), ecPKI.leaf, ""},
		{"certificate and key in one file", join(certPEM(ecPKI.leaf, ecPKI.inter), keyPEM(t, ecPKI.leafKey, "pkcs8")), ecPKI.leaf, ""},
		{"the matching one of two keys", join(keyPEM(t, rsaPKI.leafKey, "pkcs8"), keyPEM(t, ecPKI.leafKey, "sec1")), ecPKI.leaf, ""},
		{"other key", keyPEM(t, rsaPKI.leafKey, "pkcs1"), ecPKI.leaf, "k.pem: no usable private key: it does not match the certificate"},
		{"encrypted pkcs8", encrypted, ecPKI.leaf, "k.pem: no usable private key: it is encrypted"},
		{"encrypted legacy", legacy, rsaPKI.leaf, "k.pem: no usable private key: it is encrypted"},
		{"ed25519", keyPEM(t, edPKI.leafKey, "pkcs8"), edPKI.leaf, "k.pem: no usable private key: a ed25519.PrivateKey cannot sign profiles (RSA or ECDSA needed)"},
		{"garbage key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("x")}), ecPKI.leaf, "k.pem: no usable private key: PRIVATE KEY: "},
		{"no key", []byte("not pem"), ecPKI.leaf, "k.pem: no PEM private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := certs.MatchingKey("k.pem", tt.data, tt.leaf)
			if tt.err == "" {
				if err != nil || k == nil {
					t.Fatalf("MatchingKey = %v, %v, want a key", k, err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
				t.Errorf("MatchingKey error = %v, want %q", err, tt.err)
			}
		})
	}
}

// TestSignCache and TestSignCacheBounds are in signing_test.go.

func hostfsMust(t testing.TB, set string) hostfs.Root {
	r, err := hostfs.New(filepath.Join("..", "..", "testdata", "corpus", set))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func BenchmarkProfileUnsigned(b *testing.B) {
	_, s := corpusSnapshot(b, "handmade-static-domains")
	a := render.Address{Local: "fred", Domain: "example.net"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Profile(s, a, "Fred Example"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignCached(b *testing.B) {
	root, s := corpusSnapshot(b, "handmade-static-domains")
	sg, err := NewSigner(root, s)
	if err != nil {
		b.Fatal(err)
	}
	a := render.Address{Local: "fred", Domain: "example.net"}
	if _, err := sg.Sign(s, a); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sg.Sign(s, a); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignUncached renders and signs every time, as a cache miss does
// (the handmade set's RSA 2048 key; ECDSA P-256 in the sub-benchmark).
func BenchmarkSignUncached(b *testing.B) {
	run := func(b *testing.B, root hostfs.Root, s *discover.Snapshot) {
		sg, err := NewSigner(root, s)
		if err != nil {
			b.Fatal(err)
		}
		a := render.Address{Local: "fred", Domain: "example.net"}
		b.ReportAllocs()
		for b.Loop() {
			body, err := Profile(s, a, "Fred Example")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := sg.sign(body); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("rsa2048", func(b *testing.B) {
		root, s := corpusSnapshot(b, "handmade-static-domains")
		run(b, root, s)
	})
	b.Run("ecdsa-p256", func(b *testing.B) {
		now := time.Now()
		pki := newPKI(b, "ecdsa", now.Add(-time.Hour), now.Add(24*time.Hour))
		root, s := handmadeWith(b, certPEM(pki.leaf, pki.inter), keyPEM(b, pki.leafKey, "pkcs8"))
		run(b, root, s)
	})
}

// TestSignerIsTheSnapshotsChoice: the certificate discover names as the
// one Apple profiles are signed with (what show, check and STATUS report)
// is the one that signs them — also when a self-signed certificate is
// valid longer than the CA-issued one, which both prefer.
func TestSignerIsTheSnapshotsChoice(t *testing.T) {
	now := time.Now()
	ca := newPKI(t, "ecdsa", now.Add(-time.Hour), now.Add(24*time.Hour))
	selfKey := newKey(t, "ecdsa")
	selfTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "mail.example.net"},
		DNSNames:  []string{"mail.example.net"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(1000 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	self := issue(t, selfTmpl, selfTmpl, selfKey.Public(), selfKey)

	const selfCert, selfKeyFile = "/etc/dovecot/private/self.pem", "/etc/dovecot/private/self.key"
	for _, tt := range []struct {
		name     string
		pfSelf   bool // Postfix presents the self-signed one, Dovecot the CA's
		wantPath string
	}{
		{"dovecot self-signed", false, "/" + handmadeCert},
		{"postfix self-signed", true, "/" + handmadeCert},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyTree(t, "handmade-static-domains")
			write := func(p string, data []byte) {
				t.Helper()
				p = filepath.Join(dir, p)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write(handmadeCert, certPEM(ca.leaf, ca.inter))
			write(handmadeKey, keyPEM(t, ca.leafKey, "pkcs8"))
			write(selfCert, certPEM(self))
			write(selfKeyFile, keyPEM(t, selfKey, "pkcs8"))
			if tt.pfSelf {
				// Postfix's key and certificate in one chain file.
				write(selfCert, append(keyPEM(t, selfKey, "pkcs8"), certPEM(self)...))
				main, err := os.ReadFile(filepath.Join(dir, "etc/postfix/main.cf"))
				if err != nil {
					t.Fatal(err)
				}
				write("etc/postfix/main.cf", append(main, "\nsmtpd_tls_chain_files = "+selfCert+"\n"...))
			} else {
				write("etc/dovecot/conf.d/10-ssl.conf", []byte("ssl = required\nssl_cert = <"+selfCert+"\nssl_key = <"+selfKeyFile+"\n"))
			}
			root, s := buildSnapshot(t, dir)
			paths := map[string]bool{}
			for _, c := range s.Certificates() {
				paths[c.Path] = true
			}
			if !paths[selfCert] || !paths["/"+handmadeCert] {
				t.Fatalf("snapshot certificates %v, want both %s and /%s", paths, selfCert, handmadeCert)
			}

			named, why := s.ProfileSigning()
			if why != "" {
				t.Fatalf("ProfileSigning says unsigned: %s", why)
			}
			sg, err := NewSigner(root, s)
			if err != nil {
				t.Fatal(err)
			}
			if named.Path != tt.wantPath || sg.CertificatePath() != named.Path || sg.KeyPath() != named.KeyPath {
				t.Errorf("ProfileSigning names %s (key %s), NewSigner signs with %s (key %s); want both %s",
					named.Path, named.KeyPath, sg.CertificatePath(), sg.KeyPath(), tt.wantPath)
			}
			signed, err := sg.Sign(s, render.Address{Local: "fred", Domain: "example.net"})
			if err != nil {
				t.Fatal(err)
			}
			p7, err := pkcs7.Parse(signed)
			if err != nil {
				t.Fatal(err)
			}
			if got := p7.GetOnlySigner(); got == nil || !got.Equal(ca.leaf) {
				issuer := "nobody"
				if got != nil {
					issuer = got.Issuer.String()
				}
				t.Errorf("profile signed by a certificate issued by %s, want the CA-issued leaf", issuer)
			}
		})
	}
}
