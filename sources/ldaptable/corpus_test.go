package ldaptable

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/slapdtest"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/postfix"
)

// corpusTruth is what expected.json of the LDAP set says about domains.
type corpusTruth struct {
	Domains struct {
		Expected  []string `json:"expected_domains"`
		NotListed []string `json:"not_listed"`
	} `json:"domains"`
	Lookup struct {
		Candidates []string `json:"candidates"`
		Parameters map[string]struct {
			Sources []struct {
				Type        string            `json:"type"`
				Path        string            `json:"path"`
				PostmapHits map[string]string `json:"postmap_hits"`
			} `json:"sources"`
		} `json:"parameters"`
	} `json:"lookup"`
}

func readTruth(t *testing.T) corpusTruth {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusSet, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var truth corpusTruth
	if err := json.Unmarshal(b, &truth); err != nil {
		t.Fatal(err)
	}
	if len(truth.Domains.Expected) == 0 {
		t.Fatal("expected.json lists no expected_domains")
	}
	return truth
}

// TestCorpusEachDomain lists the domains of the iRedMail OpenLDAP set's
// virtual_mailbox_domains table against that set's own slapd, over TCP and
// over ldapi://, and checks them against expected.json.
func TestCorpusEachDomain(t *testing.T) {
	truth := readTruth(t)
	s := slapdtest.Shared(t, slapdtest.Corpus(corpusSet))
	root, err := hostfs.New(corpusSet)
	if err != nil {
		t.Fatal(err)
	}
	const path = "/etc/postfix/ldap/virtual_mailbox_domains.cf"
	cf, err := postfix.LoadLDAPTable(root, path)
	if err != nil {
		t.Fatal(err)
	}
	wantTargets := map[string]string{}
	for _, src := range truth.Lookup.Parameters["virtual_mailbox_domains"].Sources {
		if src.Path != path {
			continue
		}
		for k, v := range src.PostmapHits {
			if strings.ToLower(v) != k {
				wantTargets[k] = strings.ToLower(v)
			}
		}
	}
	if wantTargets["alias.example.com"] != "example.com" {
		t.Fatalf("expected.json: alias.example.com should answer example.com, targets %v", wantTargets)
	}
	for _, uri := range []string{s.URL(), s.LDAPI()} {
		t.Run(strings.SplitN(uri, ":", 2)[0], func(t *testing.T) {
			tb, err := Open(cf, Options{Root: root, Override: uri})
			if err != nil {
				t.Fatal(err)
			}
			defer tb.Close()
			got, err := list(t, tb)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(keys(got), truth.Domains.Expected) {
				t.Errorf("EachDomain = %v, want %v", keys(got), truth.Domains.Expected)
			}
			for d, target := range got {
				if target != wantTargets[d] {
					t.Errorf("EachDomain target of %s = %q, want %q", d, target, wantTargets[d])
				}
			}
			for _, d := range truth.Domains.NotListed {
				if _, ok := got[d]; ok {
					t.Errorf("EachDomain listed %s, which expected.json says is not hosted", d)
				}
			}
			// Every candidate of the corpus answers as postmap did.
			for _, c := range truth.Lookup.Candidates {
				r, err := tb.Lookup(context.Background(), c)
				if err != nil {
					t.Fatalf("Lookup(%s): %v", c, err)
				}
				want := ""
				for _, src := range truth.Lookup.Parameters["virtual_mailbox_domains"].Sources {
					want = src.PostmapHits[c]
				}
				if strings.Join(r, ",") != want {
					t.Errorf("Lookup(%s) = %q, postmap said %q", c, r, want)
				}
			}
			if !slices.Equal(tb.Endpoints(), []string{uri}) {
				t.Errorf("Endpoints = %q, want [%s]", tb.Endpoints(), uri)
			}
			if tb.Path() != path {
				t.Errorf("Path = %q", tb.Path())
			}
		})
	}
}
