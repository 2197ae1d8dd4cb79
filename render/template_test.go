package render

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"html"
	"testing"
)

func TestTemplateEscapesPerSyntax(t *testing.T) {
	a := Address{Local: `"a<b>&'c"`, Domain: "example.com", LoginDomain: "example.org"}
	type doc struct {
		XMLName xml.Name `xml:"Doc"`
		Login   string   `xml:"Login"`
		Attr    string   `xml:"at,attr"`
	}
	rendered, err := xml.Marshal(doc{Login: Marker(FieldLoginAddress), Attr: Marker(FieldDomain)})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := Compile("application/xml", SyntaxXML, rendered)
	if tmpl.Static() {
		t.Fatal("Static() = true for a template with fields")
	}
	var back doc
	if err := xml.Unmarshal(tmpl.Append(nil, a), &back); err != nil {
		t.Fatalf("Append produced invalid XML: %v", err)
	}
	if back.Login != `"a<b>&'c"@example.org` || back.Attr != "example.com" {
		t.Errorf("round trip = %+v, want the login address and domain", back)
	}

	rendered, err = json.Marshal(map[string]string{"Url": "https://autodiscover." + Marker(FieldDomain) + "/x", "Who": Marker(FieldAddress)})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(Compile("application/json", SyntaxJSON, rendered).Append(nil, a), &m); err != nil {
		t.Fatal(err)
	}
	if m["Url"] != "https://autodiscover.example.com/x" || m["Who"] != a.String() {
		t.Errorf("JSON round trip = %v", m)
	}

	got := string(Compile("text/html", SyntaxHTML, []byte("<td>"+Marker(FieldLocal)+"</td>")).Append(nil, a))
	if want := "<td>&#34;a&lt;b&gt;&amp;&#39;c&#34;</td>"; got != want {
		t.Errorf("HTML Append = %s, want %s", got, want)
	}
	if s := Compile("text/plain", SyntaxXML, []byte("fixed")); !s.Static() || string(s.Append(nil, a)) != "fixed" {
		t.Errorf("static template = %q", s.Append(nil, a))
	}
}

// TestPlainNeedsNoEscaping: the fast path must give exactly what the
// standard library's escapers give.
func TestPlainNeedsNoEscaping(t *testing.T) {
	for c := 0; c < 0x100; c++ {
		s := "a" + string(rune(c)) + "z"
		if !plain(s) {
			continue
		}
		var x bytes.Buffer
		xml.EscapeText(&x, []byte(s))
		j, _ := json.Marshal(s)
		if x.String() != s || string(j[1:len(j)-1]) != s || html.EscapeString(s) != s {
			t.Errorf("plain(%q) = true, but an escaper changes it", s)
		}
	}
}

func BenchmarkAppendPlainAddress(b *testing.B) {
	tmpl := Compile("text/xml", SyntaxXML, []byte("<a>"+Marker(FieldLoginAddress)+"</a><b>"+Marker(FieldAddressQuery)+"</b>"))
	a := Address{Local: "alice.smith", Domain: "example.com"}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = tmpl.Append(buf[:0], a)
	}
}
