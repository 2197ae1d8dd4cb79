package serve

import (
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodePOXRequest(t *testing.T) {
	sample, err := os.ReadFile("../testdata/spec/requests/outlook-pox-request.xml")
	if err != nil {
		t.Fatal(err)
	}
	eas, err := os.ReadFile("../testdata/spec/requests/activesync-request.xml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, body  string
		email, sch  string
		errContains string
	}{
		{name: "outlook sample", body: string(sample), email: "fred@example.com", sch: schemaOutlook},
		{name: "activesync sample", body: string(eas), email: "fred@example.com", sch: schemaMobileSync},
		{name: "no namespace, odd case, BOM", body: "\ufeff  <autodiscover><request><emailaddress> a@b.example </emailaddress></request></autodiscover>", email: "a@b.example", sch: schemaOutlook},
		{name: "mobilesync namespace, no schema", body: `<Autodiscover xmlns="` + nsMobileSyncReq + `"><Request><EMailAddress>a@b.c</EMailAddress></Request></Autodiscover>`, email: "a@b.c", sch: schemaMobileSync},
		{name: "prefixed names", body: `<a:Autodiscover xmlns:a="urn:x"><a:Request><a:EMailAddress>a@b.c</a:EMailAddress><a:AcceptableResponseSchema>urn:other</a:AcceptableResponseSchema></a:Request></a:Autodiscover>`, email: "a@b.c", sch: "urn:other"},
		{name: "escaped text", body: `<Autodiscover><Request><EMailAddress>"a&lt;b"@b.c</EMailAddress></Request></Autodiscover>`, email: `"a<b"@b.c`, sch: schemaOutlook},
		{name: "first of two", body: `<Autodiscover><Request><EMailAddress>a@b.c</EMailAddress><EMailAddress>x@y.z</EMailAddress></Request></Autodiscover>`, email: "a@b.c", sch: schemaOutlook},
		{name: "ascii declared", body: `<?xml version="1.0" encoding="US-ASCII"?><Autodiscover><Request><EMailAddress>a@b.c</EMailAddress></Request></Autodiscover>`, email: "a@b.c", sch: schemaOutlook},
		{name: "address missing", body: `<Autodiscover><Request/></Autodiscover>`, sch: schemaOutlook},

		{name: "empty", body: "", errContains: "empty"},
		{name: "blank", body: " \n", errContains: "empty"},
		{name: "doctype", body: `<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><Autodiscover><Request><EMailAddress>&x;</EMailAddress></Request></Autodiscover>`, errContains: "DOCTYPE"},
		{name: "undefined entity", body: `<Autodiscover><Request><EMailAddress>&x;</EMailAddress></Request></Autodiscover>`, errContains: "well-formed"},
		{name: "latin1 declared", body: `<?xml version="1.0" encoding="ISO-8859-1"?><Autodiscover/>`, errContains: "not supported"},
		{name: "not utf-8", body: "<Autodiscover><Request><EMailAddress>j\xf6rg@b.c</EMailAddress></Request></Autodiscover>", errContains: "UTF-8"},
		{name: "utf-16", body: "\xff\xfe<\x00A\x00", errContains: "UTF-8"},
		{name: "wrong root", body: `<html><body/></html>`, errContains: "root element"},
		{name: "two roots", body: `<Autodiscover/><Autodiscover/>`, errContains: ""},
		{name: "unclosed", body: `<Autodiscover><Request>`, errContains: "well-formed"},
		{name: "deep", body: "<Autodiscover>" + strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40) + "</Autodiscover>", errContains: "deeply"},
		{name: "json", body: `{"EMailAddress":"a@b.c"}`, errContains: "outside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodePOXRequest([]byte(tt.body))
			if tt.errContains != "" || tt.name == "two roots" {
				if err == nil || !strings.Contains(err.Error(), tt.errContains) {
					t.Fatalf("decodePOXRequest = %+v, %v, want error containing %q", got, err, tt.errContains)
				}
				return
			}
			if err != nil || got.EMailAddress != tt.email || got.Schema != tt.sch {
				t.Fatalf("decodePOXRequest = %+v, %v, want {%q %q}", got, err, tt.email, tt.sch)
			}
		})
	}
}

// FuzzDecodePOXRequest checks that the decoder never panics, refuses every
// body with a declaration, returns trimmed UTF-8 values, and agrees with
// the encoding/xml decoder it replaced: what it accepts, that one accepts
// with the same values, and the other way round.
func FuzzDecodePOXRequest(f *testing.F) {
	for _, s := range []string{
		`<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>fred@example.com</EMailAddress><AcceptableResponseSchema>` + schemaOutlook + `</AcceptableResponseSchema></Request></Autodiscover>`,
		`<!DOCTYPE x [<!ENTITY a "b">]><Autodiscover>&a;</Autodiscover>`,
		`<?xml version="1.0" encoding="utf-16"?><Autodiscover/>`,
		"\ufeff<Autodiscover><Request><EMailAddress><![CDATA[a@b.c]]></EMailAddress></Request></Autodiscover>",
		`<Autodiscover><Request><EMailAddress>a<!-- c -->@b.c</EMailAddress></Request></Autodiscover>`,
		"<a:Autodiscover xmlns:a='x'><a:Request/></a:Autodiscover>",
		`<a:Autodiscover xmlns:a="` + nsMobileSyncReq + `"><a:Request><a:EMailAddress>&#x66;red&#64;b.c</a:EMailAddress></a:Request></a:Autodiscover>`,
		"<Autodiscover><Request><EMailAddress>a\r\n@b.c</EMailAddress></Request></Autodiscover>\n",
		`<?xml version="1.0"?><?pi x?><Autodiscover a="&lt;" b='&amp;'><Request><X><EMailAddress>x</EMailAddress></X></Request></Autodiscover>`,
		`<?xml version="1.0" encoding=encoding="utf-8" encoding="ebcdic"?><Autodiscover/>`,
		`<?xml version=version="1.0" version="2.0"?><Autodiscover/>`,
		"<Autodiscover><Request>\u2039a\u00d7/></Request></Autodiscover>",
		"<Autodiscover \u00d7a='1'/>",
		`<Autodiscover><?xml version="1.0"?></Autodiscover>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodePOXRequest(body)
		ref, refErr := decodePOXRequestStd(body)
		if err == nil && refErr != nil {
			t.Fatalf("decodePOXRequest(%q) = %+v, but encoding/xml refuses it: %v", body, req, refErr)
		}
		if err == nil && req != ref {
			t.Fatalf("decodePOXRequest(%q) = %+v, encoding/xml reads %+v", body, req, ref)
		}
		if err != nil && refErr == nil && !laxerStd(body) {
			t.Fatalf("decodePOXRequest(%q): %v, but encoding/xml reads %+v", body, err, ref)
		}
		if err != nil {
			return
		}
		if strings.Contains(string(body), "<!") && strings.Contains(strings.ToUpper(string(body)), "<!DOCTYPE") {
			t.Fatalf("accepted a body with a DOCTYPE: %q", body)
		}
		if req.Schema == "" || strings.TrimSpace(req.EMailAddress) != req.EMailAddress || !utf8.ValidString(req.EMailAddress) {
			t.Fatalf("decodePOXRequest(%q) = %+v", body, req)
		}
	})
}
