package ldaptable

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/slapdtest"
	"github.com/mailautoconf/mailautoconf/sources/lookupkey"
)

const iredmailFilter = "(&(objectClass=mailDomain)(|(domainName=%s)(&(enabledService=domainalias)(domainAliasName=%s)))(!(domainBackupMX=yes))(accountStatus=active)(enabledService=mail))"

func TestDeriveListing(t *testing.T) {
	tests := []struct {
		base, filter string
		want         string // the listing filter, "none", or "error: <text in the message>"
		attrs        []string
		probe        bool
	}{
		{"", "(domainName=%s)", "(domainName=*)", []string{"domainName"}, false},
		{"o=domains", iredmailFilter,
			"(&(objectClass=mailDomain)(|(domainName=*)(&(enabledService=domainalias)(domainAliasName=*)))(!(domainBackupMX=yes))(accountStatus=active)(enabledService=mail))",
			[]string{"domainName", "domainAliasName"}, false},
		{"", "(mail=postmaster@%s)", "(mail=*)", []string{"mail"}, false},
		{"", "(|(cn=%s)(CN=%S))", "(|(cn=*)(CN=*))", []string{"cn"}, false},
		{"", "(|(cn=%s)(objectClass=foo))", "(|(cn=*)(objectClass=foo))", []string{"cn"}, true},
		{"", "(&(cn=%s)(!(sn=%s)))", "(&(cn=*)(!(|)))", []string{"cn"}, false},
		{"", "(&(cn=%s)(!(!(sn=%s))))", "(&(cn=*)(!(!(sn=*))))", []string{"cn", "sn"}, false},
		{"", "(cn:caseExactMatch:=%s)", "(cn=*)", []string{"cn"}, false},
		{"", "cn=%u", "(cn=*)", []string{"cn"}, false},
		{"", "(cn=%d)", "none", nil, false},
		{"", "(cn=%s)(x=%2)", "none", nil, false},
		{"", "(!(cn=%s))", "error: only under a negation", nil, false},
		{"", "(cn=*%s)", "error: (cn=*%s), not in an equality match", nil, false},
		{"", "(cn>=%s)", "error: not in an equality match", nil, false},
		{"", "(cn~=%s)", "error: not in an equality match", nil, false},
		{"", "(cn=%s.%s)", "error: more than once", nil, false},
		{"", "(:dn:caseExactMatch:=%s)", "error: extensible match", nil, false},
		{"", "(objectClass=*)", "error: does not use the key", nil, false},
		{"", "(cn=%s", "error: does not parse", nil, false},
		{"cn=%s,dc=example,dc=com", "(objectClass=*)", "error: search_base", nil, false},
	}
	for _, tt := range tests {
		tmpl, err := parseTemplates(tt.base, tt.filter, "%s")
		if err != nil {
			t.Fatal(err)
		}
		tb := &Table{tmpl: tmpl}
		l, none, err := tb.deriveListing()
		switch {
		case tt.want == "none":
			if !none || err != nil {
				t.Errorf("%s: none %v, err %v; want none", tt.filter, none, err)
			}
		case strings.HasPrefix(tt.want, "error: "):
			if !errors.Is(err, ErrNoListing) || !strings.Contains(err.Error(), strings.TrimPrefix(tt.want, "error: ")) {
				t.Errorf("%s: error %v, want ErrNoListing saying %q", tt.filter, err, strings.TrimPrefix(tt.want, "error: "))
			}
		case err != nil || none:
			t.Errorf("%s: none %v, err %v", tt.filter, none, err)
		default:
			if l.filter.String() != tt.want || !slices.Equal(l.attrs, tt.attrs) || l.probe != tt.probe {
				t.Errorf("%s: listing %s attrs %q probe %v, want %s %q %v", tt.filter, l.filter, l.attrs, l.probe, tt.want, tt.attrs, tt.probe)
			}
			checkRender(t, l.filter)
		}
	}
	tmpl, err := parseTemplates("", "(cn=%s)", "%s")
	if err != nil {
		t.Fatal(err)
	}
	tb := &Table{tmpl: tmpl, domain: []string{"example.com"}}
	if _, none, _ := tb.deriveListing(); !none {
		t.Errorf("a table with a domain restriction lists domains")
	}
}

func TestCandidates(t *testing.T) {
	l := &listing{affixes: []affix{{"", ""}, {"postmaster@", ""}, {"@", ".x"}}}
	var got []string
	for _, v := range []string{"Example.COM", "Postmaster@Shop.Example.NET", "@a.b.x", "localhost", "1.2.3.4", "user@example.com", "straße.de", "a..b", "-a.b", "\xff.com", "a b.com"} {
		l.candidates(v, lookupkey.Fold, func(k string) { got = append(got, k) })
	}
	want := []string{"example.com", "shop.example.net", "a.b", "strasse.de"}
	if !slices.Equal(got, want) {
		t.Errorf("candidates = %q, want %q", got, want)
	}
	// With smtputf8_enable = no, candidates are folded as Postfix folds
	// the keys then: ASCII letters only.
	tb := &Table{asciiFold: true}
	got = nil
	for _, v := range []string{"Example.COM", "STRAßE.de", "ÄBC.Example"} {
		l.candidates(v, tb.fold, func(k string) { got = append(got, k) })
	}
	if want := []string{"example.com", "straße.de", "Äbc.example"}; !slices.Equal(got, want) {
		t.Errorf("candidates with SMTPUTF8Disabled = %q, want %q", got, want)
	}
}

