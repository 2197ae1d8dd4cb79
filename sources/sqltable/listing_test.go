package sqltable

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/postfix"
)

func TestListingQuery(t *testing.T) {
	tests := []struct {
		name, query, want string
	}{
		{"postfixadmin", "SELECT domain FROM domain WHERE domain='%s' AND active = '1'",
			"SELECT domain FROM domain WHERE active = '1'"},
		{"iredmail union",
			"(SELECT domain FROM domain WHERE domain='%s' AND backupmx=0 AND active=1 LIMIT 1) UNION (SELECT alias_domain.alias_domain FROM alias_domain,domain WHERE alias_domain.alias_domain='%s' AND alias_domain.active=1 AND alias_domain.target_domain=domain.domain AND domain.active=1 AND domain.backupmx=0 LIMIT 1)",
			"(SELECT domain FROM domain WHERE backupmx=0 AND active=1) UNION (SELECT alias_domain.alias_domain FROM alias_domain,domain WHERE alias_domain.active=1 AND alias_domain.target_domain=domain.domain AND domain.active=1 AND domain.backupmx=0)"},
		{"constant result", "SELECT 'OK' FROM domains WHERE name='%s'", "SELECT name FROM domains"},
		{"only predicate", "SELECT domain FROM domain WHERE domain = '%s' LIMIT 1", "SELECT domain FROM domain"},
		{"predicate last", "SELECT d FROM t WHERE active=1 AND d='%s'", "SELECT d FROM t WHERE active=1"},
		{"predicate middle", "SELECT d FROM t WHERE a=1 AND d='%s' AND b=2", "SELECT d FROM t WHERE a=1 AND b=2"},
		{"swapped", "SELECT d FROM t WHERE '%s' = t.d AND a=1", "SELECT t.d FROM t WHERE a=1"},
		{"backquotes", "SELECT `d` FROM `t` WHERE `t`.`d`='%s'", "SELECT `t`.`d` FROM `t`"},
		{"double quotes", `SELECT d FROM t WHERE d="%s"`, "SELECT d FROM t"},
		{"unquoted", "SELECT d FROM t WHERE id=%s", "SELECT id FROM t"},
		{"lower", "SELECT d FROM t WHERE LOWER(d) = LOWER('%s') AND x=1", "SELECT d FROM t WHERE x=1"},
		{"collate", "SELECT d FROM t WHERE d='%s' COLLATE utf8mb4_general_ci", "SELECT d FROM t"},
		{"nested and", "SELECT d FROM t WHERE (d='%s' AND a=1) AND b=2", "SELECT d FROM t WHERE (a=1) AND b=2"},
		{"nested group gone", "SELECT d FROM t WHERE (d='%s') AND b=2", "SELECT d FROM t WHERE b=2"},
		{"between", "SELECT d FROM t WHERE n BETWEEN 1 AND 5 AND d='%s'", "SELECT d FROM t WHERE n BETWEEN 1 AND 5"},
		{"other or kept", "SELECT domain FROM domain WHERE domain='%s' AND active = '1' AND (transport LIKE 'smtp%%' OR transport LIKE 'relay%%')",
			"SELECT domain FROM domain WHERE active = '1' AND (transport LIKE 'smtp%' OR transport LIKE 'relay%')"},
		{"legacy", "SELECT domain FROM domains WHERE domain='%s' AND active=1", "SELECT domain FROM domains WHERE active=1"},
		{"legacy empty conditions", "SELECT domain FROM domains WHERE domain='%s' ", "SELECT domain FROM domains"},
		{"distinct", "SELECT DISTINCT d FROM t WHERE d='%s'", "SELECT DISTINCT d FROM t"},
		{"subquery elsewhere", "SELECT d FROM t WHERE d='%s' AND d NOT IN (SELECT x FROM y)", "SELECT d FROM t WHERE d NOT IN (SELECT x FROM y)"},
		{"comments", "SELECT d /* c */ FROM t -- c\nWHERE d='%s' # c", "SELECT d FROM t"},
		{"union all order", "SELECT a FROM t WHERE a='%s' UNION ALL SELECT b FROM u WHERE b='%s' ORDER BY 1 LIMIT 1",
			"SELECT a FROM t UNION ALL SELECT b FROM u ORDER BY 1"},
		{"trailing semicolon", "SELECT d FROM t WHERE d='%s';", "SELECT d FROM t"},
		{"join", "SELECT d.name FROM d JOIN a ON a.id=d.id WHERE d.name='%s'", "SELECT d.name FROM d JOIN a ON a.id=d.id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ListingQuery("mysql", tt.query)
			if err != nil || got != tt.want {
				t.Errorf("ListingQuery(%q) = %q, %v, want %q", tt.query, got, err, tt.want)
			}
		})
	}
}

