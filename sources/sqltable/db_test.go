package sqltable

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/mariadbtest"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/postfix"
)

func TestMain(m *testing.M) { mariadbtest.Main(m) }

// corpusSQL is the "sql" part of a corpus set's expected.json.
type corpusSQL struct {
	Candidates    []string `json:"candidates"`
	LookupResults []struct {
		Path        string            `json:"path"`
		PostmapHits map[string]string `json:"postmap_hits"`
	} `json:"lookup_results"`
	ExpectedDomains []string `json:"expected_domains"`
}

func openTable(t *testing.T, mt *postfix.SQLTable, opt Options) *Table {
	t.Helper()
	tb, err := Open(mt, opt)
	if err != nil {
		t.Fatalf("Open(%s): %v", mt.Path, err)
	}
	t.Cleanup(func() { tb.Close() })
	return tb
}

func lowerAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strings.ToLower(v)
	}
	return out
}

// TestCorpus loads every SQL corpus set into MariaDB and checks Lookup
// against the real postmap answers, and List against the expected domains
// and the set's listing.sql.
func TestCorpus(t *testing.T) {
	sets, _ := filepath.Glob("../../testdata/corpus/*/schema.sql")
	if len(sets) == 0 {
		t.Skip("no SQL corpus sets")
	}
	s := mariadbtest.Shared(t)
	ctx := context.Background()
	for _, schema := range sets {
		dir := filepath.Dir(schema)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
			if err != nil {
				t.Fatal(err)
			}
			var exp struct {
				SQL *corpusSQL `json:"sql"`
			}
			if err := json.Unmarshal(b, &exp); err != nil {
				t.Fatal(err)
			}
			if exp.SQL == nil || len(exp.SQL.LookupResults) == 0 {
				t.Skip("no sql ground truth")
			}
			s.Reset(t)
			s.LoadFile(t, schema)
			s.LoadFile(t, filepath.Join(dir, "seed.sql"))
			root, err := hostfs.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, lr := range exp.SQL.LookupResults {
				mt := loadCF(t, root, lr.Path)
				s.GrantUser(t, mt.User, mt.Password, mt.DBName)
				tb := openTable(t, mt, Options{Override: s.Socket(), Root: root})
				for _, c := range exp.SQL.Candidates {
					got, err := tb.Lookup(ctx, c)
					if err != nil {
						t.Fatalf("Lookup(%q): %v", c, err)
					}
					want, hit := lr.PostmapHits[c]
					if g := strings.ToLower(strings.Join(got, ",")); g != strings.ToLower(want) {
						t.Errorf("%s: Lookup(%q) = %q, want %q (postmap hit: %v)", lr.Path, c, got, want, hit)
					}
					if ok, err := tb.Hosts(ctx, strings.ToUpper(c)); ok != hit || err != nil {
						t.Errorf("%s: Hosts(%q) = %v, %v, want %v", lr.Path, strings.ToUpper(c), ok, err, hit)
					}
				}
				list, err := tb.List(ctx)
				if err != nil {
					t.Fatalf("List: %v", err)
				}
				want := lowerAll(exp.SQL.ExpectedDomains)
				sort.Strings(want)
				if !slices.Equal(list, want) {
					t.Errorf("%s: List() = %q, want %q", lr.Path, list, want)
				}

				// Alias domains: an active alias of the corpus maps to its
				// target; an inactive one is left out.
				aliases, err := tb.AliasTargets(ctx)
				switch {
				case errors.Is(err, ErrNoAliasTable):
				case err != nil:
					t.Errorf("AliasTargets: %v", err)
				case slices.Contains(exp.SQL.Candidates, "alias.example.com"):
					if aliases["alias.example.com"] != "example.com" || aliases["oldalias.example.com"] != "" {
						t.Errorf("AliasTargets() = %v, want alias.example.com -> example.com and no oldalias.example.com", aliases)
					}
				}
				t.Logf("%s: AliasTargets() = %v, %v", lr.Path, aliases, err)

				// The set's own listing query, run as the lookup user,
				// agrees.
				listingSQL, err := os.ReadFile(filepath.Join(dir, "listing.sql"))
				if err != nil {
					t.Fatal(err)
				}
				rows, err := mariadbtest.QueryDB(s.DB(t, mt.User, mt.Password, mt.DBName), string(listingSQL))
				if err != nil {
					t.Fatalf("listing.sql: %v", err)
				}
				var ref []string
				for _, r := range rows {
					ref = append(ref, strings.ToLower(r[0]))
				}
				sort.Strings(ref)
				if !slices.Equal(list, ref) {
					t.Errorf("%s: List() = %q, listing.sql gives %q", lr.Path, list, ref)
				}
			}
		})
	}
}

