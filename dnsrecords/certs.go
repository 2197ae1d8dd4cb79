package dnsrecords

import (
	"slices"
	"strings"

	"github.com/mailautoconf/mailautoconf/discover"
)

// ServerHTTPS names the HTTPS front of the discovery names in
// CertName.Servers: `serve --listen-tls` presents the mail servers'
// certificates there; a web server in front presents its own.
const ServerHTTPS = "https"

// A CertName is a name some TLS certificate must cover (DNS.md §3).
type CertName struct {
	Name string `json:"name"` // lower-case A-labels
	Why  string `json:"why"`
	// Required is false for a domain's apex, needed only when its web
	// server serves the discovery paths itself.
	Required bool `json:"required"`
	// Servers present it: "https" (the discovery web front), "dovecot",
	// "postfix".
	Servers []string `json:"servers"`
	// CoveredBy lists the paths of the snapshot's certificates that cover
	// the name.
	CoveredBy []string `json:"covered_by"`
	// Missing lists the Servers none of whose certificates cover the name
	// (for "https": no certificate of the host covers it).
	Missing []string `json:"missing"`
}

const hostWhy = "the mail host: target of the CNAME and SRV records; IMAP, POP3 and SMTP clients check this name"

// certNames lists the names the certificates must cover: for each domain
// autoconfig.<d>, autodiscover.<d> and (optionally) <d>; then the host
// name, every endpoint's host and every DAV service's host, which the SRV
// records name.
func certNames(snap *discover.Snapshot, p *Plan, eps []discover.Endpoint, dav []davRecord) []CertName {
	var out []CertName
	add := func(name, why string, required bool, servers ...string) {
		i := slices.IndexFunc(out, func(c CertName) bool { return c.Name == name })
		if i < 0 {
			out = append(out, CertName{Name: name, Why: why, Required: required, Servers: []string{}})
			i = len(out) - 1
		}
		c := &out[i]
		c.Required = c.Required || required
		for _, s := range servers {
			if !slices.Contains(c.Servers, s) {
				c.Servers = append(c.Servers, s)
			}
		}
	}
	for _, d := range p.Domains {
		add("autoconfig."+d.Name, "Mozilla autoconfig over HTTPS", true, ServerHTTPS)
		add("autodiscover."+d.Name, "Outlook Autodiscover over HTTPS", true, ServerHTTPS)
		if d.Name == p.Host {
			add(d.Name, "the mail host's name, and the domain's /.well-known/autoconfig/ path", true, ServerHTTPS)
		} else {
			add(d.Name, "only if the domain's own web server serves /.well-known/autoconfig/ or /autodiscover/ itself", false, ServerHTTPS)
		}
	}
	if len(p.Domains) > 0 {
		add(p.Host, hostWhy, true, ServerHTTPS)
	}
	for _, e := range eps {
		add(e.Host, hostWhy, true, certServer(e.Server))
	}
	if len(p.Domains) > 0 {
		for _, d := range dav {
			add(d.svc.Host, "target of the _caldavs and _carddavs SRV records: CalDAV and CardDAV clients check this name", true, ServerHTTPS)
		}
	}

	certs := snap.Certificates()
	for i := range out {
		c := &out[i]
		c.CoveredBy = []string{}
		c.Missing = []string{}
		for _, s := range c.Servers {
			ok := false
			for _, cert := range certs {
				if s != ServerHTTPS && cert.Server != s {
					continue
				}
				if slices.ContainsFunc(cert.Names, func(n string) bool { return Covers(n, c.Name) }) {
					ok = true
					if !slices.Contains(c.CoveredBy, cert.Path) {
						c.CoveredBy = append(c.CoveredBy, cert.Path)
					}
				}
			}
			if !ok {
				c.Missing = append(c.Missing, s)
			}
		}
	}
	return out
}

// certServer maps an Endpoint's Server onto the Certificate Server that
// presents its certificate.
func certServer(s string) string {
	if strings.HasPrefix(s, "dovecot") {
		return "dovecot"
	}
	return s
}

// Covers reports whether a certificate name (a DNS SAN, possibly a
// wildcard "*.example.com") covers the host name: the same name, or a
// wildcard for exactly one more label (RFC 6125 §6.4.3), without regard
// to case.
func Covers(certName, host string) bool {
	certName = strings.ToLower(strings.TrimSuffix(certName, "."))
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if certName == host {
		return true
	}
	rest, ok := strings.CutPrefix(certName, "*.")
	if !ok || rest == "" {
		return false
	}
	_, parent, ok := strings.Cut(host, ".")
	return ok && parent == rest
}
