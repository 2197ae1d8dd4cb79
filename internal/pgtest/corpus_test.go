package pgtest

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/postmaptest"
)

const corpusSet = "../../testdata/corpus/iredmail-pgsql-debian12"

// loadCorpus loads the set's schema and rows into s the way its README
// says (psql -U postgres -d template1 -f pgsql-schema.sql, then -d vmail
// -f pgsql-seed.sql), after a Reset: the set creates the fixed names
// vmail and vmailadmin.
func loadCorpus(t *testing.T, s *Server) {
	t.Helper()
	s.Reset(t)
	s.LoadFile(t, "template1", filepath.Join(corpusSet, "pgsql-schema.sql"))
	s.LoadFile(t, "vmail", filepath.Join(corpusSet, "pgsql-seed.sql"))
}

type corpusTruth struct {
	Lookup struct {
		Candidates []string `json:"candidates"`
	} `json:"lookup"`
	SQL struct {
		ExpectedDomains []string `json:"expected_domains"`
	} `json:"sql"`
}

func readTruth(t *testing.T) corpusTruth {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusSet, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tr corpusTruth
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatal(err)
	}
	if len(tr.SQL.ExpectedDomains) == 0 || len(tr.Lookup.Candidates) == 0 {
		t.Fatalf("expected.json: no sql.expected_domains or lookup.candidates")
	}
	return tr
}

var cfParam = regexp.MustCompile(`(?m)^(\s*)(\w+)(\s*=\s*).*$`)

// rewriteCF copies the set's lookup file with parameters in set replaced
// and dates the copy back an hour: Postfix waits ~2s before it opens a
// table file modified in the last seconds.
func rewriteCF(t *testing.T, name string, set map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusSet, "etc/postfix/pgsql", name))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	out := cfParam.ReplaceAllStringFunc(string(b), func(line string) string {
		m := cfParam.FindStringSubmatch(line)
		v, ok := set[m[2]]
		if !ok {
			return line
		}
		seen[m[2]] = true
		return m[1] + m[2] + m[3] + v
	})
	for k := range set {
		if !seen[k] {
			t.Fatalf("%s has no %s line to rewrite", name, k)
		}
	}
	path := filepath.Join(t.TempDir(), name)
	postmaptest.WriteTable(t, path, out)
	return path
}

// postmapQuery asks postmap about keys (postmap -q -) in the pgsql table
// at path and returns the keys it found, its stderr and whether it exited
// with status 0, or 1 (some key not found) with nothing on stderr.
func postmapQuery(t *testing.T, postmap, path string, keys []string) (hits []string, stderr string, ok bool) {
	t.Helper()
	r, err := postmaptest.Query(postmap, "pgsql", path, keys, postmaptest.Timeout(time.Minute))
	if err != nil {
		return nil, err.Error(), false
	}
	hits = slices.Sorted(maps.Keys(r.Found))
	return hits, r.Stderr, r.ExitCode == 0 || r.ExitCode == 1 && r.Stderr == ""
}

// TestCorpusPostmap loads the iredmail-pgsql-debian12 set and asks the real
// postmap, through a copy of its virtual_mailbox_domains.cf with only hosts
// pointed at the server, about every candidate domain: Postfix itself must
// accept the server and find exactly the set's expected domains, over TCP
// and over the unix socket in each spelling pgsql_table(5) allows.
func TestCorpusPostmap(t *testing.T) {
	postmap := postmaptest.Need(t, "pgsql")
	s := Shared(t)
	loadCorpus(t, s)
	truth := readTruth(t)
	want := slices.Sorted(slices.Values(truth.SQL.ExpectedDomains))

	for _, hosts := range []string{
		"inet:" + s.Addr(),
		s.Addr(),
		"unix:" + s.SocketDir(),
		s.SocketDir(), // a bare path is a socket directory
	} {
		t.Run(hosts, func(t *testing.T) {
			cf := rewriteCF(t, "virtual_mailbox_domains.cf", map[string]string{"hosts": hosts})
			hits, stderr, ok := postmapQuery(t, postmap, cf, truth.Lookup.Candidates)
			if !ok {
				t.Fatalf("postmap -q - pgsql:%s failed:\n%s", cf, stderr)
			}
			if !slices.Equal(hits, want) {
				t.Errorf("postmap hits = %q, want expected_domains %q", hits, want)
			}
		})
	}

	// The set's listing query, run as the lookup user over TCP, agrees.
	listing, err := os.ReadFile(filepath.Join(corpusSet, "pgsql-listing.sql"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := queryAs(t, s, "tcp", "vmail", "secret", "vmail", string(listing))
	if err != nil {
		t.Fatalf("pgsql-listing.sql as vmail: %v", err)
	}
	var listed []string
	for _, r := range rows {
		listed = append(listed, r[0])
	}
	if !slices.Equal(listed, want) {
		t.Errorf("pgsql-listing.sql = %q, want %q", listed, want)
	}
}

// TestCorpusPostmapWrongPassword checks that the server asks Postfix for
// the password: the lookup fails, with PostgreSQL's message in postmap's
// warning, over TCP and over the socket.
func TestCorpusPostmapWrongPassword(t *testing.T) {
	postmap := postmaptest.Need(t, "pgsql")
	s := Shared(t)
	loadCorpus(t, s)
	for _, hosts := range []string{"inet:" + s.Addr(), "unix:" + s.SocketDir()} {
		t.Run(hosts, func(t *testing.T) {
			cf := rewriteCF(t, "virtual_mailbox_domains.cf", map[string]string{"hosts": hosts, "password": "wrong"})
			hits, stderr, ok := postmapQuery(t, postmap, cf, []string{"example.com"})
			if ok || len(hits) > 0 {
				t.Fatalf("postmap with a wrong password: hits %q, ok %v, stderr:\n%s", hits, ok, stderr)
			}
			const msg = `FATAL:  password authentication failed for user "vmail"`
			if !strings.Contains(stderr, msg) {
				t.Errorf("postmap stderr lacks %q:\n%s", msg, stderr)
			}
			t.Logf("postmap stderr:\n%s", stderr)
		})
	}
}
