package render

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"strings"

	"github.com/mailautoconf/mailautoconf/discover"
)

//go:embed page.html
var pageHTML string

var pageTemplate = template.Must(template.New("page").Parse(pageHTML))

// pageData is what page.html shows. Settings is empty on the form page.
type pageData struct {
	Hostname     string
	Address      string // Marker(FieldAddress)
	AddressQuery string // Marker(FieldAddressQuery)
	Settings     []settingsTable
	Groupware    []groupwareRow // proven CalDAV, CardDAV, ActiveSync
	ProfileQR    string         // Marker(FieldProfileQR)
}

type settingsTable struct {
	Title string
	Rows  []settingsRow
}

type settingsRow struct {
	Protocol, Host string
	Port           int
	Security       string
	User           string // a marker
	Auth           string
}

// PageForm renders the page at "/": a form that asks for an e-mail address
// (GET, field emailaddress, back to "/"). It needs no JavaScript.
func PageForm(s *discover.Snapshot) ([]byte, error) {
	return executePage(pageData{Hostname: s.Hostname()})
}

// PageSettings renders the page that shows an address's settings: a table
// of the incoming servers and one of the outgoing servers with TLS, best
// first, with the user name each expects (the login address or local
// part), and a link to the Apple profile at
// /mobileconfig?emailaddress=<FieldAddressQuery>. When the host proves it
// serves CalDAV, CardDAV or ActiveSync (discover.Snapshot.Service), a
// third table gives their URLs: the user's principal URL for CalDAV and
// CardDAV, the endpoint for ActiveSync, with the same user name as the
// best incoming mail server. After the profile link is a FieldProfileQR
// hole for the link's QR code (Template.AppendQR, ProfileQR): empty with
// Append.
func PageSettings(s *discover.Snapshot) (*Template, error) {
	eps, err := advertised(s)
	if err != nil {
		return nil, err
	}
	in := settingsTable{Title: "Incoming mail"}
	out := settingsTable{Title: "Outgoing mail (SMTP)"}
	for _, e := range eps {
		row := settingsRow{
			Protocol: strings.ToUpper(e.Protocol),
			Host:     e.Host,
			Port:     e.Port,
			Security: map[discover.Security]string{discover.SecurityTLS: "SSL/TLS", discover.SecuritySTARTTLS: "STARTTLS"}[e.Security],
			User:     Marker(loginField(e)),
			Auth:     passwordLabel(passwordAuth(e.Auth)),
		}
		if e.Protocol == "smtp" {
			out.Rows = append(out.Rows, row)
		} else {
			in.Rows = append(in.Rows, row)
		}
	}
	data := pageData{Hostname: s.Hostname(), Address: Marker(FieldAddress), AddressQuery: Marker(FieldAddressQuery), ProfileQR: Marker(FieldProfileQR)}
	for _, t := range []settingsTable{in, out} {
		if len(t.Rows) > 0 {
			data.Settings = append(data.Settings, t)
		}
	}
	if len(data.Settings) == 0 {
		return nil, fmt.Errorf("settings page: %w", ErrNoEndpoints)
	}
	// Groupware logs in as the mail server does (SOGo authenticates
	// against the same users): the best incoming server's user name.
	if in := bestOfEach(eps); len(in) > 0 && in[0].Protocol != "smtp" {
		data.Groupware = groupwareRows(s, loginField(in[0]))
	}
	b, err := executePage(data)
	if err != nil {
		return nil, err
	}
	return Compile(ContentTypeHTML, SyntaxHTML, b), nil
}

// passwordLabel names the first authentication value as mail programs'
// account dialogs do.
func passwordLabel(auth []string) string {
	if len(auth) == 0 {
		return "None"
	}
	switch auth[0] {
	case authCleartext:
		return "Normal password"
	case authEncrypted:
		return "Encrypted password"
	}
	return auth[0]
}

func executePage(d pageData) ([]byte, error) {
	var b bytes.Buffer
	if err := pageTemplate.ExecuteTemplate(&b, "page", d); err != nil {
		return nil, fmt.Errorf("render page: %w", err)
	}
	return b.Bytes(), nil
}
