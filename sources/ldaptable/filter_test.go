package ldaptable

import (
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/mailautoconf/mailautoconf/internal/slapdtest"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/lookupkey"
)

func TestParseFilter(t *testing.T) {
	tests := []struct{ in, want string }{ // want "" means a parse error
		{"(cn=a)", "(cn=a)"},
		{"cn=a", "(cn=a)"},
		{"objectclass=*", "(objectclass=*)"},
		{"(  cn=a)", "(cn=a)"},
		{"(\ncn=a)", "(cn=a)"},
		{" (cn=a)", ""},
		{"(cn=a) ", ""},
		{"(& (cn=a)\n(sn=b) )", "(&(cn=a)(sn=b))"},
		{"(&)", "(&)"},
		{"(|)", "(|)"},
		{"(!(cn=a))", "(!(cn=a))"},
		{"(! (cn=a))", "(!(cn=a))"},
		{"(!(cn=a) )", ""},
		{"(!(cn=a)(sn=b))", ""},
		{"(!)", ""},
		{"(cn=a*)", "(cn=a*)"},
		{"(cn=*a*b*)", "(cn=*a*b*)"},
		{"(cn=a**b)", ""},
		{"(cn=\\2a)", "(cn=\\2a)"},
		{"(cn=\\*\\(\\)\\\\)", "(cn=\\2a\\28\\29\\5c)"},
		{"(cn=\\x)", ""},
		{"(cn=\\4)", ""},
		{"(cn=a\\)b)", "(cn=a\\29b)"},
		{"(cn>=a)", "(cn>=a)"},
		{"(cn<=a)", "(cn<=a)"},
		{"(cn~=a)", "(cn~=a)"},
		{"(cn>=a*)", ""},
		{"(cn:=a)", "(cn:=a)"},
		{"(cn:dn:=a)", "(cn:dn:=a)"},
		{"(cn:DN:caseExactMatch:=a)", "(cn:dn:caseExactMatch:=a)"},
		{"(:caseExactMatch:=a)", "(:caseExactMatch:=a)"},
		{"(:dn:2.5.13.5:=a)", "(:dn:2.5.13.5:=a)"},
		{"(:dn:=a)", ""},
		{"(:=a)", ""},
		{"(cn:x:y:=a)", ""},
		{"(cn;lang-en=a)", "(cn;lang-en=a)"},
		{"(cn;=a)", ""},
		{"(2.5.4.3=a)", "(2.5.4.3=a)"},
		{"(2..5=a)", ""},
		{"(c n=a)", ""},
		{"(=a)", ""},
		{"(cn=a=b)", "(cn=a\\3db)"},
		{"(cn=(a))", ""},
		{"(cn=a)(sn=b)", ""},
		{"((cn=a))", ""},
		{"(&(cn=a)x)", ""},
		{"(&x(cn=a))", ""},
		{")", ""},
		{"", ""},
		{"(cn=a", ""},
		{"cn=a)", ""},
		{"(cn=ä\xff)", "(cn=\\c3\\a4\\ff)"},
		{"(cn=a\x00b)", ""},
		{"cn=a\x00b)", "(cn=a)"},
	}
	for _, tt := range tests {
		f, err := parseFilter(tt.in)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("parseFilter(%q) = %s, want an error", tt.in, f)
		case tt.want != "" && err != nil:
			t.Errorf("parseFilter(%q): %v", tt.in, err)
		case tt.want != "" && f.String() != tt.want:
			t.Errorf("parseFilter(%q) = %s, want %s", tt.in, f, tt.want)
		}
		if err == nil {
			checkRender(t, f)
		}
	}
}

