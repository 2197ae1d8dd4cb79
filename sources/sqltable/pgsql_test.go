package sqltable

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/pgtest"
	"github.com/mailautoconf/mailautoconf/internal/postmaptest"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/postfix"
)

// The pgsql tests run against private throwaway servers (pgtest.Start),
// stopped when the test ends: the package's TestMain cleans up only
// MariaDB's shared server.

// pgWriteCF writes a lookup file Postfix opens at once
// (postmaptest.WriteTable) in a new temporary directory.
func pgWriteCF(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "t.cf")
	postmaptest.WriteTable(t, path, text)
	return path
}

// pgLookupError stands for a failed lookup in comparisons.
const pgLookupError = "<error>"

// pgPostmap asks the real postmap about keys in pgsql:path and returns its
// answer for each: the result, "" when not found, pgLookupError when the
// lookup failed. postmap gives up on the first failure (and sleeps a
// second), so a failed batch is split in halves until the failing keys
// are found.
func pgPostmap(t *testing.T, postmap, path string, keys []string) map[string]string {
	t.Helper()
	run := func(keys []string) (map[string]string, bool) {
		r, err := postmaptest.Query(postmap, "pgsql", path, keys, postmaptest.Timeout(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if r.Fatal() {
			return nil, false
		}
		if r.BadExit() {
			t.Fatalf("postmap -q - pgsql:%s: exit status %d\n%s", path, r.ExitCode, r.Stderr)
		}
		return r.Found, true
	}
	found := map[string]string{}
	var ask func(keys []string)
	ask = func(keys []string) {
		f, ok := run(keys)
		switch {
		case ok:
			maps.Copy(found, f)
		case len(keys) == 1:
			found[keys[0]] = pgLookupError
		default:
			ask(keys[:len(keys)/2])
			ask(keys[len(keys)/2:])
		}
	}
	ask(keys)
	return found
}

// pgAnswer is Lookup's answer in pgPostmap' terms.
func pgAnswer(tb *Table, key string) (string, error) {
	got, err := tb.Lookup(context.Background(), key)
	if err != nil {
		return pgLookupError, err
	}
	return strings.Join(got, ","), nil
}

// newPgDB creates a database holding setup (run as the superuser), and a
// role "lookup" (password "pw") that may read it.
func newPgDB(t *testing.T, s *pgtest.Server, setup string) string {
	t.Helper()
	db := s.NewDatabase(t)
	s.CreateUser(t, "lookup", "pw")
	if setup != "" {
		s.ExecDB(t, db, setup)
	}
	s.GrantRead(t, "lookup", db)
	s.ExecDB(t, db, "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO lookup")
	return db
}

// pgCF is the text of a lookup file for db on s's socket as "lookup".
func pgCF(s *pgtest.Server, db, rest string) string {
	return "hosts = unix:" + s.SocketDir() + "\nuser = lookup\npassword = pw\ndbname = " + db + "\n" + rest
}

func parsePgCF(t *testing.T, path, text string) *postfix.SQLTable {
	t.Helper()
	cf, err := postfix.ParseSQLTable("pgsql", path, strings.NewReader(text))
	if err != nil {
		t.Fatalf("ParseSQLTable(%s): %v", path, err)
	}
	return cf
}

// pgKeys are keys whose expansion, folding, quoting or encoding could go
// wrong.
var pgKeys = []string{
	"example.com", "User@Example.COM", "@example.com", "user@", "a@b@mail.example.com",
	"x@a..example.com", "x@.example.com", "x@example.com.", "x@com", "o'brien@example.com",
	`back\slash@x.y`, `\\`, `x\`, `\'`, `dq"x@y.z`, "*", "(", ")", "%", "_", ";", "100%@x.y", "a_b%c@x.y",
	"x' OR '1'='1", "x'; DROP TABLE dom; --", "x' UNION SELECT 'injected", "$$x$$", "E'\\x41'",
	"ÄBC@Example.com", "Straße@x.y", "ẞ@x.y", "ς@x.y", "İ@x.y", "ΣΑΣ@x.y", "ﬁ@x.y", "K@x.y",
	"bücher.example", "über.example", "пример.рф", "Shop.Example.NET", "plain.example",
	"\x1a@x.y", "\xff@x.y", "é\xff",
}

// pgDomTable holds domains stored as a UTF8 database keeps them: ASCII, a
// mixed-case name, an IDN in UTF-8, the UTF-8 bytes of "über" read as
// Latin-1 (what a LATIN1 session makes of the key "über.example"), a name
// Latin-1 cannot hold, and a transport Latin-1 cannot hold.
const pgDomTable = `CREATE TABLE dom (domain varchar(255) NOT NULL, active smallint NOT NULL DEFAULT 1, transport text);
INSERT INTO dom (domain, transport) VALUES ('plain.example', 'virtual'), ('Shop.Example.NET', 'virtual'),
 ('bücher.example', 'é'), ('Ã¼ber.example', 'virtual'), ('пример.рф', 'x'), ('wide.example', 'ẞ');`

// TestPgSQL runs the pgsql tests that share one server.
func TestPgSQL(t *testing.T) {
	s := pgtest.Start(t)
	// Corpus first: it drops every database and role.
	t.Run("Corpus", func(t *testing.T) { testPgSQLCorpus(t, s) })
	t.Run("Differential", func(t *testing.T) { testPgSQLDifferential(t, s) })
	t.Run("Legacy", func(t *testing.T) { testPgSQLLegacy(t, s) })
	t.Run("Hosts", func(t *testing.T) { testPgSQLHosts(t, s) })
	t.Run("Listing", func(t *testing.T) { testPgSQLListing(t, s) })
	t.Run("Errors", func(t *testing.T) { testPgSQLErrors(t, s) })
	t.Run("EachDomainFailsPartWay", func(t *testing.T) { testPgSQLPartWay(t, s) })
	t.Run("AliasTargets", func(t *testing.T) { testPgSQLAliasTargets(t, s) })
	t.Run("Environment", func(t *testing.T) { testPgSQLEnvironment(t, s) })
	t.Run("ListingTimeout", func(t *testing.T) { testPgSQLListingTimeout(t, s) })
	t.Run("DeadHost", func(t *testing.T) { testPgSQLDeadHost(t, s) })
}

// testPgSQLDifferential asks the real postmap and Lookup the same keys of
// tables whose queries echo their expansions or read stored rows.
func testPgSQLDifferential(t *testing.T, s *pgtest.Server) {
	postmap := postmaptest.Need(t, "pgsql")
	db := newPgDB(t, s, pgDomTable)
	// A database whose server-side setting reads backslashes in '...' as
	// escapes, as before PostgreSQL 9.1.
	offDB := newPgDB(t, s, "")
	s.Exec(t, "ALTER DATABASE "+pgtest.QuoteIdent(offDB)+" SET standard_conforming_strings = off")

	type spec struct {
		db, query, result, domain string
		limit                     int
		keys                      []string // default pgKeys
	}
	// For queries that fail for every key Postfix queries (postmap takes
	// a second for each failure).
	failing := []string{"example.com", "\xff@x.y"}
	specs := []spec{
		{query: "SELECT '%s'"},
		{query: "SELECT '%u'"},
		{query: "SELECT '%d'"},
		{query: "SELECT '%1'"},
		{query: "SELECT '%2.%1'"},
		{query: "SELECT '%3'"},
		{query: "SELECT '%U|%D|%S'"},
		{query: "SELECT '100%%' || '%s'"},
		{query: "SELECT NULL, '%s', ''"},
		{query: "SELECT 'a@b.c' UNION ALL SELECT '%s' UNION ALL SELECT 'plain'", result: "%u"},
		{query: "SELECT 'a@b.c' UNION ALL SELECT '%s' UNION ALL SELECT 'plain'", result: "%d"},
		{query: "SELECT 'v'", result: "[%s]%%"},
		{query: "SELECT 'v'", result: "%D/%U/%S/%1"},
		{query: "SELECT '%s'", domain: "example.com, !y.z x.y"},
		// LATIN1: each byte of the key is one character.
		{query: "SELECT '%s' || '|' || length('%s') || '|' || octet_length('%s') || '|' || upper('%s')"},
		{query: "SELECT domain FROM dom WHERE domain = '%s' AND active = 1"},
		{query: "SELECT transport FROM dom WHERE domain = '%s'"}, // wide.example fails the query
		{query: "SELECT domain FROM dom WHERE domain ILIKE '%s'"},
		// Several statements: the last one's rows count.
		{query: "SELECT 'first'; SELECT 'second', '%s'"},
		{query: "SELECT '%s'; SET search_path = public"},
		{query: "-- %s", keys: failing}, // an empty query fails
		{query: "SELECT 1/0, '%s'", keys: failing},
		{query: "SELECT '%s' FROM generate_series(1, 3)", limit: 2, keys: failing},
		{query: "SELECT '%s' FROM generate_series(1, 2)", limit: 2},
		// Values as the server's text.
		{query: "SELECT true, false, '2024-01-01'::timestamp, '2024-01-01 12:00+02'::timestamptz, 0.1::float4, 1e20::float8," +
			" '\\x41'::bytea, 1.50::numeric, '2024-01-01'::date, interval '1 day', ARRAY[1,2], '{\"a\":1}'::jsonb, 12::int2, 'x'::char(3) || '|', '%s'"},
		{db: offDB, query: "SELECT '%s' || '|' || length('%s')"},
	}
	for _, sp := range specs {
		if sp.db == "" {
			sp.db = db
		}
		cf := pgCF(s, sp.db, "query = "+sp.query+"\n")
		if sp.result != "" {
			cf += "result_format = " + sp.result + "\n"
		}
		if sp.domain != "" {
			cf += "domain = " + sp.domain + "\n"
		}
		if sp.limit > 0 {
			cf += "expansion_limit = " + strconv.Itoa(sp.limit) + "\n"
		}
		if sp.keys == nil {
			sp.keys = pgKeys
		}
		path := pgWriteCF(t, cf)
		want := pgPostmap(t, postmap, path, sp.keys)
		tb := openTable(t, parsePgCF(t, path, cf), Options{})
		for _, k := range sp.keys {
			got, err := pgAnswer(tb, k)
			if got != want[k] {
				t.Errorf("query %q result_format %q domain %q limit %d: Lookup(%q) = %q (%v), postmap says %q",
					sp.query, sp.result, sp.domain, sp.limit, k, got, err, want[k])
			}
			if err != nil && strings.Contains(err.Error(), "pw") {
				t.Errorf("Lookup(%q) error %q reveals the password", k, err)
			}
		}
	}
	// The injection attempts left the table alone.
	if n := s.QueryDB(t, db, "SELECT count(*) FROM dom"); n[0][0] != "6" {
		t.Errorf("dom has %s rows after the lookups, want 6", n[0][0])
	}
}

// testPgSQLLegacy: the legacy fields, select_function included, compose
// the query Postfix composes.
func testPgSQLLegacy(t *testing.T, s *pgtest.Server) {
	postmap := postmaptest.Need(t, "pgsql")
	db := newPgDB(t, s, pgDomTable+`
CREATE FUNCTION hosted(k text) RETURNS text LANGUAGE sql STABLE AS $$ SELECT domain FROM dom WHERE domain = k AND active = 1 $$;
CREATE FUNCTION echo(k text) RETURNS SETOF text LANGUAGE sql AS $$ SELECT k UNION ALL SELECT upper(k) $$;`)
	keys := append([]string{"plain.example", "über.example", "Plain.Example", "missing.example"}, pgKeys...)
	for _, legacy := range []string{
		"table = dom\nselect_field = domain\nwhere_field = domain\nadditional_conditions = AND active = 1\n",
		"table = dom\nselect_field = transport, domain\nwhere_field = domain\n",
		"select_function = hosted\n",
		"select_function = echo\n",
	} {
		cf := pgCF(s, db, legacy)
		path := pgWriteCF(t, cf)
		want := pgPostmap(t, postmap, path, keys)
		tb := openTable(t, parsePgCF(t, path, cf), Options{})
		for _, k := range keys {
			if got, err := pgAnswer(tb, k); got != want[k] {
				t.Errorf("%q: Lookup(%q) = %q (%v), postmap says %q", legacy, k, got, err, want[k])
			}
		}
		if strings.Contains(legacy, "active") {
			got, err := tb.List(context.Background())
			if want := []string{"plain.example", "wide.example", "über.example"}; err != nil || !slices.Equal(got, want) {
				t.Errorf("%q: List() = %q, %v, want %q", legacy, got, err, want)
			}
		}
	}
}

// testPgSQLHosts: every spelling of a host reaches the server Postfix
// reaches, with the credentials Postfix uses, and fails where it fails.
func testPgSQLHosts(t *testing.T, s *pgtest.Server) {
	postmap := postmaptest.Need(t, "pgsql")
	db := newPgDB(t, s, "")
	s.CreateUser(t, "uri", "p@ss:w/rd%")
	s.GrantRead(t, "uri", db)
	port := strconv.Itoa(s.Port())
	const query = "query = SELECT current_user || '@' || current_database() || '|' || coalesce(inet_server_port()::text, 'socket') || '|%s'\n"
	wantTCP := "lookup@" + db + "|" + port + "|example.com"
	wantSocket := "lookup@" + db + "|socket|example.com"
	tests := []struct {
		hosts, user, password string
		want                  string // pgLookupError: fails
	}{
		{"inet:" + s.Addr(), "lookup", "pw", wantTCP},
		{s.Addr(), "lookup", "pw", wantTCP},
		{"unix:" + s.SocketDir(), "lookup", "pw", wantSocket},
		{s.SocketDir(), "lookup", "pw", wantSocket},
		{"inet:" + s.SocketDir(), "lookup", "pw", wantSocket},
		// A URI brings its own user, password and database; the file's
		// are not used.
		{"postgresql://lookup:pw@" + s.Addr() + "/" + db, "nobody", "wrong", wantTCP},
		{"postgresql://uri:p%40ss%3Aw%2Frd%25@" + s.Addr() + "/" + db + "?sslmode=prefer&application_name=x", "", "", "uri@" + db + "|" + port + "|example.com"},
		{"postgresql:///" + db + "?host=" + s.SocketDir() + "&user=lookup&password=pw", "x", "y", wantSocket},
		{"postgresql://%2F" + strings.ReplaceAll(strings.TrimPrefix(s.SocketDir(), "/"), "/", "%2F") + "/" + db + "?user=lookup&password=pw", "", "", wantSocket},
		{"postgresql://lookup:pw@" + s.Addr(), "lookup", "pw", pgLookupError},  // database "lookup"
		{"postgresql://" + s.Addr() + "/" + db, "lookup", "pw", pgLookupError}, // no password
		{"postgres://lookup:pw@" + s.Addr() + "/" + db, "lookup", "pw", pgLookupError},
		{"postgresql://lookup:pw@" + s.Addr() + "/" + db + "?bogus=1", "lookup", "pw", pgLookupError},
		{"unix:" + s.SocketDir() + ":" + port, "lookup", "pw", pgLookupError}, // no port after a path
		{"[127.0.0.1]:" + port, "lookup", "pw", pgLookupError},
		{"127.0.0.1:99999", "lookup", "pw", pgLookupError},
		{"127.0.0.1:x", "lookup", "pw", pgLookupError},
		// The first host is dead, the next one answers.
		{"127.0.0.1:1 inet:" + s.Addr(), "lookup", "pw", wantTCP},
		{"unix:/nonexistent, postgres://x:y@z/w, unix:" + s.SocketDir(), "lookup", "pw", wantSocket},
		{"postgresql://lookup:pw@127.0.0.1:1/" + db + ", " + s.Addr(), "lookup", "pw", wantTCP},
	}
	for _, tt := range tests {
		cf := "hosts = " + tt.hosts + "\nuser = " + tt.user + "\npassword = " + tt.password + "\ndbname = " + db + "\n" + query
		path := pgWriteCF(t, cf)
		want := pgPostmap(t, postmap, path, []string{"example.com"})["example.com"]
		if want != tt.want {
			t.Errorf("hosts %q: postmap says %q, want %q", tt.hosts, want, tt.want)
		}
		tb := openTable(t, parsePgCF(t, path, cf), Options{ConnectTimeout: time.Second})
		got, err := pgAnswer(tb, "example.com")
		if got != want {
			t.Errorf("hosts %q: Lookup = %q (%v), postmap says %q", tt.hosts, got, err, want)
		}
		if err != nil {
			t.Logf("hosts %q: %v", tt.hosts, err)
			for _, secret := range []string{":pw", "p@ss", "%40ss", ":y@"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("hosts %q: error %q reveals a password (%q)", tt.hosts, err, secret)
				}
			}
		}
	}

	// Override reaches every host at the override instead, with the
	// credentials Postfix would use.
	for _, tt := range []struct {
		hosts, user, password, override, want string
	}{
		{"db.invalid:5432", "lookup", "pw", s.Addr(), wantTCP},
		{"db.invalid:5432, other.invalid", "lookup", "pw", "inet:" + s.Addr(), wantTCP},
		{"localhost", "lookup", "pw", "unix:" + s.SocketDir(), wantSocket},
		{"localhost", "lookup", "pw", s.SocketDir(), wantSocket},
		{"localhost", "lookup", "pw", "postgresql://" + s.Addr() + "/?sslmode=disable", wantTCP},
		{"postgresql://lookup:pw@db.invalid/" + db + "?sslmode=verify-full", "", "", s.Addr(), wantTCP},
		{"localhost", "nobody", "wrong", "postgresql://lookup:pw@" + s.Addr() + "/" + db, wantTCP},
	} {
		cf := "hosts = " + tt.hosts + "\nuser = " + tt.user + "\npassword = " + tt.password + "\ndbname = " + db + "\n" + query
		tb := openTable(t, parsePgCF(t, "/etc/postfix/pgsql/t.cf", cf), Options{Override: tt.override})
		if got, err := pgAnswer(tb, "example.com"); got != tt.want {
			t.Errorf("hosts %q with Override %q: Lookup = %q (%v), want %q", tt.hosts, tt.override, got, err, tt.want)
		}
		t.Logf("hosts %q with Override %q: endpoints %q", tt.hosts, tt.override, tb.Endpoints())
	}
}

// testPgSQLListing: EachDomain keeps exactly the names Postfix finds, with
// rows Postfix's LATIN1 session cannot read left out rather than failing
// the listing.
func testPgSQLListing(t *testing.T, s *pgtest.Server) {
	postmap := postmaptest.Need(t, "pgsql")
	db := newPgDB(t, s, pgDomTable)
	for _, query := range []string{
		"SELECT domain FROM dom WHERE domain='%s' AND active = 1",
		"SELECT transport FROM dom WHERE domain='%s'",
		"SELECT domain FROM dom WHERE domain='%s' UNION SELECT domain FROM dom WHERE domain='%s' AND transport = 'virtual'",
	} {
		cf := pgCF(s, db, "query = "+query+"\n")
		path := pgWriteCF(t, cf)
		keys := []string{"plain.example", "shop.example.net", "bücher.example", "über.example", "пример.рф", "wide.example", "ã¼ber.example"}
		answers := pgPostmap(t, postmap, path, keys)
		var want []string
		for _, k := range keys {
			if a := answers[k]; a != "" && a != pgLookupError {
				want = append(want, k)
			}
		}
		sort.Strings(want)
		tb := openTable(t, parsePgCF(t, path, cf), Options{})
		got, err := tb.List(context.Background())
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%q: List() = %q, %v; postmap finds %q (answers %q)", query, got, err, want, answers)
		}
	}
}

