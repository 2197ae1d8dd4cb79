package render

import (
	"encoding/xml"
	"fmt"
	"strings"

	"github.com/mailautoconf/mailautoconf/discover"
)

// The Mozilla autoconfig document, format 1.1 (PROTOCOLS.md §2.3). Only the
// elements clients act on are written: no password, no documentation or
// clientConfigUpdate URL that this host might not serve.
type clientConfig struct {
	XMLName  xml.Name      `xml:"clientConfig"`
	Version  string        `xml:"version,attr"`
	Provider emailProvider `xml:"emailProvider"`
}

type emailProvider struct {
	ID               string       `xml:"id,attr"`
	Domains          []string     `xml:"domain"`
	DisplayName      string       `xml:"displayName"`
	DisplayShortName string       `xml:"displayShortName"`
	Incoming         []mailServer `xml:"incomingServer"`
	Outgoing         []mailServer `xml:"outgoingServer"`
}

type mailServer struct {
	Type           string    `xml:"type,attr"`
	Hostname       string    `xml:"hostname"`
	Port           int       `xml:"port"`
	SocketType     string    `xml:"socketType"`
	Authentication []string  `xml:"authentication"`
	Username       string    `xml:"username"`
	POP3           *pop3Opts `xml:"pop3,omitempty"`
}

type pop3Opts struct {
	LeaveMessagesOnServer bool `xml:"leaveMessagesOnServer"`
	DownloadOnBiff        bool `xml:"downloadOnBiff"`
}

// Autoconfig renders the Mozilla autoconfig document (config-v1.1.xml) for
// the snapshot. The requested domain (FieldDomain) is the provider id, the
// first <domain> and the display name; extraDomains are further literal
// <domain> entries (the alias domains of the same mailbox domain, not the
// requested domain itself).
//
// Every endpoint with TLS is listed, best first, each with the
// authentication values its SASL mechanisms allow. User names are client
// placeholders, so the document is the same with or without an
// emailaddress parameter: %EMAILLOCALPART% where Dovecot wants the local
// part; where it wants the whole address, %EMAILADDRESS% — unless the
// snapshot has alias domains whose users log in at their target domain,
// where it is %EMAILLOCALPART%@ followed by the login domain
// (FieldLoginDomain). Thunderbird replaces only the first occurrence of a
// placeholder, so none appears twice in one value.
//
// It fails with ErrNoEndpoints when there is no IMAP or POP3 server or no
// SMTP server with TLS: Thunderbird and Thunderbird for Android reject a
// document without both.
func Autoconfig(s *discover.Snapshot, extraDomains []string) (*Template, error) {
	eps, err := advertised(s)
	if err != nil {
		return nil, err
	}
	domain := Marker(FieldDomain)
	p := emailProvider{
		ID:               domain,
		Domains:          append([]string{domain}, extraDomains...),
		DisplayName:      domain,
		DisplayShortName: domain,
	}
	aliasLogins := hasAliasTargets(s)
	for _, e := range eps {
		srv := mailServer{
			Type:           e.Protocol,
			Hostname:       e.Host,
			Port:           e.Port,
			SocketType:     socketType(e.Security),
			Authentication: passwordAuth(e.Auth),
			Username:       autoconfigUsername(e, aliasLogins),
		}
		switch e.Protocol {
		case "imap":
			p.Incoming = append(p.Incoming, srv)
		case "pop3":
			srv.POP3 = &pop3Opts{LeaveMessagesOnServer: true, DownloadOnBiff: true}
			p.Incoming = append(p.Incoming, srv)
		case "smtp":
			if len(srv.Authentication) == 0 {
				srv.Authentication = []string{"none"} // submission without SASL: outgoing only
			}
			p.Outgoing = append(p.Outgoing, srv)
		}
	}
	if len(p.Incoming) == 0 || len(p.Outgoing) == 0 {
		return nil, fmt.Errorf("autoconfig: %w: %d IMAP/POP3 and %d SMTP servers with TLS", ErrNoEndpoints, len(p.Incoming), len(p.Outgoing))
	}
	for i := range p.Incoming {
		if len(p.Incoming[i].Authentication) == 0 {
			// Dovecot always accepts the protocol's own LOGIN / USER-PASS.
			p.Incoming[i].Authentication = []string{authCleartext}
		}
	}
	b, err := marshalXML(clientConfig{Version: "1.1", Provider: p})
	if err != nil {
		return nil, fmt.Errorf("autoconfig: %w", err)
	}
	return Compile(ContentTypeXML, SyntaxXML, b), nil
}

func socketType(sec discover.Security) string {
	if sec == discover.SecurityTLS {
		return "SSL"
	}
	return "STARTTLS"
}

func autoconfigUsername(e discover.Endpoint, aliasLogins bool) string {
	switch {
	case loginField(e) == FieldLocal:
		return discover.UsernameLocalPart
	case aliasLogins:
		return discover.UsernameLocalPart + "@" + Marker(FieldLoginDomain)
	}
	return discover.UsernameAddress
}

// marshalXML encodes v indented, after the XML declaration, with a final
// newline.
func marshalXML(v any) ([]byte, error) {
	var b strings.Builder
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return []byte(b.String()), nil
}
