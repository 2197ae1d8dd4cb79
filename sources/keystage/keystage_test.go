package keystage

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/certs"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// The test service user: nobody's uid, so the kernel can be asked too.
const (
	testUID   = 65534
	testGroup = 4242 // a group the user is in by /etc/group
	otherGID  = 4343 // a group it is not in
)

// hostTree is a host under a temporary directory that an unprivileged
// user can walk into, with its /etc/passwd and /etc/group naming the test
// service user. It needs root (files owned by others).
func hostTree(t *testing.T) (string, hostfs.Root) {
	t.Helper()
	testtool.NeedRoot(t, "files owned by root with modes the service user lacks")
	dir, err := os.MkdirTemp("", "keystage-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	testtool.WriteFiles(t, dir, map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/bash\nmailautoconf:x:" + strconv.Itoa(testUID) + ":" + strconv.Itoa(testUID) + "::/:/usr/sbin/nologin\n",
		"etc/group":  "root:x:0:\nkeys:x:" + strconv.Itoa(testGroup) + ":postfix,mailautoconf\nother:x:" + strconv.Itoa(otherGID) + ":postfix\n",
	})
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, root
}

// put writes a host file (or, with link set, a symbolic link) with an
// owner and mode, creating its directories 0755 root.
func put(t *testing.T, dir, p string, data []byte, mode os.FileMode, gid int, link string) {
	t.Helper()
	full := filepath.Join(dir, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if link != "" {
		if err := os.Symlink(link, full); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.WriteFile(full, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(full, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(full, 0, gid); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, dir, p string, mode os.FileMode, gid int) {
	t.Helper()
	if err := os.Chmod(filepath.Join(dir, p), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(dir, p), 0, gid); err != nil {
		t.Fatal(err)
	}
}

// certbotLayout lays out a certbot lineage as certbot does: live/ and
// archive/ 0700 root, the key 0600 root, live/ links into archive/.
func certbotLayout(t *testing.T, dir, host string, cert, key []byte) {
	t.Helper()
	arch := "etc/letsencrypt/archive/" + host
	live := "etc/letsencrypt/live/" + host
	put(t, dir, arch+"/fullchain1.pem", cert, 0o644, 0, "")
	put(t, dir, arch+"/privkey1.pem", key, 0o600, 0, "")
	put(t, dir, live+"/fullchain.pem", nil, 0, 0, "../../archive/"+host+"/fullchain1.pem")
	put(t, dir, live+"/privkey.pem", nil, 0, 0, "../../archive/"+host+"/privkey1.pem")
	chmod(t, dir, "etc/letsencrypt/live", 0o700, 0)
	chmod(t, dir, "etc/letsencrypt/archive", 0o700, 0)
}

// kernelCanRead asks the kernel: can the test user, with the groups the
// test /etc/group gives it, read the file?
func kernelCanRead(t *testing.T, real string) bool {
	t.Helper()
	argv := append(testtool.AsUser(t, testUID, testUID, testGroup), "cat", real)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = io.Discard
	return cmd.Run() == nil
}

func TestCanReadAgreesWithTheKernel(t *testing.T) {
	dir, root := hostTree(t)
	cert, key := testPair(t, "mail.example.net")
	certbotLayout(t, dir, "mail.example.net", cert, key)
	put(t, dir, "etc/ssl/private/group.key", key, 0o640, testGroup, "")
	put(t, dir, "etc/ssl/private/other.key", key, 0o640, otherGID, "")
	put(t, dir, "etc/ssl/private/world.key", key, 0o644, 0, "")
	put(t, dir, "etc/ssl/certs/link.pem", nil, 0, 0, "/etc/ssl/private/group.key")                // absolute: resolved in the root
	put(t, dir, "etc/ssl/certs/up.pem", nil, 0, 0, "../../../../../../etc/ssl/private/world.key") // ".." stops at the root
	chmod(t, dir, "etc/ssl/private", 0o710, testGroup)
	put(t, dir, "etc/dovecot/private/dovecot.pem", key, 0o644, 0, "")
	chmod(t, dir, "etc/dovecot/private", 0o700, 0)

	a, err := LookupAccount(root, "mailautoconf")
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{testUID, testGroup}; !slices.Equal(a.GIDs, want) {
		t.Fatalf("GIDs = %v, want %v", a.GIDs, want)
	}
	for _, tt := range []struct {
		path, real string // real: the file the kernel opens, "" = path
		want       bool
		why        string
	}{
		{"/etc/letsencrypt/live/mail.example.net/privkey.pem", "", false, "/etc/letsencrypt/live is mode 0700 root:root: mailautoconf (groups 65534, keys) cannot enter it"},
		{"/etc/letsencrypt/live/mail.example.net/fullchain.pem", "", false, "/etc/letsencrypt/live is mode 0700"},
		{"/etc/ssl/private/group.key", "", true, ""},
		{"/etc/ssl/private/other.key", "", false, "/etc/ssl/private/other.key is mode 0640 root:other: mailautoconf (groups 65534, keys) cannot read it"},
		{"/etc/ssl/private/world.key", "", true, ""},
		{"/etc/ssl/certs/link.pem", "/etc/ssl/private/group.key", true, ""},
		{"/etc/ssl/certs/up.pem", "/etc/ssl/private/world.key", true, ""},
		{"/etc/dovecot/private/dovecot.pem", "", false, "/etc/dovecot/private is mode 0700 root:root"},
	} {
		got, why, err := CanRead(root, tt.path, a)
		if err != nil {
			t.Errorf("CanRead(%s): %v", tt.path, err)
			continue
		}
		if got != tt.want || !strings.Contains(why, tt.why) {
			t.Errorf("CanRead(%s) = %v, %q; want %v, %q", tt.path, got, why, tt.want, tt.why)
		}
		real := tt.path
		if tt.real != "" {
			real = tt.real
		}
		if k := kernelCanRead(t, filepath.Join(dir, real)); k != got {
			t.Errorf("CanRead(%s) = %v, but the kernel says %v", tt.path, got, k)
		}
	}
	if _, _, err := CanRead(root, "/etc/ssl/private/missing.key", a); err == nil {
		t.Error("CanRead(missing file): no error")
	}
}

func TestStage(t *testing.T) {
	dir, root := hostTree(t)
	cert, key := testPair(t, "mail.example.net")
	certbotLayout(t, dir, "mail.example.net", cert, key)
	put(t, dir, "etc/ssl/certs/readable.pem", cert, 0o644, 0, "")
	put(t, dir, "etc/ssl/private/readable.key", key, 0o640, testGroup, "")
	_, wrongKey := testPair(t, "mail.example.net")
	put(t, dir, "etc/ssl/private/wrong.key", wrongKey, 0o600, 0, "")
	put(t, dir, "etc/ssl/private/notakey.key", []byte("root:x:0:0::/root:/bin/sh\n"), 0o600, 0, "")
	a, err := LookupAccount(root, "mailautoconf")
	if err != nil {
		t.Fatal(err)
	}
	const le = "/etc/letsencrypt/live/mail.example.net/"
	pairs := []Pair{
		{le + "fullchain.pem", le + "privkey.pem"},
		{le + "fullchain.pem", le + "privkey.pem"},                       // Dovecot names it too
		{"/etc/ssl/certs/readable.pem", "/etc/ssl/private/readable.key"}, // readable: not staged
		{"/etc/ssl/certs/readable.pem", "/etc/ssl/private/wrong.key"},    // not the certificate's key
		{"/etc/ssl/certs/readable.pem", "/etc/ssl/private/notakey.key"},  // not a key at all
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := Stage(root, Dir, a, pairs, true, log)
	if err != nil {
		t.Fatal(err)
	}
	var staged []string
	for _, f := range m.Files {
		staged = append(staged, f.Path)
	}
	if want := []string{le + "fullchain.pem", le + "privkey.pem"}; !slices.Equal(staged, want) {
		t.Fatalf("staged %q, want %q", staged, want)
	}

	// The directory and every file belong to the user, 0700 and 0400.
	realDir := filepath.Join(dir, Dir)
	entries, err := os.ReadDir(realDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Errorf("staging directory holds %d files, want 2 copies and the manifest", len(entries))
	}
	for _, p := range append([]string{realDir}, filesIn(realDir, entries)...) {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o400)
		if p == realDir {
			want = 0o700 | os.ModeDir
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != want || st.Uid != testUID || st.Gid != testUID {
			t.Errorf("%s: %v %d:%d, want %v %d:%d", p, fi.Mode(), st.Uid, st.Gid, want, testUID, testUID)
		}
		if p != realDir && !kernelCanRead(t, p) {
			t.Errorf("%s: the service user cannot read it", p)
		}
	}

	// The daemon's view: the manifest maps each host path to a copy that
	// holds what it stands for, and nothing else.
	rm, err := ReadManifest(root, Dir)
	if err != nil {
		t.Fatal(err)
	}
	kp, ok := rm.Copy(le + "privkey.pem")
	if !ok {
		t.Fatalf("manifest has no copy of the key: %+v", rm)
	}
	cp, _ := rm.Copy(le + "fullchain.pem")
	c, err := certs.Load(root, cp)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := root.ReadFile(kp)
	if _, err := certs.MatchingKey(kp, data, c.Leaf); err != nil {
		t.Errorf("staged key: %v", err)
	}
	if strings.Contains(string(data), "CERTIFICATE") {
		t.Errorf("the key's copy holds certificates too:\n%s", data)
	}
	if _, ok := rm.Copy("/etc/ssl/private/wrong.key"); ok {
		t.Error("a key that is not the certificate's was staged")
	}

	// Renewal to another lineage: the old copies go, the new come.
	cert2, key2 := testPair(t, "mail.example.net")
	certbotLayout(t, dir, "mail2.example.net", cert2, key2)
	os.WriteFile(filepath.Join(realDir, ".tmp-leftover"), nil, 0o600)
	const le2 = "/etc/letsencrypt/live/mail2.example.net/"
	m2, err := Stage(root, Dir, a, []Pair{{le2 + "fullchain.pem", le2 + "privkey.pem"}}, true, log)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ = os.ReadDir(realDir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{ManifestName, m2.Files[0].Copy, m2.Files[1].Copy}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("after re-staging: %q, want %q (stale copies removed)", names, want)
	}

	// A link planted in the staging directory is replaced, not followed.
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("untouched"), 0o644)
	os.Remove(filepath.Join(realDir, m2.Files[0].Copy))
	os.Symlink(victim, filepath.Join(realDir, m2.Files[0].Copy))
	os.Symlink(victim, filepath.Join(realDir, ".tmp-"+m2.Files[1].Copy))
	if _, err := Stage(root, Dir, a, []Pair{{le2 + "fullchain.pem", le2 + "privkey.pem"}}, true, log); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "untouched" {
		t.Errorf("Stage wrote through a planted link: %q", b)
	}
	if fi, _ := os.Stat(victim); fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Error("Stage chowned the target of a planted link")
	}
}

func filesIn(dir string, entries []os.DirEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, filepath.Join(dir, e.Name()))
	}
	return out
}

// testPair returns a self-signed certificate for host and its key, PEM.
func testPair(t *testing.T, host string) (cert, key []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), crypto.Signer(k))
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// TestReadHostile: the staging directory is the service user's, and root
// reads it (show, check, stage-keys): a manifest naming a copy outside
// the directory, a link in a copy's or the manifest's place, a FIFO or an
// endless file is an error at once, never a hang or root reading a file
// the user chose.
func TestReadHostile(t *testing.T) {
	dir := t.TempDir()
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, Dir)
	os.MkdirAll(keys, 0o700)
	good := copyName("/etc/ssl/private/k.pem")
	os.WriteFile(filepath.Join(keys, good), []byte("x"), 0o400)
	writeManifest := func(copy string) {
		os.Remove(filepath.Join(keys, ManifestName))
		os.WriteFile(filepath.Join(keys, ManifestName), []byte(`{"files":[{"path":"/etc/ssl/private/k.pem","copy":"`+copy+`"}]}`), 0o400)
	}
	for _, bad := range []string{"../../../etc/shadow", "/etc/shadow", "copy-x.pem", "manifest.json", ""} {
		writeManifest(bad)
		if m, err := ReadManifest(root, Dir); err == nil {
			t.Errorf("manifest naming %q: %+v, want an error", bad, m.Files)
		}
	}
	writeManifest(good)
	m, err := ReadManifest(root, Dir)
	if err != nil {
		t.Fatal(err)
	}
	cp, _ := m.Copy("/etc/ssl/private/k.pem")
	if b, err := ReadCopy(root, cp); err != nil || string(b) != "x" {
		t.Fatalf("ReadCopy(%s) = %q, %v", cp, b, err)
	}

	// The same names, planted.
	os.Remove(filepath.Join(keys, good))
	for _, tc := range []struct {
		name  string
		plant func(p string) error
		want  string
	}{
		{"link to /dev/zero", func(p string) error { return os.Symlink("/dev/zero", p) }, "symbolic link"},
		{"fifo", func(p string) error { return syscall.Mkfifo(p, 0o600) }, "not a regular file"},
		{"huge", func(p string) error {
			f, err := os.Create(p)
			if err == nil {
				err = errors.Join(f.Truncate(MaxManifestSize+1), f.Close())
			}
			return err
		}, "too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, name := range []string{good, ManifestName} {
				p := filepath.Join(keys, name)
				os.Remove(p)
				if err := tc.plant(p); err != nil {
					t.Fatal(err)
				}
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				if _, err := ReadCopy(root, cp); err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("ReadCopy = %v, want %q", err, tc.want)
				}
				if _, err := ReadManifest(root, Dir); err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("ReadManifest = %v, want %q", err, tc.want)
				}
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("reading hangs")
			}
		})
	}
}

