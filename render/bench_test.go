package render

import (
	"path/filepath"
	"testing"

	"github.com/mailautoconf/mailautoconf/sources/sqltable"
)

// benchAddress has nothing to escape, as most do.
var benchAddress = Address{Local: "fred.example", Domain: "example.net", LoginDomain: "example.net"}

func benchAppend(b *testing.B, tmpl *Template) {
	buf := make([]byte, 0, tmpl.Size())
	b.SetBytes(int64(len(tmpl.Append(nil, benchAddress))))
	b.ReportAllocs()
	for b.Loop() {
		buf = tmpl.Append(buf[:0], benchAddress)
	}
}

func benchTemplates(b *testing.B) (ac, pox, page *Template) {
	s := buildRoot(b, filepath.Join(corpusDir, "handmade-static-domains"), sqltable.Options{})
	var err error
	if ac, err = Autoconfig(s, nil); err != nil {
		b.Fatal(err)
	}
	if pox, err = AutodiscoverPOX(s); err != nil {
		b.Fatal(err)
	}
	if page, err = PageSettings(s); err != nil {
		b.Fatal(err)
	}
	return ac, pox, page
}

func BenchmarkAutoconfigAppend(b *testing.B) {
	ac, _, _ := benchTemplates(b)
	benchAppend(b, ac)
}

func BenchmarkPOXAppend(b *testing.B) {
	_, pox, _ := benchTemplates(b)
	benchAppend(b, pox)
}

func BenchmarkSettingsPageAppend(b *testing.B) {
	_, _, page := benchTemplates(b)
	benchAppend(b, page)
}

func BenchmarkAutodiscoverJSONAppend(b *testing.B) {
	benchAppend(b, AutodiscoverJSON())
}

// BenchmarkAutodiscoverJSONError is the one document built per request.
func BenchmarkAutodiscoverJSONError(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		AutodiscoverJSONError("Ews")
	}
}

// BenchmarkProfileQR is what a settings page's first request for an
// address costs on top of the page (serve keeps the result).
func BenchmarkProfileQR(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ProfileQR(benchAddress); err != nil {
			b.Fatal(err)
		}
	}
}
