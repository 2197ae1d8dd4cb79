package dnsrecords

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/idna"

	"github.com/mailautoconf/mailautoconf/discover"
)

// TTL is the time to live of every record, in seconds: an hour, as in
// DNS.md. Lower it before moving the mail host.
const TTL = 3600

// A Record is one resource record to publish.
type Record struct {
	Name string `json:"name"` // absolute, with the trailing dot
	TTL  int    `json:"ttl"`
	Type string `json:"type"` // "CNAME", "SRV", "TXT" or "MX"
	// Priority is an SRV record's priority or an MX record's preference.
	Priority int    `json:"priority"`
	Weight   int    `json:"weight"` // SRV only
	Port     int    `json:"port"`   // SRV only; 0 with the target "."
	Target   string `json:"target"` // absolute; "." for a service not offered; "" for TXT
	// Text is a TXT record's one string, unquoted ("path=/SOGo/dav/").
	Text string `json:"text,omitempty"`
	Why  string `json:"why"` // one line: who uses it, where it comes from
}

// NotOffered reports whether r is the SRV record saying a service is not
// offered at all (target ".").
func (r Record) NotOffered() bool { return r.Type == "SRV" && r.Target == "." }

// Data returns the record's data as a zone file writes it.
func (r Record) Data() string {
	switch r.Type {
	case "SRV":
		return fmt.Sprintf("%d %d %d %s", r.Priority, r.Weight, r.Port, r.Target)
	case "MX":
		return fmt.Sprintf("%d %s", r.Priority, r.Target)
	case "TXT":
		return quoteTXT(r.Text)
	}
	return r.Target
}

