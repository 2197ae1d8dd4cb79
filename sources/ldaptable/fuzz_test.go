package ldaptable

import (
	"errors"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/sources/lookupkey"
)

// shape renders f without its values, to compare structures.
func shape(f *filter) string {
	var b strings.Builder
	var walk func(*filter)
	walk = func(f *filter) {
		b.WriteString("(" + string("&|!=s><*~:"[f.op]) + f.attr + f.rule)
		if f.op == opSubstr {
			b.WriteString(strings.Repeat("*", len(f.any)))
			if f.initial != "" {
				b.WriteString("i")
			}
			if f.final != "" {
				b.WriteString("f")
			}
		}
		for _, k := range f.kids {
			walk(k)
		}
		b.WriteString(")")
	}
	walk(f)
	return b.String()
}

// FuzzFilterExpand expands a query_filter template with a key as Postfix
// does and parses the result as libldap does. Whatever parses must render
// to exactly the BER libldap would send; and when the key only lands in
// assertion values, no key may change the filter's structure, and each
// value holding it holds it raw, whole.
func FuzzFilterExpand(f *testing.F) {
	f.Add(iredmailFilter, "*)(objectClass=*")
	f.Add("(&(|(mail=%s)(shadowAddress=%s))(objectClass=mailUser)(accountStatus=active))", `a\2a(b)@x.y`)
	f.Add("(cn=*%u*)", "Straße@Example.COM")
	f.Add("( & (cn=%1)\n(!(sn~=%2)) (x:caseExactMatch:=%d))", "u@a.b.c")
	f.Add("cn=%s", "(")
	f.Add("(cn:dn:=%s)", "\\\\")
	f.Fuzz(func(t *testing.T, template, key string) {
		tmpl, err := parseTemplates("", template, "%s")
		if err != nil {
			return
		}
		f, ferr := parseFilter(template)
		if ferr == nil {
			checkRender(t, f)
		}
		key, ok := lookupkey.Fold(key)
		if !ok {
			return
		}
		text, ok := tmpl.Expand(template, key, quoteFilter)
		if !ok {
			return
		}
		got, err := parseFilter(text)
		if err == nil {
			checkRender(t, got)
		}
		marked, ok := tmpl.Expand(template, keyMarker, quoteFilter)
		if !ok || strings.Contains(key, keyMarker) || strings.ContainsAny(template, "%") && strings.ContainsAny(template[strings.IndexByte(template, '%'):], "uUdD123456789") {
			return // the key is split or absent; only whole-key templates are compared
		}
		ref, rerr := parseFilter(marked)
		if rerr != nil || markerOutsideValues(ref) {
			return
		}
		if err != nil {
			t.Fatalf("template %q parses with the key as a value, but not with key %q: %v (%q)", template, key, err, text)
		}
		if shape(got) != shape(ref) {
			t.Fatalf("key %q changes the structure of %q: %s, want %s", key, template, got, ref)
		}
		checkValues(t, ref, got, key)
	})
}

func markerOutsideValues(f *filter) bool {
	if strings.Contains(f.attr+f.rule, keyMarker) {
		return true
	}
	for _, k := range f.kids {
		if markerOutsideValues(k) {
			return true
		}
	}
	return false
}

func checkValues(t *testing.T, ref, got *filter, key string) {
	t.Helper()
	for i := range ref.kids {
		checkValues(t, ref.kids[i], got.kids[i], key)
	}
	pairs := [][2]string{{ref.value, got.value}, {ref.initial, got.initial}, {ref.final, got.final}}
	for i := range ref.any {
		pairs = append(pairs, [2]string{ref.any[i], got.any[i]})
	}
	for _, p := range pairs {
		if want := strings.ReplaceAll(p[0], keyMarker, key); p[1] != want {
			t.Fatalf("value %q, want %q (key %q)", p[1], want, key)
		}
	}
}

// FuzzListing derives listings from query_filter and search_base
// templates: a listing filter must render exactly, never hold the key, and
// name the attributes it reads the keys from; anything else is an
// ErrNoListing.
func FuzzListing(f *testing.F) {
	f.Add("o=domains,dc=example,dc=com", iredmailFilter)
	f.Add("", "(&(mail=postmaster@%s)(!(|(cn=%s)(x=y))))")
	f.Add("cn=%s,dc=x", "(objectClass=*)")
	f.Add("", "(|(cn=%s)(cn>=%s)(cn:1.2.3:=%S))")
	f.Add("", "(!(!(cn=%u)))")
	f.Fuzz(func(t *testing.T, base, filterText string) {
		tmpl, err := parseTemplates(base, filterText, "%s")
		if err != nil {
			return
		}
		tb := &Table{tmpl: tmpl}
		l, none, err := tb.deriveListing()
		switch {
		case err != nil:
			if !errors.Is(err, ErrNoListing) {
				t.Fatalf("error %v is not an ErrNoListing", err)
			}
			return
		case none:
			if tmpl.Accepts("bare-domain.example") {
				t.Fatalf("none for a template that searches for bare domains")
			}
			return
		}
		if len(l.attrs) == 0 || len(l.affixes) == 0 {
			t.Fatalf("listing without key attributes: %+v", l)
		}
		if strings.Contains(l.filter.String()+l.base, escapeValue(keyMarker)) || strings.Contains(l.base, keyMarker) {
			t.Fatalf("the key is left in the listing %s base %q", l.filter, l.base)
		}
		checkRender(t, l.filter)
	})
}
