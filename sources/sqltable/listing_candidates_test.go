package sqltable

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/postfix"
)

// describeCandidates renders a candidate listing for comparisons: each
// query, then how each column holds the key ({k}).
func describeCandidates(cl *candidateListing) []string {
	var out []string
	for _, q := range cl.queries {
		var pats []string
		for _, p := range q.cols {
			pats = append(pats, p.String())
		}
		out = append(out, q.sql+" -- "+strings.Join(pats, "; "))
	}
	return out
}

func (p keyPattern) String() string {
	s := "= "
	if p.like {
		s = "LIKE "
	}
	if p.lead {
		s += "%"
	}
	s += p.pre + "{k}" + p.suf
	if p.trail {
		s += "%"
	}
	return s
}

// Real lookup queries the candidate listings are derived from (the DB
// tests in listing_shapes_test.go run them against MariaDB, SQLite and
// postmap):
const (
	// ISPConfig 3: cyberkathosting/ispconfig3 (a mirror of
	// git.ispconfig.org/ispconfig/ispconfig3),
	// install/tpl/mysql-virtual_domains.cf.master at
	// e186515d21dcd951f04636fcc1a73c3139ead4f3, {server_id} = 1.
	ispconfigDomains = "SELECT domain FROM mail_domain WHERE domain = '%s' AND active = 'y' AND server_id = 1\n" +
		"           AND NOT EXISTS (SELECT source FROM mail_forwarding WHERE source = '@%s' AND type = 'aliasdomain' AND active = 'y' AND server_id = 1)"
	// ISPConfig 3: install/tpl/mysql-virtual_alias_domains.cf.master at
	// e4271e12bc68647efcdfc8f70b7ae3c241753fe2: the result is the target
	// domain.
	ispconfigAliasDomains = "SELECT SUBSTRING_INDEX(destination, '@', -1) FROM mail_forwarding\n" +
		"         WHERE source = '@%s' AND type = 'aliasdomain' AND active = 'y' AND server_id = 1"
	// Mail-in-a-Box: JoshData/mailinabox setup/mail-users.sh at
	// a5eec84150c09eebb825fe9701fd9d33cba9715a (sqlite).
	miabDomains = "SELECT 1 FROM users WHERE email LIKE '%%@%s' UNION SELECT 1 FROM aliases WHERE source LIKE '%%@%s'"
	// Mail-in-a-Box with auto_aliases: kiekerjan/mailinabox
	// setup/mail-users.sh at c282d33202175682cf4c59a9e39d6da77d916f3b, with
	// the trailing LIMIT 1 some versions add.
	miabDomains3 = "SELECT 1 FROM users WHERE email LIKE '%%@%s' UNION SELECT 1 FROM aliases WHERE source LIKE '%%@%s'" +
		" UNION SELECT 1 FROM auto_aliases WHERE source LIKE '%%@%s' LIMIT 1"
	// mailcow: mailcow/mailcow-dockerized data/Dockerfiles/postfix/postfix.sh
	// at 82f4f1fd156a42b89ef14461d18ea6c458520bfb
	// (mysql_virtual_domains_maps.cf): the exact listing handles it.
	mailcowDomains = "SELECT alias_domain from alias_domain WHERE alias_domain='%s' AND active='1'\n" +
		"  UNION\n  SELECT domain FROM domain\n    WHERE domain='%s'\n      AND active = '1'\n      AND backupmx = '0'"
	// Modoboa: modoboa/modoboa modoboa/admin/postfix_maps.py at
	// e676261ec03951146bfb656c7d6527dffd931dad (DomainsAliasesMap, mysql):
	// exact listing, the result is the target domain.
	modoboaDomainAliases = "SELECT dom.name FROM admin_domain dom INNER JOIN admin_domainalias domal ON dom.id=domal.target_id " +
		"WHERE domal.name='%s' AND domal.enabled=1 AND dom.enabled=1"
	// theappleman/mail lib/templates/mysql-sasl-password-maps.cf.tpl at
	// afc3a9dd6fd7e19881e9400a227b05c1c299caa8: the key compared with a
	// list of expressions.
	appleInList = "select concat(username,':',password) as credentials from virtual_credentials where '%s' in (username, concat('@', domain_name_id)) limit 1"
	// PostfixAdmin: postfixadmin/postfixadmin DOCUMENTS/POSTFIX_CONF.txt at
	// 5559c4f26c680d0eccb449fa99383f04f3e8908a.
	postfixadminDomainsU = "SELECT domain FROM domain WHERE domain='%u'"
	// PostfixAdmin's alias-domain map (testdata/corpus
	// postfixadmin-mysql-debian12, mysql_virtual_alias_domain_maps.cf).
	postfixadminAliasDomainMaps = "SELECT goto FROM alias,alias_domain WHERE alias_domain.alias_domain = '%d' and alias.address = CONCAT('%u', '@', alias_domain.target_domain) AND alias.active = 1 AND alias_domain.active='1'"
)

