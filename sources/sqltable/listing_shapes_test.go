package sqltable

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/mariadbtest"
	"github.com/mailautoconf/mailautoconf/internal/pgtest"
	"github.com/mailautoconf/mailautoconf/internal/postmaptest"
	"github.com/mailautoconf/mailautoconf/sources/postfix"
)

// postmapHosts asks postmap -q what the table typ:cf answers for each key,
// and returns what EachDomain must give for those keys: the keys found,
// each with its first result case-folded when that is another name.
func postmapHosts(t *testing.T, postmap, typ, cf string, keys []string) map[string]string {
	t.Helper()
	r, err := postmaptest.Query(postmap, typ, cf, keys)
	if err != nil {
		t.Fatal(err)
	}
	if r.Failed() || r.Stderr != "" {
		t.Fatalf("postmap -q - %s:%s: exit status %d\n%s", typ, cf, r.ExitCode, r.Stderr)
	}
	hosts := map[string]string{}
	for k, v := range r.Found {
		first, _, _ := strings.Cut(v, ",")
		hosts[k] = targetOf(first, k)
	}
	return hosts
}

// eachDomainMap collects EachDomain, failing on a domain passed on twice
// with different targets.
func eachDomainMap(t *testing.T, tb *Table) (map[string]string, error) {
	t.Helper()
	got := map[string]string{}
	err := tb.EachDomain(context.Background(), func(d, target string) {
		if prev, seen := got[d]; seen && prev != target {
			t.Errorf("EachDomain passed on %s with targets %q and %q", d, prev, target)
		}
		got[d] = target
	}, func() { clear(got) })
	return got, err
}

// A listingShape is a real lookup query with a small database modelled on
// its stack's schema.
type listingShape struct {
	name  string
	query string // as in the lookup file; continuation lines indented
	setup string // MariaDB statements run in a fresh database
	keys  []string
	exact bool // the exact listing handles it (no confirmation)
	want  map[string]string
}

