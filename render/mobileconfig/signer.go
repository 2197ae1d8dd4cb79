package mobileconfig

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// ErrNoSigningKey is returned (as a *NoSigningKeyError, with the reason)
// by NewSigner when no certificate can sign profiles.
var ErrNoSigningKey = errors.New("mobileconfig: no certificate and key to sign profiles with")

// A NoSigningKeyError says why profiles cannot be signed. It is
// ErrNoSigningKey (errors.Is).
type NoSigningKeyError struct {
	// Reason is the Snapshot's (discover.Snapshot.ProfileSigning), or
	// why the certificate it chose could not be loaded.
	Reason string
}

func (e *NoSigningKeyError) Error() string { return ErrNoSigningKey.Error() + ": " + e.Reason }

// Is makes a NoSigningKeyError match ErrNoSigningKey.
func (e *NoSigningKeyError) Is(target error) bool { return target == ErrNoSigningKey }

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

// NewSigner returns a Signer with the certificate and key that s chose
// (discover.Snapshot.ProfileSigning), read as s read them (their staged
// copies, when s did). It fails with a *NoSigningKeyError when s says none
// can sign, or when the one it chose cannot be loaded now.
func NewSigner(root hostfs.Root, s *discover.Snapshot) (*Signer, error) {
	return newSigner(root, s, time.Now())
}

func newSigner(root hostfs.Root, s *discover.Snapshot, now time.Time) (*Signer, error) {
	c, why := s.ProfileSigning()
	if why != "" {
		return nil, &NoSigningKeyError{Reason: why}
	}
	sg, err := loadSigner(root, c, s.Hostname(), now)
	if err != nil {
		return nil, &NoSigningKeyError{Reason: err.Error()}
	}
	sg.snap = s
	return sg, nil
}

// loadSigner reads one certificate and its key and checks they can sign
// profiles for host.
func loadSigner(root hostfs.Root, c discover.Certificate, host string, now time.Time) (*Signer, error) {
	cert, key, err := discover.LoadSigningPair(root, c, host, now)
	if err != nil {
		return nil, err
	}
	return &Signer{
		leaf:        cert.Leaf,
		chain:       cert.Chain,
		key:         key,
		certPath:    c.Path,
		keyPath:     c.KeyPath,
		fingerprint: sha256.Sum256(cert.Leaf.Raw),
	}, nil
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