func TestDeriveCandidates(t *testing.T) {
	tests := []struct {
		name, typ, query string
		want             []string
	}{
		{"ispconfig virtual_domains", "mysql", ispconfigDomains,
			[]string{"SELECT domain FROM mail_domain WHERE active = 'y' AND server_id = 1 -- = {k}"}},
		{"ispconfig virtual_alias_domains", "mysql", ispconfigAliasDomains,
			[]string{"SELECT source FROM mail_forwarding WHERE type = 'aliasdomain' AND active = 'y' AND server_id = 1 -- = @{k}"}},
		{"mail-in-a-box", "sqlite", miabDomains,
			[]string{"SELECT email FROM users -- LIKE %@{k}", "SELECT source FROM aliases -- LIKE %@{k}"}},
		{"mail-in-a-box auto_aliases limit", "sqlite", miabDomains3,
			[]string{"SELECT email FROM users -- LIKE %@{k}", "SELECT source FROM aliases -- LIKE %@{k}", "SELECT source FROM auto_aliases -- LIKE %@{k}"}},
		{"mailcow", "mysql", mailcowDomains,
			[]string{"SELECT alias_domain from alias_domain WHERE active='1' -- = {k}", "SELECT domain FROM domain WHERE active = '1' AND backupmx = '0' -- = {k}"}},
		{"modoboa alias", "mysql", modoboaDomainAliases,
			[]string{"SELECT domal.name FROM admin_domain dom INNER JOIN admin_domainalias domal ON dom.id=domal.target_id WHERE domal.enabled=1 AND dom.enabled=1 -- = {k}"}},
		{"key in a list of expressions", "mysql", appleInList,
			[]string{"SELECT username, concat('@', domain_name_id) from virtual_credentials -- = {k}; = {k}"}},
		{"concat mysql", "mysql", "SELECT destination FROM fwd WHERE source = CONCAT('@', '%s') AND active = 1",
			[]string{"SELECT source FROM fwd WHERE active = 1 -- = @{k}"}},
		{"concat three", "mysql", "SELECT d FROM t WHERE CONCAT('<', LOWER('%s'), '>') = t.v",
			[]string{"SELECT t.v FROM t -- = <{k}>"}},
		{"pipes pgsql", "pgsql", "SELECT destination FROM fwd WHERE source = '@' || '%s' AND active",
			[]string{"SELECT source FROM fwd WHERE active -- = @{k}"}},
		{"pipes sqlite", "sqlite", "SELECT destination FROM fwd WHERE source = ('@' || '%s' || '.') AND active = 1",
			[]string{"SELECT source FROM fwd WHERE active = 1 -- = @{k}."}},
		{"pgsql cast", "pgsql", "SELECT name FROM domains WHERE name = '%s'::text AND enabled",
			[]string{"SELECT name FROM domains WHERE enabled -- = {k}"}},
		{"like", "mysql", "SELECT domain FROM domain WHERE domain LIKE '%s' AND active = 1",
			[]string{"SELECT domain FROM domain WHERE active = 1 -- LIKE {k}"}},
		{"ilike with trailing literal", "pgsql", "SELECT 1 FROM users WHERE email ILIKE '%s@%%'",
			[]string{"SELECT email FROM users -- LIKE {k}@%"}},
		{"lower on both sides", "mysql", "SELECT domain FROM domain WHERE lower(domain) = lower('%s') AND '%s' <> ''",
			[]string{"SELECT lower(domain) FROM domain -- = {k}"}},
		{"in list of one", "mysql", "SELECT domain FROM domain WHERE domain IN ('%s') AND active = 1",
			[]string{"SELECT domain FROM domain WHERE active = 1 -- = {k}"}},
		{"in subquery", "mysql", "SELECT domain FROM domain WHERE domain IN (SELECT target FROM x WHERE alias = '%s' AND active = 1) AND active = 1",
			[]string{"SELECT alias FROM x WHERE active = 1 -- = {k}"}},
		{"correlated exists", "mysql", "SELECT d.domain FROM domain d WHERE EXISTS (SELECT 1 FROM alias_domain a WHERE a.alias_domain = '%s' AND a.target_domain = d.domain AND a.active = 1) AND d.active = 1",
			[]string{"SELECT a.alias_domain FROM alias_domain a WHERE a.active = 1 -- = {k}"}},
		{"scalar subquery", "mysql", "SELECT 'OK' FROM dual WHERE (SELECT t.v FROM t WHERE t.n = CONCAT('@', '%s')) = 'ok'",
			[]string{"SELECT t.n FROM t -- = @{k}"}},
		{"exact preferred over subquery", "mysql", "SELECT d FROM t WHERE d IN (SELECT x FROM y WHERE z = '%s') AND d = '%s' AND a = 1",
			[]string{"SELECT d FROM t WHERE a = 1 -- = {k}"}},
		{"or of bindings", "mysql", "SELECT domain FROM domain WHERE (domain = '%s' OR CONCAT('mail.', domain) = '%s') AND active = 1",
			[]string{"SELECT domain, CONCAT('mail.', domain) FROM domain WHERE active = 1 -- = {k}; = {k}"}},
		{"key in the select list too", "mysql", "SELECT '%s' FROM t WHERE d = '%s' ORDER BY 1 LIMIT 1",
			[]string{"SELECT d FROM t -- = {k}"}},
		{"group by", "mysql", "SELECT d, COUNT(*) FROM t WHERE d LIKE '%s' GROUP BY d HAVING COUNT(*) > 0",
			[]string{"SELECT d FROM t -- LIKE {k}"}},
		{"quote doubling", "sqlite", "SELECT 1 FROM t WHERE v = 'it''s %s'",
			[]string{"SELECT v FROM t -- = it's {k}"}},
		{"double-quoted string", "mysql", `SELECT 1 FROM t WHERE v = "@%s" AND w LIKE 'x%%'`,
			[]string{"SELECT v FROM t WHERE w LIKE 'x%' -- = @{k}"}},
		{"binary collate trim", "mysql", "SELECT 1 FROM t WHERE v = BINARY TRIM(' @%s ') COLLATE utf8mb4_bin",
			[]string{"SELECT v FROM t -- = @{k}"}},
		{"cast", "mysql", "SELECT 1 FROM t WHERE v = CAST(CONCAT('@', '%s') AS CHAR)",
			[]string{"SELECT v FROM t -- = @{k}"}},
		{"convert, exact preferred", "mysql", "SELECT 1 FROM t WHERE v = CAST(CONCAT('@', '%s') AS CHAR) AND w = CONVERT('%s' USING utf8mb4)",
			[]string{"SELECT w FROM t -- = {k}"}},
		{"between kept", "mysql", "SELECT 1 FROM t WHERE n BETWEEN 1 AND 5 AND v = '@%s'",
			[]string{"SELECT v FROM t WHERE n BETWEEN 1 AND 5 -- = @{k}"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl, err := deriveCandidates(tt.query, dialects[tt.typ].syntax())
			if err != nil {
				t.Fatalf("deriveCandidates(%s, %q): %v", tt.typ, tt.query, err)
			}
			if got := describeCandidates(cl); !slices.Equal(got, tt.want) {
				t.Errorf("deriveCandidates(%s, %q) =\n%q\nwant\n%q", tt.typ, tt.query, got, tt.want)
			}
		})
	}
}

