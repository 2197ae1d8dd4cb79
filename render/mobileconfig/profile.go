package mobileconfig

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/render"
)

// ContentType is the media type of a profile, signed or not.
const ContentType = "application/x-apple-aspen-config"

// ErrNoServer is returned (wrapped) when the host advertises no incoming or
// no outgoing server a profile can describe: a Mail payload needs both.
var ErrNoServer = errors.New("mobileconfig: no server a profile can describe")

// Profile returns the unsigned .mobileconfig plist for the address; name is
// the optional display name. UUIDs derived from (address, snapshot
// hostname) — stable, not random.
//
// When the host proves it serves CalDAV and CardDAV
// (discover.Snapshot.Service), the profile also has a CalDAV and a
// CardDAV payload for the same user name and password as the mail
// account.
func Profile(s *discover.Snapshot, a render.Address, name string) ([]byte, error) {
	in, err := snapshotInputs(s)
	if err != nil {
		return nil, err
	}
	return in.profile(a, name)
}

// snapshotInputs is inputsOf for a Snapshot, with its proven CalDAV and
// CardDAV services.
func snapshotInputs(s *discover.Snapshot) (profileInputs, error) {
	p, err := inputsOf(s.Hostname(), s.Endpoints())
	if err != nil {
		return p, err
	}
	for _, proto := range []string{discover.ServiceCalDAV, discover.ServiceCardDAV} {
		if svc, ok := render.Groupware(s, proto); ok {
			p.dav = append(p.dav, svc)
		}
	}
	return p, nil
}

// profile is Profile for the host name and endpoints of a Snapshot.
func profile(hostname string, eps []discover.Endpoint, a render.Address, name string) ([]byte, error) {
	in, err := inputsOf(hostname, eps)
	if err != nil {
		return nil, err
	}
	return in.profile(a, name)
}

// profileInputs is everything of a snapshot a profile shows: the host name
// and the two servers it describes.
type profileInputs struct {
	host        string // lower case, no trailing dot
	in, out     discover.Endpoint
	accountType string // EmailTypeIMAP or EmailTypePOP
	// dav are the proven CalDAV and CardDAV services, in that order.
	dav []discover.Service
}

// inputsOf picks what a profile for the host describes, or fails with
// ErrNoServer.
func inputsOf(hostname string, eps []discover.Endpoint) (profileInputs, error) {
	p := profileInputs{host: strings.ToLower(strings.TrimSuffix(hostname, ".")), accountType: "EmailTypeIMAP"}
	var ok bool
	if p.in, ok = pick(eps, "imap"); !ok {
		p.in, ok = pick(eps, "pop3")
		p.accountType = "EmailTypePOP"
	}
	if !ok {
		return profileInputs{}, fmt.Errorf("%w: no IMAP or POP3 server with TLS or STARTTLS", ErrNoServer)
	}
	if p.out, ok = pick(eps, "smtp"); !ok {
		return profileInputs{}, fmt.Errorf("%w: no SMTP submission server with TLS or STARTTLS", ErrNoServer)
	}
	return p, nil
}

// key returns a string that differs whenever a profile made from p would:
// every field server and profile read, length-prefixed.
func (p profileInputs) key() string {
	var b []byte
	add := func(s string) { b = append(strconv.AppendInt(b, int64(len(s)), 10), ':'); b = append(b, s...) }
	add(p.host)
	add(p.accountType)
	for _, e := range []discover.Endpoint{p.in, p.out} {
		add(e.Host)
		add(strconv.Itoa(e.Port))
		add(authentication(e.Auth))
		add(string(e.Username))
	}
	// Nothing is added without groupware, so a host without it keeps
	// the keys (and the cached signed profiles) it had.
	for _, svc := range p.dav {
		add(svc.Protocol)
		add(svc.Host)
		add(strconv.Itoa(svc.Port))
		add(svc.Path)
	}
	return string(b)
}