// testPgSQLErrors: a refused login reads "access denied" and no error
// quotes a password.
func testPgSQLErrors(t *testing.T, s *pgtest.Server) {
	db := newPgDB(t, s, pgDomTable)
	const secret = "Wr0ng-S3cret"
	for _, tt := range []struct{ hosts, password string }{
		{s.Addr(), secret},
		{"unix:" + s.SocketDir(), secret},
		{"postgresql://lookup:" + secret + "@" + s.Addr() + "/" + db, ""},
		{"postgresql://lookup@" + s.Addr() + "/" + db + "?password=" + secret, ""},
	} {
		cf := "hosts = " + tt.hosts + "\nuser = lookup\npassword = " + tt.password + "\ndbname = " + db + "\nquery = SELECT domain FROM dom WHERE domain='%s'\n"
		tb := openTable(t, parsePgCF(t, "/etc/postfix/pgsql/t.cf", cf), Options{})
		_, err := tb.Lookup(context.Background(), "plain.example")
		if err == nil || !strings.Contains(err.Error(), "access denied") || strings.Contains(err.Error(), secret) {
			t.Errorf("hosts %q with a wrong password: Lookup error = %v, want access denied without the password", redactURI(tt.hosts), err)
		}
		if _, err := tb.List(context.Background()); err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("hosts %q with a wrong password: List error = %v", redactURI(tt.hosts), err)
		}
		for _, e := range tb.Endpoints() {
			if strings.Contains(e, secret) {
				t.Errorf("Endpoints() = %q reveals the password", tb.Endpoints())
			}
		}
		t.Logf("%v", err)
	}

	// Every host unreachable: the error names each one and the file.
	cf := "hosts = postgresql://lookup:" + secret + "@127.0.0.1:1/" + db + ", unix:/nonexistent\nuser = lookup\npassword = " + secret + "\ndbname = " + db + "\nquery = SELECT '%s'\n"
	tb := openTable(t, parsePgCF(t, "/etc/postfix/pgsql/t.cf", cf), Options{ConnectTimeout: time.Second})
	_, err := tb.Lookup(context.Background(), "example.com")
	if err == nil {
		t.Fatal("Lookup with every host dead succeeded")
	}
	for _, want := range []string{"pgsql postgresql://lookup@127.0.0.1:1/" + db + " (/etc/postfix/pgsql/t.cf): ", "pgsql unix:/nonexistent (/etc/postfix/pgsql/t.cf): "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error %q reveals the password", err)
	}
}

