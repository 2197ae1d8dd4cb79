package sqltable

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/mariadbtest"
	"github.com/mailautoconf/mailautoconf/internal/pgtest"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/postfix"
)

// isTimeout reports whether err says a deadline passed.
func isTimeout(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "deadline exceeded") || strings.Contains(err.Error(), "timeout") ||
		strings.Contains(err.Error(), "timed out") || strings.Contains(err.Error(), "interrupted"))
}

// TestEachDomainTimeoutCoversConfirmation: ListingTimeout bounds the whole
// EachDomain, the per-key lookups that confirm candidates included, so a
// slow database cannot stall a start or a refresh far beyond it. Each
// lookup of this query takes a while (a 2 MB blob hexed), the listing of
// its candidates none.
func TestEachDomainTimeoutCoversConfirmation(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "slow.sqlite")
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE t (source TEXT)"); err != nil {
		t.Fatal(err)
	}
	for i := range 400 {
		if _, err := db.Exec("INSERT INTO t VALUES (?)", fmt.Sprintf("@d%d.example", i)); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	const query = "SELECT 1 FROM t WHERE source='@%s' AND length(hex(zeroblob(2000000+length('%s'))))>0"
	cf := parseSQLiteCF(t, filepath.Join(dir, "slow.cf"), "dbpath = "+dbPath+"\nquery = "+query+"\n")
	tb := openTable(t, cf, Options{ListingTimeout: 300 * time.Millisecond})
	start := time.Now()
	n := 0
	err = tb.EachDomain(context.Background(), func(string, string) { n++ }, func() {})
	d := time.Since(start)
	t.Logf("EachDomain: %d domains, %v, after %s", n, err, d)
	if !isTimeout(err) {
		t.Errorf("EachDomain with ListingTimeout 300ms = %v after %d domains, want a timeout error", err, n)
	}
	if d > 1500*time.Millisecond {
		t.Errorf("EachDomain with ListingTimeout 300ms took %s", d)
	}
}

// testPgSQLListingTimeout does the same for an exact listing whose
// mixed-case keys are confirmed one by one: the confirming lookups (on
// Postfix's LATIN1 session) are slow, the listing (on a UTF8 session) is
// not.
func testPgSQLListingTimeout(t *testing.T, s *pgtest.Server) {
	db := newPgDB(t, s, `CREATE TABLE dom (domain text NOT NULL);
INSERT INTO dom SELECT 'Mixed' || n || '.Example' FROM generate_series(1, 16) n;
CREATE FUNCTION slow_latin1() RETURNS boolean LANGUAGE sql AS $$
  SELECT CASE WHEN current_setting('client_encoding') = 'LATIN1' THEN (SELECT true FROM pg_sleep(0.5)) ELSE true END $$;`)
	cf := pgCF(s, db, "query = SELECT domain FROM dom WHERE lower(domain)='%s' AND (SELECT slow_latin1())\n")
	tb := openTable(t, parsePgCF(t, "/etc/postfix/pgsql/slow.cf", cf), Options{})
	if got, err := tb.List(context.Background()); err != nil || len(got) != 16 {
		t.Fatalf("List without a short ListingTimeout = %q, %v; want 16 domains", got, err)
	}
	tb = openTable(t, parsePgCF(t, "/etc/postfix/pgsql/slow.cf", cf), Options{ListingTimeout: 300 * time.Millisecond})
	start := time.Now()
	got, err := tb.List(context.Background())
	d := time.Since(start)
	t.Logf("List: %d domains, %v, after %s", len(got), err, d)
	if !isTimeout(err) {
		t.Errorf("List with ListingTimeout 300ms = %q, %v; want a timeout error", got, err)
	}
	if d > 1500*time.Millisecond {
		t.Errorf("List with ListingTimeout 300ms took %s", d)
	}
}