// listingShapes: the query constants' sources are in
// listing_candidates_test.go. Every set of rows holds names the query must
// not answer (inactive, another server, another type, a mere address)
// and names stored in mixed case, which MariaDB's default collation
// compares case-insensitively.
var listingShapes = []listingShape{
	{
		name:  "ispconfig virtual_domains",
		query: ispconfigDomains,
		setup: ispconfigTables,
		keys:  []string{"example.com", "alias.example", "upper.example", "shop.example.net", "off.example", "other-server.example", "oldalias.example", "unhosted.example"},
		want:  map[string]string{"example.com": "", "shop.example.net": "", "oldalias.example": ""},
	},
	{
		name:  "ispconfig virtual_alias_domains",
		query: ispconfigAliasDomains,
		setup: ispconfigTables,
		keys:  []string{"example.com", "alias.example", "upper.example", "shop.example.net", "oldalias.example", "server2.example", "unhosted.example"},
		want:  map[string]string{"alias.example": "example.com", "upper.example": "shop.example.net"},
	},
	{
		name:  "mail-in-a-box",
		query: miabDomains,
		setup: miabTables,
		keys:  []string{"example.com", "shop.example.net", "c.example", "catchall.example", "example.org", "auto.example", "unhosted.example"},
		want:  map[string]string{"example.com": "1", "shop.example.net": "1", "c.example": "1", "catchall.example": "1", "example.org": "1"},
	},
	{
		name:  "mail-in-a-box auto_aliases",
		query: miabDomains3,
		setup: miabTables,
		keys:  []string{"example.com", "shop.example.net", "c.example", "catchall.example", "example.org", "auto.example", "unhosted.example"},
		want:  map[string]string{"example.com": "1", "shop.example.net": "1", "c.example": "1", "catchall.example": "1", "example.org": "1", "auto.example": "1"},
	},
	{
		name:  "mailcow",
		query: mailcowDomains,
		exact: true,
		setup: `CREATE TABLE domain (domain varchar(255) NOT NULL, active tinyint NOT NULL DEFAULT 1, backupmx tinyint NOT NULL DEFAULT 0);
CREATE TABLE alias_domain (alias_domain varchar(255) NOT NULL, target_domain varchar(255) NOT NULL, active tinyint NOT NULL DEFAULT 1);
INSERT INTO domain VALUES ('example.com', 1, 0), ('Shop.Example.NET', 1, 0), ('relay.example', 1, 1), ('off.example', 0, 0);
INSERT INTO alias_domain VALUES ('alias.example', 'example.com', 1), ('old.example', 'example.com', 0);`,
		keys: []string{"example.com", "shop.example.net", "relay.example", "off.example", "alias.example", "old.example", "unhosted.example"},
		want: map[string]string{"example.com": "", "shop.example.net": "", "alias.example": ""},
	},
	{
		name:  "modoboa domain aliases",
		query: modoboaDomainAliases,
		exact: true,
		setup: `CREATE TABLE admin_domain (id int PRIMARY KEY, name varchar(100) NOT NULL, enabled tinyint NOT NULL, type varchar(20) NOT NULL DEFAULT 'domain');
CREATE TABLE admin_domainalias (id int PRIMARY KEY, name varchar(100) NOT NULL, target_id int NOT NULL, enabled tinyint NOT NULL);
INSERT INTO admin_domain VALUES (1, 'example.com', 1, 'domain'), (2, 'off.example', 0, 'domain');
INSERT INTO admin_domainalias VALUES (1, 'Alias.Example', 1, 1), (2, 'old.example', 1, 0), (3, 'dead-target.example', 2, 1);`,
		keys: []string{"example.com", "alias.example", "old.example", "dead-target.example", "unhosted.example"},
		want: map[string]string{"alias.example": "example.com"},
	},
	{
		name:  "concat prefix",
		query: "SELECT SUBSTRING_INDEX(destination, '@', -1) FROM forwarding WHERE source = CONCAT('@', '%s') AND active = 1",
		setup: forwardingTable,
		keys:  []string{"alias.example", "upper.example", "off.example", "example.com", "unhosted.example"},
		want:  map[string]string{"alias.example": "example.com", "upper.example": "example.com"},
	},
	{
		name:  "key in a list of expressions",
		query: "SELECT domain FROM domains WHERE '%s' IN (domain, CONCAT('mail.', domain)) AND active = 1",
		setup: `CREATE TABLE domains (domain varchar(255) NOT NULL, active tinyint NOT NULL);
INSERT INTO domains VALUES ('example.com', 1), ('Shop.Example.NET', 1), ('off.example', 0);`,
		keys: []string{"example.com", "mail.example.com", "shop.example.net", "mail.shop.example.net", "off.example", "mail.off.example", "unhosted.example"},
		want: map[string]string{"example.com": "", "mail.example.com": "example.com", "shop.example.net": "", "mail.shop.example.net": "shop.example.net"},
	},
	{
		name:  "like",
		query: "SELECT domain FROM domain WHERE domain LIKE '%s' AND active = 1",
		setup: `CREATE TABLE domain (domain varchar(255) NOT NULL, active tinyint NOT NULL);
INSERT INTO domain VALUES ('example.com', 1), ('Shop.Example.NET', 1), ('off.example', 0), ('wild%.example', 1), ('exa_ple.org', 1);`,
		keys: []string{"example.com", "shop.example.net", "off.example", "wild.example", "wildx.example", "exaxple.org", "example.org", "unhosted.example"},
		want: map[string]string{"example.com": "", "shop.example.net": ""},
	},
	{
		name:  "in subquery, result is the target",
		query: "SELECT domain FROM domain WHERE domain IN (SELECT target_domain FROM alias_domain WHERE alias_domain = '%s' AND active = 1) AND active = 1",
		setup: aliasDomainTables,
		keys:  []string{"example.com", "alias.example", "upper.example", "old.example", "dead.example", "unhosted.example"},
		want:  map[string]string{"alias.example": "example.com", "upper.example": "example.com"},
	},
	{
		name:  "correlated exists",
		query: "SELECT d.domain FROM domain d WHERE EXISTS (SELECT 1 FROM alias_domain a WHERE a.alias_domain = '%s' AND a.target_domain = d.domain AND a.active = 1) AND d.active = 1",
		setup: aliasDomainTables,
		keys:  []string{"example.com", "alias.example", "upper.example", "old.example", "dead.example", "unhosted.example"},
		want:  map[string]string{"alias.example": "example.com", "upper.example": "example.com"},
	},
	{
		name:  "or of bindings",
		query: "SELECT domain FROM domain WHERE (domain = '%s' OR CONCAT('mail.', domain) = '%s') AND active = 1",
		setup: aliasDomainTables,
		keys:  []string{"example.com", "mail.example.com", "off.example", "mail.off.example", "unhosted.example"},
		want:  map[string]string{"example.com": "", "mail.example.com": "example.com"},
	},
}