// testPgSQLPartWay: the listing is passed on row by row, and a database
// error after some rows is an error; a dead first host makes EachDomain
// call restart before the second host's listing.
func testPgSQLPartWay(t *testing.T, s *pgtest.Server) {
	db := newPgDB(t, s, `CREATE TABLE domain (id int PRIMARY KEY, domain varchar(255) NOT NULL);
INSERT INTO domain SELECT n, 'd' || n || '.example' FROM generate_series(1, 5000) n;
CREATE FUNCTION checked(d text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  IF d = 'd4000.example' THEN RAISE EXCEPTION 'broken row'; END IF;
  RETURN d;
END $$;`)
	ctx := context.Background()
	cf := parsePgCF(t, "/etc/postfix/pgsql/t.cf", pgCF(s, db, "query = SELECT domain FROM domain WHERE domain='%s'\n"))
	n, restarts := 0, 0
	if err := openTable(t, cf, Options{}).EachDomain(ctx, func(string, string) { n++ }, func() { restarts++ }); err != nil || n != 5000 || restarts != 0 {
		t.Fatalf("EachDomain = %v after %d domains and %d restarts, want 5000 domains", err, n, restarts)
	}

	cf.Query = "SELECT checked(domain) FROM domain WHERE domain='%s'"
	n = 0
	err := openTable(t, cf, Options{}).EachDomain(ctx, func(string, string) { n++ }, func() { restarts++ })
	if err == nil || !strings.Contains(err.Error(), "broken row") {
		t.Fatalf("EachDomain over a failing row: error = %v, want the database's", err)
	}
	if n == 0 || n >= 5000 {
		t.Errorf("EachDomain passed on %d domains before the error, want part of the listing", n)
	}
	t.Logf("%d domains passed on before the error: %v", n, err)

	cf.Query = "SELECT domain FROM domain WHERE domain='%s'"
	cf.Hosts = append([]string{"unix:/nonexistent"}, cf.Hosts...)
	n, restarts = 0, 0
	if err := openTable(t, cf, Options{}).EachDomain(ctx, func(string, string) { n++ }, func() { restarts++ }); err != nil || n != 5000 || restarts != 1 {
		t.Errorf("EachDomain with a dead first host = %v, %d domains, %d restarts; want 5000 and 1", err, n, restarts)
	}
}

