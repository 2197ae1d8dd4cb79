package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// serviceUID is the test's service user: nobody, a real unprivileged
// account the kernel enforces file modes against.
const serviceUID = 65534

// letsEncryptHost is the handmade set under a directory the service user
// can walk into, with its certificate issued by a test CA and laid out as
// certbot lays it out (live/ and archive/ 0700 root, the key 0600 root),
// and /etc/passwd naming mailautoconf as uid 65534. It returns the
// directory and the CA, the only certificate a verifier trusts.
func letsEncryptHost(t *testing.T) (string, *x509.Certificate, func(n int)) {
	t.Helper()
	testtool.NeedRoot(t, "a key only root can read, and a service user that cannot")
	dir, err := os.MkdirTemp("", "stagekeys-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	src := filepath.Join("..", "..", "testdata", "corpus", "handmade-static-domains")
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	testtool.WriteFiles(t, dir, map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nmailautoconf:x:" + strconv.Itoa(serviceUID) + ":" + strconv.Itoa(serviceUID) + "::/:/usr/sbin/nologin\n",
		"etc/group":  "root:x:0:\n",
	})
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "stage-keys test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	ca, _ := x509.ParseCertificate(caDER)

	const host = "mail.example.net"
	live := filepath.Join(dir, "etc/letsencrypt/live")
	archive := filepath.Join(dir, "etc/letsencrypt/archive")
	// issue is certbot issuing (n = 1) or renewing (n > 1): new files in
	// archive/, live/ links switched to them.
	issue := func(n int) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
			SerialNumber: big.NewInt(int64(n + 1)), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		}, ca, k.Public(), crypto.Signer(caKey))
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalPKCS8PrivateKey(k)
		os.MkdirAll(filepath.Join(archive, host), 0o755)
		os.MkdirAll(filepath.Join(live, host), 0o755)
		for name, data := range map[string][]byte{
			"fullchain": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			"privkey":   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
		} {
			f := filepath.Join(archive, host, name+strconv.Itoa(n)+".pem")
			mode := os.FileMode(0o644)
			if name == "privkey" {
				mode = 0o600
			}
			if err := os.WriteFile(f, data, mode); err != nil {
				t.Fatal(err)
			}
			l := filepath.Join(live, host, name+".pem")
			os.Remove(l)
			if err := os.Symlink("../../archive/"+host+"/"+name+strconv.Itoa(n)+".pem", l); err != nil {
				t.Fatal(err)
			}
		}
		os.Chmod(live, 0o700)
		os.Chmod(archive, 0o700)
	}
	issue(1)
	return dir, ca, issue
}

// asService runs bin with args as the service user (no groups).
func asService(t *testing.T, bin string, args ...string) *exec.Cmd {
	t.Helper()
	argv := append(testtool.AsUser(t, serviceUID), bin)
	return exec.Command(argv[0], append(argv[1:], args...)...)
}

// showAs runs show --root dir, as the service user or as root.
func showAs(t *testing.T, service bool, bin, dir string) string {
	t.Helper()
	cmd := exec.Command(bin, "show", "--root", dir)
	if service {
		cmd = asService(t, bin, "show", "--root", dir)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	return string(out)
}

func stage(t *testing.T, bin, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, append([]string{"stage-keys", "--root", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("stage-keys must always exit 0: %v\n%s", err, out)
	}
	return string(out)
}

// signedProfile runs serve as the service user, fetches an Apple profile
// and returns it.
func signedProfile(t *testing.T, bin, dir string) []byte {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var log syncBuffer
	cmd := asService(t, bin, "serve", "--root", dir, "--listen", addr)
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	client := &http.Client{Timeout: 5 * time.Second}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		res, err := client.Get("http://" + addr + "/mobileconfig?emailaddress=fred%40example.net")
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Fatalf("profile: %d\n%s\nlog:\n%s", res.StatusCode, body, log.String())
			}
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer: %v\nlog:\n%s", err, log.String())
		}
	}
}

