package render

import (
	"encoding/xml"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/mailautoconf/mailautoconf/discover"
)

// Namespaces of the Autodiscover responses (PROTOCOLS.md §3.3, §4).
const (
	NamespaceResponse   = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
	NamespaceOutlook    = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
	NamespaceMobileSync = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
)

// The POX settings response: the root in the 2006 namespace, Response and
// everything below it in the 2006a namespace.
type poxDocument struct {
	XMLName  xml.Name    `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response poxResponse `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Response"`
}

type poxResponse struct {
	User    poxUser    `xml:"User"`
	Account poxAccount `xml:"Account"`
}

type poxUser struct {
	DisplayName string `xml:"DisplayName"`
}

type poxAccount struct {
	AccountType string        `xml:"AccountType"`
	Action      string        `xml:"Action"`
	Protocols   []poxProtocol `xml:"Protocol"`
}

// A poxProtocol is one server. SPA and SSL default to on, so both are
// always written; Encryption, when present, overrides SSL.
type poxProtocol struct {
	Type           string `xml:"Type"`
	Server         string `xml:"Server"`
	Port           int    `xml:"Port"`
	DomainRequired string `xml:"DomainRequired"`
	LoginName      string `xml:"LoginName"`
	SPA            string `xml:"SPA"`
	SSL            string `xml:"SSL"`
	Encryption     string `xml:"Encryption"`
	AuthRequired   string `xml:"AuthRequired"`
	UsePOPAuth     string `xml:"UsePOPAuth,omitempty"`
	SMTPLast       string `xml:"SMTPLast,omitempty"`
}

// AutodiscoverPOX renders the Outlook POX settings response (response
// schema 2006a) for an address: one Protocol for the best IMAP, POP3 and
// SMTP server with TLS each, logging in as the address Dovecot expects
// (FieldLoginAddress, or FieldLocal for a local-part login), DisplayName
// the address (FieldAddress).
//
// TLS is spelled as PROTOCOLS.md §3.3 chooses: implicit TLS is SSL on with
// Encryption SSL, STARTTLS is SSL on with Encryption TLS, so Outlook never
// tries STARTTLS on 993 or implicit TLS on 587. SPA (NTLM) is off, since
// its default is on.
//
// It fails with ErrNoEndpoints when no server has TLS.
func AutodiscoverPOX(s *discover.Snapshot) (*Template, error) {
	eps, err := advertised(s)
	if err != nil {
		return nil, err
	}
	acct := poxAccount{AccountType: "email", Action: "settings"}
	for _, e := range bestOfEach(eps) {
		p := poxProtocol{
			Type:           strings.ToUpper(e.Protocol),
			Server:         e.Host,
			Port:           e.Port,
			DomainRequired: "off",
			LoginName:      Marker(loginField(e)),
			SPA:            "off",
			SSL:            "on",
			Encryption:     poxEncryption(e.Security),
			AuthRequired:   "on",
		}
		if e.Protocol == "smtp" {
			p.UsePOPAuth, p.SMTPLast = "off", "off"
		}
		acct.Protocols = append(acct.Protocols, p)
	}
	if len(acct.Protocols) == 0 {
		return nil, fmt.Errorf("autodiscover: %w", ErrNoEndpoints)
	}
	b, err := marshalXML(poxDocument{Response: poxResponse{
		User:    poxUser{DisplayName: Marker(FieldAddress)},
		Account: acct,
	}})
	if err != nil {
		return nil, fmt.Errorf("autodiscover: %w", err)
	}
	return Compile(ContentTypeXML, SyntaxXML, b), nil
}

func poxEncryption(sec discover.Security) string {
	if sec == discover.SecurityTLS {
		return "SSL"
	}
	return "TLS"
}

// The error form (PROTOCOLS.md §3.5): Response has no namespace of its own
// for POX (it is in the root's), and the mobilesync namespace for
// ActiveSync.
type poxErrorDocument struct {
	XMLName  xml.Name         `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response poxErrorResponse `xml:"Response"`
}

type mobileSyncErrorDocument struct {
	XMLName  xml.Name         `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response poxErrorResponse `xml:"http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006 Response"`
}

type poxErrorResponse struct {
	Error poxError `xml:"Error"`
}

type poxError struct {
	Time      string `xml:"Time,attr"`
	ID        string `xml:"Id,attr"`
	ErrorCode int    `xml:"ErrorCode"`
	Message   string `xml:"Message"`
	DebugData string `xml:"DebugData"`
}

// AutodiscoverPOXError returns the POX error document (PROTOCOLS.md §3.5)
// for code: 600 for a request that cannot be read, 601 for a response
// schema not offered, 603 for a backend failure. It is served with HTTP 200
// and Content-Type ContentTypeXML. The Time and Id attributes Exchange
// writes are fixed (midnight, a hash of code and message), so the bytes
// are the same every time.
func AutodiscoverPOXError(code int, message string) []byte {
	return mustMarshalXML(poxErrorDocument{Response: errorResponse(code, message)})
}

// MobileSyncNoProvider returns the ActiveSync (mobilesync schema) answer of
// a host without ActiveSync: error 601, "no provider for this schema", in
// the mobilesync namespace (PROTOCOLS.md §4). The device then offers IMAP.
func MobileSyncNoProvider() []byte {
	return mustMarshalXML(mobileSyncErrorDocument{
		Response: errorResponse(601, "ActiveSync is not offered for this mailbox; use IMAP."),
	})
}

func errorResponse(code int, message string) poxErrorResponse {
	h := fnv.New32a()
	fmt.Fprintf(h, "%d %s", code, message)
	return poxErrorResponse{Error: poxError{
		Time:      "00:00:00.0000000",
		ID:        fmt.Sprint(h.Sum32()),
		ErrorCode: code,
		Message:   message,
	}}
}

// mustMarshalXML encodes a document of fixed strings, which cannot fail:
// the encoder escapes whatever text it is given.
func mustMarshalXML(v any) []byte {
	b, err := marshalXML(v)
	if err != nil {
		panic(fmt.Sprintf("render: encode %T: %v", v, err))
	}
	return b
}