// testPgSQLAliasTargets: the alias_domain table of iRedMail (active
// smallint) and PostfixAdmin (active boolean).
func testPgSQLAliasTargets(t *testing.T, s *pgtest.Server) {
	for _, typ := range []string{"smallint", "boolean"} {
		active := map[string][2]string{"smallint": {"1", "0"}, "boolean": {"true", "false"}}[typ]
		db := newPgDB(t, s, pgDomTable+`CREATE TABLE alias_domain (alias_domain varchar(255) PRIMARY KEY, target_domain varchar(255) NOT NULL, active `+typ+` NOT NULL);
INSERT INTO alias_domain VALUES ('Alias.Example', 'plain.example', `+active[0]+`), ('old.example', 'plain.example', `+active[1]+`), ('ALL', 'plain.example', `+active[0]+`), ('пример.com', 'plain.example', `+active[0]+`);`)
		tb := openTable(t, parsePgCF(t, "/etc/postfix/pgsql/t.cf", pgCF(s, db, "query = SELECT domain FROM dom WHERE domain='%s'\n")), Options{})
		got, err := tb.AliasTargets(context.Background())
		if err != nil || len(got) != 1 || got["alias.example"] != "plain.example" {
			t.Errorf("active %s: AliasTargets() = %v, %v, want map[alias.example:plain.example]", typ, got, err)
		}
		if target, err := tb.AliasTarget(context.Background(), "ALIAS.example"); err != nil || target != "plain.example" {
			t.Errorf("active %s: AliasTarget(ALIAS.example) = %q, %v", typ, target, err)
		}
	}
}

