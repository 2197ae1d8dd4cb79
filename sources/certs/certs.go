// Package certs reads the TLS certificates that Postfix and Dovecot present
// and tells which host names they cover and until when.
//
// A file may hold a private key and a chain (Postfix's smtpd_tls_chain_files),
// a chain alone (certbot's fullchain.pem) or a single certificate; the first
// certificate in it is the one the server presents, the rest its chain.
package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// ErrNoCertificate is returned for a file that holds no certificate, such as
// a key-only file of smtpd_tls_chain_files.
var ErrNoCertificate = errors.New("no CERTIFICATE block")

// A Cert is a certificate file as a server presents it.
type Cert struct {
	Path  string              // host path of the file
	Leaf  *x509.Certificate   // the certificate presented
	Chain []*x509.Certificate // the certificates after the leaf, in file order
	// Names are the DNS names the leaf covers, lower-case: its DNS
	// subject alternative names, or its common name when it has none
	// (as old clients accept). Wildcards keep their "*." prefix.
	Names []string
}

// MaxFileSize bounds a certificate or key file: a chain of a few
// certificates is some 10 KiB; a name that points at /dev/zero or a huge
// file must not exhaust memory.
const MaxFileSize = 1 << 20

// Load reads the certificate file at host path p.
func Load(root hostfs.Root, p string) (*Cert, error) {
	data, err := root.ReadRegular(p, MaxFileSize)
	if err != nil {
		if hint := hostfs.PermissionHint(err); hint != "" {
			return nil, fmt.Errorf("%w (%s)", err, hint)
		}
		return nil, err
	}
	return Parse(p, data)
}

// Parse reads the PEM certificates in data; name is used in errors.
// Blocks other than certificates (keys, DH parameters) are skipped.
func Parse(name string, data []byte) (*Cert, error) {
	c := &Cert{Path: name}
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		x, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", name, len(c.Chain)+1, err)
		}
		if c.Leaf == nil {
			c.Leaf = x
		} else {
			c.Chain = append(c.Chain, x)
		}
	}
	if c.Leaf == nil {
		return nil, fmt.Errorf("%s: %w", name, ErrNoCertificate)
	}
	c.Names = leafNames(c.Leaf)
	return c, nil
}

func leafNames(x *x509.Certificate) []string {
	var names []string
	for _, n := range x.DNSNames {
		names = append(names, strings.ToLower(strings.TrimSuffix(n, ".")))
	}
	if len(names) == 0 && x.Subject.CommonName != "" && net.ParseIP(x.Subject.CommonName) == nil {
		names = append(names, strings.ToLower(x.Subject.CommonName))
	}
	return names
}

// Covers reports whether the certificate is valid for host by name, as a
// TLS client checks it (RFC 6125: a wildcard stands for exactly one
// left-most label). It does not check dates or trust.
func (c *Cert) Covers(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" {
		return false
	}
	for _, n := range c.Names {
		if n == host {
			return true
		}
		if rest, ok := strings.CutPrefix(n, "*."); ok {
			label, parent, found := strings.Cut(host, ".")
			if found && label != "" && parent == rest {
				return true
			}
		}
	}
	return false
}

// NotAfter is the end of the leaf's validity.
func (c *Cert) NotAfter() time.Time { return c.Leaf.NotAfter }

// SelfSigned reports whether the leaf is signed by itself, which mail
// clients reject unless the user accepts an exception.
func (c *Cert) SelfSigned() bool {
	x := c.Leaf
	if !bytes.Equal(x.RawIssuer, x.RawSubject) {
		return false
	}
	// CheckSignatureFrom would insist on CA:TRUE, which snakeoil-style
	// server certificates do not have.
	return x.CheckSignature(x.SignatureAlgorithm, x.RawTBSCertificate, x.Signature) == nil
}

// Problems returns what a client would object to at time now: an expired
// or not yet valid leaf, one expiring within soon, or a self-signed one.
func (c *Cert) Problems(now time.Time, soon time.Duration) []string {
	var p []string
	switch x := c.Leaf; {
	case now.After(x.NotAfter):
		p = append(p, fmt.Sprintf("certificate %s expired on %s", c.Path, x.NotAfter.UTC().Format(time.DateOnly)))
	case now.Before(x.NotBefore):
		p = append(p, fmt.Sprintf("certificate %s is not valid before %s", c.Path, x.NotBefore.UTC().Format(time.DateOnly)))
	case x.NotAfter.Sub(now) < soon:
		p = append(p, fmt.Sprintf("certificate %s expires on %s", c.Path, x.NotAfter.UTC().Format(time.DateOnly)))
	}
	if c.SelfSigned() {
		p = append(p, fmt.Sprintf("certificate %s is self-signed: mail clients will warn or refuse to connect", c.Path))
	}
	return p
}