// checkRender checks that go-ldap compiles f.String() to the BER libldap
// would send for f.
func checkRender(t testing.TB, f *filter) {
	t.Helper()
	p, err := ldap.CompileFilter(f.String())
	if err != nil {
		t.Fatalf("go-ldap cannot compile %q: %v", f.String(), err)
	}
	if got, want := p.Bytes(), f.BER().Bytes(); !bytes.Equal(got, want) {
		t.Fatalf("go-ldap compiles %q to %x, want %x", f.String(), got, want)
	}
}

// TestParseFilterLibldap sends the same filter strings through libldap
// (ldapsearch, the library Postfix uses) and through parseFilter and
// go-ldap to a slapd that logs every search, and compares what it logs:
// the filter it received, or nothing when libldap refused the string.
func TestParseFilterLibldap(t *testing.T) {
	ldapsearch := testtool.Need(t, "ldapsearch")
	s := slapdtest.Shared(t, slapdtest.Config{Debug: "stats"})
	filters := []string{
		"(cn=a)", "cn=a", "objectclass=*", "(  cn=a)", "(\ncn=a)", "(\tcn=a)", " (cn=a)", "(cn=a) ", "(& (cn=a)\n(sn=b) )",
		"(&\t(cn=a))", "(&)", "(|)", "(!(cn=a))", "(! (cn=a))", "(!(cn=a) )", "(!(cn=a)(sn=b))", "(cn=a*)", "(cn=*a*b*)",
		"(cn=a**b)", "(cn=*)", "(cn=\\2a)", "(cn=\\*\\(\\)\\\\)", "(cn=\\x)", "(cn=\\4)", "(cn=a\\)b)", "(cn=a\\(b)",
		"(cn>=a)", "(cn<=a)", "(cn~=a)", "(cn>=a*)", "(cn:=a)", "(cn:dn:=a)", "(cn:DN:caseExactMatch:=a)",
		"(:caseExactMatch:=a)", "(:dn:2.5.13.5:=a)", "(:dn:=a)", "(cn:x:y:=a)", "(cn;lang-en=a)", "(cn;=a)",
		"(2.5.4.3=a)", "(2..5=a)", "(c n=a)", "(cn=a=b)", "(cn=(a))", "(cn=a)(sn=b)", "((cn=a))", "(&(cn=a)x)",
		"(&x(cn=a))", ")", "(cn=a", "cn=a)", "(cn=ä\xff)", "(cn=a*\\2a*)", "(&(|(cn=a)(cn=b))(!(sn=c)))",
		"(cn=*\\5c*)", "(cn:dn:caseIgnoreMatch:=*)", "(cn=a\\\\)", "(cn=\\2)", "(cn=\\)", "(cn=a)\n", "cn=a b",
		"(\rcn=a)", "(\vcn=a)", "(\fcn=a)", "(|\r(cn=a))", "(cn=a)\t", "\t(cn=a)", "(&(cn=a)\t)",
	}
	searchLine := regexp.MustCompile(`(?m) SRCH base="" scope=0 deref=0 filter="(.*)"$`)
	lastFilter := func(before int) (string, int) {
		// slapd logs the search before it answers; give the write a moment.
		var all [][]string
		for range 50 {
			all = searchLine.FindAllStringSubmatch(s.Log(), -1)
			if len(all) > before {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if len(all) == before {
			return "", before
		}
		return all[len(all)-1][1], len(all)
	}
	c, err := ldap.DialURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seen := len(searchLine.FindAllString(s.Log(), -1))
	for _, text := range filters {
		if !strings.Contains(text, "=") {
			continue // ldapsearch takes it for an attribute name
		}
		out, _ := exec.Command(ldapsearch, "-x", "-LLL", "-H", s.URL(), "-b", "", "-s", "base", text, "1.1").CombinedOutput()
		refused := bytes.Contains(out, []byte("Bad search filter"))
		var viaLibldap string
		if !refused {
			viaLibldap, seen = lastFilter(seen)
			if viaLibldap == "" {
				t.Fatalf("ldapsearch %q: no search logged: %s\n%s", text, out, s.Log())
			}
		}
		f, err := parseFilter(text)
		switch {
		case refused && err == nil:
			t.Errorf("libldap refuses %q, parseFilter gives %s", text, f)
			continue
		case !refused && err != nil:
			t.Errorf("libldap sends %q as %s, parseFilter: %v", text, viaLibldap, err)
			continue
		case refused:
			continue
		}
		if _, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, 0, 0, 0, false, f.String(), []string{"1.1"}, nil)); err != nil {
			t.Fatalf("search %s: %v", f, err)
		}
		var viaUs string
		viaUs, seen = lastFilter(seen)
		if viaUs != viaLibldap {
			t.Errorf("filter %q: slapd got %s from libldap, %s from us", text, viaLibldap, viaUs)
		}
	}
}

