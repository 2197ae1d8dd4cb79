package keystage

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mailautoconf/mailautoconf/sources/certs"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// A Pair is a certificate file and the private key file a server names
// for it (the same file when it holds both).
type Pair struct {
	Cert, Key string
}

// staged is what one copy holds.
type staged struct {
	file  File
	certs []*x509.Certificate
	key   crypto.Signer
}

// Stage copies, for each pair whose certificate or key the account cannot
// read, the unreadable files into the host directory dir: only a pair
// whose certificate parses and whose key file holds the key matching it,
// and of such a file only the certificates or that key. The directory is
// created if needed, mode 0700 and owned by the account; each copy is
// mode 0400 and owned by the account. When complete is set (pairs are
// all the configuration names), copies no pair needs any longer are
// removed; otherwise (Dovecot's configuration could not be read) the
// copies staged before for other paths are kept and stay in the manifest.
// A pair that cannot be staged is logged and skipped; the error is for
// the directory itself.
//
// Stage runs as root in a directory the account owns, so it never follows
// a link there: the copies are written through an os.Root, created
// exclusively and renamed into place. It takes no directory that holds
// files it did not make, or that someone other than root or the account
// owns, and removes nothing but its own files. It reads the certificate
// and key files as root: only regular files of at most certs.MaxFileSize.
func Stage(root hostfs.Root, dir string, a *Account, pairs []Pair, complete bool, log *slog.Logger) (*Manifest, error) {
	byPath := map[string]*staged{}
	var order []string
	add := func(p, certPath string) *staged {
		p = path.Clean(p)
		s, ok := byPath[p]
		if !ok {
			s = &staged{file: File{Path: p, Copy: copyName(p), Certificate: certPath}}
			byPath[p] = s
			order = append(order, p)
		}
		return s
	}
	seen := map[Pair]bool{}
	for _, pr := range pairs {
		if pr.Cert == "" || pr.Key == "" || seen[pr] {
			continue
		}
		seen[pr] = true
		certOK, certWhy, err := CanRead(root, pr.Cert, a)
		if err != nil {
			log.Warn("not staged: certificate cannot be examined", "cert", pr.Cert, "err", err)
			continue
		}
		keyOK, keyWhy, err := CanRead(root, pr.Key, a)
		if err != nil {
			log.Warn("not staged: private key cannot be examined", "key", pr.Key, "err", err)
			continue
		}
		if certOK && keyOK {
			log.Debug("readable by the service user: not staged", "cert", pr.Cert, "key", pr.Key, "user", a.Name)
			continue
		}
		c, err := certs.Load(root, pr.Cert)
		if err != nil {
			log.Warn("not staged: the certificate cannot be used", "cert", pr.Cert, "err", err)
			continue
		}
		data, err := root.ReadRegular(pr.Key, certs.MaxFileSize)
		if err != nil {
			log.Warn("not staged: the private key cannot be read", "key", pr.Key, "err", err)
			continue
		}
		key, err := certs.MatchingKey(pr.Key, data, c.Leaf)
		if err != nil {
			log.Warn("not staged: no private key matching the certificate", "cert", pr.Cert, "err", err)
			continue
		}
		if !certOK {
			s := add(pr.Cert, pr.Cert)
			s.certs = append([]*x509.Certificate{c.Leaf}, c.Chain...)
			s.file.HasCerts = true
			log.Info("staging certificate", "cert", pr.Cert, "because", certWhy)
		}
		if !keyOK {
			s := add(pr.Key, pr.Cert)
			s.key = key
			s.file.HasKey = true
			log.Info("staging private key", "key", pr.Key, "cert", pr.Cert, "because", keyWhy)
		}
	}

	m := &Manifest{Dir: dir, Files: []File{}}
	d, err := openDir(root, dir, a)
	if err != nil {
		return m, err
	}
	defer d.Close()
	keep := map[string]bool{ManifestName: true}
	if !complete {
		// Keep what was staged for the paths this run does not know about.
		old, err := ReadManifest(root, dir)
		if err != nil {
			log.Warn("the previous staged copies cannot be kept", "err", err)
		}
		for _, f := range old.Files {
			if _, replaced := byPath[f.Path]; replaced || keep[f.Copy] {
				continue
			}
			if fi, err := d.Lstat(f.Copy); err != nil || !fi.Mode().IsRegular() {
				continue
			}
			keep[f.Copy] = true
			m.Files = append(m.Files, f)
			log.Info("kept the copy staged before", "file", f.Path)
		}
	}
	for _, p := range order {
		s := byPath[p]
		data, err := s.encode()
		if err != nil {
			log.Warn("not staged", "file", p, "err", err)
			continue
		}
		if err := writeFile(d, s.file.Copy, data, a); err != nil {
			return m, fmt.Errorf("stage %s: %w", p, err)
		}
		keep[s.file.Copy] = true
		m.Files = append(m.Files, s.file)
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	if err := writeFile(d, ManifestName, append(data, '\n'), a); err != nil {
		return m, fmt.Errorf("stage manifest: %w", err)
	}
	// Remove what no pair needs now: renewed-away keys, a certificate the
	// configuration stopped naming, leftovers of an interrupted run.
	f, err := d.Open(".")
	if err != nil {
		return m, fmt.Errorf("%s: %w", dir, err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return m, fmt.Errorf("%s: %w", dir, err)
	}
	for _, n := range names {
		if !keep[n] && ours(n) {
			if err := d.Remove(n); err != nil {
				log.Warn("cannot remove a stale staged file", "file", path.Join(dir, n), "err", err)
			} else {
				log.Info("removed stale staged file", "file", path.Join(dir, n))
			}
		}
	}
	return m, nil
}

// encode returns the copy's PEM: the private key (PKCS#8), then the
// certificates, leaf first.
func (s *staged) encode() ([]byte, error) {
	var b strings.Builder
	if s.key != nil {
		der, err := x509.MarshalPKCS8PrivateKey(s.key)
		if err != nil {
			return nil, err
		}
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	for _, c := range s.certs {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return []byte(b.String()), nil
}

// openDir opens (creating it if needed) the staging directory as an
// os.Root, mode 0700 and owned by the account. dir is a host path under
// root (never above it); its parents' links are resolved under root, a
// link in its own place is refused. An existing directory is taken only
// when root or the account owns it and it holds nothing but what Stage
// writes: --dir naming a directory in use must not empty it or hand it
// to the account.
func openDir(root hostfs.Root, dir string, a *Account) (*os.Root, error) {
	if !path.IsAbs(dir) {
		return nil, fmt.Errorf("%s: not an absolute path", dir)
	}
	dir = path.Clean(dir) // "/../x" is "/x": never above root
	if dir == "/" {
		return nil, fmt.Errorf("%s: not a staging directory", dir)
	}
	parent, err := root.Resolve(path.Dir(dir))
	if err != nil {
		return nil, err
	}
	real := filepath.Join(parent, path.Base(dir))
	fi, err := os.Lstat(real)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Outside systemd (no RuntimeDirectory=): the parents must let the
		// account through.
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return nil, err
		}
		if err := os.Mkdir(real, 0o700); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case !fi.IsDir():
		return nil, fmt.Errorf("%s: not a directory (%s)", dir, fi.Mode().Type())
	}
	d, err := os.OpenRoot(real)
	if err != nil {
		return nil, err
	}
	f, err := d.Open(".")
	if err == nil {
		err = checkDir(f, dir, a)
		if err == nil {
			err = errors.Join(f.Chown(a.UID, a.GIDs[0]), f.Chmod(0o700))
		}
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return d, nil
}

// checkDir refuses the open directory f unless root or the account owns
// it and every name in it is one Stage writes.
func checkDir(f *os.File, dir string, a *Account) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || (st.Uid != 0 && int(st.Uid) != a.UID) {
		return fmt.Errorf("not taken as the staging directory: it is %s, not root's or %s's", a.describe(fi), a.Name)
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, n := range names {
		if !ours(n) {
			return fmt.Errorf("not taken as the staging directory: it holds %q, which stage-keys did not write", path.Join(dir, n))
		}
	}
	return nil
}

// writeFile replaces name in d with data, mode 0400, owned by the account.
func writeFile(d *os.Root, name string, data []byte, a *Account) error {
	tmp := ".tmp-" + name
	if err := d.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := d.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	err = errors.Join(err, f.Chmod(0o400), f.Chown(a.UID, a.GIDs[0]), f.Sync(), f.Close())
	if err == nil {
		err = d.Rename(tmp, name)
	}
	if err != nil {
		d.Remove(tmp)
	}
	return err
}
