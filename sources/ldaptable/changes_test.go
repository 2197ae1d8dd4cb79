package ldaptable

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/slapdtest"
)

// syncprovConfig is the corpus server with OpenLDAP's syncprov overlay,
// which keeps the suffix entry's contextCSN.
func syncprovConfig(t *testing.T) slapdtest.Config {
	t.Helper()
	c := slapdtest.Corpus(corpusSet)
	b, err := os.ReadFile(c.Template)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "moduleload  back_mdb", "moduleload  back_mdb\nmoduleload  syncprov", 1)
	if text == string(b) {
		t.Fatal("the corpus template has no moduleload back_mdb line")
	}
	p := filepath.Join(t.TempDir(), "slapd-syncprov.conf.in")
	if err := os.WriteFile(p, []byte(strings.TrimRight(text, "\n")+"\noverlay syncprov\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.Template = p
	return c
}

func ldapChanged(t *testing.T, tb *Table) bool {
	t.Helper()
	c, err := tb.Changed(context.Background())
	if err != nil {
		t.Fatalf("Changed: %v", err)
	}
	return c
}

// TestChanged: Changed reports an added, deleted and modified domain entry
// and one that stops matching the filter, on a server with contextCSN
// (syncprov) and one without, and reports nothing while nothing changed;
// with contextCSN, a write elsewhere in the directory costs one digest
// search and is then no change.
func TestChanged(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  func(t *testing.T) slapdtest.Config
		csn  bool
	}{
		{"plain", func(*testing.T) slapdtest.Config { return slapdtest.Corpus(corpusSet) }, false},
		{"syncprov", syncprovConfig, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := slapdtest.Start(t, tc.cfg(t))
			open := func() (*Table, []string) {
				tb := openCF(t, corpusTable(s.URL(), "secret"), Options{})
				got, err := list(t, tb)
				if err != nil {
					t.Fatal(err)
				}
				return tb, keys(got)
			}
			tb, first := open()
			if got := tb.changes.csn != ""; got != tc.csn {
				t.Fatalf("contextCSN found: %v, want %v (%q)", got, tc.csn, tb.changes.csn)
			}
			for i := range 3 {
				if ldapChanged(t, tb) {
					t.Fatalf("Changed() = true with nothing changed (call %d)", i+1)
				}
			}
			// A write outside the listing: no change.
			s.Modify(t, "dn: cn=vmail,dc=example,dc=com\nchangetype: modify\nreplace: description\ndescription: password changed\n")
			if ldapChanged(t, tb) {
				t.Errorf("Changed() = true after a write outside the listing")
			}
			if tc.csn && ldapChanged(t, tb) {
				t.Errorf("Changed() = true on the second call after a write outside the listing")
			}
			t.Logf("listed at first: %v", first)
			for _, step := range []struct {
				name, ldif string
				add        bool
				listed     string // a name the new listing must hold ("" none)
				gone       string // a name it must not
			}{
				{"add", "dn: domainName=new.example,o=domains,dc=example,dc=com\nobjectClass: mailDomain\ndomainName: new.example\naccountStatus: active\nenabledService: mail\n", true, "new.example", ""},
				{"disable", "dn: domainName=new.example,o=domains,dc=example,dc=com\nchangetype: modify\nreplace: accountStatus\naccountStatus: disabled\n", false, "", "new.example"},
				{"modify unrelated attribute of a listed entry", "dn: domainName=example.com,o=domains,dc=example,dc=com\nchangetype: modify\nreplace: mtaTransport\nmtaTransport: lmtp\n", false, "example.com", ""},
				{"delete", "dn: domainName=example.org,o=domains,dc=example,dc=com\nchangetype: delete\n", false, "", "example.org"},
			} {
				if step.add {
					s.Add(t, step.ldif)
				} else {
					s.Modify(t, step.ldif)
				}
				if !ldapChanged(t, tb) {
					t.Errorf("%s: Changed() = false", step.name)
				}
				var got []string
				tb, got = open() // the next snapshot's
				has := func(n string) bool {
					for _, g := range got {
						if g == n {
							return true
						}
					}
					return false
				}
				if step.listed != "" && !has(step.listed) || step.gone != "" && has(step.gone) {
					t.Errorf("%s: listing %v", step.name, got)
				}
				if ldapChanged(t, tb) {
					t.Errorf("%s: Changed() = true right after listing again", step.name)
				}
			}
			s.Stop(t)
			if c, err := tb.Changed(context.Background()); !c || err == nil {
				t.Errorf("Changed() with the server down = %v, %v; want true and an error", c, err)
			}
		})
	}
}
