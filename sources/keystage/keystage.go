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
	"fmt"
	"path"
	"slices"

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
// staged.
func ReadManifest(root hostfs.Root, dir string) (*Manifest, error) {
	m := &Manifest{Dir: dir}
	data, err := root.ReadFile(path.Join(dir, ManifestName))
	if err != nil {
		if isNotExist(err) {
			return m, nil
		}
		return m, err
	}
	if err := json.Unmarshal(data, m); err != nil {
		return &Manifest{Dir: dir}, fmt.Errorf("%s: %w", path.Join(dir, ManifestName), err)
	}
	m.Dir = dir
	return m, nil
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
