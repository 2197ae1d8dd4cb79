package discover

import (
	"context"
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
		if _, ok := snap.domains["d3999.example"]; ok != (tt.prev != nil) {
			t.Errorf("%s: d3999.example (streamed before the error) hosted = %v", tt.name, ok)
		}
		if _, ok := snap.domains["fresh.example"]; ok {
			t.Errorf("%s: fresh.example, read before the listing failed, is hosted: a mix of old and half-read", tt.name)
		}
		if d, ok := snap.domains["d5000.example"]; ok != (tt.prev != nil) || ok && snap.sources[d.source()] != "/etc/postfix/sql/domains.cf" {
			t.Errorf("%s: d5000.example hosted = %v (%v)", tt.name, ok, d)
		}
	}
}