// newDB creates a database with one domain table and a lookup user, and
// returns a MySQLTable for it with the given query (%DB% stands for the
// database name in extra SQL).
func newDB(t *testing.T, s *mariadbtest.Server, setup string) (db string, mt *postfix.SQLTable) {
	t.Helper()
	db = s.NewDatabase(t)
	s.Exec(t, "USE "+mariadbtest.QuoteIdent(db)+";"+setup)
	s.GrantUser(t, "lookup", "pw", db)
	return db, &postfix.SQLTable{Type: "mysql",
		Path:         "/etc/postfix/mysql/test.cf",
		Hosts:        []string{"unix:" + s.Socket()},
		User:         "lookup",
		Password:     "pw",
		DBName:       db,
		ResultFormat: "%s",
		OptionGroup:  "client",
	}
}

const domainTable = `CREATE TABLE domain (domain varchar(255) NOT NULL, active tinyint NOT NULL DEFAULT 1, transport varchar(255));
INSERT INTO domain (domain, active, transport) VALUES ('Example.CH', 1, 'virtual'), ('example.org', 1, NULL), ('off.example', 0, 'x'), ('ALL', 1, 'x'), ('localhost', 1, 'x'), ('empty.example', 1, '');`

func TestLookupCaseEscapingAndResults(t *testing.T) {
	s := mariadbtest.Shared(t)
	_, mt := newDB(t, s, domainTable)
	mt.Query = "SELECT domain FROM domain WHERE domain='%s' AND active=1"
	tb := openTable(t, mt, Options{})
	ctx := context.Background()
	tests := []struct {
		key  string
		want []string
	}{
		{"example.ch", []string{"Example.CH"}},
		{"EXAMPLE.ch", []string{"Example.CH"}},
		{"off.example", nil},
		{"x' OR '1'='1", nil},
		{`x\' OR 1=1 -- `, nil},
		{"a\"b\x00c\n\x1a", nil},
		{"", nil},
		{"user@example.ch", nil},
	}
	for _, tt := range tests {
		got, err := tb.Lookup(ctx, tt.key)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("Lookup(%q) = %q, %v, want %q", tt.key, got, err, tt.want)
		}
	}

	// NULL and empty results are not found, as in Postfix; List agrees.
	mt.Query = "SELECT transport FROM domain WHERE domain='%s'"
	tb = openTable(t, mt, Options{})
	for key, want := range map[string][]string{"example.ch": {"virtual"}, "example.org": nil, "empty.example": nil} {
		if got, err := tb.Lookup(ctx, key); err != nil || !slices.Equal(got, want) {
			t.Errorf("transport Lookup(%q) = %q, %v, want %q", key, got, err, want)
		}
	}
	if got, err := tb.List(ctx); err != nil || !slices.Equal(got, []string{"example.ch", "off.example"}) {
		t.Errorf("transport List() = %q, %v, want [example.ch off.example]", got, err)
	}

	// SELECT *: every column is a result.
	mt.Query = "SELECT * FROM domain WHERE domain='%s' AND active=1"
	tb = openTable(t, mt, Options{})
	if got, err := tb.Lookup(ctx, "example.ch"); err != nil || !slices.Equal(got, []string{"Example.CH", "1", "virtual"}) {
		t.Errorf("SELECT * Lookup = %q, %v", got, err)
	}
	if got, err := tb.List(ctx); err != nil || !slices.Equal(got, []string{"empty.example", "example.ch", "example.org"}) {
		t.Errorf("SELECT * List() = %q, %v", got, err)
	}

	// result_format and several columns.
	mt.Query = "SELECT domain, transport FROM domain WHERE domain='%s'"
	mt.ResultFormat = "<%s>"
	tb = openTable(t, mt, Options{})
	if got, err := tb.Lookup(ctx, "example.ch"); err != nil || !slices.Equal(got, []string{"<Example.CH>", "<virtual>"}) {
		t.Errorf("result_format Lookup = %q, %v", got, err)
	}
	mt.ExpansionLimit = 1
	tb = openTable(t, mt, Options{})
	if _, err := tb.Lookup(ctx, "example.ch"); err == nil || !strings.Contains(err.Error(), "expansion_limit") {
		t.Errorf("Lookup over expansion_limit: error = %v", err)
	}
	if got, err := tb.List(ctx); err != nil || !slices.Equal(got, []string{"empty.example", "example.org"}) {
		t.Errorf("List() with expansion_limit 1 = %q, %v, want [empty.example example.org]", got, err)
	}
}