func TestDeriveCandidatesRefusals(t *testing.T) {
	tests := []struct {
		name, typ, query, why string
	}{
		{"postfixadmin alias domain maps", "mysql", postfixadminAliasDomainMaps, "keyed by address (%d)"},
		{"postfixadmin %u", "mysql", postfixadminDomainsU, "keyed by address (%u)"},
		{"function", "mysql", "SELECT 1 FROM t WHERE d = SUBSTRING_INDEX('%s', '@', -1)", "inside SUBSTRING_INDEX()"},
		{"function around affix", "mysql", "SELECT 1 FROM t WHERE d = md5(CONCAT('@', '%s'))", "inside CONCAT()"},
		{"any ending", "mysql", "SELECT 1 FROM t WHERE d LIKE '%%%s'", "any ending"},
		{"any beginning", "mysql", "SELECT 1 FROM t WHERE d LIKE '%s%%'", "any beginning"},
		{"anywhere", "mysql", "SELECT 1 FROM t WHERE d LIKE '%%@%s.%%'", "anywhere inside"},
		{"underscore", "mysql", "SELECT 1 FROM t WHERE d LIKE '_@%s'", "wildcard or escape"},
		{"stored patterns", "mysql", "SELECT 1 FROM t WHERE '%s' LIKE pattern", "LIKE patterns stored in pattern"},
		{"regexp", "mysql", "SELECT nexthop FROM transports WHERE '%s' REGEXP destination AND active='1'", "compared with REGEXP"},
		{"negated", "mysql", "SELECT 1 FROM t WHERE NOT d = '%s'", "negated"},
		{"not exists only", "mysql", "SELECT 1 FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.d = '%s')", "negated"},
		{"not like", "mysql", "SELECT 1 FROM t WHERE d NOT LIKE '%s'", "negated"},
		{"unequal", "mysql", "SELECT 1 FROM t WHERE d <> '%s'", "compared with <>"},
		{"or without key", "mysql", "SELECT d FROM t WHERE a = 1 OR d = '%s'", "alternative a = 1 does not use the key"},
		{"pipes are or in mysql", "mysql", "SELECT d FROM t WHERE d = '@' || '%s'", "alternative d = '@' does not use the key: it answers every key (|| is OR in MySQL: use CONCAT())"},
		{"in list with a constant", "mysql", "SELECT d FROM t WHERE d IN ('%s', 'x.example')", "holds 'x.example' besides the key"},
		{"concat with a column", "mysql", "SELECT d FROM t WHERE d = CONCAT('@', '%s', other)", "other is concatenated with the key"},
		{"aggregate", "mysql", "SELECT COUNT(*) FROM t WHERE d = '%s'", "aggregate COUNT() without GROUP BY"},
		{"aggregate in a subquery", "mysql", "SELECT 'OK' FROM dual WHERE (SELECT COUNT(*) FROM t WHERE t.n = CONCAT('@', '%s')) = 0", "aggregate COUNT() without GROUP BY"},
		{"join condition", "mysql", "SELECT d FROM t JOIN u ON u.x = '%s' WHERE t.a = 1", "FROM clause"},
		{"derived table", "sqlite", "SELECT destination FROM (SELECT destination FROM aliases WHERE source='%s') ORDER BY 1", "FROM clause"},
		{"select list only", "mysql", "SELECT IF(EXISTS(SELECT 1 FROM alias WHERE address = '%s'), 'x', NULL) FROM dual", "only in the select list"},
		{"no from", "mysql", "SELECT IF(EXISTS(SELECT 1 FROM alias WHERE address = '%s'), 'x', NULL) AS 'transport'", "without FROM"},
		{"union part without key", "mysql", "SELECT x FROM t WHERE k = '%s' UNION SELECT 'y' FROM dual", "does not use the key"},
		{"subquery union part without key", "mysql", "SELECT x FROM t WHERE x IN (SELECT a FROM b WHERE c = '%s' UNION SELECT 'q' FROM dual)", "does not use the key"},
		{"twice in a string", "mysql", "SELECT 1 FROM t WHERE d = '%s.%s'", "used 2 times in '%s.%s'"},
		{"identifier", "mysql", "SELECT 1 FROM `t%s` WHERE d = '%s'", "identifier `t%s`"},
		{"backslash", "mysql", `SELECT 1 FROM t WHERE d = '\\%s'`, "backslash"},
		{"xor", "mysql", "SELECT 1 FROM t WHERE d = '%s' XOR a = 1", "XOR"},
		{"case", "mysql", "SELECT 1 FROM t WHERE CASE WHEN a = 1 THEN d ELSE e END = '%s'", "CASE"},
		{"outer reference", "mysql", "SELECT 1 FROM d WHERE EXISTS (SELECT 1 FROM a WHERE d.name = '%s')", "d.name refers to d of the outer query"},
		{"intersect", "pgsql", "SELECT d FROM t WHERE d = '%s' INTERSECT SELECT d FROM u", "INTERSECT"},
		{"escape", "mysql", "SELECT 1 FROM t WHERE d LIKE '@%s' ESCAPE '!'", "ESCAPE"},
		{"rows of a subquery", "mysql", "SELECT 1 FROM dual WHERE '%s' IN (SELECT d FROM t)", "rows of a subquery"},
		{"function only", "mysql", "SELECT 1 FROM t WHERE FIND_IN_SET('%s', domains)", "inside FIND_IN_SET()"},
		{"no key", "mysql", "SELECT d FROM t WHERE d = '%%s'", "does not use the key"},
		{"two statements", "mysql", "SELECT d FROM t WHERE d = '@%s'; SELECT 1", "several statements"},
		{"with", "pgsql", "WITH x AS (SELECT 1) SELECT d FROM t WHERE d = '@%s'", "not a SELECT query (WITH)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl, err := deriveCandidates(tt.query, dialects[tt.typ].syntax())
			if !errors.Is(err, ErrNoListing) || !strings.Contains(err.Error(), tt.why) {
				var got []string
				if cl != nil {
					got = describeCandidates(cl)
				}
				t.Errorf("deriveCandidates(%s, %q) = %q, %v, want ErrNoListing saying %q", tt.typ, tt.query, got, err, tt.why)
			}
		})
	}
}

