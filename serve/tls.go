package serve

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// A siteCert is one of the mail host's certificates with its key, for
// the https socket.
type siteCert struct {
	cert *tls.Certificate
	leaf *x509.Certificate
}

// loadCerts reads the snapshot's certificates and keys through root. One
// that cannot be used is logged and skipped: the https socket is optional,
// and Postfix and Dovecot report their own certificates' problems.
func loadCerts(root hostfs.Root, snap *discover.Snapshot, log *slog.Logger) []siteCert {
	var out []siteCert
	seen := map[string]bool{}
	for _, c := range snap.Certificates() {
		if c.KeyPath == "" || seen[c.Path+"\x00"+c.KeyPath] {
			continue
		}
		seen[c.Path+"\x00"+c.KeyPath] = true
		certPEM, err := root.ReadFile(c.Path)
		if err == nil {
			var keyPEM []byte
			if keyPEM, err = root.ReadFile(c.KeyPath); err == nil {
				var kp tls.Certificate
				if kp, err = tls.X509KeyPair(certPEM, keyPEM); err == nil {
					out = append(out, siteCert{cert: &kp, leaf: kp.Leaf})
					continue
				}
				err = fmt.Errorf("%s with key %s: %w", c.Path, c.KeyPath, err)
			}
		}
		if hint := hostfs.PermissionHint(err); hint != "" {
			err = fmt.Errorf("%w (%s)", err, hint)
		}
		log.Warn("certificate not usable for the https socket", "source", c.Source, "err", err)
	}
	return out
}

// errNoCertificate is the handshake error when the mail host has no
// usable certificate.
var errNoCertificate = errors.New("no certificate with a readable key: the https socket cannot serve")

// certificate chooses the certificate for the name a client asked for:
// the first that covers it, else the first that covers the mail host's
// name, else the first. autoconfig.<domain> and autodiscover.<domain> are
// covered when the admin added them to the certificate; otherwise the
// client sees a name mismatch, as it would from any web server.
func (s *Site) certificate(serverName string) (*tls.Certificate, error) {
	if len(s.certs) == 0 {
		return nil, errNoCertificate
	}
	name := strings.ToLower(strings.TrimSuffix(serverName, "."))
	for _, want := range []string{name, s.snap.Hostname()} {
		if want == "" {
			continue
		}
		for _, c := range s.certs {
			if c.leaf != nil && c.leaf.VerifyHostname(want) == nil {
				return c.cert, nil
			}
		}
	}
	return s.certs[0].cert, nil
}

// TLSConfig returns the configuration of the https socket: each handshake
// gets a certificate of the Site current at that moment, chosen by the
// name the client asks for (SNI), so a renewed certificate is served from
// the reload that reads it. Serve it with http.Server.ServeTLS(l, "", "")
// so that HTTP/2 is offered too.
func (st *Store) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			s := st.Load()
			if s == nil {
				return nil, errors.New("starting: no configuration read yet")
			}
			return s.certificate(hello.ServerName)
		},
	}
}
