package render

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/net/idna"

	"github.com/mailautoconf/mailautoconf/discover"
)

// Content types of the documents. Thunderbird parses a body as XML only
// when its Content-Type starts with text/xml or application/xml
// (PROTOCOLS.md §2.3); Outlook expects text/xml (§3.3).
const (
	ContentTypeXML  = "text/xml; charset=utf-8"
	ContentTypeJSON = "application/json"
	ContentTypeHTML = "text/html; charset=utf-8"
)

// ErrNoEndpoints reports that a snapshot has nothing a document could
// advertise: no IMAP or POP3 server and no SMTP server with TLS for
// autoconfig, no TLS server at all for Autodiscover.
var ErrNoEndpoints = errors.New("render: no endpoint with TLS to advertise")

// advertised returns the endpoints documents tell clients about, best
// first: every endpoint of the snapshot except those without TLS, whose
// passwords would cross the network in clear (Thunderbird for Android even
// rejects a whole autoconfig document with socketType plain). Host names
// are lower-case A-labels, since Thunderbird's sanitizer refuses U-labels.
func advertised(s *discover.Snapshot) ([]discover.Endpoint, error) {
	var out []discover.Endpoint
	for _, e := range s.Endpoints() {
		if e.Security != discover.SecurityTLS && e.Security != discover.SecuritySTARTTLS {
			continue
		}
		host, err := idna.Lookup.ToASCII(strings.TrimSuffix(e.Host, "."))
		if err != nil {
			return nil, fmt.Errorf("render: %s endpoint %s port %d: %w", e.Protocol, e.Host, e.Port, err)
		}
		e.Host = strings.ToLower(host)
		out = append(out, e)
	}
	return out, nil
}

// bestOfEach returns the first (best) endpoint of each protocol, in the
// order IMAP, POP3, SMTP.
func bestOfEach(eps []discover.Endpoint) []discover.Endpoint {
	var out []discover.Endpoint
	for _, p := range []string{"imap", "pop3", "smtp"} {
		if i := slices.IndexFunc(eps, func(e discover.Endpoint) bool { return e.Protocol == p }); i >= 0 {
			out = append(out, eps[i])
		}
	}
	return out
}

// loginField is the address field a client logs in to e with.
func loginField(e discover.Endpoint) Field {
	if e.Username == discover.UsernameLocalPart {
		return FieldLocal
	}
	return FieldLoginAddress
}

// Mechanism classes, as autoconfig's authentication values name them.
const (
	authCleartext = "password-cleartext" // PLAIN, LOGIN: the password itself, inside TLS
	authEncrypted = "password-encrypted" // challenge-response: CRAM-MD5, DIGEST-MD5, SCRAM-*
)

// passwordAuth returns the autoconfig authentication values for the SASL
// mechanisms mechs, most preferred first.
//
// password-cleartext comes first whenever PLAIN or LOGIN is offered: it
// works with any password storage, while CRAM-MD5 and SCRAM fail unless
// Dovecot stores passwords in a form they can use, which the configuration
// does not tell (PROTOCOLS.md §2.3, Postfix/Dovecot guidance). Other
// mechanisms (GSSAPI, OAUTHBEARER, EXTERNAL...) are named only when no
// password mechanism is offered.
func passwordAuth(mechs []string) []string {
	var cleartext, encrypted bool
	var other []string
	for _, m := range mechs {
		switch m := strings.ToUpper(m); {
		case m == "PLAIN" || m == "LOGIN":
			cleartext = true
		case m == "CRAM-MD5" || m == "DIGEST-MD5" || strings.HasPrefix(m, "SCRAM-"):
			encrypted = true
		case m == "GSSAPI":
			other = appendNew(other, "GSSAPI")
		case m == "NTLM":
			other = appendNew(other, "NTLM")
		case m == "OAUTHBEARER" || m == "XOAUTH2":
			other = appendNew(other, "OAuth2")
		case m == "EXTERNAL":
			other = appendNew(other, "TLS-client-cert")
		}
	}
	var out []string
	if cleartext {
		out = append(out, authCleartext)
	}
	if encrypted {
		out = append(out, authEncrypted)
	}
	if len(out) == 0 {
		out = other
	}
	return out
}

func appendNew(ss []string, s string) []string {
	if slices.Contains(ss, s) {
		return ss
	}
	return append(ss, s)
}

// hasAliasTargets reports whether some domain of s is an alias domain whose
// users log in at another domain, so that a login address can differ from
// the address a client was given.
func hasAliasTargets(s *discover.Snapshot) bool {
	for alias, target := range s.AliasTargets() {
		if target != alias {
			return true
		}
	}
	return false
}