func TestListDropsPseudoDomains(t *testing.T) {
	s := mariadbtest.Shared(t)
	_, mt := newDB(t, s, domainTable)
	mt.Query = "SELECT domain FROM domain WHERE domain='%s' AND active = '1'"
	tb := openTable(t, mt, Options{})
	got, err := tb.List(context.Background())
	if want := []string{"empty.example", "example.ch", "example.org"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("List() = %q, %v, want %q", got, err, want)
	}
}

func TestDomainRestriction(t *testing.T) {
	s := mariadbtest.Shared(t)
	_, mt := newDB(t, s, domainTable+"CREATE TABLE mailbox (username varchar(255)); INSERT INTO mailbox VALUES ('alice@example.ch'), ('example.ch');")
	mt.Query = "SELECT username FROM mailbox WHERE username='%s'"
	mt.Domain = []string{"example.ch", "!other.example"}
	tb := openTable(t, mt, Options{})
	ctx := context.Background()
	for key, want := range map[string]bool{"alice@example.ch": true, "example.ch": false, "alice@other.example": false, "@example.ch": false} {
		got, err := tb.Lookup(ctx, key)
		if err != nil || (len(got) > 0) != want {
			t.Errorf("Lookup(%q) = %q, %v, want hit %v", key, got, err, want)
		}
	}
	if got, err := tb.List(ctx); err != nil || len(got) != 0 {
		t.Errorf("List() with a domain restriction = %q, %v, want nothing", got, err)
	}
}

func TestLegacyForm(t *testing.T) {
	s := mariadbtest.Shared(t)
	db, _ := newDB(t, s, domainTable)
	mt := parseCF(t, "/etc/postfix/legacy.cf", "hosts = unix:"+s.Socket()+"\nuser = lookup\npassword = pw\ndbname = "+db+
		"\ntable = domain\nselect_field = domain\nwhere_field = domain\nadditional_conditions = AND active = 1\n")
	tb := openTable(t, mt, Options{})
	ctx := context.Background()
	if ok, err := tb.Hosts(ctx, "Example.ch"); !ok || err != nil {
		t.Errorf("Hosts(Example.ch) = %v, %v, want true", ok, err)
	}
	got, err := tb.List(ctx)
	if want := []string{"empty.example", "example.ch", "example.org"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("List() = %q, %v, want %q", got, err, want)
	}
}

func TestAliasTargets(t *testing.T) {
	s := mariadbtest.Shared(t)
	_, mt := newDB(t, s, domainTable+`CREATE TABLE alias_domain (alias_domain varchar(255), target_domain varchar(255), active tinyint);
INSERT INTO alias_domain VALUES ('Alias.Example', 'example.ch', 1), ('old.example', 'example.ch', 0), ('ALL', 'example.ch', 1);`)
	mt.Query = "SELECT domain FROM domain WHERE domain='%s'"
	got, err := openTable(t, mt, Options{}).AliasTargets(context.Background())
	if err != nil || len(got) != 1 || got["alias.example"] != "example.ch" {
		t.Errorf("AliasTargets() = %v, %v, want map[alias.example:example.ch]", got, err)
	}

	_, mt = newDB(t, s, domainTable)
	mt.Query = "SELECT domain FROM domain WHERE domain='%s'"
	if _, err := openTable(t, mt, Options{}).AliasTargets(context.Background()); !errors.Is(err, ErrNoAliasTable) {
		t.Errorf("AliasTargets() without the table: error = %v, want ErrNoAliasTable", err)
	}
}

