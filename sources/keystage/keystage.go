// Package keystage hands the daemon copies of the certificate and key
// files Postfix and Dovecot name that its service user cannot read, such as
// certbot's (root 0600 under /etc/letsencrypt/live and archive, mode 0700).
//
// "mailautoconf stage-keys" runs as root before the daemon starts and before
// each reload (the unit's ExecStartPre=+ and ExecReload=+ lines). Stage
// writes each such file into Dir, owned by the service user with mode 0400
// and re-encoded to hold nothing but what was asked of it (the certificates;
// the one private key that matches the certificate), and a Manifest mapping
// each host path to its copy. The daemon reads a copy only when it cannot
// read the host file itself (ReadManifest, Manifest.Copy).
//
// Account and CanRead tell, from modes, owners and /etc/group, whether the
// service user can read a file, so that root's "mailautoconf show" and the
// stager can say what the daemon will see.
package keystage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// Dir is the host directory the copies are staged in: the unit's
// RuntimeDirectory=mailautoconf/keys.
const Dir = "/run/mailautoconf/keys"

// DefaultUser is the service user the packages create.
const DefaultUser = "mailautoconf"

// ManifestName is the manifest's file name in Dir.
const ManifestName = "manifest.json"

// A File is one staged copy.
type File struct {
	Path string `json:"path"` // the host path Postfix or Dovecot names
	Copy string `json:"copy"` // file name of the copy in the staging directory
	// Certificate is the certificate file the key or certificates in the
	// copy belong to.
	Certificate string `json:"certificate"`
	HasKey      bool   `json:"has_key,omitempty"`   // the copy holds the private key
	HasCerts    bool   `json:"has_certs,omitempty"` // the copy holds the certificates
}

// A Manifest lists the copies in a staging directory.
type Manifest struct {
	Dir   string `json:"-"` // host path of the staging directory
	Files []File `json:"files"`
}

// ReadManifest reads the manifest in the host directory dir. A missing
// directory or manifest is an empty Manifest and no error: nothing was
// staged. The service user owns the directory, and root reads it (show,
// check, stage-keys): a link in the manifest's place, anything but a
// regular file, one over MaxManifestSize, or an entry whose copy is not
// a plain name of the copy-*.pem form is an error.
func ReadManifest(root hostfs.Root, dir string) (*Manifest, error) {
	m := &Manifest{Dir: dir}
	data, err := readOwn(root, dir, ManifestName, MaxManifestSize)
	if err != nil {
		if isNotExist(err) {
			return m, nil
		}
		return m, err
	}
	if err := json.Unmarshal(data, m); err != nil {
		return &Manifest{Dir: dir}, fmt.Errorf("%s: %w", path.Join(dir, ManifestName), err)
	}
	for _, f := range m.Files {
		if !validCopyName(f.Copy) || !path.IsAbs(f.Path) {
			return &Manifest{Dir: dir}, fmt.Errorf("%s: bad entry %q → %q: not a staged copy", path.Join(dir, ManifestName), f.Path, f.Copy)
		}
	}
	m.Dir = dir
	return m, nil
}

// MaxManifestSize bounds the manifest; MaxCopySize a staged copy (a key
// and a chain of certificates are a few KiB).
const (
	MaxManifestSize = 1 << 20
	MaxCopySize     = 64 << 10
)

// ReadCopy reads the staged copy at host path p (as Manifest.Copy returns
// it): a regular file of at most MaxCopySize bytes, not through a link.
func ReadCopy(root hostfs.Root, p string) ([]byte, error) {
	return readOwn(root, path.Dir(p), path.Base(p), MaxCopySize)
}

// readOwn reads the file name in the host directory dir, which the
// service user owns: the directory's path is resolved under root, but a
// link in name's place is refused, and so is anything but a regular file
// of at most limit bytes (open non-blocking: a FIFO does not hang it).
func readOwn(root hostfs.Root, dir, name string, limit int64) ([]byte, error) {
	p := path.Join(dir, name)
	realDir, err := root.Resolve(dir)
	if err != nil {
		return nil, err
	}
	data, err := hostfs.ReadRegularFile(filepath.Join(realDir, name), syscall.O_NOFOLLOW, limit)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			err = errors.New("a symbolic link, not a staged file")
		}
		return nil, &fs.PathError{Op: "read", Path: p, Err: unwrap(err)}
	}
	return data, nil
}

// unwrap drops the *fs.PathError around err, whose path names the file
// under the root rather than the host path.
func unwrap(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// validCopyName reports whether name is a copy's file name as copyName
// makes it: "copy-", 24 lower-case hex digits, ".pem".
func validCopyName(name string) bool {
	hexPart, ok := strings.CutPrefix(name, "copy-")
	if !ok {
		return false
	}
	hexPart, ok = strings.CutSuffix(hexPart, ".pem")
	if !ok || len(hexPart) != 24 {
		return false
	}
	for _, c := range hexPart {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ours reports whether name is a file Stage writes in the staging
// directory: a copy, the manifest, or a temporary file of either.
func ours(name string) bool {
	return strings.HasPrefix(name, ".tmp-") || name == ManifestName || validCopyName(name)
}

// Copy returns the host path of the staged copy of host file p, if any.
func (m *Manifest) Copy(p string) (string, bool) {
	if m == nil {
		return "", false
	}
	p = path.Clean(p)
	i := slices.IndexFunc(m.Files, func(f File) bool { return f.Path == p })
	if i < 0 {
		return "", false
	}
	return path.Join(m.Dir, m.Files[i].Copy), true
}

// copyName is the file name of the copy of host path p: stable, so that a
// re-stage replaces it, and free of the path's characters.
func copyName(p string) string {
	sum := sha256.Sum256([]byte(path.Clean(p)))
	return "copy-" + hex.EncodeToString(sum[:12]) + ".pem"
}
