package sqltable

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/mariadbtest"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

// TestPostmapDifferential asks the real postmap(1) and Lookup the same keys
// of tables whose queries echo their expansions (SELECT '%u|%d'), so any
// difference in %-expansion, suppression, quoting, result_format or the
// domain restriction shows.
func TestPostmapDifferential(t *testing.T) {
	postmap := testtool.Need(t, "postmap")
	if out, err := exec.Command(testtool.Need(t, "postconf"), "-m").Output(); err == nil && !bytes.Contains(out, []byte("mysql\n")) {
		testtool.Missing(t, "postfix-mysql not installed")
	}
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
		if err := os.WriteFile(path, []byte(cf), 0o600); err != nil {
			t.Fatal(err)
		}
		// Postfix waits ~2s before it opens a table file modified in the
		// last seconds; date it back.
		old := time.Now().Add(-time.Hour)
		if err := os.Chtimes(path, old, old); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(postmap, "-q", "-", "mysql:"+path)
		cmd.Stdin = strings.NewReader(strings.Join(keys, "\n") + "\n")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil && !(cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == 1) {
			t.Fatalf("postmap %s: %v\n%s", sp.query, err, stderr.String())
		}
		found := map[string]string{}
		for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
			if k, v, ok := strings.Cut(line, "\t"); ok {
				found[k] = v
			}
		}
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