const ispconfigTables = `CREATE TABLE mail_domain (domain_id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  server_id int unsigned NOT NULL DEFAULT 0, domain varchar(255) NOT NULL DEFAULT '', active enum('n','y') NOT NULL DEFAULT 'n');
CREATE TABLE mail_forwarding (forwarding_id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  server_id int unsigned NOT NULL DEFAULT 0, source varchar(255) NOT NULL DEFAULT '', destination text,
  type enum('alias','aliasdomain','forward','catchall') NOT NULL DEFAULT 'alias', active enum('n','y') NOT NULL DEFAULT 'n');
INSERT INTO mail_domain (server_id, domain, active) VALUES
  (1, 'example.com', 'y'), (1, 'alias.example', 'y'), (1, 'Upper.Example', 'y'), (1, 'Shop.Example.NET', 'y'),
  (1, 'off.example', 'n'), (2, 'other-server.example', 'y'), (1, 'oldalias.example', 'y');
INSERT INTO mail_forwarding (server_id, source, destination, type, active) VALUES
  (1, '@alias.example', '@example.com', 'aliasdomain', 'y'),
  (1, '@UPPER.example', '@Shop.Example.NET', 'aliasdomain', 'y'),
  (1, '@oldalias.example', '@example.com', 'aliasdomain', 'n'),
  (2, '@server2.example', '@example.com', 'aliasdomain', 'y'),
  (1, 'info@example.com', 'alice@example.com', 'alias', 'y'),
  (1, '@example.com', 'catchall@example.com', 'catchall', 'y'),
  (1, '@', '@example.com', 'aliasdomain', 'y');`

const miabTables = `CREATE TABLE users (id INTEGER PRIMARY KEY AUTO_INCREMENT, email varchar(255) NOT NULL UNIQUE, password TEXT NOT NULL);
CREATE TABLE aliases (id INTEGER PRIMARY KEY AUTO_INCREMENT, source varchar(255) NOT NULL UNIQUE, destination TEXT NOT NULL);
CREATE TABLE auto_aliases (id INTEGER PRIMARY KEY AUTO_INCREMENT, source varchar(255) NOT NULL UNIQUE, destination TEXT NOT NULL);
INSERT INTO users (email, password) VALUES ('alice@example.com', 'x'), ('Bob@Shop.Example.NET', 'x'), ('weird@b@c.example', 'x'), ('no-at-sign', 'x');
INSERT INTO aliases (source, destination) VALUES ('@catchall.example', 'alice@example.com'), ('postmaster@example.org', 'alice@example.com');
INSERT INTO auto_aliases (source, destination) VALUES ('abuse@auto.example', 'alice@example.com');`

const forwardingTable = `CREATE TABLE forwarding (source varchar(255) NOT NULL, destination varchar(255) NOT NULL, active tinyint NOT NULL);
INSERT INTO forwarding VALUES ('@alias.example', '@example.com', 1), ('@Upper.Example', '@example.com', 1),
  ('@off.example', '@example.com', 0), ('info@example.com', 'alice@example.com', 1);`

const aliasDomainTables = `CREATE TABLE domain (domain varchar(255) NOT NULL, active tinyint NOT NULL);
CREATE TABLE alias_domain (alias_domain varchar(255) NOT NULL, target_domain varchar(255) NOT NULL, active tinyint NOT NULL);
INSERT INTO domain VALUES ('example.com', 1), ('off.example', 0);
INSERT INTO alias_domain VALUES ('alias.example', 'example.com', 1), ('Upper.Example', 'example.com', 1),
  ('old.example', 'example.com', 0), ('dead.example', 'off.example', 1);`

