package discover

import (
	"errors"
	"strings"
	"time"

	"github.com/mailautoconf/mailautoconf/sources/certs"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// A loadedCert is a certificate a server presents, with where it is named.
type loadedCert struct {
	*certs.Cert
	server string
	pos    hostfs.Pos
	sni    []string // Dovecot local_name names it is presented for; nil for the default
	key    string   // host path of its private key, "" when not configured
	copy   string   // host path of the staged copy read instead of Path, if any
}

// loadCertificates reads the certificates Postfix's smtpd and Dovecot
// present. One that cannot be read is a warning: the server will fail the
// same way, and clients are still told where to go.
func (b *builder) loadCertificates() {
	// smtpd_tls_chain_files takes precedence over the older *_cert_file
	// parameters (postconf(5)); its key-only files are skipped.
	// Each group of smtpd_tls_chain_files starts with its key.
	if chain, pos := b.pf.Param("smtpd_tls_chain_files"); chain != "" {
		files := splitList(chain)
		for _, p := range files {
			if c := b.loadCert("postfix", p, pos, nil, true); c != nil {
				c.key = files[0]
				b.pfCerts = append(b.pfCerts, c)
				break
			}
		}
	} else {
		for _, param := range []struct{ cert, key string }{
			{"smtpd_tls_cert_file", "smtpd_tls_key_file"},
			{"smtpd_tls_eccert_file", "smtpd_tls_eckey_file"},
		} {
			if p, pos := b.pf.Param(param.cert); p != "" && !strings.EqualFold(p, "none") {
				if c := b.loadCert("postfix", p, pos, nil, false); c != nil {
					c.key, _ = b.pf.Param(param.key)
					b.pfCerts = append(b.pfCerts, c)
				}
			}
		}
	}
	if b.dc != nil {
		eff := b.dc.Effective()
		if eff.CertFile != "" {
			if c := b.loadCert("dovecot", eff.CertFile, eff.CertPos, nil, false); c != nil {
				c.key = eff.KeyFile
				b.dcCerts = append(b.dcCerts, c)
			}
		}
		for _, nc := range eff.LocalNameCerts {
			if nc.CertFile == "" {
				continue
			}
			if c := b.loadCert("dovecot", nc.CertFile, nc.Pos, nc.Names, false); c != nil {
				c.key = nc.KeyFile
				b.dcCerts = append(b.dcCerts, c)
			}
		}
	}
	warned := map[string]bool{} // Postfix and Dovecot often share one file
	for _, c := range append(append([]*loadedCert{}, b.pfCerts...), b.dcCerts...) {
		b.read(c.key)
		b.snap.certs = append(b.snap.certs, Certificate{
			Path:     c.Path,
			KeyPath:  c.key,
			Server:   c.server,
			Names:    c.Names,
			NotAfter: c.NotAfter().UTC().Format(time.RFC3339),
			Source:   c.pos.String(),
			CertCopy: c.copy,
		})
		if !warned[c.Path] {
			warned[c.Path] = true
			for _, p := range c.Problems(b.opt.Now, certExpirySoon) {
				b.warn("%s (%s)", p, c.pos)
			}
		}
	}
}

func (b *builder) loadCert(server, path string, pos hostfs.Pos, sni []string, quietIfNoCert bool) *loadedCert {
	b.read(path)
	c, cp, err := b.loadCertFile(path)
	if err != nil {
		if !(quietIfNoCert && errors.Is(err, certs.ErrNoCertificate)) {
			b.warn("%s certificate named at %s cannot be used: %v", server, pos, err)
		}
		return nil
	}
	return &loadedCert{Cert: c, server: server, pos: pos, sni: sni, copy: cp}
}

// chooseHostnames picks the names clients are told. Postfix's myhostname
// comes first when the certificate covers it; otherwise a name the
// certificate does cover, since a client that is told a name its server's
// certificate lacks fails the TLS handshake. Every certificate's names are
// candidates, so Postfix and Dovecot end up on one name when they can.
func (b *builder) chooseHostnames() {
	myhostname, pos := b.pf.Param("myhostname")
	myhostname = strings.ToLower(myhostname)
	candidates := []string{myhostname}
	for _, c := range append(append([]*loadedCert{}, b.pfCerts...), b.dcCerts...) {
		for _, n := range c.Names {
			if !strings.HasPrefix(n, "*.") {
				candidates = append(candidates, n)
			}
		}
	}
	all := append(append([]*loadedCert{}, b.pfCerts...), b.dcCerts...)
	b.snap.hostname = pickName(candidates, all, myhostname)
	b.pfHost = pickName(append([]string{b.snap.hostname}, candidates...), b.pfCerts, b.snap.hostname)
	b.dcHost = pickName(append([]string{b.snap.hostname}, candidates...), b.dcCerts, b.snap.hostname)

	if !strings.Contains(b.snap.hostname, ".") {
		b.warn("host name %q (myhostname, %s) is not a fully qualified domain name: clients elsewhere cannot resolve it; set myhostname in main.cf", b.snap.hostname, pos)
	}
	if b.snap.hostname != myhostname {
		b.warn("clients are told %s, not myhostname %s (%s), because the certificate does not cover myhostname", b.snap.hostname, myhostname, pos)
	}
	for _, sc := range []struct {
		server string
		host   string
		certs  []*loadedCert
	}{{"postfix", b.pfHost, b.pfCerts}, {"dovecot", b.dcHost, b.dcCerts}} {
		if len(sc.certs) > 0 && !coveredByAny(sc.certs, sc.host) {
			b.warn("no %s certificate covers %s, the name clients are told: they will refuse to connect (certificate names: %s)",
				sc.server, sc.host, strings.Join(certNames(sc.certs), ", "))
		}
	}
}

// pickName returns the first candidate covered by every certificate, else
// the first covered by any, else fallback.
func pickName(candidates []string, cs []*loadedCert, fallback string) string {
	if len(cs) == 0 {
		return fallback
	}
	for _, n := range candidates {
		ok := true
		for _, c := range cs {
			ok = ok && c.Covers(n)
		}
		if ok && n != "" {
			return n
		}
	}
	for _, n := range candidates {
		if n != "" && coveredByAny(cs, n) {
			return n
		}
	}
	return fallback
}

func coveredByAny(cs []*loadedCert, name string) bool {
	for _, c := range cs {
		if c.Covers(name) {
			return true
		}
	}
	return false
}

func certNames(cs []*loadedCert) []string {
	var names []string
	for _, c := range cs {
		names = append(names, c.Names...)
	}
	return names
}

// splitList splits a Postfix list value on commas and white space.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
}
