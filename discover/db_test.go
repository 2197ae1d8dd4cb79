package discover

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/mariadbtest"
	"github.com/mailautoconf/mailautoconf/sources/sqltable"
)

func TestMain(m *testing.M) { mariadbtest.Main(m) }

// TestListingFailsPartWay: a vmail listing that fails after part of its
// rows were streamed into the snapshot leaves none of them behind; the
// previous snapshot's domains of that table are carried forward instead,
// never a mix of old and half-read.
func TestListingFailsPartWay(t *testing.T) {
	s := mariadbtest.Shared(t)
	db := s.NewDatabase(t)
	s.Exec(t, "USE "+mariadbtest.QuoteIdent(db)+`;
CREATE TABLE domain (id int PRIMARY KEY, domain varchar(255) NOT NULL, active tinyint NOT NULL DEFAULT 1);
INSERT INTO domain (id, domain) SELECT seq, CONCAT('d', seq, '.example') FROM seq_1_to_5000;
CREATE TABLE fault (broken tinyint NOT NULL);
INSERT INTO fault VALUES (0);
CREATE FUNCTION checked(d varchar(255)) RETURNS varchar(255) READS SQL DATA
BEGIN
  IF d = 'd4000.example' AND (SELECT broken FROM fault) = 1 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'broken row'; END IF;
  RETURN d;
END;`)
	s.GrantUser(t, "vmail", "pw", db)
	s.Exec(t, "GRANT EXECUTE ON "+mariadbtest.QuoteIdent(db)+".* TO vmail@localhost")

	h := baseHost(t)
	h["/etc/postfix/main.cf"] = strings.Replace(h["/etc/postfix/main.cf"],
		"virtual_mailbox_domains = example.org example.com",
		"virtual_mailbox_domains = example.org mysql:/etc/postfix/sql/domains.cf", 1)
	h["/etc/postfix/sql/domains.cf"] = "hosts = unix:" + s.Socket() + "\nuser = vmail\npassword = pw\ndbname = " + db +
		"\nquery = SELECT checked(domain) FROM domain WHERE domain='%s' AND active = 1\n"
	root := writeRoot(t, h)
	build := func(prev *Snapshot) *Snapshot {
		t.Helper()
		snap, err := Build(context.Background(), Options{Root: root, Previous: prev, MySQL: sqltable.Options{ConnectTimeout: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { snap.Close() })
		return snap
	}

	good := build(nil)
	if n := good.NumDomains(); n != 5001 {
		t.Fatalf("healthy listing: %d domains, want 5001 (warnings %q)", n, good.Warnings())
	}

	// From now on the listing fails at row 4000; a domain added since is
	// streamed before that.
	s.Exec(t, "USE "+mariadbtest.QuoteIdent(db)+"; UPDATE fault SET broken = 1; INSERT INTO domain (id, domain) VALUES (0, 'fresh.example')")
	for _, tt := range []struct {
		name string
		prev *Snapshot
		want int
	}{
		{"first build", nil, 1},
		{"rebuild", good, 5001},
	} {
		snap := build(tt.prev)
		if n := snap.NumDomains(); n != tt.want {
			t.Errorf("%s: %d domains after a listing that failed part-way, want %d", tt.name, n, tt.want)
		}
		if !hasWarning(snap, "broken row") {
			t.Errorf("%s: warnings %q, want the database's error", tt.name, snap.Warnings())
		}
		if _, ok := snap.domains.get("d3999.example"); ok != (tt.prev != nil) {
			t.Errorf("%s: d3999.example (streamed before the error) hosted = %v", tt.name, ok)
		}
		if _, ok := snap.domains.get("fresh.example"); ok {
			t.Errorf("%s: fresh.example, read before the listing failed, is hosted: a mix of old and half-read", tt.name)
		}
		if d, ok := snap.domains.get("d5000.example"); ok != (tt.prev != nil) || ok && snap.sources[d.source()] != "/etc/postfix/sql/domains.cf" {
			t.Errorf("%s: d5000.example hosted = %v (%v)", tt.name, ok, d)
		}
	}
}

// TestAliasTargetsAfterTheListing: an alias domain added after the
// snapshot was built is found by the per-request lookup with the domain
// it stands for, so its users are told to log in at the target, whether
// the table answers the alias with its target (ISPConfig's alias domains:
// the lookup's result) or with itself (iRedMail: the alias_domain table).
func TestAliasTargetsAfterTheListing(t *testing.T) {
	s := mariadbtest.Shared(t)
	db := s.NewDatabase(t)
	s.Exec(t, "USE "+mariadbtest.QuoteIdent(db)+`;
CREATE TABLE domain (domain varchar(255) PRIMARY KEY, active tinyint NOT NULL DEFAULT 1);
CREATE TABLE alias_domain (alias_domain varchar(255) PRIMARY KEY, target_domain varchar(255) NOT NULL, active tinyint NOT NULL DEFAULT 1);
CREATE TABLE mail_forwarding (source varchar(255) PRIMARY KEY, destination varchar(255) NOT NULL, type varchar(16) NOT NULL);
INSERT INTO domain (domain) VALUES ('example.com'), ('example.net');
INSERT INTO alias_domain (alias_domain, target_domain) VALUES ('listed-alias.example', 'example.com');
INSERT INTO mail_forwarding VALUES ('@fwd-listed.example', '@example.net', 'aliasdomain'), ('@fwd-nowhere.example', '@unhosted.example', 'aliasdomain');`)
	s.GrantUser(t, "vmail", "pw", db)

	h := baseHost(t)
	h["/etc/postfix/main.cf"] = strings.Replace(h["/etc/postfix/main.cf"],
		"virtual_mailbox_domains = example.org example.com",
		"virtual_mailbox_domains = mysql:/etc/postfix/sql/iredmail.cf\nvirtual_alias_domains = mysql:/etc/postfix/sql/ispconfig.cf", 1)
	conn := "hosts = unix:" + s.Socket() + "\nuser = vmail\npassword = pw\ndbname = " + db + "\n"
	h["/etc/postfix/sql/iredmail.cf"] = conn + "query = (SELECT domain FROM domain WHERE domain='%s' AND active=1)" +
		" UNION (SELECT alias_domain FROM alias_domain WHERE alias_domain='%s' AND active=1)\n"
	// ISPConfig's mysql-virtual_alias_domains.cf shape: the key inside
	// '@%s', the result the target domain.
	h["/etc/postfix/sql/ispconfig.cf"] = conn + "query = SELECT SUBSTRING_INDEX(destination, '@', -1) FROM mail_forwarding" +
		" WHERE source = '@%s' AND type = 'aliasdomain'\n"
	root := writeRoot(t, h)
	snap, err := Build(context.Background(), Options{Root: root, MySQL: sqltable.Options{ConnectTimeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snap.Close() })
	if !snap.DomainsListed() {
		t.Fatalf("DomainsListed() = false: %q", snap.Warnings())
	}
	got := map[string]string{}
	for _, d := range snap.Domains() {
		got[d.Name] = d.AliasOf
	}
	// fwd-nowhere.example's lookup answers unhosted.example, which this
	// host does not serve: its users are not sent to log in there.
	want := map[string]string{"example.com": "", "example.net": "", "listed-alias.example": "example.com", "fwd-listed.example": "example.net", "fwd-nowhere.example": ""}
	if !maps.Equal(got, want) {
		t.Errorf("listed domains and their targets = %v, want %v", got, want)
	}

	s.Exec(t, "USE "+mariadbtest.QuoteIdent(db)+`;
INSERT INTO alias_domain (alias_domain, target_domain) VALUES ('new-alias.example', 'example.com');
INSERT INTO mail_forwarding VALUES ('@fwd-new.example', '@Example.NET', 'aliasdomain'), ('@fwd-new-nowhere.example', '@unhosted.example', 'aliasdomain');`)
	for name, target := range map[string]string{"new-alias.example": "example.com", "fwd-new.example": "example.net", "example.com": "", "fwd-new-nowhere.example": ""} {
		d, ok, err := snap.Lookup(context.Background(), name)
		if err != nil || !ok || d.AliasOf != target {
			t.Errorf("Lookup(%s) = %+v, %v, %v; want hosted, alias of %q", name, d, ok, err, target)
		}
	}
}
