package serve

import (
	"encoding/xml"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/render"
)

// TestProfileRequestText: a signed profile shows the mail host's name as
// "Verified", so what it carries from the request is a plain address and
// nothing else; bidi and other format characters are refused outright.
func TestProfileRequestText(t *testing.T) {
	dir := t.TempDir()
	ca := syntheticTree(t, dir)
	caFile := dir + "/ca.pem"
	writeFile(t, caFile, ca)
	site := buildSite(t, dir, "")
	if !site.Signed() {
		t.Fatal("the synthetic site does not sign profiles")
	}
	var store Store
	store.Swap(site)
	h := NewHandler(&store, nil)
	for _, tt := range []struct {
		name, query string
		status      int
		address     string // the EmailAddress the profile carries ("": none)
		absent      string // text the profile must not carry
	}{
		{"plain address", "emailaddress=fred%40example.com", 200, "fred@example.com", ""},
		{"quoted local part", "emailaddress=" + url.QueryEscape(`"IT security update required"@example.com`), 200, "", "security"},
		{"display name dropped", "emailaddress=fred%40example.com&name=" + url.QueryEscape("Install the IT security update"), 200, "fred@example.com", "security"},
		{"right-to-left override in name", "emailaddress=fred%40example.com&name=" + url.QueryEscape("Fred \u202egpj.exe"), 400, "", ""},
		{"isolate in name", "emailaddress=fred%40example.com&name=" + url.QueryEscape("Fred\u2067x\u2069"), 400, "", ""},
		{"zero-width space in name", "emailaddress=fred%40example.com&name=" + url.QueryEscape("Fr\u200bed"), 400, "", ""},
		{"line separator in name", "emailaddress=fred%40example.com&name=" + url.QueryEscape("Fred\u2028Support"), 400, "", ""},
		{"noncharacter in name", "emailaddress=fred%40example.com&name=" + url.QueryEscape("Fred\ufdd0"), 400, "", ""},
		{"right-to-left override in address", "emailaddress=" + url.QueryEscape("fred\u202e@example.com"), 400, "", ""},
		{"right-to-left override in quotes", "emailaddress=" + url.QueryEscape("\"fred\u202e\"@example.com"), 400, "", ""},
		{"accented name is fine", "emailaddress=fred%40example.com&name=" + url.QueryEscape("José Müller-Łukasz"), 200, "fred@example.com", "José"},
	} {
		w := serveRecorded(h, "GET", "autoconfig.example.com", "/mobileconfig?"+tt.query, nil, nil)
		if w.Code != tt.status {
			t.Errorf("%s: %d, want %d\n%s", tt.name, w.Code, tt.status, w.Body.String())
			continue
		}
		if w.Code != 200 {
			continue
		}
		content := cmsContent(t, w.Body.Bytes(), caFile)
		v, err := decodePlist(content)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		mail := v.(map[string]any)["PayloadContent"].([]any)[0].(map[string]any)
		if got, _ := mail["EmailAddress"].(string); got != tt.address {
			t.Errorf("%s: EmailAddress %q, want %q", tt.name, got, tt.address)
		}
		if tt.absent != "" && strings.Contains(string(content), tt.absent) {
			t.Errorf("%s: the signed profile carries %q:\n%s", tt.name, tt.absent, content)
		}
	}
}

// TestAutoconfigNoSiblings: the document for an alias domain names it and
// the domain its users log in at, never the other aliases of that domain.
func TestAutoconfigNoSiblings(t *testing.T) {
	site := syntheticSite(t)
	for _, tt := range []struct {
		name, aliasOf string
		want          []string
	}{
		{"example.com", "", []string{"example.com"}},
		{"alias-one.example", "example.com", []string{"alias-one.example", "example.com"}},
		{"alias-two.example", "example.com", []string{"alias-two.example", "example.com"}},
	} {
		sd := site.siteDomain(tt.name, tt.aliasOf)
		doc := sd.autoconfig.t.Append(nil, render.Address{Local: "%EMAILLOCALPART%", Domain: sd.name, LoginDomain: sd.loginDomain})
		var cfg struct {
			Domains []string `xml:"emailProvider>domain"`
		}
		if err := xml.Unmarshal(doc, &cfg); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(cfg.Domains, tt.want) {
			t.Errorf("autoconfig for %s (alias of %q) lists %q, want %q", tt.name, tt.aliasOf, cfg.Domains, tt.want)
		}
	}
}