// testPgSQLEnvironment: PG* variables, which Postfix's daemons never see,
// change no answer.
func testPgSQLEnvironment(t *testing.T, s *pgtest.Server) {
	db := newPgDB(t, s, pgDomTable+"CREATE SCHEMA evil; CREATE TABLE evil.dom (domain text); INSERT INTO evil.dom VALUES ('evil.example');")
	s.CreateUser(t, "nopw", "secret")
	s.GrantRead(t, "nopw", db)
	passfile := filepath.Join(t.TempDir(), "pgpass")
	if err := os.WriteFile(passfile, []byte("*:*:*:*:secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	query := "query = SELECT d.domain || '|' || current_setting('application_name') || '|' || '2024-01-01 00:00:00+00'::timestamptz FROM dom d WHERE d.domain = '%s'\n"
	tcp := parsePgCF(t, "/etc/postfix/pgsql/t.cf", "hosts = "+s.Addr()+"\nuser = lookup\npassword = pw\ndbname = "+db+"\n"+query)
	nopw := parsePgCF(t, "/etc/postfix/pgsql/t.cf", "hosts = "+s.Addr()+"\nuser = nopw\ndbname = "+db+"\n"+query)
	uri := parsePgCF(t, "/etc/postfix/pgsql/t.cf", "hosts = postgresql://nopw@"+s.Addr()+"/"+db+"\ndbname = x\n"+query)
	const want = "plain.example||2024-01-01 00:00:00+00"
	check := func(stage string) {
		t.Helper()
		for _, cf := range []*postfix.SQLTable{tcp, pgCFTable(t, s, db, query)} {
			tb, err := Open(cf, Options{})
			if err != nil {
				t.Fatalf("%s: Open: %v", stage, err)
			}
			got, err := pgAnswer(tb, "plain.example")
			tb.Close()
			if got != want {
				t.Errorf("%s: hosts %q: Lookup = %q (%v), want %q", stage, cf.Hosts, got, err, want)
			}
		}
		// No password in the file: Postfix's login fails, whatever
		// PGPASSWORD or PGPASSFILE hold.
		for _, cf := range []*postfix.SQLTable{nopw, uri} {
			tb, err := Open(cf, Options{})
			if err != nil {
				t.Fatalf("%s: Open: %v", stage, err)
			}
			if got, err := pgAnswer(tb, "plain.example"); err == nil {
				t.Errorf("%s: hosts %q without a password: Lookup = %q, want a failed login", stage, cf.Hosts, got)
			}
			tb.Close()
		}
	}
	check("clean environment")
	for k, v := range map[string]string{
		"PGHOST": "/nonexistent", "PGPORT": "1", "PGDATABASE": "postgres", "PGUSER": "postgres",
		"PGPASSWORD": "secret", "PGPASSFILE": passfile, "PGSSLMODE": "verify-full", "PGSSLROOTCERT": "/nonexistent",
		"PGSSLCERT": "/nonexistent", "PGSSLKEY": "/nonexistent", "PGSSLCERTMODE": "require", "PGSSLNEGOTIATION": "direct",
		"PGCONNECT_TIMEOUT": "bogus", "PGTARGETSESSIONATTRS": "bogus", "PGOPTIONS": "-c search_path=evil",
		"PGAPPNAME": "env-app", "PGTZ": "America/New_York", "PGCHANNELBINDING": "require", "PGREQUIREAUTH": "none",
		"PGMINPROTOCOLVERSION": "bogus", "PGSERVICEFILE": "/nonexistent", "PGSSLSNI": "bogus", "PGCLIENTENCODING": "UTF8",
	} {
		t.Setenv(k, v)
	}
	check("PG* variables set")

	// PGSERVICE makes pgx read a service file: the table then fails, and
	// says why, rather than answering from elsewhere.
	t.Setenv("PGSERVICE", "nonexistent")
	tb, err := Open(tcp, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	if _, err := tb.Lookup(context.Background(), "plain.example"); err == nil || !strings.Contains(err.Error(), "PGSERVICE") {
		t.Errorf("Lookup with PGSERVICE set: error = %v, want one naming PGSERVICE", err)
	}
}

// pgCFTable is the socket twin of the table in testPgSQLEnvironment.
func pgCFTable(t *testing.T, s *pgtest.Server, db, query string) *postfix.SQLTable {
	return parsePgCF(t, "/etc/postfix/pgsql/t.cf", pgCF(s, db, query))
}

// testPgSQLCorpus loads iredmail-pgsql-debian12 and checks EachDomain
// against expected.json, Lookup against postmap for every candidate, and
// AliasTargets against its alias_domain table.
func testPgSQLCorpus(t *testing.T, s *pgtest.Server) {
	postmap := postmaptest.Need(t, "pgsql")
	dir := "../../testdata/corpus/iredmail-pgsql-debian12"
	b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp struct {
		SQL struct {
			Candidates      []string `json:"candidates"`
			ExpectedDomains []string `json:"expected_domains"`
			NotListed       []string `json:"not_listed"`
		} `json:"sql"`
	}
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	candidates := exp.SQL.Candidates
	if len(candidates) == 0 {
		candidates = append(slices.Clone(exp.SQL.ExpectedDomains), exp.SQL.NotListed...)
	}
	if len(exp.SQL.ExpectedDomains) == 0 || len(candidates) == 0 {
		t.Fatal("expected.json: no sql.expected_domains or candidates")
	}
	s.Reset(t)
	s.LoadFile(t, "template1", filepath.Join(dir, "pgsql-schema.sql"))
	s.LoadFile(t, "vmail", filepath.Join(dir, "pgsql-seed.sql"))
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	const file = "/etc/postfix/pgsql/virtual_mailbox_domains.cf"
	cf, err := postfix.LoadSQLTable(root, "pgsql", file)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, override := range []string{s.Addr(), "unix:" + s.SocketDir()} {
		tb := openTable(t, cf, Options{Override: override, Root: root})
		got, err := tb.List(ctx)
		want := lowerAll(exp.SQL.ExpectedDomains)
		sort.Strings(want)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Override %s: List() = %q, %v, want expected_domains %q", override, got, err, want)
		}

		// postmap, through a copy with hosts pointed at the server.
		text, err := root.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		copyText := strings.Replace(string(text), "127.0.0.1:5432", override, 1)
		if copyText == string(text) {
			t.Fatalf("%s: no hosts = 127.0.0.1:5432 line to rewrite", file)
		}
		answers := pgPostmap(t, postmap, pgWriteCF(t, copyText), append(candidates, "Shop.Example.NET", "EXAMPLE.com"))
		for _, c := range append(candidates, "Shop.Example.NET", "EXAMPLE.com") {
			if got, err := pgAnswer(tb, c); got != answers[c] {
				t.Errorf("Override %s: Lookup(%q) = %q (%v), postmap says %q", override, c, got, err, answers[c])
			}
		}
		if answers["shop.example.net"] != "" {
			t.Errorf("postmap finds shop.example.net (stored Shop.Example.NET): %q", answers["shop.example.net"])
		}

		aliases, err := tb.AliasTargets(ctx)
		if err != nil || aliases["alias.example.com"] != "example.com" || aliases["oldalias.example.com"] != "" {
			t.Errorf("AliasTargets() = %v, %v, want alias.example.com -> example.com and no oldalias.example.com", aliases, err)
		}
	}
}

// TestPgSQLServerGoesAway: a stopped server fails the lookup with an
// error naming the host; after a restart the pool reconnects, also when
// its idle sessions were ended under it moments before.
func TestPgSQLServerGoesAway(t *testing.T) {
	s := pgtest.Start(t)
	db := newPgDB(t, s, pgDomTable)
	cf := parsePgCF(t, "/etc/postfix/pgsql/t.cf", "hosts = "+s.Addr()+"\nuser = lookup\npassword = pw\ndbname = "+db+"\nquery = SELECT domain FROM dom WHERE domain='%s'\n")
	tb := openTable(t, cf, Options{})
	ctx := context.Background()
	fill := func() {
		t.Helper()
		// Several lookups at once leave several idle sessions pooled.
		errs := make(chan error, 4)
		for range 4 {
			go func() {
				_, err := tb.Lookup(ctx, "plain.example")
				errs <- err
			}()
		}
		for range 4 {
			if err := <-errs; err != nil {
				t.Fatalf("Lookup: %v", err)
			}
		}
	}
	fill()
	s.Stop(t)
	_, err := tb.Lookup(ctx, "plain.example")
	t.Logf("stopped: %v", err)
	if err == nil || !strings.Contains(err.Error(), "pgsql "+s.Addr()+" (/etc/postfix/pgsql/t.cf): ") {
		t.Errorf("Lookup with the server stopped: error = %v, want one naming %s", err, s.Addr())
	}
	if _, err := tb.List(ctx); err == nil {
		t.Error("List with the server stopped succeeded")
	}
	s.Restart(t)
	if ok, err := tb.Hosts(ctx, "plain.example"); !ok || err != nil {
		t.Errorf("Hosts after Restart = %v, %v, want true", ok, err)
	}

	// A restart between two lookups, with no failed lookup in between:
	// the pooled sessions are dead, and the next lookup still answers.
	for i := range 3 {
		fill()
		s.Restart(t)
		if ok, err := tb.Hosts(ctx, "plain.example"); !ok || err != nil {
			t.Errorf("Hosts right after restart %d = %v, %v, want true", i, ok, err)
		}
	}
}

// TestPgsqlConfig checks the settings of hosts entries without a server.
func TestPgsqlConfig(t *testing.T) {
	base := &postfix.SQLTable{Type: "pgsql", User: "vmail", Password: "secret", DBName: "vmail"}
	tests := []struct {
		host, override                    string
		name, cfgHost, user, password, db string
		port                              uint16
		tls                               bool // TLS attempted first, plaintext as the fallback
	}{
		{"localhost", "", "localhost", "localhost", "vmail", "secret", "vmail", 5432, true},
		{"127.0.0.1:5433", "", "127.0.0.1:5433", "127.0.0.1", "vmail", "secret", "vmail", 5433, true},
		{"inet:db.example.com", "", "inet:db.example.com", "db.example.com", "vmail", "secret", "vmail", 5432, true},
		{"unix:/run/postgresql", "", "unix:/run/postgresql", "/run/postgresql", "vmail", "secret", "vmail", 5432, false},
		{"/run/postgresql", "", "/run/postgresql", "/run/postgresql", "vmail", "secret", "vmail", 5432, false},
		{"unix:", "", "unix:", "/var/run/postgresql", "vmail", "secret", "vmail", 5432, false},
		{"db:", "", "db:", "db", "vmail", "secret", "vmail", 5432, true},
		{"postgresql://u:p%40w@db:6432/d?sslmode=disable", "", "postgresql://u@db:6432/d?sslmode=disable", "db", "u", "p@w", "d", 6432, false},
		{"postgresql://db", "", "postgresql://db", "db", "postfix", "", "postfix", 5432, true},
		{"postgresql://[::1]:6000/d", "", "postgresql://[::1]:6000/d", "::1", "postfix", "", "d", 6000, true},
		{"postgresql:///d?host=/tmp&password=x&user=u", "", "postgresql:///d?host=/tmp&user=u", "/tmp", "u", "x", "d", 5432, false},
		{"db.example.com", "127.0.0.1:6432", "db.example.com (127.0.0.1:6432)", "127.0.0.1", "vmail", "secret", "vmail", 6432, true},
		{"postgresql://u:pw@db/d?sslmode=verify-full", "unix:/tmp", "postgresql://u@db/d?sslmode=verify-full (unix:/tmp)", "/tmp", "u", "pw", "d", 5432, false},
	}
	for _, tt := range tests {
		cfg, name, err := pgsqlConfig(tt.host, base, Options{Override: tt.override})
		if err != nil {
			t.Errorf("pgsqlConfig(%q, %q): %v", tt.host, tt.override, err)
			continue
		}
		if name != tt.name || cfg.Host != tt.cfgHost || cfg.Port != tt.port || cfg.User != tt.user || cfg.Password != tt.password || cfg.Database != tt.db {
			t.Errorf("pgsqlConfig(%q, %q) = %q %s:%d %s/%s db %s, want %q %s:%d %s/%s db %s", tt.host, tt.override,
				name, cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database, tt.name, tt.cfgHost, tt.port, tt.user, tt.password, tt.db)
		}
		if tls := cfg.TLSConfig != nil && len(cfg.Fallbacks) == 1 && cfg.Fallbacks[0].TLSConfig == nil; tls != tt.tls && !strings.Contains(tt.host, "sslmode") {
			t.Errorf("pgsqlConfig(%q): TLS %v then %d fallbacks, want prefer = %v", tt.host, cfg.TLSConfig != nil, len(cfg.Fallbacks), tt.tls)
		}
		if want := map[string]string{"client_encoding": "LATIN1", "standard_conforming_strings": "on"}; !maps.Equal(cfg.RuntimeParams, want) {
			t.Errorf("pgsqlConfig(%q): RuntimeParams = %v, want %v", tt.host, cfg.RuntimeParams, want)
		}
	}
	for _, h := range []string{
		"127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:x", "[::1]:5432", "::1", "postgres://u:pw@h:5432/d",
		"postgresql:x=1", "postgresql://h/d?service=x", "postgresql://h/d?hostaddr=1.2.3.4", "postgresql://h/d?nope=1",
		"postgresql://h/d?sslmode", "postgresql://h/d?a=b=c", "postgresql://u:p%zz@h/d", "postgresql://[::1", "postgresql://[]/d",
		"postgresql://h/d?sslmode=bogus", "postgresql://h:x/d", "postgresql://u:%00@h/d",
	} {
		_, name, err := pgsqlConfig(h, base, Options{})
		if err == nil {
			t.Errorf("pgsqlConfig(%q) = ok, want an error", h)
			continue
		}
		if strings.Contains(err.Error(), "pw") || strings.Contains(name, "pw") || strings.Contains(err.Error(), "secret") {
			t.Errorf("pgsqlConfig(%q) = %q, %v: reveals a password", h, name, err)
		}
	}
}

// FuzzPgsqlConfig: any hosts entry gives settings or an error, never a
// name or error that quotes the file's password or a URI's, and every
// session is LATIN1 with standard_conforming_strings on.
func FuzzPgsqlConfig(f *testing.F) {
	for _, h := range []string{
		"localhost", "127.0.0.1:5432", "inet:db.example.com:6432", "unix:/var/run/postgresql", "/tmp", "unix:",
		"postgresql://vmail:s3cretpw@127.0.0.1:5432/vmail?sslmode=disable",
		"postgresql://u:pa%40ss@[::1]:5432,db:6432/d?password=querypw&application_name=x",
		"postgresql:///vmail?host=/run/postgresql&user=vmail", "postgres://u:pw@h:5432/d", "[::1]:5432",
	} {
		f.Add(h, "")
	}
	f.Add("db.example.com", "127.0.0.1:6432")
	f.Add("postgresql://u:pw123456@db/d", "unix:/tmp")
	const filePW = "File-Password-42"
	f.Fuzz(func(t *testing.T, h, override string) {
		if h == "" || strings.ContainsAny(h, " \t\r\n,") || strings.ContainsAny(override, " \t\r\n,") {
			return // splitHosts never gives such entries
		}
		base := &postfix.SQLTable{Type: "pgsql", User: "vmail", Password: filePW, DBName: "vmail"}
		cfg, name, err := pgsqlConfig(h, base, Options{Override: override})
		var secrets []string
		if !strings.Contains(h, filePW) && !strings.Contains(override, filePW) {
			secrets = append(secrets, filePW)
		}
		for _, u := range []string{h, override} {
			if set, err := parsePgsqlURI(u); err == nil && len(set["password"]) >= 6 && strings.Count(h+"\x00"+override, set["password"]) == 1 &&
				!strings.Contains(redactURI(u), set["password"]) {
				secrets = append(secrets, set["password"])
			}
		}
		for _, s := range secrets {
			if strings.Contains(name, s) || (err != nil && strings.Contains(err.Error(), s)) {
				t.Fatalf("pgsqlConfig(%q, %q) = %q, %v: reveals %q", h, override, name, err, s)
			}
		}
		if err != nil {
			return
		}
		if cfg.RuntimeParams["client_encoding"] != "LATIN1" || cfg.RuntimeParams["standard_conforming_strings"] != "on" {
			t.Fatalf("pgsqlConfig(%q, %q): RuntimeParams = %v", h, override, cfg.RuntimeParams)
		}
		if !strings.HasPrefix(h, "postgresql:") && (cfg.User != "vmail" || cfg.Password != filePW || cfg.Database != "vmail") &&
			!strings.HasPrefix(override, "postgresql:") {
			t.Fatalf("pgsqlConfig(%q, %q): %s/%s db %s, want the file's credentials", h, override, cfg.User, cfg.Password, cfg.Database)
		}
	})
}

// TestPgsqlLatin1 checks the conversions a UTF8 session uses to stand in
// for LATIN1.
func TestPgsqlLatin1(t *testing.T) {
	for in, want := range map[string]string{"abc": "abc", "ä": "Ã¤", "\xff": "ÿ", "": ""} {
		if got := latin1ToUTF8(in); got != want {
			t.Errorf("latin1ToUTF8(%q) = %q, want %q", in, got, want)
		}
		if back, ok := utf8ToLatin1([]byte(want)); !ok || string(back) != in {
			t.Errorf("utf8ToLatin1(%q) = %q, %v, want %q", want, back, ok, in)
		}
	}
	for _, in := range []string{"ẞ", "пример", "a\u0100"} {
		if got, ok := utf8ToLatin1([]byte(in)); ok {
			t.Errorf("utf8ToLatin1(%q) = %q, want no Latin-1 form", in, got)
		}
	}
}
