package sqltable

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/mariadbtest"
	"github.com/mailautoconf/mailautoconf/internal/pgtest"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/postfix"
)

// changeSchema is the domain table of the change check tests, with an
// alias_domain table and a table no listing reads.
const changeSchema = `CREATE TABLE domain (domain varchar(255) NOT NULL PRIMARY KEY, active smallint NOT NULL DEFAULT 1, transport varchar(255));
INSERT INTO domain (domain, transport) VALUES ('a.example', 'virtual'), ('b.example', 'virtual'), ('c.example', 'virtual');
CREATE TABLE alias_domain (alias_domain varchar(255) NOT NULL PRIMARY KEY, target_domain varchar(255) NOT NULL, active smallint NOT NULL DEFAULT 1);
INSERT INTO alias_domain (alias_domain, target_domain) VALUES ('x.example', 'a.example');
CREATE TABLE mailbox (username varchar(255) NOT NULL PRIMARY KEY, last_login varchar(32));
INSERT INTO mailbox VALUES ('fred@a.example', '');
`

// changeBackend is one server the change check tests run on.
type changeBackend struct {
	name string
	open func(t *testing.T, query string) *Table // a new Table of the domain table
	exec func(t *testing.T, sql string)
	// precise: a change to a table no listing reads is not a change (the
	// checksums); SQLite's data_version tells any commit to the file.
	precise bool
}

func mysqlChangeBackend(t *testing.T) changeBackend {
	s := mariadbtest.Shared(t)
	db, mt := newDB(t, s, changeSchema)
	return changeBackend{
		name: "mysql",
		open: func(t *testing.T, query string) *Table {
			cf := *mt
			cf.Query = query
			return openTable(t, &cf, Options{})
		},
		exec:    func(t *testing.T, sql string) { s.Exec(t, "USE "+mariadbtest.QuoteIdent(db)+";"+sql) },
		precise: true,
	}
}

func pgsqlChangeBackend(t *testing.T) changeBackend {
	s := pgtest.Start(t)
	db := newPgDB(t, s, changeSchema)
	return changeBackend{
		name: "pgsql",
		open: func(t *testing.T, query string) *Table {
			return openTable(t, parsePgCF(t, "/etc/postfix/pgsql/t.cf", pgCF(s, db, "query = "+query+"\n")), Options{})
		},
		exec:    func(t *testing.T, sql string) { s.ExecDB(t, db, sql) },
		precise: true,
	}
}

func sqliteChangeBackend(t *testing.T) changeBackend {
	sqlite3 := testtool.Need(t, "sqlite3")
	dir := t.TempDir()
	path := filepath.Join(dir, "var/lib/mail/domains.sqlite")
	makeSQLiteDB(t, sqlite3, path, changeSchema)
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return changeBackend{
		name: "sqlite",
		open: func(t *testing.T, query string) *Table {
			cf := &postfix.SQLTable{Type: "sqlite", Path: "/etc/postfix/sqlite/t.cf", DBPath: "/var/lib/mail/domains.sqlite", Query: query, ResultFormat: "%s"}
			return openTable(t, cf, Options{Root: root})
		},
		exec: func(t *testing.T, sql string) { makeSQLiteDB(t, sqlite3, path, sql) },
	}
}

// listAll lists tb as a snapshot build does: EachDomain, then AliasTargets.
func listAll(t *testing.T, tb *Table) []string {
	t.Helper()
	got, err := tb.List(context.Background())
	if err != nil {
		t.Fatalf("EachDomain: %v", err)
	}
	aliases, err := tb.AliasTargets(context.Background())
	if err != nil {
		t.Fatalf("AliasTargets: %v", err)
	}
	for a, target := range aliases {
		got = append(got, a+"→"+target)
	}
	slices.Sort(got)
	return got
}

func changed(t *testing.T, tb *Table) bool {
	t.Helper()
	c, err := tb.Changed(context.Background())
	if err != nil {
		t.Fatalf("Changed: %v", err)
	}
	return c
}