// verify checks the profile with openssl as a device would, trusting only
// the CA; it returns openssl's complaint, "" when the signature verifies.
func verify(t *testing.T, profile []byte, ca *x509.Certificate) string {
	t.Helper()
	openssl := testtool.Need(t, "openssl")
	dir := t.TempDir()
	in, caFile := filepath.Join(dir, "p.der"), filepath.Join(dir, "ca.pem")
	os.WriteFile(in, profile, 0o644)
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o644)
	out, err := exec.Command(openssl, "cms", "-verify", "-inform", "DER", "-in", in, "-CAfile", caFile, "-purpose", "any", "-out", os.DevNull).CombinedOutput()
	if err != nil {
		return strings.TrimSpace(string(out)) + " (" + err.Error() + ")"
	}
	return ""
}

// TestStageKeysLetsEncrypt is issue 11's third item on real files with
// real modes: a certbot key only root can read, the daemon as an
// unprivileged user. Without staging the profile is unsigned and show
// says why; after stage-keys (as root) the daemon signs, and the
// signature verifies; after a renewal the stale staged key is not used.
func TestStageKeysLetsEncrypt(t *testing.T) {
	testtool.Need(t, "setpriv")
	bin := buildDaemon(t)
	dir, ca, issue := letsEncryptHost(t)
	const unsigned = "Apple profiles are served unsigned"

	// Before staging: the service user sees why.
	out := showAs(t, true, bin, dir)
	if !strings.Contains(out, unsigned) || !strings.Contains(out, "/etc/letsencrypt/live/mail.example.net/fullchain.pem") || !strings.Contains(out, "permission denied") {
		t.Errorf("show as the service user, nothing staged: want %q naming the file and the permission\n%s", unsigned, out)
	}
	// Root reads the key itself, and still tells what the daemon will see.
	out = showAs(t, false, bin, dir)
	if !strings.Contains(out, unsigned) || !strings.Contains(out, "/etc/letsencrypt/live is mode 0700 root:root: mailautoconf") || !strings.Contains(out, "no copy is staged") {
		t.Errorf("show as root, nothing staged: want the service user's view\n%s", out)
	}
	if _, err := pkcs7.Parse(signedProfile(t, bin, dir)); err == nil {
		t.Error("nothing staged, yet the profile is signed")
	}

	// Stage as root, as ExecStartPre=+ does.
	log := stage(t, bin, dir)
	keys := filepath.Join(dir, "run/mailautoconf/keys")
	entries, err := os.ReadDir(keys)
	if err != nil || len(entries) != 3 {
		t.Fatalf("staging directory: %v, %d entries, want 2 copies and the manifest\n%s", err, len(entries), log)
	}
	for _, service := range []bool{true, false} {
		out = showAs(t, service, bin, dir)
		if strings.Contains(out, unsigned) || strings.Contains(out, "cannot be used") || !strings.Contains(out, "reads the copy /run/mailautoconf/keys/") {
			t.Errorf("show (service user: %v) after staging: want the staged copy in use, no %q\n%s", service, unsigned, out)
		}
	}
	if msg := verify(t, signedProfile(t, bin, dir), ca); msg != "" {
		t.Errorf("signed profile does not verify: %s", msg)
	}

	// Renewal without a reload: the daemon signs with the pair staged
	// before, which still belong together (Postfix and Dovecot too keep
	// presenting the old certificate until they reload).
	issue(2)
	if msg := verify(t, signedProfile(t, bin, dir), ca); msg != "" {
		t.Errorf("old staged pair after a renewal: %s", msg)
	}
	// A stale key next to a readable renewed certificate is never used.
	os.Chmod(filepath.Join(dir, "etc/letsencrypt/live"), 0o755)
	os.Chmod(filepath.Join(dir, "etc/letsencrypt/archive"), 0o755)
	stage(t, bin, dir) // copies the key only: the certificate is readable now
	issue(3)
	os.Chmod(filepath.Join(dir, "etc/letsencrypt/live"), 0o755)
	os.Chmod(filepath.Join(dir, "etc/letsencrypt/archive"), 0o755)
	out = showAs(t, true, bin, dir)
	if !strings.Contains(out, unsigned) || !strings.Contains(out, "does not match the certificate") {
		t.Errorf("show with a stale staged key: want %q, the copy not matching\n%s", unsigned, out)
	}
	if _, err := pkcs7.Parse(signedProfile(t, bin, dir)); err == nil {
		t.Error("signed with a staged key that is not the certificate's")
	}
	// The reload re-stages: signed again, and the stale copy is gone.
	log = stage(t, bin, dir)
	if !strings.Contains(log, "removed stale staged file") && !strings.Contains(log, "staging private key") {
		t.Errorf("re-stage log:\n%s", log)
	}
	if msg := verify(t, signedProfile(t, bin, dir), ca); msg != "" {
		t.Errorf("after re-staging: %s", msg)
	}
}