func TestQuoting(t *testing.T) {
	tests := []struct{ in, filter, dn string }{
		{"plain.example.com", "plain.example.com", "plain.example.com"},
		{`*)(objectClass=*`, `\2A\29\28objectClass=\2A`, `*)(objectClass=*`},
		{`a\b`, `a\5Cb`, `a\5Cb`},
		{"a\x00b", "a\x00b", "a\x00b"},
		{` "#+,;<>`, ` "#+,;<>`, `\20\22\23\2B\2C\3B\3C\3E`},
		{"tab\there", "tab\there", `tab\09here`},
		{"Straße=ß", "Straße=ß", "Straße=ß"},
	}
	for _, tt := range tests {
		if got := quoteFilter(tt.in); got != tt.filter {
			t.Errorf("quoteFilter(%q) = %q, want %q", tt.in, got, tt.filter)
		}
		if got := quoteDN(tt.in); got != tt.dn {
			t.Errorf("quoteDN(%q) = %q, want %q", tt.in, got, tt.dn)
		}
	}
}

// TestKeyInjection checks that no key changes the structure of the filter
// it is expanded into: the key comes back as one assertion value, whole.
// A NUL cannot come from Postfix (keys are C strings); Lookup refuses
// keys with one, and the escaping keeps it inside the value anyway.
func TestKeyInjection(t *testing.T) {
	tmpl, err := parseTemplates("", "(&(objectClass=mailDomain)(domainName=%s))", "%s")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"*)(objectClass=*", "*", ")(|(cn=*", `\`, `\2a`, "a\x00)(cn=*", "x)(!(a=b)", "((((", "))))"} {
		text, ok := tmpl.Expand(tmpl.filter, key, quoteFilter)
		if !ok {
			t.Fatalf("expansion of %q suppressed", key)
		}
		f, err := parseFilter(strings.ReplaceAll(text, "\x00", "\\00"))
		if err != nil {
			t.Fatalf("key %q: filter %q: %v", key, text, err)
		}
		if f.op != opAnd || len(f.kids) != 2 || f.kids[1].op != opEqual || f.kids[1].value != key {
			t.Errorf("key %q gives filter %s, want (&(objectClass=mailDomain)(domainName=<the key>))", key, f)
		}
	}
	if k, ok := lookupkey.Fold("a\x00b"); ok {
		t.Errorf("lookupkey.Fold accepted a NUL: %q", k)
	}
}

// TestKeyInjectionLive asks the corpus table for keys that would match
// every domain if they reached the filter unescaped.
func TestKeyInjectionLive(t *testing.T) {
	s := slapdtest.Shared(t, slapdtest.Corpus(corpusSet))
	tb := openCF(t, corpusTable(s.URL(), "secret"), Options{})
	for _, k := range []string{"*", "*)(objectClass=*", "*)(|(domainName=*", "example.com)(domainName=*", `\2a`, "*)(objectClass=mailDomain)(domainName=*"} {
		r, err := tb.Lookup(context.Background(), k)
		if err != nil || r != nil {
			t.Errorf("Lookup(%q) = %q, %v; want nothing", k, r, err)
		}
	}
}