// TestChanged: on each server, a Table's Changed reports an INSERT, a
// DELETE and an UPDATE of a domain (of its key, of the column the query
// filters on, of its result) and of an alias domain, and reports nothing
// while nothing changed; the listing after each change gives what changed.
func TestChanged(t *testing.T) {
	backends := []struct {
		name  string
		start func(t *testing.T) changeBackend
	}{{"mysql", mysqlChangeBackend}, {"pgsql", pgsqlChangeBackend}, {"sqlite", sqliteChangeBackend}}
	queries := map[string]string{
		"listing":    "SELECT transport FROM domain WHERE domain = '%s' AND active = 1",
		"candidates": "SELECT transport FROM domain WHERE '@' || domain = '@%s' AND active = 1", // SQL-standard || : not for MySQL
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			be := b.start(t)
			for qname, query := range queries {
				if qname == "candidates" && be.name == "mysql" {
					query = "SELECT transport FROM domain WHERE CONCAT('@', domain) = '@%s' AND active = 1"
				}
				t.Run(qname, func(t *testing.T) {
					be.exec(t, "DELETE FROM domain; INSERT INTO domain (domain, transport) VALUES ('a.example', 'virtual'), ('b.example', 'virtual'), ('c.example', 'virtual'); DELETE FROM alias_domain; INSERT INTO alias_domain (alias_domain, target_domain) VALUES ('x.example', 'a.example');")
					tb := be.open(t, query)
					want := []string{"a.example", "b.example", "c.example", "x.example→a.example"}
					if got := listAll(t, tb); !slices.Equal(got, want) {
						t.Fatalf("first listing = %v, want %v", got, want)
					}
					for i := range 3 {
						if changed(t, tb) {
							t.Fatalf("Changed() = true with nothing changed (call %d)", i+1)
						}
					}
					if be.precise {
						be.exec(t, "UPDATE mailbox SET last_login = 'now'")
						if changed(t, tb) {
							t.Errorf("Changed() = true after a change to a table no listing reads")
						}
					}
					for _, step := range []struct {
						name, sql string
						want      []string
					}{
						{"INSERT", "INSERT INTO domain (domain, transport) VALUES ('d.example', 'virtual')",
							[]string{"a.example", "b.example", "c.example", "d.example", "x.example→a.example"}},
						{"DELETE", "DELETE FROM domain WHERE domain = 'b.example'",
							[]string{"a.example", "c.example", "d.example", "x.example→a.example"}},
						{"UPDATE active", "UPDATE domain SET active = 0 WHERE domain = 'c.example'",
							[]string{"a.example", "d.example", "x.example→a.example"}},
						{"UPDATE key", "UPDATE domain SET domain = 'e.example' WHERE domain = 'd.example'",
							[]string{"a.example", "e.example", "x.example→a.example"}},
						{"UPDATE result", "UPDATE domain SET transport = NULL WHERE domain = 'e.example'",
							[]string{"a.example", "x.example→a.example"}},
						{"UPDATE result only", "UPDATE domain SET transport = 'lmtp' WHERE domain = 'a.example'",
							[]string{"a.example", "x.example→a.example"}},
						{"alias INSERT", "INSERT INTO alias_domain (alias_domain, target_domain) VALUES ('y.example', 'a.example')",
							[]string{"a.example", "x.example→a.example", "y.example→a.example"}},
					} {
						be.exec(t, step.sql)
						if !changed(t, tb) {
							t.Errorf("%s: Changed() = false after %s", step.name, step.sql)
						}
						tb = be.open(t, query) // the next snapshot's
						if got := listAll(t, tb); !slices.Equal(got, step.want) {
							t.Errorf("%s: listing = %v, want %v", step.name, got, step.want)
						}
						if changed(t, tb) {
							t.Errorf("%s: Changed() = true right after listing again", step.name)
						}
					}
				})
			}
		})
	}
}

// TestChangedServerDown: a check that cannot reach the server reports a
// change, with the error, so that the caller lists again and keeps the
// known domains as a listing during an outage does.
func TestChangedServerDown(t *testing.T) {
	s := mariadbtest.Start(t)
	_, mt := newDB(t, s, changeSchema)
	mt.Query = "SELECT domain FROM domain WHERE domain = '%s'"
	tb := openTable(t, mt, Options{})
	listAll(t, tb)
	if changed(t, tb) {
		t.Fatal("Changed() = true with nothing changed")
	}
	s.Stop(t)
	if c, err := tb.Changed(context.Background()); !c || err == nil {
		t.Errorf("Changed() with the server down = %v, %v; want true and an error", c, err)
	}
	s.Restart(t)
	if changed(t, tb) {
		t.Error("Changed() = true after a restart that changed nothing")
	}
}

// TestChangedNothingListed: a table that lists no bare domain (a domain
// restriction) reads nothing a change could alter.
func TestChangedNothingListed(t *testing.T) {
	s := mariadbtest.Shared(t)
	_, mt := newDB(t, s, changeSchema)
	mt.Query = "SELECT domain FROM domain WHERE domain = '%s'"
	mt.Domain = []string{"a.example"}
	tb := openTable(t, mt, Options{})
	if got, err := tb.List(context.Background()); err != nil || len(got) != 0 {
		t.Fatalf("List() = %v, %v", got, err)
	}
	if changed(t, tb) {
		t.Error("Changed() = true for a table that listed nothing")
	}
}