// profile writes the plist for a, with the display name when name is not
// empty. An address with an empty Local part gives the domain's profile:
// no address and no user names, which the device asks for when the
// profile is installed.
func (p profileInputs) profile(a render.Address, name string) ([]byte, error) {
	host := p.host
	key := profileKey(host, a)
	configUUID := derivedUUID(key, "configuration")
	mailUUID := derivedUUID(key, "mail")
	ident := "mailautoconf." + strings.ToLower(configUUID)
	if host != "" {
		ident = reverseDNS(host) + "." + ident
	}
	kinds := "IMAP and SMTP"
	if p.accountType == "EmailTypePOP" {
		kinds = "POP3 and SMTP"
	}

	var mail dict
	var desc, display, mailDesc, mailDisplay string
	if a.Local == "" {
		// The domain's profile: nothing from the request but the hosted
		// domain. Mail asks for the address and the user name.
		mail = dict{
			{"EmailAccountDescription", a.Domain},
			{"EmailAccountType", p.accountType},
		}
		mail = append(mail, server("Incoming", p.in, a)...)
		mail = append(mail, server("Outgoing", p.out, a)...)
		mailDesc = kinds + " settings for addresses at " + a.Domain + "; " + userHint(p.in, a)
		mailDisplay = "Mail (" + a.Domain + ")"
		desc = "Sets up a mail account at " + a.Domain + " with the servers of " + host + ". Mail asks for your address and " + userHint(p.in, a)
		display = "Mail account at " + a.Domain
	} else {
		addr := a.String()
		mail = dict{
			{"EmailAccountDescription", addr},
		}
		if name != "" {
			mail = append(mail, entry{"EmailAccountName", name})
		}
		mail = append(mail, dict{
			{"EmailAccountType", p.accountType},
			{"EmailAddress", addr},
		}...)
		mail = append(mail, server("Incoming", p.in, a)...)
		mail = append(mail, server("Outgoing", p.out, a)...)
		mailDesc = kinds + " settings for " + addr
		mailDisplay = "Mail (" + addr + ")"
		desc = "Sets up the mail account " + addr + " with the servers of " + host + "."
		display = "Mail account " + addr
	}
	mail = append(mail, dict{
		{"OutgoingPasswordSameAsIncomingPassword", true},
		{"PayloadDescription", mailDesc},
		{"PayloadDisplayName", mailDisplay},
		{"PayloadIdentifier", ident + ".mail"},
		{"PayloadType", "com.apple.mail.managed"},
		{"PayloadUUID", mailUUID},
		{"PayloadVersion", 1},
	}...)

	content := array{mail}
	for _, svc := range p.dav {
		content = append(content, p.davPayload(svc, a, key, ident))
	}

	profile := dict{
		{"PayloadContent", content},
		{"PayloadDescription", desc},
		{"PayloadDisplayName", display},
		{"PayloadIdentifier", ident},
		{"PayloadOrganization", a.Domain},
		{"PayloadRemovalDisallowed", false},
		{"PayloadType", "Configuration"},
		{"PayloadUUID", configUUID},
		{"PayloadVersion", 1},
	}
	var b bytes.Buffer
	b.Grow(3072)
	if err := writePlist(&b, profile); err != nil {
		return nil, fmt.Errorf("mobileconfig: %w", err)
	}
	return b.Bytes(), nil
}

// davPayload returns the com.apple.caldav.account or
// com.apple.carddav.account payload for svc. The user name is the mail
// account's (the incoming server's), the principal URL the user's own
// (discover.Service.PrincipalPath). A domain's profile has neither: the
// device asks for the user name, and finds the principal from the host
// (the /.well-known/caldav and carddav redirects, RFC 6764). No password.
func (p profileInputs) davPayload(svc discover.Service, a render.Address, key, ident string) dict {
	k, what, typ := "CalDAV", "Calendars", "com.apple.caldav.account"
	if svc.Protocol == discover.ServiceCardDAV {
		k, what, typ = "CardDAV", "Contacts", "com.apple.carddav.account"
	}
	role := strings.ToLower(k)
	port := svc.Port
	if port == 0 {
		port = 443
	}
	var d dict
	var desc string
	if a.Local == "" {
		desc = what + " at " + a.Domain
		d = dict{
			{k + "AccountDescription", desc},
			{k + "HostName", svc.Host},
			{k + "Port", port},
			{k + "UseSSL", true},
		}
	} else {
		user := userName(p.in, a)
		desc = what + " (" + a.String() + ")"
		principal := strings.TrimSuffix(svc.URL(), svc.Path) + svc.PrincipalPath(url.PathEscape(user))
		d = dict{
			{k + "AccountDescription", desc},
			{k + "HostName", svc.Host},
			{k + "Port", port},
			{k + "PrincipalURL", principal},
			{k + "UseSSL", true},
			{k + "Username", user},
		}
	}
	return append(d, dict{
		{"PayloadDescription", k + " settings: " + strings.ToLower(what) + " on " + svc.Host},
		{"PayloadDisplayName", desc},
		{"PayloadIdentifier", ident + "." + role},
		{"PayloadType", typ},
		{"PayloadUUID", derivedUUID(key, role)},
		{"PayloadVersion", 1},
	}...)
}

