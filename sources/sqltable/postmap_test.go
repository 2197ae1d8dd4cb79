package sqltable

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/mariadbtest"
	"github.com/mailautoconf/mailautoconf/internal/postmaptest"
)

// TestPostmapDifferential asks the real postmap(1) and Lookup the same keys
// of tables whose queries echo their expansions (SELECT '%u|%d'), so any
// difference in %-expansion, suppression, quoting, result_format or the
// domain restriction shows.
func TestPostmapDifferential(t *testing.T) {
	postmap := postmaptest.Need(t, "mysql")
	s := mariadbtest.Shared(t)
	keys := []string{
		"example.com", "User@Example.COM", "@example.com", "user@", "a@b@mail.example.com",
		"x@a..example.com", "x@.example.com", "x@example.com.", "x@com", "o'brien@example.com",
		`back\slash@x.y`, `dq"x@y.z`, "ÄBC@Example.com", "semi;colon@x.y", "100%@x.y", "\x1a@x.y",
		"Straße@x.y", "ẞ@x.y", "ς@x.y", "ſ@x.y", "ﬁ@x.y", "K@x.y", "ΣΑΣ@x.y", "İ@x.y", "Ꭰ@x.y", "ꭰ@x.y",
		"ŉ@x.y", "և@x.y", "ϐϑϕϖϰϱϵ@x.y", "ᾳ@x.y", "\xff@x.y",
	}
	type spec struct{ query, result, domain string }
	specs := []spec{
		{"SELECT '%s'", "", ""},
		{"SELECT '%u'", "", ""},
		{"SELECT '%d'", "", ""},
		{"SELECT '%1'", "", ""},
		{"SELECT '%2.%1'", "", ""},
		{"SELECT '%3'", "", ""},
		{"SELECT '%U|%D|%S'", "", ""},
		{"SELECT CONCAT('100%%', '%s')", "", ""},
		{"SELECT NULL, '%s', ''", "", ""},
		// Postfix reads each value as a C string: it ends at a NUL.
		{"SELECT CONCAT('a', CHAR(0), '%s') UNION ALL SELECT CONCAT(CHAR(0), '%s')", "", ""},
		{"SELECT 'a@b.c' UNION ALL SELECT '%s' UNION ALL SELECT 'plain'", "%u", ""},
		{"SELECT 'a@b.c' UNION ALL SELECT '%s' UNION ALL SELECT 'plain'", "%d", ""},
		{"SELECT 'v'", "[%s]%%", ""},
		{"SELECT 'v'", "%D/%U/%S/%1", ""},
		{"SELECT '%s'", "", "example.com, !y.z x.y"},
	}
	dir := t.TempDir()
	ctx := context.Background()
	for i, sp := range specs {
		cf := fmt.Sprintf("hosts = unix:%s\nuser = root\npassword =\ndbname = mysql\nquery = %s\n", s.Socket(), sp.query)
		if sp.result != "" {
			cf += "result_format = " + sp.result + "\n"
		}
		if sp.domain != "" {
			cf += "domain = " + sp.domain + "\n"
		}
		path := filepath.Join(dir, fmt.Sprintf("t%d.cf", i))
		postmaptest.WriteTable(t, path, cf)
		r, err := postmaptest.Query(postmap, "mysql", path, keys)
		if err != nil {
			t.Fatal(err)
		}
		if r.BadExit() {
			t.Fatalf("postmap %s: exit status %d\n%s", sp.query, r.ExitCode, r.Stderr)
		}
		found := r.Found
		tb := openTable(t, parseCF(t, path, cf), Options{})
		for _, k := range keys {
			got, err := tb.Lookup(ctx, k)
			if err != nil {
				t.Errorf("query %q result_format %q: Lookup(%q): %v", sp.query, sp.result, k, err)
				continue
			}
			if g, want := strings.Join(got, ","), found[k]; g != want {
				t.Errorf("query %q result_format %q domain %q: Lookup(%q) = %q, postmap says %q", sp.query, sp.result, sp.domain, k, g, want)
			}
		}
	}
}
