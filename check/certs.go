package check

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

// tlsConfig returns a client configuration for host that completes the
// handshake whatever the certificate, so that the conversation can still
// be checked; verify then judges the certificate as a client would.
func (r *run) tlsConfig(host string) *tls.Config {
	return &tls.Config{
		ServerName:         host,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // verified by verify, with the messages a person needs
	}
}

// verify checks the chain a server presented for host against the roots
// at the run's time.
func (r *run) verify(certs []*x509.Certificate, host string) error {
	if len(certs) == 0 {
		return errors.New("the server presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		DNSName:       host,
		Roots:         r.opt.Roots,
		Intermediates: inter,
		CurrentTime:   r.now,
	})
	return err
}

// certResult judges the certificate a server presented for host: valid
// for the name, trusted, and valid for at least ExpiryMargin more. where
// says which certificate to change ("the certificate Dovecot presents
// (/etc/...)").
func (r *run) certResult(group, name, host string, certs []*x509.Certificate, where string) Result {
	res := Result{Group: group, Name: name}
	err := r.verify(certs, host)
	if err != nil {
		res.Status = Fail
		res.Detail, res.Fix = certProblem(err, certs, host, where, r.now)
		return res
	}
	leaf := certs[0]
	left := leaf.NotAfter.Sub(r.now)
	if left < ExpiryMargin {
		res.Status = Fail
		res.Detail = fmt.Sprintf("valid for %s but expires in %d days (%s)", host, int(left.Hours()/24), leaf.NotAfter.UTC().Format(time.DateOnly))
		res.Fix = "renew " + where + " now: automatic renewal (certbot renew, or your ACME client) is not working"
		return res
	}
	res.Status = OK
	res.Detail = fmt.Sprintf("valid for %s until %s, issued by %s", host, leaf.NotAfter.UTC().Format(time.DateOnly), issuer(leaf))
	return res
}

// certProblem explains a verification error and says what to change.
func certProblem(err error, certs []*x509.Certificate, host, where string, now time.Time) (detail, fix string) {
	var (
		hostErr  x509.HostnameError
		authErr  x509.UnknownAuthorityError
		validErr x509.CertificateInvalidError
	)
	switch {
	case len(certs) == 0:
		return err.Error(), "configure a certificate for " + host
	case errors.As(err, &hostErr):
		names := certNames(certs[0])
		return fmt.Sprintf("wrong name: the certificate covers %s, not %s", strings.Join(names, ", "), host),
			fmt.Sprintf("add %s to %s (e.g. certbot --expand -d %s) and reload the server", host, where, host)
	case errors.As(err, &authErr):
		self := ""
		if certs[0].Subject.String() == certs[0].Issuer.String() {
			self = "self-signed, "
		}
		return fmt.Sprintf("not trusted: %sissued by %s, which clients do not trust (or the intermediate certificate is not sent)", self, issuer(certs[0])),
			"use a certificate from a public CA such as Let's Encrypt for " + where + ", and send the whole chain (fullchain.pem)"
	case errors.As(err, &validErr) && validErr.Reason == x509.Expired:
		leaf := certs[0]
		if now.Before(leaf.NotBefore) {
			return fmt.Sprintf("not valid before %s", leaf.NotBefore.UTC().Format(time.DateOnly)), "check this host's clock, or install a certificate valid now for " + where
		}
		return fmt.Sprintf("expired on %s", leaf.NotAfter.UTC().Format(time.DateOnly)), "renew " + where + " and reload the server"
	}
	return err.Error(), "install a valid certificate for " + host + " as " + where
}

func certNames(c *x509.Certificate) []string {
	if len(c.DNSNames) > 0 {
		return c.DNSNames
	}
	if c.Subject.CommonName != "" {
		return []string{c.Subject.CommonName + " (common name only)"}
	}
	return []string{"no name"}
}

func issuer(c *x509.Certificate) string {
	if c.Issuer.CommonName != "" {
		return c.Issuer.CommonName
	}
	return c.Issuer.String()
}