// checkDeadHostRemembered: with a first host that accepts connections and
// never answers, the first lookup within a 2 s deadline still answers
// from the second host, and later ones answer from it at once: the silent
// host is tried last for a while.
func checkDeadHostRemembered(t *testing.T, cf *postfix.SQLTable, key string) {
	t.Helper()
	tb := openTable(t, cf, Options{})
	for i := range 4 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		start := time.Now()
		r, err := tb.Lookup(ctx, key)
		d := time.Since(start)
		cancel()
		if err != nil || len(r) == 0 {
			t.Errorf("Lookup %d with a silent first host = %q, %v after %s; want an answer from the second host", i, r, err, d)
			continue
		}
		if i > 0 && d > 500*time.Millisecond {
			t.Errorf("Lookup %d with a silent first host took %s: the host was not remembered as dead", i, d)
		}
		t.Logf("Lookup %d: %s", i, d)
	}
}

func TestDeadHostRememberedMySQL(t *testing.T) {
	s := mariadbtest.Shared(t)
	_, mt := newDB(t, s, domainTable)
	mt.Query = "SELECT domain FROM domain WHERE domain='%s'"
	mt.Hosts = []string{"unix:" + testtool.SilentListener(t, "unix"), "unix:" + s.Socket()}
	checkDeadHostRemembered(t, mt, "example.org")
}

func testPgSQLDeadHost(t *testing.T, s *pgtest.Server) {
	db := newPgDB(t, s, pgDomTable)
	cf := "hosts = " + testtool.SilentListener(t, "tcp") + " " + s.Addr() + "\nuser = lookup\npassword = pw\ndbname = " + db +
		"\nquery = SELECT domain FROM dom WHERE domain='%s'\n"
	checkDeadHostRemembered(t, parsePgCF(t, "/etc/postfix/pgsql/t.cf", cf), "plain.example")
}

// TestPgsqlRedactMalformedURI: a hosts entry that is meant as a connection
// URI but misspelled keeps its password out of Endpoints and of every
// error.
func TestPgsqlRedactMalformedURI(t *testing.T) {
	const pw = "S3cretPW"
	for _, h := range []string{
		"postgresql:vmail:" + pw + "@db.example",
		"postgres:vmail:" + pw + "@db.example",
		"postgresql:/vmail:" + pw + "@db.example",
		"postgres:/vmail:" + pw + "@127.0.0.1:1/vmail",
		"postgres://vmail:" + pw + "@127.0.0.1:1/vmail",
		"POSTGRESQL:vmail:" + pw + "@db.example",
		"postgresql:vmail:" + pw + "@db@example",
		"postgresql://vmail:" + pw + "@[::1",
		"postgresql://vmail:" + pw + "@127.0.0.1:x/vmail",
		"postgresql://vmail:" + pw + "@127.0.0.1:1/vmail?bogus=1",
		"postgresql:?password=" + pw,
		"inet:vmail:" + pw + "@db.example",
		"postgresql://vmail:" + pw + "/vmail",
		"postgresql://vmail:" + pw,
	} {
		cf := parsePgCF(t, "/etc/postfix/pgsql/t.cf", "hosts = "+h+"\nuser = u\npassword = filepw\ndbname = d\nquery = SELECT '%s'\n")
		tb := openTable(t, cf, Options{ConnectTimeout: 200 * time.Millisecond})
		if ep := strings.Join(tb.Endpoints(), " "); strings.Contains(ep, pw) {
			t.Errorf("hosts %s: Endpoints() = %q reveals the password", h, ep)
		}
		_, err := tb.Lookup(context.Background(), "example.com")
		if err == nil {
			t.Errorf("hosts %s: Lookup succeeded", h)
			continue
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("hosts %s: Lookup error %q reveals the password", h, err)
		}
		if _, name, err := pgsqlConfig(h, cf, Options{}); strings.Contains(name, pw) || err != nil && strings.Contains(err.Error(), pw) {
			t.Errorf("pgsqlConfig(%s) = %q, %v: reveals the password", h, name, err)
		}
		t.Logf("hosts %s: %q: %v", h, tb.Endpoints(), err)
	}
}
