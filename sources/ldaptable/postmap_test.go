package ldaptable

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/postmaptest"
	"github.com/mailautoconf/mailautoconf/internal/slapdtest"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/postfix"
)

// postmapProcs bounds the postmap processes running at once. A postmap
// whose lookup fails sleeps a second before it exits (Postfix's
// msg_fatal), so they are run side by side.
var postmapProcs = make(chan struct{}, 24)

// postmapRun asks postmap for keys, one per line; failed reports a lookup
// error, after which postmap asks no more.
func postmapRun(postmap, cf string, keys []string) (found map[string]string, failed bool, err error) {
	postmapProcs <- struct{}{}
	defer func() { <-postmapProcs }()
	r, err := postmaptest.Query(postmap, "ldap", cf, keys)
	if err != nil {
		return nil, false, err
	}
	failed = r.Fatal()
	if failed && !strings.Contains(r.Stderr, "query error") {
		return nil, false, fmt.Errorf("postmap %s: %s", cf, r.Stderr)
	}
	return r.Found, failed, nil
}

// postmapAnswers asks the real postmap for every key of table file cf. An
// answer is the value postmap prints, "" when it prints none, or "ERROR"
// when the lookup fails. Since postmap stops at the first failed lookup,
// the keys suspect says may fail are asked one process each, the others
// all at once; when that batch fails after all, every key gets a process.
func postmapAnswers(postmap, cf string, keys []string, suspect func(string) bool) (map[string]string, error) {
	var batch, single []string
	for _, k := range keys {
		if suspect(k) {
			single = append(single, k)
		} else {
			batch = append(batch, k)
		}
	}
	answers := map[string]string{}
	if len(batch) > 0 {
		found, failed, err := postmapRun(postmap, cf, batch)
		if err != nil {
			return nil, err
		}
		if failed {
			single = keys
		} else {
			for _, k := range batch {
				answers[k] = found[k]
			}
		}
	}
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for _, k := range single {
		wg.Add(1)
		go func() {
			defer wg.Done()
			found, failed, err := postmapRun(postmap, cf, []string{k})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				firstErr = err
			case failed:
				answers[k] = "ERROR"
			default:
				answers[k] = found[k]
			}
		}()
	}
	wg.Wait()
	return answers, firstErr
}

// lookupAnswer is Lookup's answer in postmapAnswers' form.
func lookupAnswer(tb *Table, key string) (string, error) {
	r, err := tb.Lookup(context.Background(), key)
	if err != nil {
		return "ERROR", err
	}
	return strings.Join(r, ","), nil
}

