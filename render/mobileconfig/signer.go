package mobileconfig

import (
	"bytes"
	"cmp"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/render"
	"github.com/mailautoconf/mailautoconf/sources/certs"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// ErrNoSigningKey is returned (wrapped, with the reason for each
// certificate) by NewSigner when no certificate can sign profiles.
var ErrNoSigningKey = errors.New("mobileconfig: no certificate and key to sign profiles with")

// A Signer signs profiles with the mail host's certificate and key (CMS
// SignedData, content attached, chain included) and caches the signed bytes
// per (address, name, certificate fingerprint). It is safe for concurrent
// use.
//
// A Signer belongs to the Snapshot it was made for: make a new one for each
// new Snapshot (the certificate may have been renewed too). Sign with
// another Snapshot signs correctly but bypasses the cache.
type Signer struct {
	snap     *discover.Snapshot
	leaf     *x509.Certificate
	chain    []*x509.Certificate // the certificates after the leaf in its file
	key      crypto.Signer
	certPath string
	keyPath  string
	// Fingerprint is the SHA-256 of the signing certificate (DER).
	fingerprint [sha256.Size]byte
	cache       signCache
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
	cert, err := certs.Load(root, c.Path)
	if err != nil {
		return nil, err
	}
	leaf := cert.Leaf
	switch {
	case !cert.Covers(host):
		return nil, fmt.Errorf("certificate %s does not cover the host name %s", c.Path, host)
	case now.After(leaf.NotAfter):
		return nil, fmt.Errorf("certificate %s expired on %s (Apple devices treat a profile signed with it as unsigned)", c.Path, leaf.NotAfter.UTC().Format(time.DateOnly))
	case now.Before(leaf.NotBefore):
		return nil, fmt.Errorf("certificate %s is not valid before %s", c.Path, leaf.NotBefore.UTC().Format(time.DateOnly))
	case c.KeyPath == "":
		return nil, fmt.Errorf("no private key is configured for certificate %s", c.Path)
	}
	data, err := root.ReadFile(c.KeyPath)
	if err != nil {
		if hint := hostfs.PermissionHint(err); hint != "" {
			return nil, fmt.Errorf("private key of certificate %s: %w (%s)", c.Path, err, hint)
		}
		return nil, fmt.Errorf("private key of certificate %s: %w", c.Path, err)
	}
	key, err := matchingKey(c.KeyPath, data, leaf)
	if err != nil {
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

// matchingKey returns the private key in the PEM data (PKCS#8, PKCS#1 or
// SEC 1; other blocks such as certificates are skipped) whose public key is
// the certificate's. name is used in errors.
func matchingKey(name string, data []byte, leaf *x509.Certificate) (crypto.Signer, error) {
	var problems []string
	keys := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		var (
			k   any
			err error
		)
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY", "EC PRIVATE KEY":
			if strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") {
				problems = append(problems, "it is encrypted")
				keys++
				continue
			}
			if b.Type == "RSA PRIVATE KEY" {
				k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
			} else {
				k, err = x509.ParseECPrivateKey(b.Bytes)
			}
		case "ENCRYPTED PRIVATE KEY":
			problems = append(problems, "it is encrypted")
			keys++
			continue
		default:
			continue
		}
		keys++
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", b.Type, err))
			continue
		}
		var signer crypto.Signer
		switch k := k.(type) {
		case *rsa.PrivateKey:
			signer = k
		case *ecdsa.PrivateKey:
			signer = k
		default:
			problems = append(problems, fmt.Sprintf("a %T cannot sign profiles (RSA or ECDSA needed)", k))
			continue
		}
		pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
		if !ok || !pub.Equal(leaf.PublicKey) {
			problems = append(problems, "it does not match the certificate")
			continue
		}
		return signer, nil
	}
	if keys == 0 {
		return nil, fmt.Errorf("%s: no PEM private key", name)
	}
	return nil, fmt.Errorf("%s: no usable private key: %s", name, strings.Join(slices.Compact(problems), ", "))
}

// CertificatePath and KeyPath are the host paths of the certificate and key
// the Signer signs with, for logs and show.
func (sg *Signer) CertificatePath() string { return sg.certPath }
func (sg *Signer) KeyPath() string         { return sg.keyPath }

// NotAfter is when the signing certificate expires; profiles signed with
// it turn "Unverified" on devices then.
func (sg *Signer) NotAfter() time.Time { return sg.leaf.NotAfter }

// Sign returns the signed profile for the address (see Profile), from the
// cache when it was signed before. The bytes are shared with other callers:
// do not modify them.
func (sg *Signer) Sign(s *discover.Snapshot, a render.Address, name string) ([]byte, error) {
	if s != sg.snap {
		body, err := Profile(s, a, name)
		if err != nil {
			return nil, err
		}
		return sg.sign(body)
	}
	return sg.cache.do(cacheKey{a, name}, func() ([]byte, error) {
		body, err := Profile(s, a, name)
		if err != nil {
			return nil, err
		}
		return sg.sign(body)
	})
}

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