// TestListingShapes loads each real query shape's rows into MariaDB and
// checks EachDomain against the real postmap -q answers: for every name the
// rows mention, unhosted names, and whatever EachDomain passes on.
func TestListingShapes(t *testing.T) {
	postmap := postmaptest.Need(t, "mysql")
	s := mariadbtest.Shared(t)
	dir := t.TempDir()
	for i, sh := range listingShapes {
		t.Run(sh.name, func(t *testing.T) {
			_, exactErr := deriveListing(sh.query, mysqlDialect{}.syntax())
			if exact := exactErr == nil; exact != sh.exact {
				t.Errorf("exact listing = %v (%v), want %v", exact, exactErr, sh.exact)
			}
			db, mt := newDB(t, s, sh.setup)
			cf := filepath.Join(dir, fmt.Sprintf("shape%d.cf", i))
			text := fmt.Sprintf("hosts = unix:%s\nuser = %s\npassword = %s\ndbname = %s\nquery = %s\n",
				s.Socket(), mt.User, mt.Password, db, strings.ReplaceAll(sh.query, "\n", "\n  "))
			postmaptest.WriteTable(t, cf, text)
			tb := openTable(t, parseCF(t, cf, text), Options{})
			got, err := eachDomainMap(t, tb)
			if err != nil {
				t.Fatalf("EachDomain: %v", err)
			}
			keys := slices.Sorted(maps.Keys(got))
			for _, k := range sh.keys {
				if _, ok := got[k]; !ok {
					keys = append(keys, k)
				}
			}
			want := postmapHosts(t, postmap, "mysql", cf, keys)
			if !maps.Equal(got, want) {
				t.Errorf("EachDomain = %v\npostmap -q answers %v", got, want)
			}
			// The expected answers are written down too, so that a
			// broken seed cannot make both sides empty.
			if !maps.Equal(want, sh.want) {
				t.Errorf("postmap -q answers %v, the test expects %v", want, sh.want)
			}
		})
	}
}

// TestListingMailInABoxSQLite runs Mail-in-a-Box's own query on its own
// database type: SQLite's LIKE ignores ASCII case, its = does not.
func TestListingMailInABoxSQLite(t *testing.T) {
	postmap := postmaptest.Need(t, "sqlite")
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "users.sqlite")
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		"CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL UNIQUE, password TEXT NOT NULL, extra, privileges TEXT NOT NULL DEFAULT '')",
		"CREATE TABLE aliases (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL UNIQUE, destination TEXT NOT NULL, permitted_senders TEXT)",
		"CREATE TABLE auto_aliases (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL UNIQUE, destination TEXT NOT NULL, permitted_senders TEXT)",
		"INSERT INTO users (email, password) VALUES ('alice@example.com', 'x'), ('Bob@Shop.Example.NET', 'x'), ('weird@b@c.example', 'x'), ('josé@ÉCOLE.example', 'x')",
		"INSERT INTO aliases (source, destination) VALUES ('@catchall.example', 'a'), ('postmaster@example.org', 'a')",
		"INSERT INTO auto_aliases (source, destination) VALUES ('abuse@auto.example', 'a')",
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	db.Close()
	for i, q := range []string{miabDomains, miabDomains3} {
		cf := filepath.Join(dir, fmt.Sprintf("virtual-mailbox-domains%d.cf", i))
		text := "dbpath = " + dbPath + "\nquery = " + q + "\n"
		postmaptest.WriteTable(t, cf, text)
		mt, err := postfix.ParseSQLTable("sqlite", cf, strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		tb := openTable(t, mt, Options{})
		got, err := eachDomainMap(t, tb)
		if err != nil {
			t.Fatalf("EachDomain: %v", err)
		}
		keys := slices.Sorted(maps.Keys(got))
		keys = append(keys, "unhosted.example", "école.example", "ÉCOLE.example", "example.org")
		want := postmapHosts(t, postmap, "sqlite", cf, keys)
		if !maps.Equal(got, want) {
			t.Errorf("query %d: EachDomain = %v\npostmap -q answers %v", i, got, want)
		}
		if _, ok := got["shop.example.net"]; !ok {
			t.Errorf("query %d: EachDomain lacks shop.example.net (SQLite's LIKE ignores ASCII case)", i)
		}
		t.Logf("query %d: %v", i, got)
	}
}