// userHint tells the user of a domain's profile what user name to type.
func userHint(e discover.Endpoint, a render.Address) string {
	switch {
	case e.Username == discover.UsernameLocalPart:
		return "your user name: the part of your address before the @."
	case loginDomain(a) != a.Domain:
		return "your user name: the part of your address before the @, followed by @" + loginDomain(a) + "."
	}
	return "your user name: your whole address."
}

// pick returns the endpoint of protocol a profile should describe: the
// first (best) with implicit TLS, else the first with STARTTLS, never one
// without TLS.
//
// The Mail payload has one UseSSL flag per server and no way to say
// STARTTLS (PROTOCOLS.md §6.4), so implicit-TLS ports (993, 995, 465) come
// first. When a protocol is offered with STARTTLS only, the profile still
// describes that port, with UseSSL true. Apple Mail speaks TLS from the
// first byte on the implicit-TLS ports and upgrades with STARTTLS on the
// others when SSL is on: Apple's own support article on iCloud Mail server
// settings gives "port 587, SSL required" for a submission server that
// only does STARTTLS, and automx2 writes UseSSL true for STARTTLS servers
// too. UseSSL false would let the client send the password in clear. The
// other choice, no profile for a STARTTLS-only host, would leave its Apple
// users with nothing while every other client is sent to the same port.
func pick(eps []discover.Endpoint, protocol string) (discover.Endpoint, bool) {
	for _, sec := range []discover.Security{discover.SecurityTLS, discover.SecuritySTARTTLS} {
		i := slices.IndexFunc(eps, func(e discover.Endpoint) bool {
			return e.Protocol == protocol && e.Security == sec && e.Host != ""
		})
		if i >= 0 {
			return eps[i], true
		}
	}
	return discover.Endpoint{}, false
}

// server returns the payload keys for one server; dir is "Incoming" or
// "Outgoing". Without a local part (a domain's profile) there is no user
// name.
func server(dir string, e discover.Endpoint, a render.Address) dict {
	user := userName(e, a)
	p := dir + "MailServer"
	d := dict{
		{p + "Authentication", authentication(e.Auth)},
		{p + "HostName", e.Host},
		{p + "PortNumber", e.Port},
		{p + "UseSSL", true}, // pick never returns an endpoint without TLS
	}
	if a.Local == "" {
		return d // a domain's profile: the device asks for the user name
	}
	return append(d, entry{p + "Username", user})
}

// userName is the user name a logs in to e with: the local part, or the
// local part at the login domain.
func userName(e discover.Endpoint, a render.Address) string {
	if e.Username == discover.UsernameLocalPart {
		return a.Local
	}
	return a.Local + "@" + loginDomain(a)
}

func loginDomain(a render.Address) string {
	if a.LoginDomain != "" {
		return a.LoginDomain
	}
	return a.Domain
}

// authentication maps the server's SASL mechanisms to the payload's
// authentication value: the password (PLAIN or LOGIN over TLS) whenever
// the server takes it, challenge-response only when CRAM-MD5 is all it
// offers of the two.
func authentication(mechs []string) string {
	if !slices.Contains(mechs, "PLAIN") && !slices.Contains(mechs, "LOGIN") && slices.Contains(mechs, "CRAM-MD5") {
		return "EmailAuthCRAMMD5"
	}
	return "EmailAuthPassword"
}

// profileKey is what the derived UUIDs depend on: the mail host and the
// address, not the display name or the servers, so a profile for the same
// address always replaces its predecessor.
func profileKey(host string, a render.Address) string {
	return "mailautoconf mobileconfig v1\x00" + host + "\x00" + a.Local + "@" + a.Domain
}

// derivedUUID returns an RFC 9562 version 8 (custom) UUID made from the
// SHA-256 of key and role, in the upper-case form Apple's tools write.
func derivedUUID(key, role string) string {
	sum := sha256.Sum256([]byte(key + "\x00" + role))
	sum[6] = sum[6]&0x0f | 0x80 // version 8
	sum[8] = sum[8]&0x3f | 0x80 // variant 10
	var b [36]byte
	hex.Encode(b[0:8], sum[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], sum[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], sum[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], sum[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], sum[10:16])
	return strings.ToUpper(string(b[:]))
}

// reverseDNS turns mail.example.com into com.example.mail, the form of
// Apple's payload identifiers.
func reverseDNS(host string) string {
	labels := strings.Split(strings.Trim(host, "."), ".")
	slices.Reverse(labels)
	return strings.Join(labels, ".")
}