func TestListingQueryRefusals(t *testing.T) {
	tests := []struct {
		name, query, why string
	}{
		{"address keyed", "SELECT goto FROM alias,alias_domain WHERE alias_domain.alias_domain = '%d' and alias.address = CONCAT('%u', '@', alias_domain.target_domain)", "keyed by address (%d)"},
		{"user", "SELECT x FROM t WHERE u='%u'", "keyed by address (%u)"},
		{"component", "SELECT x FROM t WHERE tld='%1'", "keyed by address (%1)"},
		{"or", "SELECT d FROM t WHERE a=1 OR d='%s'", "with OR"},
		{"or in group", "SELECT d FROM t WHERE (a=1 OR d='%s') AND b=1", "with OR"},
		{"like", "SELECT d FROM t WHERE d LIKE '%s'", "LIKE"},
		{"function", "SELECT d FROM t WHERE d=CONCAT('%s','.')", "CONCAT()"},
		{"larger string", "SELECT d FROM t WHERE d='@%s'", "part of '@%s'"},
		{"twice", "SELECT '%s' FROM t WHERE d='%s'", "2 times"},
		{"no key", "SELECT d FROM t", "does not use the key"},
		{"union part without key", "SELECT d FROM t WHERE d='%s' UNION SELECT 'x' FROM dual", "does not use the key"},
		{"subquery", "SELECT d FROM t WHERE id IN (SELECT id FROM u WHERE n='%s')", "subquery"},
		{"subquery group", "SELECT d FROM t WHERE (SELECT 1 FROM u WHERE n='%s')", "subquery"},
		{"call", "CALL lookup('%s')", "not a SELECT"},
		{"aggregate", "SELECT COUNT(*) FROM t WHERE d='%s'", "aggregate COUNT()"},
		{"group by", "SELECT d FROM t WHERE d='%s' GROUP BY d", "GROUP BY"},
		{"not", "SELECT d FROM t WHERE NOT d='%s'", "negated"},
		{"in join", "SELECT d FROM t JOIN u ON u.n='%s'", "not in a WHERE"},
		{"not equal", "SELECT d FROM t WHERE d<>'%s'", "not compared with ="},
		{"literal", "SELECT d FROM t WHERE 'x'='%s'", "not compared with a column"},
		{"unterminated", "SELECT d FROM t WHERE d='%s", "cannot parse"},
		{"unbalanced", "SELECT d FROM t WHERE (d='%s'", "cannot parse"},
		{"executable comment", "SELECT d FROM t WHERE d='%s' /*!50000 OR 1 */", "executable comment"},
		{"two statements", "SELECT d FROM t WHERE d='%s'; DROP TABLE t", "several statements"},
		{"bad template", "SELECT d FROM t WHERE d='%s' AND x LIKE 'a%'", "invalid %'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ListingQuery("mysql", tt.query)
			if !errors.Is(err, ErrNoListing) || !strings.Contains(err.Error(), tt.why) {
				t.Errorf("ListingQuery(%q) = %q, %v, want ErrNoListing saying %q", tt.query, got, err, tt.why)
			}
		})
	}
}