func TestKeyPatternEach(t *testing.T) {
	tests := []struct {
		pre, suf string
		like     bool
		value    string
		want     []string
	}{
		{"", "", false, "Example.COM  ", []string{"example.com"}},
		{"@", "", false, "@Alias.Example", []string{"alias.example"}},
		{"@", "", false, "alias.example", nil},
		{"<", "> ", false, "<a.example>   ", []string{"a.example"}},
		{"%@", "", true, "Bob@Shop.Example.NET", []string{"shop.example.net"}},
		{"%@", "", true, "a@b@c.example", []string{"b@c.example", "c.example"}},
		{"%@", "", true, "no-at.example", nil},
		{"", "@%", true, "user@x@y", []string{"user", "user@x"}},
		{"www.", "", false, "WWW.Straße.example", []string{"strasse.example"}},
		{"", "", true, "", []string{""}},
	}
	for _, tt := range tests {
		p := newKeyPattern(tt.pre, tt.suf, tt.like)
		var got []string
		p.each(tt.value, func(k string) { got = append(got, k) })
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s.each(%q) = %q, want %q", p, tt.value, got, tt.want)
		}
	}
}

// FuzzCandidateListing checks that deriving candidates never panics, that a
// refusal wraps ErrNoListing, that no candidate query holds the key or
// fails to tokenize, and that the candidates cut out of a value are parts
// of it that put back between the pattern's literals give the value.
func FuzzCandidateListing(f *testing.F) {
	for _, q := range []string{
		ispconfigDomains, ispconfigAliasDomains, miabDomains, miabDomains3, mailcowDomains,
		modoboaDomainAliases, appleInList, postfixadminDomainsU,
		"SELECT d FROM t WHERE d = '@' || '%s' || '.' AND (a = 1 OR b = 2)",
		"SELECT d FROM t WHERE d IN (SELECT x FROM y WHERE z = CONCAT('@', LOWER('%s'))) AND d LIKE '%%.%%'",
		"SELECT d FROM t WHERE (d = '%s' OR e LIKE '%%@%s') AND f = '%%s'",
		"SELECT d FROM t WHERE d LIKE '%s@%%' ORDER BY 1 LIMIT 5",
	} {
		f.Add(q, "Alice@Example.COM")
	}
	f.Fuzz(func(t *testing.T, query, value string) {
		for _, typ := range []string{"mysql", "pgsql", "sqlite"} {
			syn := dialects[typ].syntax()
			cl, err := deriveCandidates(query, syn)
			if err != nil {
				if !errors.Is(err, ErrNoListing) {
					t.Fatalf("%s: deriveCandidates(%q) error %v does not wrap ErrNoListing", typ, query, err)
				}
				continue
			}
			lit := strings.Count(query, "%%s") + strings.Count(query, "%%S")
			for _, q := range cl.queries {
				if n := strings.Count(q.sql, "%s") + strings.Count(q.sql, "%S"); n > lit {
					t.Fatalf("%s: deriveCandidates(%q) gives %q, which still holds the key", typ, query, q.sql)
				}
				if _, err := tokenize(strings.ReplaceAll(q.sql, "%", "%%"), syn); err != nil {
					t.Fatalf("%s: deriveCandidates(%q) gives %q, which does not tokenize: %v", typ, query, q.sql, err)
				}
				if len(q.cols) == 0 {
					t.Fatalf("%s: deriveCandidates(%q) gives %q without columns", typ, query, q.sql)
				}
				for _, p := range q.cols {
					checkEach(t, p, value)
				}
			}
		}
	})
}

