package render

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"strings"

	"golang.org/x/net/idna"

	"github.com/mailautoconf/mailautoconf/discover"
)

// Groupware returns the proven service speaking protocol
// (discover.ServiceCalDAV, ServiceCardDAV or ServiceActiveSync) with its
// host as a lower-case A-label, as the mail endpoints are advertised. A
// service whose host is not a valid name is not advertised.
func Groupware(s *discover.Snapshot, protocol string) (discover.Service, bool) {
	svc, ok := s.Service(protocol)
	if !ok {
		return discover.Service{}, false
	}
	host, err := idna.Lookup.ToASCII(strings.TrimSuffix(svc.Host, "."))
	if err != nil || host == "" {
		return discover.Service{}, false
	}
	svc.Host = strings.ToLower(host)
	return svc, true
}

// The mobilesync settings response (MS-ASCMD §2.2.1.1, §4.2.4, schema
// §6.2): the root in the 2006 response namespace, Response and everything
// below it in the mobilesync namespace, in the schema's order.
type mobileSyncDocument struct {
	XMLName  xml.Name           `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response mobileSyncResponse `xml:"http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006 Response"`
}

type mobileSyncResponse struct {
	Culture string           `xml:"Culture"`
	User    mobileSyncUser   `xml:"User"`
	Action  mobileSyncAction `xml:"Action"`
}

type mobileSyncUser struct {
	EMailAddress string `xml:"EMailAddress"`
}

type mobileSyncAction struct {
	Servers []mobileSyncServer `xml:"Settings>Server"`
}

type mobileSyncServer struct {
	Type string `xml:"Type"`
	URL  string `xml:"Url"`
	Name string `xml:"Name"`
}

// MobileSync renders the ActiveSync Autodiscover answer (mobilesync
// response schema) for a host that proves it serves ActiveSync: Culture
// en:us, the address (FieldAddress) as EMailAddress, and one Server of
// Type MobileSync whose Url and Name are the ActiveSync URL (MS-ASCMD
// §2.2.3.120.1: Name is the URL for MobileSync). DisplayName, optional,
// is left out: the server does not know the user's name. It returns false
// when ActiveSync is not proven; the answer is then MobileSyncNoProvider.
func MobileSync(s *discover.Snapshot) (*Template, bool) {
	svc, ok := Groupware(s, discover.ServiceActiveSync)
	if !ok {
		return nil, false
	}
	b := mustMarshalXML(mobileSyncDocument{Response: mobileSyncResponse{
		Culture: "en:us",
		User:    mobileSyncUser{EMailAddress: Marker(FieldAddress)},
		Action: mobileSyncAction{Servers: []mobileSyncServer{
			{Type: "MobileSync", URL: svc.URL(), Name: svc.URL()},
		}},
	}})
	return Compile(ContentTypeXML, SyntaxXML, b), true
}

// AutodiscoverJSONActiveSync renders the Autodiscover v2 answer for
// Protocol=ActiveSync (PROTOCOLS.md §5) when the host proves it serves
// ActiveSync: the ActiveSync URL, spelled as Exchange does. It returns
// false otherwise; the answer is then AutodiscoverJSONError.
func AutodiscoverJSONActiveSync(s *discover.Snapshot) (*Template, bool) {
	svc, ok := Groupware(s, discover.ServiceActiveSync)
	if !ok {
		return nil, false
	}
	b, err := json.Marshal(struct {
		Protocol string
		URL      string `json:"Url"`
	}{"ActiveSync", svc.URL()})
	if err != nil {
		panic(fmt.Sprintf("render: encode autodiscover.json: %v", err))
	}
	return Compile(ContentTypeJSON, SyntaxJSON, b), true
}

// groupwareRow is one line of the settings page's groupware table.
type groupwareRow struct {
	Service string
	URL     string // may hold a marker
	User    string // a marker
}

// groupwareRows returns the settings page's lines for the proven
// services: CalDAV and CardDAV with the user's principal URL (the user
// name inside is the one the mail server takes, user), ActiveSync with
// its URL.
func groupwareRows(s *discover.Snapshot, user Field) []groupwareRow {
	var rows []groupwareRow
	for _, g := range []struct{ protocol, name string }{
		{discover.ServiceCalDAV, "CalDAV (calendars)"},
		{discover.ServiceCardDAV, "CardDAV (contacts)"},
		{discover.ServiceActiveSync, "Exchange ActiveSync"},
	} {
		svc, ok := Groupware(s, g.protocol)
		if !ok {
			continue
		}
		u := svc.URL()
		if g.protocol != discover.ServiceActiveSync {
			u = strings.TrimSuffix(u, svc.Path) + svc.PrincipalPath(Marker(user))
		}
		rows = append(rows, groupwareRow{Service: g.name, URL: u, User: Marker(user)})
	}
	return rows
}
