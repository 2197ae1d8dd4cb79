package mobileconfig

import (
	"bytes"
	"cmp"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/sources/certs"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/keystage"
)

// ErrNoSigningKey is returned (wrapped, with the reason for each
// certificate) by NewSigner when no certificate can sign profiles.
var ErrNoSigningKey = errors.New("mobileconfig: no certificate and key to sign profiles with")

// A Signer signs profiles with the mail host's certificate and key (CMS
// SignedData, content attached, chain included) within the process's
// signing budget, and caches the signed bytes in a Cache keyed by the
// certificate, what the profile shows and the address. It is safe for
// concurrent use.
//
// A Signer belongs to the Snapshot it was made for: make a new one for each
// new Snapshot (the certificate may have been renewed too), and let it Keep
// the previous one's Cache. Sign with another Snapshot works too.
type Signer struct {
	snap     *discover.Snapshot
	leaf     *x509.Certificate
	chain    []*x509.Certificate // the certificates after the leaf in its file
	key      crypto.Signer
	certPath string
	keyPath  string
	// Fingerprint is the SHA-256 of the signing certificate (DER).
	fingerprint [sha256.Size]byte
	cache       atomic.Pointer[Cache] // nil until the first Sign or Keep
	limit       *limiter              // nil: processLimiter
	inputsOnce  sync.Once             // for snap
	inputs      profileInputs
	inputsErr   error
	inputsKey   string // fingerprint and inputs.key(): the cache key prefix
}

// NewSigner picks the certificate covering s.Hostname() whose key is
// readable; ErrNoSigningKey (wrapped, with the reason) when none.
func NewSigner(root hostfs.Root, s *discover.Snapshot) (*Signer, error) {
	return newSigner(root, s, time.Now())
}

func newSigner(root hostfs.Root, s *discover.Snapshot, now time.Time) (*Signer, error) {
	host := strings.ToLower(strings.TrimSuffix(s.Hostname(), "."))
	var (
		usable  []*Signer
		reasons []string
		seen    = map[[2]string]bool{}
	)
	for _, c := range s.Certificates() {
		if seen[[2]string{c.Path, c.KeyPath}] {
			continue // Postfix and Dovecot often share one
		}
		seen[[2]string{c.Path, c.KeyPath}] = true
		sg, err := loadSigner(root, c, host, now)
		if err != nil {
			reasons = append(reasons, err.Error())
			continue
		}
		sg.snap = s
		usable = append(usable, sg)
	}
	if len(usable) == 0 {
		if len(reasons) == 0 {
			reasons = append(reasons, "neither Postfix nor Dovecot names a certificate")
		}
		return nil, fmt.Errorf("%w: %s", ErrNoSigningKey, strings.Join(reasons, "; "))
	}
	// A certificate from a CA makes the profile "Verified"; a self-signed
	// one only proves the bytes are intact. Then the one valid longest.
	slices.SortStableFunc(usable, func(x, y *Signer) int {
		return cmp.Or(
			cmp.Compare(selfSigned(x.leaf), selfSigned(y.leaf)),
			y.leaf.NotAfter.Compare(x.leaf.NotAfter),
		)
	})
	return usable[0], nil
}

func selfSigned(x *x509.Certificate) int {
	if bytes.Equal(x.RawIssuer, x.RawSubject) {
		return 1
	}
	return 0
}

// loadSigner reads one certificate and its key and checks they can sign
// profiles for host.
func loadSigner(root hostfs.Root, c discover.Certificate, host string, now time.Time) (*Signer, error) {
	cert, err := loadCert(root, c)
	if err != nil {
		return nil, err
	}
	leaf := cert.Leaf
	switch {
	case !cert.Covers(host):
		return nil, fmt.Errorf("certificate %s does not cover the host name %s", c.Path, host)
	case now.After(leaf.NotAfter) && c.CertCopy != "":
		return nil, fmt.Errorf("certificate %s expired on %s, as staged at the last start or reload (if it was renewed since, systemctl reload mailautoconf stages the renewed one)", c.Path, leaf.NotAfter.UTC().Format(time.DateOnly))
	case now.After(leaf.NotAfter):
		return nil, fmt.Errorf("certificate %s expired on %s (Apple devices treat a profile signed with it as unsigned)", c.Path, leaf.NotAfter.UTC().Format(time.DateOnly))
	case now.Before(leaf.NotBefore):
		return nil, fmt.Errorf("certificate %s is not valid before %s", c.Path, leaf.NotBefore.UTC().Format(time.DateOnly))
	case c.KeyPath == "":
		return nil, fmt.Errorf("no private key is configured for certificate %s", c.Path)
	}
	keyFile := cmp.Or(c.KeyCopy, c.KeyPath)
	var data []byte
	if c.KeyCopy != "" {
		data, err = keystage.ReadCopy(root, c.KeyCopy)
	} else {
		data, err = root.ReadRegular(c.KeyPath, certs.MaxFileSize)
	}
	if err != nil {
		if hint := hostfs.PermissionHint(err); hint != "" {
			return nil, fmt.Errorf("private key of certificate %s: %w (%s; on a systemd host, reloading mailautoconf stages a copy it can read)", c.Path, err, hint)
		}
		return nil, fmt.Errorf("private key of certificate %s: %w", c.Path, err)
	}
	key, err := certs.MatchingKey(keyFile, data, leaf)
	if err != nil {
		if c.KeyCopy != "" {
			// Staged before a renewal: never sign with a key that is not
			// the certificate's; the next reload stages the new one.
			return nil, fmt.Errorf("private key of certificate %s: the copy of %s staged at the last start or reload: %w (reload mailautoconf to stage it again)", c.Path, c.KeyPath, err)
		}
		return nil, fmt.Errorf("private key of certificate %s: %w", c.Path, err)
	}
	return &Signer{
		leaf:        leaf,
		chain:       cert.Chain,
		key:         key,
		certPath:    c.Path,
		keyPath:     c.KeyPath,
		fingerprint: sha256.Sum256(leaf.Raw),
	}, nil
}

// loadCert reads the certificate c names, from its staged copy when
// discover read that one (this process may not read c.Path).
func loadCert(root hostfs.Root, c discover.Certificate) (*certs.Cert, error) {
	if c.CertCopy == "" {
		return certs.Load(root, c.Path)
	}
	data, err := keystage.ReadCopy(root, c.CertCopy)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: its staged copy: %w", c.Path, err)
	}
	return certs.Parse(c.Path, data)
}

// CertificatePath and KeyPath are the host paths of the certificate and key
// the Signer signs with, for logs and show.
func (sg *Signer) CertificatePath() string { return sg.certPath }
func (sg *Signer) KeyPath() string         { return sg.keyPath }

// NotAfter is when the signing certificate expires; profiles signed with
// it turn "Unverified" on devices then.
func (sg *Signer) NotAfter() time.Time { return sg.leaf.NotAfter }

// Sign and Keep are in signing.go.

// sign wraps body in CMS SignedData: SHA-256 digest, signed attributes
// (content type, message digest, signing time), the content attached and
// the certificate and its chain included.
func (sg *Signer) sign(body []byte) ([]byte, error) {
	sd, err := pkcs7.NewSignedData(body)
	if err != nil {
		return nil, fmt.Errorf("sign profile: %w", err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSigner(sg.leaf, sg.key, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, fmt.Errorf("sign profile with %s: %w", sg.certPath, err)
	}
	for _, c := range sg.chain {
		sd.AddCertificate(c)
	}
	der, err := sd.Finish()
	if err != nil {
		return nil, fmt.Errorf("sign profile: %w", err)
	}
	return der, nil
}