// TestStageKeysNeverFails: a broken configuration or a missing user
// never fails the step. With dovecot.conf broken and nothing staged (the
// service stopped, /run cleaned), Postfix's pairs are still staged: the
// restart that serves the saved snapshot then signs. With main.cf broken
// nothing is staged and what was staged is kept.
func TestStageKeysNeverFails(t *testing.T) {
	bin := buildDaemon(t)
	dir, _, _ := letsEncryptHost(t)
	keys := filepath.Join(dir, "run/mailautoconf/keys")

	dc := filepath.Join(dir, "etc/dovecot/dovecot.conf")
	good, _ := os.ReadFile(dc)
	os.WriteFile(dc, append(bytes.Clone(good), []byte("\nprotocol imap {\n")...), 0o644)
	log := stage(t, bin, dir)
	if !strings.Contains(log, "staging Postfix's certificates") {
		t.Errorf("broken dovecot.conf: want Postfix's certificates staged\n%s", log)
	}
	before, _ := os.ReadDir(keys)
	if len(before) != 3 {
		t.Errorf("broken dovecot.conf, nothing staged before: %d files staged, want 2 copies and the manifest\n%s", len(before), log)
	}
	os.WriteFile(dc, good, 0o644)

	mc := filepath.Join(dir, "etc/postfix/main.cf")
	goodMain, _ := os.ReadFile(mc)
	os.WriteFile(mc, append(bytes.Clone(goodMain), []byte("\nbroken line\n")...), 0o644)
	if log := stage(t, bin, dir); !strings.Contains(log, "nothing staged") {
		t.Errorf("broken main.cf: want \"nothing staged\" in the log\n%s", log)
	}
	after, _ := os.ReadDir(keys)
	if len(after) != len(before) {
		t.Errorf("broken configuration: %d staged files left of %d", len(after), len(before))
	}
	os.WriteFile(mc, goodMain, 0o644)
	if log := stage(t, bin, dir, "--user", "nosuchuser"); !strings.Contains(log, "no service user") {
		t.Errorf("missing user: want \"no service user\"\n%s", log)
	}
}

// TestServeAsRootOwnView: serve run by hand as root on a host that has
// the service user reads the root-only key itself and signs; what it
// reports (the snapshot's signing verdict, hence STATUS and the log) is
// its own view, not the service user's "no copy is staged".
func TestServeAsRootOwnView(t *testing.T) {
	dir, _, _ := letsEncryptHost(t)
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, serving := range []bool{false, true} {
		snap, err := discover.Build(context.Background(), discover.Options{Root: root, Serving: serving})
		if err != nil {
			t.Fatal(err)
		}
		_, why := snap.ProfileSigning()
		snap.Close()
		switch {
		case !serving && !strings.Contains(why, "no copy is staged"):
			t.Errorf("show as root: want the service user's view, got %q", why)
		case serving && why != "":
			t.Errorf("serve as root reads the key itself, yet reports unsigned: %s", why)
		}
	}
}