// quoteTXT returns s as one zone-file character-string: in double
// quotes, with backslash and quote escaped (RFC 1035 §5.1).
func quoteTXT(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// String returns the record as one zone-file line, without its comment.
func (r Record) String() string {
	return fmt.Sprintf("%s %d IN %s %s", r.Name, r.TTL, r.Type, r.Data())
}

// A Domain is what one hosted domain should publish.
type Domain struct {
	Name    string   `json:"name"` // lower-case A-labels, no trailing dot
	Records []Record `json:"records"`
	// Suggested holds records to compare with what the domain has, not to
	// copy blindly: the MX, which may rightly name another host.
	Suggested []Record `json:"suggested"`
	Notes     []string `json:"notes"` // what else to know, one sentence each
}

// A Service is one RFC 6186 / RFC 8314 SRV service name.
type Service struct {
	Label    string            // "_imaps"
	Protocol string            // the Endpoint protocol: "imap", "pop3", "smtp"
	Security discover.Security // SecurityTLS or SecuritySTARTTLS
	What     string            // "IMAP, implicit TLS"
}

// Services are the SRV services of RFC 6186 and RFC 8314, in the order
// the records are written.
var Services = []Service{
	{"_imaps", "imap", discover.SecurityTLS, "IMAP, implicit TLS"},
	{"_imap", "imap", discover.SecuritySTARTTLS, "IMAP, STARTTLS"},
	{"_pop3s", "pop3", discover.SecurityTLS, "POP3, implicit TLS"},
	{"_pop3", "pop3", discover.SecuritySTARTTLS, "POP3, STARTTLS"},
	{"_submissions", "smtp", discover.SecurityTLS, "SMTP submission, implicit TLS"},
	{"_submission", "smtp", discover.SecuritySTARTTLS, "SMTP submission, STARTTLS"},
}

// Owner returns the SRV owner name of s for domain (absolute).
func (s Service) Owner(domain string) string { return s.Label + "._tcp." + domain + "." }

// A DAVService is one RFC 6764 service name: an SRV record naming the
// HTTPS server and a TXT record with its context path, published only
// when discover proved the host serves the protocol.
type DAVService struct {
	Label    string // "_caldavs"
	Protocol string // discover.ServiceCalDAV or discover.ServiceCardDAV
	What     string // "CalDAV"
	Apple    string // Apple's app that reads it: "Calendar"
}

// DAVServices are the RFC 6764 services over TLS, in the order the
// records are written. The plain-HTTP _caldav and _carddav names are not
// written: the services are advertised over HTTPS only.
var DAVServices = []DAVService{
	{"_caldavs", discover.ServiceCalDAV, "CalDAV", "Calendar"},
	{"_carddavs", discover.ServiceCardDAV, "CardDAV", "Contacts"},
}

// Owner returns the SRV and TXT owner name of s for domain (absolute).
func (s DAVService) Owner(domain string) string { return s.Label + "._tcp." + domain + "." }

// A davRecord is a proven DAV service with its host as written.
type davRecord struct {
	DAVService
	svc discover.Service
}

// davServices returns the RFC 6764 services the snapshot proves, with
// host names as lower-case A-labels.
func davServices(snap *discover.Snapshot) []davRecord {
	var out []davRecord
	for _, d := range DAVServices {
		svc, ok := snap.Service(d.Protocol)
		if !ok {
			continue
		}
		h, err := hostName(svc.Host)
		if err != nil || svc.Port <= 0 || svc.Path == "" {
			continue // discover proves services only with a host, port and path
		}
		svc.Host = h
		out = append(out, davRecord{d, svc})
	}
	return out
}

// A Plan is every record and certificate name the hosted domains need.
type Plan struct {
	// Host is the mail host's name (lower-case A-labels): the target of
	// the CNAME and SRV records, as clients are told it.
	Host         string     `json:"host"`
	TTL          int        `json:"ttl"`
	Domains      []Domain   `json:"domains"`
	Certificates []CertName `json:"certificate_names"`
	Notes        []string   `json:"notes"` // about the host, one sentence each
}

// ErrNoHost reports a snapshot without a host name to point records at.
var ErrNoHost = errors.New("dnsrecords: the snapshot has no host name")

// For returns the plan for domains (lower-case A-labels), or for every
// domain the snapshot lists when domains is nil. It does not check that
// the domains are hosted; callers ask Snapshot.Lookup first.
func For(snap *discover.Snapshot, domains []string) (*Plan, error) {
	host, err := hostName(snap.Hostname())
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrNoHost, snap.Hostname(), err)
	}
	if domains == nil {
		for _, d := range snap.Domains() {
			domains = append(domains, d.Name)
		}
	}
	p := &Plan{Host: host, TTL: TTL, Domains: []Domain{}}
	if !strings.Contains(host, ".") {
		p.Notes = append(p.Notes, fmt.Sprintf("The host name %q is not a fully qualified domain name, so the records below point at a name no client can resolve: set myhostname in main.cf to the host's public name.", host))
	}
	p.Notes = append(p.Notes, fmt.Sprintf("%s. needs A and AAAA records with this host's public addresses (every record below points at it).", host))

	p.Notes = append(p.Notes, "The web server of each domain itself (the apex) must proxy /.well-known/autoconfig/ and /autodiscover/autodiscover.xml to mailautoconf, or refuse them at once (connection refused or 404): never let them hang.")
	p.Notes = append(p.Notes, "The _imaps, _imap, _pop3s, _pop3, _submissions and _submission SRV records (RFC 6186, RFC 8314) serve the few clients and tools that read them: Thunderbird (desktop and Android), Evolution, Outlook and Apple Mail do not. Those find the servers through autoconfig.<domain> and autodiscover.<domain>, and the Thunderbirds also through the MX (see the suggested MX).")

	eps := Advertised(snap)
	dav := davServices(snap)
	if len(dav) > 0 {
		var names []string
		for i, d := range dav {
			if i > 0 && d.svc.URL() == dav[i-1].svc.URL() {
				names[i-1] = strings.TrimSuffix(names[i-1], " at "+d.svc.URL())
			}
			names = append(names, d.What+" at "+d.svc.URL())
		}
		p.Notes = append(p.Notes, fmt.Sprintf("This host serves %s. The _caldavs and _carddavs SRV and TXT records (RFC 6764) let calendar and contact clients find them from the email address: Thunderbird looks them up on the email domain, then tries https://<domain>/.well-known/caldav and /.well-known/carddav; Apple's Calendar and Contacts (iOS, macOS) read them too. Instead of (or besides) the records, the web server of each domain may redirect /.well-known/caldav and /.well-known/carddav to %s.",
			strings.Join(names, " and "), dav[0].svc.URL()))
	}
	for _, e := range snap.Endpoints() {
		if e.Security == discover.SecurityNone {
			p.Notes = append(p.Notes, fmt.Sprintf("%s on port %d has no TLS: no SRV record names it (the discovery documents leave it out too).", strings.ToUpper(e.Protocol), e.Port))
		}
	}
	for _, name := range domains {
		name, err := hostName(name)
		if err != nil {
			return nil, fmt.Errorf("dnsrecords: domain %w", err)
		}
		p.Domains = append(p.Domains, domainPlan(name, host, eps, dav))
	}
	p.Certificates = certNames(snap, p, eps, dav)
	return p, nil
}