// TestListingQueryCorpus checks that every MySQL lookup file of the corpus
// either lists its keys or says why not, and never leaves the key in.
func TestListingQueryCorpus(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/corpus/*/etc/postfix/*/*.cf")
	if len(files) == 0 {
		t.Skip("no corpus lookup files")
	}
	for _, f := range files {
		typ := filepath.Base(filepath.Dir(f)) // etc/postfix/mysql, .../pgsql
		if _, ok := dialects[typ]; !ok {
			continue
		}
		root, _ := hostfs.New(filepath.Dir(f))
		mt, err := postfix.LoadSQLTable(root, typ, "/"+filepath.Base(f))
		if err != nil || mt.Query == "" {
			continue
		}
		got, err := ListingQuery(typ, mt.Query)
		switch {
		case err != nil && !errors.Is(err, ErrNoListing):
			t.Errorf("%s: ListingQuery(%q) error %v does not wrap ErrNoListing", f, mt.Query, err)
		case err == nil && strings.Contains(got, "%s"):
			t.Errorf("%s: ListingQuery(%q) = %q, still holds the key", f, mt.Query, got)
		}
		t.Logf("%s: %q, %v", filepath.Base(f), got, err)
	}
}

func FuzzListingQuery(f *testing.F) {
	for _, q := range []string{
		"SELECT domain FROM domain WHERE domain='%s' AND active = '1'",
		"(SELECT domain FROM domain WHERE domain='%s' AND backupmx=0 AND active=1 LIMIT 1) UNION (SELECT a.b FROM a,d WHERE a.b='%s' AND a.c=d.c LIMIT 1)",
		"SELECT 'OK' FROM t WHERE LOWER(`t`.`n`)=LOWER('%s') COLLATE x",
		"SELECT d FROM t WHERE (d='%s' AND a BETWEEN 1 AND 2) AND x LIKE 'y%%s'",
		"SELECT d FROM t WHERE d=%s -- comment\n",
		"SELECT d FROM t WHERE d='%%s' AND e='%s'", // '%%s' is a literal '%s'
		"((SELECT d FROM t WHERE '%s'=d)) UNION DISTINCT (SELECT e FROM u WHERE e=\"%S\") ORDER BY 1 LIMIT 5",
		"SELECT x FROM t WHERE a='%u' OR '%d'",
		"SELECT d FROM t WHERE d='%s' /* unterminated",
		"SELECT d FROM t WHERE ()AND d='%s'",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, query string) {
		got, err := ListingQuery("mysql", query)
		if err != nil {
			if !errors.Is(err, ErrNoListing) {
				t.Fatalf("ListingQuery(%q) error %v does not wrap ErrNoListing", query, err)
			}
			return
		}
		// Every %s left must come from a literal %%s of the template.
		if n, lit := strings.Count(got, "%s")+strings.Count(got, "%S"), strings.Count(query, "%%s")+strings.Count(query, "%%S"); n > lit {
			t.Fatalf("ListingQuery(%q) = %q, still holds the key", query, got)
		}
		// The output is SQL: as a template (each % doubled) it tokenizes.
		if _, err := tokenize(strings.ReplaceAll(got, "%", "%%"), mysqlDialect{}.syntax()); err != nil {
			t.Fatalf("ListingQuery(%q) = %q, which does not tokenize: %v", query, got, err)
		}
	})
}

func TestBareDomainQuery(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT domain FROM domain WHERE domain='%u' AND active='1'": "SELECT domain FROM domain WHERE domain='%s' AND active='1'",
		"SELECT '%U', '100%%u', '%s', '%d'":                          "SELECT '%s', '100%%u', '%s', '%d'",
		"SELECT 1 WHERE x='%s'":                                      "SELECT 1 WHERE x='%s'",
		"trailing %":                                                 "trailing %",
	} {
		if got := bareDomainQuery(in); got != want {
			t.Errorf("bareDomainQuery(%q) = %q, want %q", in, got, want)
		}
	}
}