// TestStageHostileKey: stage-keys runs as root and reads the files the
// configuration names: a key that is a FIFO or a device is skipped at
// once, not read until it ends.
func TestStageHostileKey(t *testing.T) {
	dir, root := hostTree(t)
	cert, _ := testPair(t, "mail.example.net")
	put(t, dir, "etc/ssl/certs/mail.pem", cert, 0o644, 0, "")
	os.MkdirAll(filepath.Join(dir, "etc/ssl/private"), 0o700)
	if err := syscall.Mkfifo(filepath.Join(dir, "etc/ssl/private/fifo.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := LookupAccount(root, "mailautoconf")
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		m, err := Stage(root, Dir, a, []Pair{{"/etc/ssl/certs/mail.pem", "/etc/ssl/private/fifo.key"}}, true, slog.New(slog.NewTextHandler(&log, nil)))
		if err != nil || len(m.Files) != 0 {
			t.Errorf("Stage = %+v, %v; want nothing staged", m, err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Stage hangs on a FIFO named as the key")
	}
	if !strings.Contains(log.String(), "not a regular file") {
		t.Errorf("log does not say why:\n%s", log.String())
	}
}

// TestStageDir: --dir names a directory stage-keys takes over (chown to
// the service user, stale files removed): never one in use, never one
// above --root, and nothing but its own files is removed.
func TestStageDir(t *testing.T) {
	dir, root := hostTree(t)
	cert, key := testPair(t, "mail.example.net")
	certbotLayout(t, dir, "mail.example.net", cert, key)
	a, err := LookupAccount(root, "mailautoconf")
	if err != nil {
		t.Fatal(err)
	}
	const le = "/etc/letsencrypt/live/mail.example.net/"
	pairs := []Pair{{le + "fullchain.pem", le + "privkey.pem"}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// A directory in use: refused, untouched.
	put(t, dir, "srv/data/important.txt", []byte("keep"), 0o644, 0, "")
	if _, err := Stage(root, "/srv/data", a, pairs, true, log); err == nil || !strings.Contains(err.Error(), "important.txt") {
		t.Errorf("Stage into a directory in use: %v, want a refusal naming the file", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "srv/data/important.txt")); err != nil || string(b) != "keep" {
		t.Errorf("the file in the directory in use: %q, %v", b, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "srv/data")); fi.Sys().(*syscall.Stat_t).Uid != 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("the directory in use was chowned or chmodded: %v", fi.Mode())
	}
	// Someone else's empty directory: refused.
	os.MkdirAll(filepath.Join(dir, "home/other/keys"), 0o755)
	os.Chown(filepath.Join(dir, "home/other/keys"), 1234, 1234)
	if _, err := Stage(root, "/home/other/keys", a, pairs, true, log); err == nil || !strings.Contains(err.Error(), "not root's or mailautoconf's") {
		t.Errorf("Stage into another user's directory: %v, want a refusal", err)
	}
	// Above --root: the path is the host's, cleaned.
	m, err := Stage(root, "/../../staged", a, pairs, true, log)
	if err != nil || len(m.Files) != 2 {
		t.Fatalf("Stage(/../../staged) = %+v, %v", m, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "staged", ManifestName)); err != nil {
		t.Errorf("not staged under --root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(filepath.Dir(dir)), "staged")); err == nil {
		t.Errorf("staged above --root")
		os.RemoveAll(filepath.Join(filepath.Dir(filepath.Dir(dir)), "staged"))
	}

	// Not complete (Dovecot's configuration unreadable): what was staged
	// for other paths stays, in the manifest too.
	cert2, key2 := testPair(t, "mail.example.org")
	certbotLayout(t, dir, "mail.example.org", cert2, key2)
	const le2 = "/etc/letsencrypt/live/mail.example.org/"
	both := append(slices.Clone(pairs), Pair{le2 + "fullchain.pem", le2 + "privkey.pem"})
	if _, err := Stage(root, Dir, a, both, true, log); err != nil {
		t.Fatal(err)
	}
	m, err = Stage(root, Dir, a, pairs, false, log)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := ReadManifest(root, Dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rm.Copy(le2 + "privkey.pem"); !ok || len(m.Files) != 4 {
		t.Errorf("incomplete staging dropped the other copies: %+v", rm.Files)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, Dir))
	if len(entries) != 5 {
		t.Errorf("staging directory after an incomplete run: %d files, want 4 copies and the manifest", len(entries))
	}
}
