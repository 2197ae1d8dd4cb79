// Package discover turns a mail server's configuration into a Snapshot: the
// immutable answer to "what should a mail client be told for this domain?".
//
// Sources (packages under sources/) parse Postfix's and Dovecot's files, the
// certificates they name and the vmail database; Build merges their results
// into one Snapshot, with the file:line each fact came from. Build fails only
// when a configuration file cannot be trusted (unreadable, a syntax error);
// everything else that is wrong or doubtful becomes a warning in the
// Snapshot, so the admin sees all of it at once.
//
// A Snapshot is never modified after Build returns it, so a reader may hold
// one for as long as it likes without locking.
package discover

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// Security is how a client protects an endpoint's connection.
type Security string

const (
	SecurityTLS      Security = "tls"      // implicit TLS from the first byte (RFC 8314)
	SecuritySTARTTLS Security = "starttls" // plain connection upgraded with STARTTLS
	SecurityNone     Security = "none"     // no TLS: passwords would cross the network in clear
)

// User-name forms a client is told to log in with.
const (
	UsernameAddress   = "%EMAILADDRESS%"   // the whole address
	UsernameLocalPart = "%EMAILLOCALPART%" // the part before the @
)

// An Endpoint is one server a client may use.
type Endpoint struct {
	Protocol string   `json:"protocol"` // "imap", "pop3" or "smtp"
	Host     string   `json:"host"`
	Port     int      `json:"port"`
	Security Security `json:"security"`
	// Auth holds the SASL mechanisms the server offers, upper-case, in the
	// server's order.
	Auth     []string `json:"auth"`
	Username string   `json:"username"` // UsernameAddress or UsernameLocalPart
	// Server names the daemon behind the port: "dovecot", "postfix" or
	// "dovecot-submission".
	Server string `json:"server"`
	Source string `json:"source"` // file:line that enables the endpoint
}

// A Domain is a mail domain the host receives mail for.
type Domain struct {
	Name string `json:"name"` // lower-case A-labels
	// AliasOf is the domain whose mailboxes an alias domain's addresses
	// reach, when the database says so.
	AliasOf string `json:"alias_of,omitempty"`
	// Alias is true for a Postfix virtual alias domain (all its addresses
	// are forwarded), whether or not its target is known.
	Alias  bool   `json:"alias,omitempty"`
	Source string `json:"source"` // the lookup table or main.cf line that lists it
}

// A Certificate is one certificate the servers present.
type Certificate struct {
	Path string `json:"path"`
	// KeyPath is the host path of its private key as the server
	// configuration names it ("" when none is named).
	KeyPath  string   `json:"key_path"`
	Server   string   `json:"server"` // "postfix" or "dovecot"
	Names    []string `json:"names"`
	NotAfter string   `json:"not_after"` // RFC 3339
	Source   string   `json:"source"`    // where the server configuration names it
	// CertCopy and KeyCopy are the staged copies (package keystage) this
	// process read instead of Path and KeyPath, which it may not read.
	CertCopy string `json:"cert_copy,omitempty"`
	KeyCopy  string `json:"key_copy,omitempty"`
	// SignProblem says why this certificate and key cannot sign Apple
	// profiles (the key unreadable or not the certificate's, the host
	// name not covered, expired); "" when they can.
	SignProblem string `json:"sign_problem,omitempty"`
	// SelfSigned says the certificate is its own issuer: a profile signed
	// with it only proves its bytes intact, where a CA's makes it
	// "Verified" (ProfileSigning prefers those).
	SelfSigned bool `json:"self_signed,omitempty"`
	// Staged says which files the service user cannot read and which
	// staged copies the daemon reads instead; "" when it needs none.
	Staged string `json:"staged,omitempty"`
}

// A Snapshot is an immutable view of what mail clients should be told.
// Build one with Build.
type Snapshot struct {
	hostname string
	// domains maps each hosted domain to where it was listed, packed
	// (see domainInfo): with a million domains, a slot of 12 bytes and
	// the name are all a domain costs (see domainSet).
	domains   domainSet
	aliasOf   map[string]string // alias domain → target, for the few the database names; keys are domains' names
	sources   []string          // domainInfo.source indexes these host paths
	listed    bool              // every domain source could be enumerated
	endpoints []Endpoint        // best first
	certs     []Certificate
	warnings  []string
	// domainWarnings are the warnings about domain sources (a subset).
	domainWarnings []string

	// lookups answer for domains that the enumerated list lacks: every
	// database table, listed or not.
	lookups []domainLookup
	closers []func() error

	files       []string // host files the snapshot was built from, sorted
	globs       []string // include patterns whose new matches matter
	unreachable []string // tables whose database could not be listed

	held    []Endpoint // configured, but nothing listens on their ports
	procNet string     // the socket tables held was decided from; "" when not checked

	groupware Groupware // see Groupware
	// awaited are the loopback ports of groupware backends whose probe
	// failed on the network (WatchListening rebuilds when a new socket
	// listens on one).
	awaited []awaitedPort
	builtAt time.Time // when Build finished
	// backends are the loopback TCP ports of proven groupware backends;
	// ports how those and the endpoints' ports listened at the build
	// (see SocketsChanged).
	backends []int
	ports    []portState

	fingerprint uint64 // see Fingerprint; summed as the Snapshot is built
}