// domainPlan returns the records of one domain.
func domainPlan(d, host string, eps []discover.Endpoint, dav []davRecord) Domain {
	dom := Domain{Name: d, Records: []Record{}, Notes: []string{}}
	add := func(r Record) { r.TTL = TTL; dom.Records = append(dom.Records, r) }

	for _, web := range []struct{ label, why string }{
		{"autoconfig", "Mozilla autoconfig over HTTPS (Thunderbird, K-9, Evolution)"},
		{"autodiscover", "Outlook Autodiscover over HTTPS"},
	} {
		name := web.label + "." + d
		if name == host {
			// A CNAME to itself would be a loop: the name is the host.
			dom.Notes = append(dom.Notes, fmt.Sprintf("%s. is the mail host's own name: give it A/AAAA records instead of a CNAME.", name))
			continue
		}
		add(Record{Name: name + ".", Type: "CNAME", Target: host + ".", Why: web.why})
	}
	if d == host {
		dom.Notes = append(dom.Notes, fmt.Sprintf("%s. is also the mail host's name: its A/AAAA records serve mail and the /.well-known/autoconfig/ path alike.", d))
	}
	add(Record{Name: "_autodiscover._tcp." + d + ".", Type: "SRV", Priority: 0, Weight: 0, Port: 443, Target: host + ".",
		Why: "Outlook's last Autodiscover step (it asks the user first) and Thunderbird's Exchange lookup; the target is the host, not a CNAME (RFC 2782)"})

	type key struct {
		label, host string
		port        int
	}
	seen := map[key]bool{}
	for _, svc := range Services {
		offered := false
		for _, e := range eps {
			if e.Protocol != svc.Protocol || e.Security != svc.Security {
				continue
			}
			offered = true
			k := key{svc.Label, e.Host, e.Port}
			if seen[k] {
				continue
			}
			seen[k] = true
			add(Record{Name: svc.Owner(d), Type: "SRV", Priority: rank(eps, e), Weight: 1, Port: e.Port, Target: e.Host + ".",
				Why: fmt.Sprintf("%s: %s, %s", svc.What, e.Server, e.Source)})
		}
		if !offered {
			add(Record{Name: svc.Owner(d), Type: "SRV", Priority: 0, Weight: 0, Port: 0, Target: ".",
				Why: svc.What + ": not offered, clients must not guess (RFC 6186)"})
		}
	}
	for _, s := range dav {
		add(Record{Name: s.Owner(d), Type: "SRV", Priority: 0, Weight: 1, Port: s.svc.Port, Target: s.svc.Host + ".",
			Why: fmt.Sprintf("%s over HTTPS (RFC 6764 §3): Thunderbird and Apple %s find the server from the email domain; nginx routes %s at %s", s.What, s.Apple, s.svc.Path, s.svc.Source)})
		add(Record{Name: s.Owner(d), Type: "TXT", Text: "path=" + s.svc.Path,
			Why: fmt.Sprintf("%s context path (RFC 6764 §4): the client asks https://%s%s, then finds each user's principal below it", s.What, hostPort(s.svc), s.svc.Path)})
	}
	dom.Suggested = []Record{{Name: d + ".", TTL: TTL, Type: "MX", Priority: 10, Target: host + ".",
		Why: "if mail for " + d + " comes straight to this host (when autoconfig." + d + " fails, Thunderbird, desktop and Android, tries autoconfig.<base domain of the first MX>, unless that is " + d + " itself)"}}
	return dom
}

// hostPort returns the service's host, with the port unless it is 443.
func hostPort(s discover.Service) string {
	if s.Port == 443 {
		return s.Host
	}
	return fmt.Sprintf("%s:%d", s.Host, s.Port)
}

// rank returns the SRV priority of e: 10 times its place among the
// endpoints of its scale (IMAP and POP3 share one, SMTP has its own), best
// first.
func rank(eps []discover.Endpoint, e discover.Endpoint) int {
	incoming := func(x discover.Endpoint) bool { return x.Protocol != "smtp" }
	n := 0
	for _, o := range eps {
		if incoming(o) != incoming(e) {
			continue
		}
		if o.Protocol == e.Protocol && o.Host == e.Host && o.Port == e.Port && o.Security == e.Security {
			break
		}
		n++
	}
	return 10 * n
}

// Advertised returns the endpoints with TLS, in the snapshot's order, with
// host names as lower-case A-labels: what the discovery documents tell
// clients, and what the SRV records name.
func Advertised(snap *discover.Snapshot) []discover.Endpoint {
	var out []discover.Endpoint
	for _, e := range snap.Endpoints() {
		if e.Security != discover.SecurityTLS && e.Security != discover.SecuritySTARTTLS {
			continue
		}
		h, err := hostName(e.Host)
		if err != nil {
			continue // discover only makes endpoints with host names
		}
		e.Host = h
		out = append(out, e)
	}
	return out
}

// hostName returns name as lower-case A-labels without a trailing dot.
func hostName(name string) (string, error) {
	name = strings.TrimSuffix(strings.TrimSpace(name), ".")
	if name == "" {
		return "", errors.New("empty name")
	}
	a, err := idna.Lookup.ToASCII(name)
	if err != nil {
		return "", fmt.Errorf("%q: %w", name, err)
	}
	if len(a) > 253 {
		return "", fmt.Errorf("%q: longer than 253 characters", name)
	}
	for _, l := range strings.Split(a, ".") {
		if l == "" || len(l) > 63 {
			return "", fmt.Errorf("%q: empty or over-long label", name)
		}
	}
	return strings.ToLower(a), nil
}