// TestEachDomainAgreesWithLookup lists tables of the differential dataset
// and checks the listing against Lookup of every name the directory holds:
// a name is listed exactly when its lookup answers, with its first answer
// as the target.
func TestEachDomainAgreesWithLookup(t *testing.T) {
	s := datasetServer(t)
	ctx := context.Background()
	var names []string
	for _, v := range keyValues {
		if k, ok := lookupkey.Fold(v); ok && lookupkey.IsDomainName(k) {
			names = append(names, k)
		}
	}
	tables := []string{
		"search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = description\n",
		"search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = cn\n",
		"search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = cn\nresult_format = %d\n",
		"search_base = " + keysBase + "\nquery_filter = (&(cn=%s)(!(description=d:com)))\nresult_attribute = cn\n",
		"search_base = " + keysBase + "\nquery_filter = (|(cn=%s)(cn=nothing-has-this))\nresult_attribute = cn\n",
		"search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = cn\nsize_limit = 1\n",
		"search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = cn description\nexpansion_limit = 1\n",
		"search_base = " + keysBase + "\nquery_filter = (cn=%u)\nresult_attribute = cn\n",
	}
	for _, body := range tables {
		tb := openCF(t, "server_host = "+s.URL()+"\nbind = no\n"+body, Options{})
		got, err := list(t, tb)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		for _, n := range names {
			r, err := tb.Lookup(ctx, n)
			var de *dataError
			if err != nil && !errors.As(err, &de) {
				t.Fatal(err)
			}
			target, listed := got[n]
			switch {
			case len(r) > 0 && !listed:
				t.Errorf("%s: %s answers %q but is not listed", body, n, r)
			case len(r) == 0 && listed:
				t.Errorf("%s: %s is listed but answers nothing", body, n)
			case listed && len(r) > 0:
				want, _ := lookupkey.Fold(r[0])
				if want == n {
					want = ""
				}
				if target != want {
					t.Errorf("%s: target of %s = %q, want %q", body, n, target, want)
				}
			}
		}
		t.Logf("%d listed: %v", len(got), keys(got))
	}
	for _, filter := range []string{"(|(cn=%s)(cn=user))", "(|(cn=%s)(cn=dup))"} {
		tb := openCF(t, "server_host = "+s.URL()+"\nbind = no\nsearch_base = "+keysBase+"\nquery_filter = "+filter+"\nresult_attribute = cn\n", Options{})
		if _, err := list(t, tb); !errors.Is(err, ErrNoListing) || !strings.Contains(err.Error(), probeKey) {
			t.Errorf("%s answers every key: EachDomain error %v, want ErrNoListing", filter, err)
		}
	}
}

// TestEachDomainMany lists more domains than slapd's default size limit
// (500 entries a search for anyone but the rootdn, paged or not) as the
// corpus's bind DN: an error that says what to change, and the whole list
// with "sizelimit unlimited", which iRedMail's slapd.conf sets.
func TestEachDomainMany(t *testing.T) {
	c := slapdtest.Corpus(corpusSet)
	limited := slapdtest.Start(t, c)
	c.Extra = "sizelimit unlimited"
	s := slapdtest.Start(t, c)
	const n = 600
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "dn: domainName=d%04d.example,o=domains,dc=example,dc=com\nobjectClass: mailDomain\ndomainName: D%04d.example\naccountStatus: active\nenabledService: mail\n", i, i)
		if i%3 == 0 {
			fmt.Fprintf(&b, "enabledService: domainalias\ndomainAliasName: alias%04d.example\n", i)
		}
		b.WriteString("\n")
	}
	s.Add(t, b.String())
	limited.Add(t, b.String())
	_, err := list(t, openCF(t, corpusTable(limited.URL(), "secret"), Options{}))
	if err == nil || !strings.Contains(err.Error(), "size limit") || !strings.Contains(err.Error(), "sizelimit") {
		t.Errorf("EachDomain over slapd's default size limit: %v, want an error saying which limit", err)
	}
	tb := openCF(t, corpusTable(s.URL(), "secret"), Options{})
	start := time.Now()
	got, err := list(t, tb)
	if err != nil {
		t.Fatal(err)
	}
	if want := n + n/3 + 4; len(got) != want {
		t.Errorf("EachDomain listed %d domains, want %d", len(got), want)
	}
	if got["d0042.example"] != "" || got["alias0042.example"] != "d0042.example" {
		t.Errorf("d0042 -> %q, alias0042 -> %q", got["d0042.example"], got["alias0042.example"])
	}
	t.Logf("%d domains in %s", len(got), time.Since(start))
}
