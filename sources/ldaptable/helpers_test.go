package ldaptable

import (
	"context"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/postmaptest"
	"github.com/mailautoconf/mailautoconf/internal/slapdtest"
	"github.com/mailautoconf/mailautoconf/sources/postfix"
)

func TestMain(m *testing.M) { slapdtest.Main(m) }

// corpusSet is the corpus set these tests start slapd with.
const corpusSet = "../../testdata/corpus/iredmail-openldap-debian12"

// parseCF parses the text of an ldap_table(5) file.
func parseCF(t testing.TB, path, text string) *postfix.LDAPTable {
	t.Helper()
	cf, err := postfix.ParseLDAPTable(path, strings.NewReader(text))
	if err != nil {
		t.Fatalf("ParseLDAPTable(%s): %v", path, err)
	}
	return cf
}

// openCF opens the table text, closed when t ends.
func openCF(t testing.TB, text string, opt Options) *Table {
	t.Helper()
	tb, err := Open(parseCF(t, "/etc/postfix/ldap/test.cf", text), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tb.Close() })
	return tb
}

// writeCF writes the table file dir/name for postmap
// (postmaptest.WriteTable) and returns its path.
func writeCF(t testing.TB, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	postmaptest.WriteTable(t, p, text)
	return p
}

// list collects EachDomain into domain → target.
func list(t testing.TB, tb *Table) (map[string]string, error) {
	t.Helper()
	got := map[string]string{}
	err := tb.EachDomain(context.Background(), func(d, target string) {
		if _, dup := got[d]; dup {
			t.Errorf("EachDomain gave %s twice", d)
		}
		got[d] = target
	}, func() { clear(got) })
	return got, err
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