// Fingerprint identifies what the Snapshot tells clients: two Snapshots
// with the same fingerprint have the same host name, domains (with their
// sources, alias flags and targets), endpoints, certificates, warnings
// and watched files. It is worked out while the Snapshot is built, so it
// costs nothing to ask for; see contentHash.
func (s *Snapshot) Fingerprint() uint64 { return s.fingerprint }

// A domainLookup asks one database table whether it hosts a domain.
type domainLookup struct {
	source  string
	alias   bool
	table   domainTable
	aliases aliasTable // nil when the table has no alias_domain table
}

// lookup asks the table about domain as Postfix does. For a hosted domain
// it also returns the domain it may stand for: the lookup's result when
// that is another domain (LDAP's domainAliasName, ISPConfig's alias
// domains), else the alias_domain table's row; Snapshot.Lookup keeps it
// only when that domain is hosted too. Not knowing the target (the
// alias_domain query failed) is no reason to fail the lookup.
func (l domainLookup) lookup(ctx context.Context, domain string) (d Domain, target string, ok bool, err error) {
	results, err := l.table.Lookup(ctx, domain)
	if err != nil || len(results) == 0 {
		return Domain{}, "", false, err
	}
	d = Domain{Name: domain, Alias: l.alias, Source: l.source}
	if t, err := normalizeDomain(results[0]); err == nil && t != domain {
		return d, t, true, nil
	}
	if l.aliases != nil {
		t, err := l.aliases.AliasTarget(ctx, domain)
		if err == nil && t != domain {
			return d, t, true, nil
		}
	}
	return d, "", true, nil
}

// Hostname returns the mail host's name as clients are told it.
func (s *Snapshot) Hostname() string { return s.hostname }

// domainInfo packs where a domain was listed: the index of its source
// file in Snapshot.sources (bits 32-62; under 1<<23, so that bits 55-62
// stay zero for domainSet's own use), the line in it (bits 0-31, 0 for a
// database table) and whether it is a virtual alias domain (bit 63).
type domainInfo uint64

func packDomainInfo(source int, line int, alias bool) domainInfo {
	i := domainInfo(source)<<32 | domainInfo(uint32(max(line, 0)))
	if alias {
		i |= 1 << 63
	}
	return i
}

func (i domainInfo) source() int { return int(i >> 32 & (1<<31 - 1)) }
func (i domainInfo) line() int   { return int(uint32(i)) }
func (i domainInfo) alias() bool { return i&(1<<63) != 0 }

// domain unpacks the Domain named name.
func (s *Snapshot) domain(name string, i domainInfo) Domain {
	src := hostfs.Pos{File: s.sources[i.source()], Line: i.line()}.String()
	return Domain{Name: name, AliasOf: s.aliasOf[name], Alias: i.alias(), Source: src}
}