// checkEach checks that each candidate of value under p, put back between
// p's literals, matches the (folded) value.
func checkEach(t *testing.T, p keyPattern, value string) {
	v := value
	if !p.trail {
		v = strings.TrimRight(v, " ")
	}
	v = folded(v)
	p.each(value, func(k string) {
		whole := p.pre + k + p.suf
		switch {
		case p.lead && !strings.HasSuffix(v, whole),
			p.trail && !strings.HasPrefix(v, whole),
			!p.lead && !p.trail && v != whole:
			t.Fatalf("%s.each(%q) gives %q, which does not match %q", p, value, k, v)
		}
	})
}

// TestDeriveCandidatesCorpus derives candidates from every SQL lookup file
// of the corpus: each either gives queries without the key or says why not.
func TestDeriveCandidatesCorpus(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/corpus/*/etc/postfix/*/*.cf")
	if len(files) == 0 {
		t.Skip("no corpus lookup files")
	}
	for _, f := range files {
		typ := filepath.Base(filepath.Dir(f))
		d, ok := dialects[typ]
		if !ok {
			continue
		}
		root, _ := hostfs.New(filepath.Dir(f))
		mt, err := postfix.LoadSQLTable(root, typ, "/"+filepath.Base(f))
		if err != nil || mt.Query == "" {
			continue
		}
		cl, err := deriveCandidates(mt.Query, d.syntax())
		if err != nil {
			if !errors.Is(err, ErrNoListing) {
				t.Errorf("%s: deriveCandidates(%q) error %v does not wrap ErrNoListing", f, mt.Query, err)
			}
			t.Logf("%s: %v", filepath.Base(f), err)
			continue
		}
		for _, q := range cl.queries {
			if strings.Contains(q.sql, "%s") {
				t.Errorf("%s: deriveCandidates(%q) gives %q, which still holds the key", f, mt.Query, q.sql)
			}
		}
		t.Logf("%s: %q", filepath.Base(f), describeCandidates(cl))
	}
}
