package render

import (
	"encoding/xml"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

func TestFieldAddressQuery(t *testing.T) {
	tests := []struct {
		local string
		want  string // as the href holds it
	}{
		{"fred", "/p?emailaddress=fred%40example.com"},
		{"a+b", "/p?emailaddress=a%2Bb%40example.com"},
		{`"a b&c#d<e>"`, "/p?emailaddress=%22a+b%26c%23d%3Ce%3E%22%40example.com"},
	}
	tmpl := Compile(ContentTypeHTML, SyntaxHTML, []byte(`<a href="/p?emailaddress=`+Marker(FieldAddressQuery)+`">x</a>`))
	for _, tt := range tests {
		a := Address{Local: tt.local, Domain: "example.com"}
		doc, err := html.Parse(strings.NewReader(string(tmpl.Append(nil, a))))
		if err != nil {
			t.Fatal(err)
		}
		href := attr(nodes(doc, "a")[0], "href")
		if href != tt.want {
			t.Errorf("href for %s = %q, want %q", a, href, tt.want)
		}
		u, err := url.Parse(href)
		if err != nil || u.Query().Get("emailaddress") != a.String() {
			t.Errorf("href %q decodes to %q, want %q", href, u.Query().Get("emailaddress"), a.String())
		}
	}
}

// FuzzPOXEscaping feeds arbitrary local parts through the POX template: the
// document must stay well-formed and give back the local part (after the
// encoder's replacement of characters XML cannot hold; it writes CR and LF
// as references, so they survive).
func FuzzPOXEscaping(f *testing.F) {
	for _, s := range []string{"fred", `"a<b>&"`, `"]]>"`, "\x00\xff", `"'\"</LoginName><x>"`, "é@", "\uFFFE"} {
		f.Add(s)
	}
	s := buildTree(f, synthetic(f))
	tmpl, err := AutodiscoverPOX(s)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, local string) {
		a := Address{Local: local, Domain: "example.net"}
		var doc poxDoc
		if err := xml.Unmarshal(tmpl.Append(nil, a), &doc); err != nil {
			t.Fatalf("POX for local part %q does not parse: %v", local, err)
		}
		if len(doc.Response.Account.Protocol) != 3 {
			t.Fatalf("POX for %q has %d Protocols", local, len(doc.Response.Account.Protocol))
		}
		want := strings.Map(func(r rune) rune {
			if isXMLChar(r) {
				return r
			}
			return '\uFFFD'
		}, local) + "@example.net"
		if got := doc.Response.User.DisplayName; got != want {
			t.Errorf("DisplayName = %q, want %q", got, want)
		}
	})
}

// isXMLChar is the Char production of XML 1.0.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}