// Domains returns the enumerated hosted domains, sorted by name.
func (s *Snapshot) Domains() []Domain {
	out := make([]Domain, 0, s.domains.len())
	for name, i := range s.domains.all() {
		out = append(out, s.domain(name, i))
	}
	slices.SortFunc(out, func(a, b Domain) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// NumDomains returns how many domains Domains would return, without
// making the list.
func (s *Snapshot) NumDomains() int { return s.domains.len() }

// ListedDomain tells whether domain (lower-case A-labels) is one of the
// enumerated hosted domains, without asking any database or allocating,
// and names the domain whose mailboxes its addresses reach when the
// database says so.
func (s *Snapshot) ListedDomain(domain string) (aliasOf string, ok bool) {
	if _, ok := s.domains.get(domain); !ok {
		return "", false
	}
	return s.aliasOf[domain], true
}

// AliasTargets returns the alias domains whose target the database
// names, each mapped to its target.
func (s *Snapshot) AliasTargets() map[string]string { return maps.Clone(s.aliasOf) }

// DomainsListed reports whether Domains is complete: false when some source
// of domains could not be enumerated, so that Lookup may find more.
func (s *Snapshot) DomainsListed() bool { return s.listed }

// Endpoints returns the servers to advertise, best first: IMAP before POP3
// before SMTP, and for each, implicit TLS before STARTTLS (RFC 8314).
func (s *Snapshot) Endpoints() []Endpoint { return slices.Clone(s.endpoints) }

// Certificates returns the certificates the servers present.
func (s *Snapshot) Certificates() []Certificate { return slices.Clone(s.certs) }

// Warnings returns what the admin should know, one sentence each.
func (s *Snapshot) Warnings() []string { return slices.Clone(s.warnings) }

// DomainWarnings returns the warnings about the sources of hosted domains:
// a table that cannot be read, listed or reached, a table type that
// cannot be read at all (naming its file:line), a stale compiled table.
// They are also among Warnings.
func (s *Snapshot) DomainWarnings() []string { return slices.Clone(s.domainWarnings) }

// Files returns the host paths of every file the Snapshot was built from,
// sorted: configuration files and their includes, lookup tables (and
// their compiled forms), certificates and keys, option files. Some may not
// exist (yet). A change to any of them may change the Snapshot.
func (s *Snapshot) Files() []string { return slices.Clone(s.files) }

// Globs returns host path patterns (Dovecot's !include wildcards) whose
// new matches would change the Snapshot too.
func (s *Snapshot) Globs() []string { return slices.Clone(s.globs) }

// Unreachable returns the host paths of the lookup tables that could not
// be listed when the Snapshot was built: a database outage, or a table
// file that exists but cannot be read.
// Their domains are those the previous Snapshot listed, if any.
func (s *Snapshot) Unreachable() []string { return slices.Clone(s.unreachable) }

// CanLookup reports whether Lookup may find domains beyond Domains: some
// source of domains (a database table) can be asked about one domain.
func (s *Snapshot) CanLookup() bool { return len(s.lookups) > 0 }

// Lookup tells whether the host receives mail for domain (lower-case
// A-labels). It answers from the enumerated list first and asks the
// database tables only when the list lacks the domain.
func (s *Snapshot) Lookup(ctx context.Context, domain string) (Domain, bool, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if i, ok := s.domains.get(domain); ok {
		return s.domain(domain, i), true, nil
	}
	var errs []error
	for _, l := range s.lookups {
		d, target, ok, err := l.lookup(ctx, domain)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			if target != "" && s.hostedTarget(ctx, target) {
				d.AliasOf = target
			}
			return d, true, nil
		}
	}
	if len(errs) > 0 {
		return Domain{}, false, errors.Join(errs...)
	}
	return Domain{}, false, nil
}

// hostedTarget reports whether the target of an alias domain found by a
// per-request lookup is hosted: listed, or found by a table (with no
// further alias resolution).
func (s *Snapshot) hostedTarget(ctx context.Context, target string) bool {
	if _, ok := s.domains.get(target); ok {
		return true
	}
	for _, l := range s.lookups {
		if r, err := l.table.Lookup(ctx, target); err == nil && len(r) > 0 {
			return true
		}
	}
	return false
}

// Close releases the database connections the Snapshot's lookups hold.
// Call it once no reader uses the Snapshot any more.
func (s *Snapshot) Close() error {
	var errs []error
	for _, c := range s.closers {
		if err := c(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// jsonSnapshot is the documented JSON form of a Snapshot (README.md).
type jsonSnapshot struct {
	Hostname      string        `json:"hostname"`
	Domains       []Domain      `json:"domains"`
	DomainsListed bool          `json:"domains_listed"`
	Endpoints     []Endpoint    `json:"endpoints"`
	Certificates  []Certificate `json:"certificates"`
	Warnings      []string      `json:"warnings"`
	Groupware     *Groupware    `json:"groupware,omitempty"`
}

// MarshalJSON encodes the Snapshot in the form README.md documents.
func (s *Snapshot) MarshalJSON() ([]byte, error) {
	doc := jsonSnapshot{
		Hostname:      s.hostname,
		Domains:       s.Domains(),
		DomainsListed: s.listed,
		Endpoints:     s.endpoints,
		Certificates:  s.certs,
		Warnings:      s.warnings,
		Groupware:     s.groupware.orNil(),
	}
	if doc.Endpoints == nil {
		doc.Endpoints = []Endpoint{}
	}
	if doc.Certificates == nil {
		doc.Certificates = []Certificate{}
	}
	if doc.Warnings == nil {
		doc.Warnings = []string{}
	}
	return json.Marshal(doc)
}