// hostileKeys are asked of every table: each line is one key for postmap.
var hostileKeys = []string{
	"example.com", "Example.COM", "alias.example.com", "user", "User", "user@example.com", "User@Example.COM",
	"@example.com", "user@", "a@b@mail.example.com", "x@a..example.com", "x@.example.com", "x@example.com.",
	"x@com", "b@mail.example.com", "o'brien", `back\slash`, `dq"x`, "*", "a*b", "(paren)", "a(b)c", `\\`, `\`,
	"*)(objectclass=*", "*)(|(cn=*", "x)(cn=user", "ÄBC", "Straße", "STRASSE", "İ", "Ÿ", "ÿ", "\xff", "\xff@x.y",
	"a,b", "#x", "x y", "x+y", "a;b", "<>", "%s", "100%", "a=b", `k\2a`, "é@É.com", "=", "com",
	"group1", "group2", "group3", "group4", "group5", "loop", "dup", "multi", "nul", "ff", "comma", "late",
	"shop.example.net", "Shop.Example.NET", "mail.example.com", "no.such.example",
}

// A diffSpec is a table body (after server_host and bind = no) against the
// dataset. few: every lookup fails, so a few keys do (each failed postmap
// costs a second); ldapi: reach slapd through its unix socket.
type diffSpec struct {
	body       string
	few, ldapi bool
}

// fewKeys are asked of tables where every lookup fails.
var fewKeys = []string{"example.com", "user@example.com", "*)(objectclass=*", "\xff", "@example.com", "Straße", "dup", "no.such.example"}

var diffSpecs = []diffSpec{
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = description\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = description cn, title\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%u)\nresult_attribute = description\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%d)\nresult_attribute = description\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%1)\nresult_attribute = description\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%2.%1)\nresult_attribute = description\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%3)\nresult_attribute = description\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (|(cn=%U)(cn=%D)(cn=%S))\nresult_attribute = description\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = description\nresult_format = %s/Maildir/\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = cn description\nresult_format = %u\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = cn\nresult_format = %d\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = description\nresult_format = [%s]%%\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = description\nresult_format = %D/%U/%S/%1\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = description\nresult_filter = old:%s\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = description\ndomain = example.com, !y.z x.y mail.EXAMPLE.com\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=*%s*)\nresult_attribute = cn\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = cn=%s\nresult_attribute = description\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = ( & (cn=%s)\n  (objectClass=*) )\nresult_attribute = description\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (|(cn=%s)(cn=a\\*b)(cn=\\28paren\\29))\nresult_attribute = description\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%s\nresult_attribute = description\n", few: true},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn:caseExactMatch:=%s)\nresult_attribute = description\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (!(cn=%s))\nresult_attribute = description\nsize_limit = 100\n"},
	{body: "search_base = " + keysBase + "\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = seeAlso\n"},
	// Scopes.
	{body: "search_base = " + keysBase + "\nscope = one\nquery_filter = (cn=%s)\nresult_attribute = description\n"},
	{body: "search_base = dc=example,dc=com\nscope = one\nquery_filter = (cn=%s)\nresult_attribute = description\n"},
	{body: "search_base = dc=example,dc=com\nscope = sub\nquery_filter = (cn=%s)\nresult_attribute = description\n"},
	{body: "search_base = uid=k0," + keysBase + "\nscope = base\nquery_filter = (cn=%s)\nresult_attribute = description\n"},
	{body: "search_base = ou=nowhere,dc=example,dc=com\nquery_filter = (cn=%s)\nresult_attribute = description\n", few: true},
	{body: "query_filter = (cn=%s)\nresult_attribute = description\n", few: true},
	// Search bases made from the key (RFC 4514 escaping).
	{body: "search_base = cn=%s,ou=DNs,dc=example,dc=com\nscope = base\nquery_filter = (objectClass=*)\nresult_attribute = description\n"},
	{body: "search_base = cn=%d,ou=DNs,dc=example,dc=com\nscope = base\nquery_filter = (objectClass=*)\nresult_attribute = description\n"},
	{body: "search_base = cn=%u,ou=DNs,dc=example,dc=com\nscope = sub\nquery_filter = (cn=%u)\nresult_attribute = description\n"},
	// Special, terminal and leaf result attributes, recursion.
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = description\nspecial_result_attribute = seeAlso labeledURI\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (|(cn=%s)(cn=group5))\nresult_attribute = description\nterminal_result_attribute = mail\nspecial_result_attribute = seeAlso labeledURI\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (|(cn=%s)(cn=user))\nresult_attribute = title\nleaf_result_attribute = description\nspecial_result_attribute = seeAlso, labeledURI\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute =\nleaf_result_attribute = description\nspecial_result_attribute = seeAlso labeledURI\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = description\nspecial_result_attribute = seeAlso\nrecursion_limit = 1\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = description\nspecial_result_attribute = seeAlso\nrecursion_limit = 3\n"},
	// Postfix keeps an entry's terminal and leaf state for the next entry
	// of the same search unless that entry has the attributes to decide.
	{body: "search_base = " + keysBase + "\nquery_filter = (|(cn=%s)(cn=group3))\nresult_attribute = description\nterminal_result_attribute = mail\nspecial_result_attribute = seeAlso\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (|(cn=%s)(cn=late))\nresult_attribute = title\nleaf_result_attribute = description\nspecial_result_attribute = seeAlso\n"},
	// Limits.
	{body: "search_base = " + keysBase + "\nquery_filter = (|(cn=%s)(cn=dup))\nresult_attribute = description\nsize_limit = 2\n", few: true},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = description\nsize_limit = 1\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = description\nexpansion_limit = 2\n"},
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = description\nexpansion_limit = 1\nsize_limit = 0\n"},
	// Values that are not UTF-8, or hold NUL.
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = userPassword\n"},
	// Alias dereferencing.
	{body: "search_base = ou=Aliases,dc=example,dc=com\nscope = one\nquery_filter = (cn=%s)\nresult_attribute = description\ndereference = 0\n"},
	{body: "search_base = ou=Aliases,dc=example,dc=com\nscope = one\nquery_filter = (cn=%s)\nresult_attribute = description\ndereference = 3\n"},
	{body: "search_base = ou=Aliases,dc=example,dc=com\nscope = one\nquery_filter = (cn=%s)\nresult_attribute = description\ndereference = 1\n"},
	// The unix socket.
	{body: "search_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = description\n", ldapi: true},
	{body: "bind = yes\nbind_dn = " + lookupDN + "\nbind_pw = " + lookupPW + "\nsearch_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = description cn\n", ldapi: true},
	// Binds and protocol versions.
	{body: "bind = yes\nbind_dn = " + lookupDN + "\nbind_pw = " + lookupPW + "\nsearch_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = description\n"},
	{body: "bind = yes\nversion = 2\nbind_dn = " + lookupDN + "\nbind_pw = " + lookupPW + "\nsearch_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = description\n", few: true},
	{body: "bind = no\nversion = 2\nsearch_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = description\n"},
	{body: "bind = yes\nbind_dn = " + lookupDN + "\nbind_pw = wrong\nsearch_base = " + keysBase + "\nquery_filter = (cn=%s)\nresult_attribute = description\n", few: true},
}

// TestPostmapDifferential asks the real postmap(1) (Postfix 3.7 with
// libldap 2.5) and Lookup the same hostile keys of many tables over the
// same slapd, so any difference in key folding, %-expansion, escaping,
// suppression, filter parsing, result attributes, recursion, limits,
// result_format, scope, dereferencing or binding shows.
func TestPostmapDifferential(t *testing.T) {
	postmap := postmaptest.Need(t, "ldap")
	s := datasetServer(t)
	dir := t.TempDir()
	runs := make([]*diffRun, len(diffSpecs))
	for i, sp := range diffSpecs {
		uri := s.URL()
		if sp.ldapi {
			uri = s.LDAPI()
		}
		text := "server_host = " + uri + "\nbind = no\n" + sp.body
		r := &diffRun{name: text, tb: openCF(t, text, Options{}), keys: hostileKeys}
		if sp.few {
			r.keys = fewKeys
		}
		r.cf = writeCF(t, dir, fmt.Sprintf("t%d.cf", i), text)
		runs[i] = r
	}
	askPostmap(t, postmap, runs)
	for i, r := range runs {
		hits, errs := 0, 0
		for _, k := range r.keys {
			got, err := lookupAnswer(r.tb, k)
			if want := r.postmap[k]; got != want {
				t.Errorf("table %d:\n%s\nLookup(%q) = %q (err %v), postmap says %q", i, r.name, k, got, err, want)
			}
			switch got {
			case "":
			case "ERROR":
				errs++
			default:
				hits++
			}
		}
		t.Logf("table %d: %d answers, %d errors", i, hits, errs)
	}
}

// TestPostmapDifferentialCorpus does the same for every LDAP table of the
// iRedMail corpus set, against that set's slapd, with each file copied
// and only server_host rewritten.
func TestPostmapDifferentialCorpus(t *testing.T) {
	postmap := postmaptest.Need(t, "ldap")
	s := slapdtest.Shared(t, slapdtest.Corpus(corpusSet))
	root, err := hostfs.New(corpusSet)
	if err != nil {
		t.Fatal(err)
	}
	files, err := root.Glob("/etc/postfix/ldap/*.cf")
	if err != nil || len(files) < 10 {
		t.Fatalf("corpus tables: %v %v", files, err)
	}
	keys := append([]string{
		"example.com", "example.org", "shop.example.net", "SHOP.example.NET", "disabled.example.net",
		"backupmx.example.net", "nomail.example.net", "alias.example.com", "oldalias.example.org", "nonexistent.example",
		"postmaster@example.com", "Postmaster@Example.COM", "postmaster@alias.example.com", "nobody@example.com",
		"postmaster", "@example.com",
	}, hostileKeys...)
	serverHost := regexp.MustCompile(`(?m)^server_host\s*=.*$`)
	dir := t.TempDir()
	var runs []*diffRun
	for _, f := range files {
		b, err := root.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := serverHost.ReplaceAllString(string(b), "server_host = "+s.URL())
		cf := writeCF(t, dir, filepath.Base(f), text)
		orig, err := postfix.ParseLDAPTable(f, bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		tb, err := Open(orig, Options{Root: root, Override: s.URL()})
		if err != nil {
			t.Fatal(err)
		}
		defer tb.Close()
		runs = append(runs, &diffRun{name: f, cf: cf, tb: tb, keys: keys})
	}
	askPostmap(t, postmap, runs)
	for _, r := range runs {
		hits := 0
		for _, k := range keys {
			got, err := lookupAnswer(r.tb, k)
			if got != r.postmap[k] {
				t.Errorf("%s: Lookup(%q) = %q (err %v), postmap says %q", r.name, k, got, err, r.postmap[k])
			}
			if got != "" {
				hits++
			}
		}
		t.Logf("%s: %d keys answered", r.name, hits)
	}
	if _, err := os.Stat(filepath.Join(corpusSet, "ldap", "ldap-seed.ldif")); err != nil {
		t.Fatal(err)
	}
}

// TestPostmapDifferentialDeadServer compares the answers when no server
// answers: Postfix connects before it decides whether to search, so only
// keys it refuses earlier (not UTF-8, outside "domain") escape the error.
func TestPostmapDifferentialDeadServer(t *testing.T) {
	postmap := postmaptest.Need(t, "ldap")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "ldap://" + l.Addr().String()
	l.Close()
	keys := []string{"example.com", "user@example.com", "\xff", "@example.com", "user@other.example", "a@b.c.d"}
	specs := []string{
		"query_filter = (cn=%s)\n",
		"query_filter = (cn=%d)\n",
		"search_base = cn=%2,dc=example,dc=com\nquery_filter = (cn=%u)\n",
		"query_filter = (cn=%s)\ndomain = example.com\n",
	}
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, len(specs))
	for i, sp := range specs {
		text := "server_host = " + dead + "\nbind = no\n" + sp
		cf := writeCF(t, dir, fmt.Sprintf("dead%d.cf", i), text)
		tb := openCF(t, text, Options{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			want, err := postmapAnswers(postmap, cf, keys, func(string) bool { return true })
			if err != nil {
				errs[i] = err
				return
			}
			for _, k := range keys {
				if got, err := lookupAnswer(tb, k); got != want[k] {
					errs[i] = errors.Join(errs[i], fmt.Errorf("table %q: Lookup(%q) = %q (%v), postmap says %q", sp, k, got, err, want[k]))
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Error(err)
	}
}

// A diffRun is one lookup file whose answers are compared with postmap's.
type diffRun struct {
	name    string // the table as failures name it
	cf      string // the lookup file postmap reads
	tb      *Table // the same table, opened here
	keys    []string
	postmap map[string]string // postmap's answers, filled by askPostmap
}

// askPostmap asks postmap every run's keys, all runs at once, and fails t
// when postmap cannot answer.
func askPostmap(t *testing.T, postmap string, runs []*diffRun) {
	t.Helper()
	errs := make([]error, len(runs))
	var wg sync.WaitGroup
	for i, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.postmap, errs[i] = postmapAnswers(postmap, r.cf, r.keys, func(k string) bool {
				a, _ := lookupAnswer(r.tb, k)
				return a == "ERROR"
			})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