// TestListingRefused: a refused shape reaches the caller as ErrNoListing
// naming the construct; a table keyed by address hosts nothing.
func TestListingRefused(t *testing.T) {
	s := mariadbtest.Shared(t)
	_, mt := newDB(t, s, forwardingTable)
	mt.Query = "SELECT destination FROM forwarding WHERE source LIKE '%%%s' AND active = 1"
	_, err := eachDomainMap(t, openTable(t, mt, Options{}))
	if !errors.Is(err, ErrNoListing) || !strings.Contains(err.Error(), "any ending of the value") {
		t.Errorf("EachDomain with LIKE '%%%%%%s': error = %v, want ErrNoListing about the pattern", err)
	}
	mt.Query = postfixadminAliasDomainMaps
	if got, err := eachDomainMap(t, openTable(t, mt, Options{})); err != nil || len(got) != 0 {
		t.Errorf("EachDomain keyed by %%d = %v, %v, want nothing", got, err)
	}
}

// TestListingShapesPgSQL runs shapes on PostgreSQL, whose = and LIKE
// compare case-sensitively: a row stored as '@UPPER.example' answers no
// folded key there, and the confirmation drops its candidate, as postmap
// does. '@' || '%s' is concatenation here.
func TestListingShapesPgSQL(t *testing.T) {
	postmap := postmaptest.Need(t, "pgsql")
	s := pgtest.Start(t)
	db := s.NewDatabase(t)
	s.ExecDB(t, db, `CREATE TABLE mail_domain (server_id int NOT NULL, domain varchar(255) NOT NULL, active char(1) NOT NULL);
CREATE TABLE mail_forwarding (server_id int NOT NULL, source varchar(255) NOT NULL, destination text, type varchar(20) NOT NULL, active char(1) NOT NULL);
CREATE TABLE users (email text NOT NULL UNIQUE);
INSERT INTO mail_domain VALUES (1, 'example.com', 'y'), (1, 'alias.example', 'y'), (1, 'Shop.Example.NET', 'y'),
  (1, 'off.example', 'n'), (1, 'upper.example', 'y');
INSERT INTO mail_forwarding VALUES (1, '@alias.example', '@example.com', 'aliasdomain', 'y'),
  (1, '@UPPER.example', '@example.com', 'aliasdomain', 'y'), (1, '@old.example', '@example.com', 'aliasdomain', 'n');
INSERT INTO users VALUES ('alice@example.com'), ('Bob@Shop.Example.NET'), ('carol@shop.example.net');`)
	s.CreateUser(t, "lookup", "pw")
	s.GrantRead(t, "lookup", db)
	shapes := []struct {
		name, query string
		want        map[string]string
	}{
		{"ispconfig virtual_domains", ispconfigDomains,
			map[string]string{"example.com": "", "upper.example": ""}},
		{"alias domains with ||", "SELECT split_part(destination, '@', 2) FROM mail_forwarding WHERE source = '@' || '%s' AND type = 'aliasdomain' AND active = 'y' AND server_id = 1",
			map[string]string{"alias.example": "example.com"}},
		{"mail-in-a-box like", "SELECT 1 FROM users WHERE email LIKE '%%@%s'",
			map[string]string{"example.com": "1", "shop.example.net": "1"}},
	}
	keys := []string{"example.com", "alias.example", "upper.example", "shop.example.net", "off.example", "old.example", "unhosted.example"}
	dir := t.TempDir()
	for i, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			if _, err := deriveListing(sh.query, pgsqlDialect{}.syntax()); err == nil {
				t.Errorf("the exact listing handles %q; want a candidate listing", sh.query)
			}
			cf := filepath.Join(dir, fmt.Sprintf("pg%d.cf", i))
			text := fmt.Sprintf("hosts = inet:%s\nuser = lookup\npassword = pw\ndbname = %s\nquery = %s\n",
				s.Addr(), db, strings.ReplaceAll(sh.query, "\n", "\n  "))
			postmaptest.WriteTable(t, cf, text)
			mt, err := postfix.ParseSQLTable("pgsql", cf, strings.NewReader(text))
			if err != nil {
				t.Fatal(err)
			}
			got, err := eachDomainMap(t, openTable(t, mt, Options{}))
			if err != nil {
				t.Fatalf("EachDomain: %v", err)
			}
			want := postmapHosts(t, postmap, "pgsql", cf, append(slices.Sorted(maps.Keys(got)), keys...))
			if !maps.Equal(got, want) {
				t.Errorf("EachDomain = %v\npostmap -q answers %v", got, want)
			}
			if !maps.Equal(want, sh.want) {
				t.Errorf("postmap -q answers %v, the test expects %v", want, sh.want)
			}
		})
	}
}