func TestHostFailover(t *testing.T) {
	s := mariadbtest.Shared(t)
	_, mt := newDB(t, s, domainTable)
	mt.Query = "SELECT domain FROM domain WHERE domain='%s'"
	dead := filepath.Join(t.TempDir(), "dead.sock")
	mt.Hosts = []string{"unix:" + dead, "unix:" + s.Socket()}
	tb := openTable(t, mt, Options{})
	if ok, err := tb.Hosts(context.Background(), "example.org"); !ok || err != nil {
		t.Errorf("Hosts(example.org) with a dead first host = %v, %v, want true", ok, err)
	}

	// Every host dead: the error names each one and the file, not the
	// password.
	mt.Hosts = []string{"unix:" + dead, "127.0.0.1:1"}
	mt.Password = "s3cret-pw"
	tb = openTable(t, mt, Options{ConnectTimeout: time.Second})
	_, err := tb.Lookup(context.Background(), "example.org")
	if err == nil {
		t.Fatal("Lookup with every host dead succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"mysql unix:" + dead + " (/etc/postfix/mysql/test.cf): ", "mysql 127.0.0.1:1 (/etc/postfix/mysql/test.cf): ", "connection refused"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "s3cret") {
		t.Errorf("error %q reveals the password", msg)
	}
}

func TestServerGoesAway(t *testing.T) {
	s := mariadbtest.Start(t)
	_, mt := newDB(t, s, domainTable)
	mt.Query = "SELECT domain FROM domain WHERE domain='%s'"
	mt.Hosts = []string{"localhost"}
	tb := openTable(t, mt, Options{Override: s.Socket()})
	ctx := context.Background()
	if ok, err := tb.Hosts(ctx, "example.org"); !ok || err != nil {
		t.Fatalf("Hosts before Stop = %v, %v", ok, err)
	}
	s.Stop(t)
	_, err := tb.Lookup(ctx, "example.org")
	t.Logf("stopped: %v", err)
	if err == nil || !strings.Contains(err.Error(), "mysql localhost (unix:"+s.Socket()+") (/etc/postfix/mysql/test.cf): ") {
		t.Errorf("Lookup with the server stopped: error = %v", err)
	}
	if _, err := tb.List(ctx); err == nil {
		t.Errorf("List with the server stopped succeeded")
	}
	s.Restart(t)
	if ok, err := tb.Hosts(ctx, "example.org"); !ok || err != nil {
		t.Errorf("Hosts after Restart = %v, %v, want true", ok, err)
	}
}

// TestEachDomainStreamsAndFailsPartWay: the listing is passed on row by
// row, and a database error after some rows is an error (the caller then
// drops what it saw). The error comes from a stored function that fails on
// one row, after the rows before it were sent.
func TestEachDomainStreamsAndFailsPartWay(t *testing.T) {
	s := mariadbtest.Shared(t)
	_, mt := newDB(t, s, `CREATE TABLE domain (id int PRIMARY KEY, domain varchar(255) NOT NULL);
INSERT INTO domain SELECT seq, CONCAT('d', seq, '.example') FROM seq_1_to_5000;
CREATE FUNCTION checked(d varchar(255)) RETURNS varchar(255) DETERMINISTIC
BEGIN
  IF d = 'd4000.example' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'broken row'; END IF;
  RETURN d;
END;`)
	s.Exec(t, "GRANT EXECUTE ON "+mariadbtest.QuoteIdent(mt.DBName)+".* TO lookup@localhost")
	ctx := context.Background()

	mt.Query = "SELECT domain FROM domain WHERE domain='%s'"
	tb := openTable(t, mt, Options{})
	n, restarts := 0, 0
	if err := tb.EachDomain(ctx, func(string, string) { n++ }, func() { restarts++ }); err != nil || n != 5000 || restarts != 0 {
		t.Fatalf("EachDomain = %v after %d domains and %d restarts, want 5000 domains", err, n, restarts)
	}

	// The listing has its own timeout, covering the caller's work on each
	// row: a slow consumer outlasts QueryTimeout, not ListingTimeout.
	slow := func(string, string) {
		if n++; n%1000 == 0 {
			time.Sleep(40 * time.Millisecond)
		}
	}
	n = 0
	tb = openTable(t, mt, Options{QueryTimeout: 50 * time.Millisecond})
	if err := tb.EachDomain(ctx, slow, func() {}); err != nil || n != 5000 {
		t.Errorf("slow EachDomain with QueryTimeout 50ms = %v after %d domains, want all 5000", err, n)
	}
	n = 0
	tb = openTable(t, mt, Options{ListingTimeout: 50 * time.Millisecond})
	if err := tb.EachDomain(ctx, slow, func() {}); err == nil {
		t.Errorf("slow EachDomain with ListingTimeout 50ms: no error after %d domains", n)
	}

	mt.Query = "SELECT checked(domain) FROM domain WHERE domain='%s'"
	tb = openTable(t, mt, Options{})
	n = 0
	err := tb.EachDomain(ctx, func(string, string) { n++ }, func() { restarts++ })
	if err == nil || !strings.Contains(err.Error(), "broken row") {
		t.Fatalf("EachDomain over a failing row: error = %v, want the database's", err)
	}
	if n == 0 || n >= 5000 {
		t.Errorf("EachDomain passed on %d domains before the error, want part of the listing", n)
	}
	t.Logf("%d domains passed on before the error", n)

	// A second host: the first one is unreachable, restart is called
	// before the listing is asked of the second.
	mt.Query = "SELECT domain FROM domain WHERE domain='%s'"
	mt.Hosts = append([]string{"unix:/nonexistent/mysqld.sock"}, mt.Hosts...)
	tb = openTable(t, mt, Options{})
	n, restarts = 0, 0
	if err := tb.EachDomain(ctx, func(string, string) { n++ }, func() { restarts++ }); err != nil || n != 5000 || restarts != 1 {
		t.Errorf("EachDomain with a dead first host = %v, %d domains, %d restarts; want 5000 and 1", err, n, restarts)
	}
}
