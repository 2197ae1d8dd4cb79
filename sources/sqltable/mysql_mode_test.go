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

// modeKeys hold what escaping is about: quotes, backslashes and the
// characters mysql_real_escape_string escapes without NO_BACKSLASH_ESCAPES.
var modeKeys = []string{
	"example.com", "o'brien@example.com", `back\slash@x.y`, `dq"x@y.z`, `\'@x.y`, `'\@x.y`,
	`x\@y.z`, `a\b@x.y`, "''@x.y", `\\n@x.y`, "cr\rx@x.y", "\x1a@x.y", `%\_@x.y`, "' OR '1'='1",
	"俿'@x.y", // U+4FFF: E4 BF BF, whose BF 5C reads as one GBK character
}

// TestMySQLNoBackslashEscapes asks the real postmap(1) and Lookup the
// same keys while the server's sql_mode has NO_BACKSLASH_ESCAPES: a
// backslash in a string is then itself, and only quotes are escaped
// (doubled), which Postfix's mysql_real_escape_string does by reading the
// connection's status. Queries whose own text holds backslashes must read
// the same too, so the session's sql_mode is left as the server sets it.
func TestMySQLNoBackslashEscapes(t *testing.T) {
	postmap := postmaptest.Need(t, "mysql")
	s := mariadbtest.Shared(t)
	old := s.Query(t, "SELECT @@GLOBAL.sql_mode")[0][0]
	s.Exec(t, "SET GLOBAL sql_mode = CONCAT(@@GLOBAL.sql_mode, ',NO_BACKSLASH_ESCAPES')")
	t.Cleanup(func() { s.Exec(t, "SET GLOBAL sql_mode = '"+old+"'") })
	diffPostmap(t, postmap, s, "NO_BACKSLASH_ESCAPES", []string{
		"SELECT '%s'",
		"SELECT CONCAT('<', '%u', '|', '%d', '>')",
		`SELECT 'hit' FROM DUAL WHERE 'a\b@x.y' = '%s'`,
		`SELECT 'hit' FROM DUAL WHERE '%s' LIKE '%%\_%%'`,
		`SELECT @@SESSION.sql_mode LIKE '%%NO_BACKSLASH_ESCAPES%%'`,
	})
}

// TestMySQLDefaultMode is the same comparison with the server's default
// sql_mode, where backslashes escape.
func TestMySQLDefaultMode(t *testing.T) {
	postmap := postmaptest.Need(t, "mysql")
	s := mariadbtest.Shared(t)
	diffPostmap(t, postmap, s, "default", []string{
		"SELECT '%s'",
		`SELECT "%s"`,
		`SELECT 'hit' FROM DUAL WHERE 'a\\b@x.y' = '%s'`,
		`SELECT 'hit' FROM DUAL WHERE '%s' LIKE '%%\_%%'`,
	})
}

// diffPostmap compares postmap -q and Lookup on modeKeys for each query.
func diffPostmap(t *testing.T, postmap string, s *mariadbtest.Server, mode string, queries []string) {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	for i, q := range queries {
		cf := fmt.Sprintf("hosts = unix:%s\nuser = root\npassword =\ndbname = mysql\nquery = %s\n", s.Socket(), q)
		path := filepath.Join(dir, fmt.Sprintf("t%d.cf", i))
		postmaptest.WriteTable(t, path, cf)
		r, err := postmaptest.Query(postmap, "mysql", path, modeKeys)
		if err != nil {
			t.Fatal(err)
		}
		if r.Failed() {
			t.Fatalf("%s: postmap %s: exit status %d\n%s", mode, q, r.ExitCode, r.Stderr)
		}
		tb := openTable(t, parseCF(t, path, cf), Options{})
		for _, k := range modeKeys {
			got, err := tb.Lookup(ctx, k)
			want, found := r.Found[k]
			switch {
			case err != nil && !found && strings.Contains(r.Stderr, "query failed"):
				// Both fail: a key that breaks the query for Postfix too
				// (a " in a "%s" string under NO_BACKSLASH_ESCAPES).
			case err != nil:
				t.Errorf("%s: query %q: Lookup(%q): %v", mode, q, k, err)
			case strings.Join(got, ",") != want:
				t.Errorf("%s: query %q: Lookup(%q) = %q, postmap says %q", mode, q, k, strings.Join(got, ","), want)
			}
		}
	}
}

// TestMySQLCharset: every connection speaks utf8mb4 (SET NAMES), even
// when the server would set another character set for the session (here
// GBK, through init_connect, as skip-character-set-client-handshake or a
// server default could): escaping byte by byte is right for UTF-8 only.
// In GBK the bytes BF 5C of 俿\' are one character, the quote would end
// the string, and the rest of the key would be SQL.
func TestMySQLCharset(t *testing.T) {
	s := mariadbtest.Shared(t)
	s.Exec(t, "CREATE USER IF NOT EXISTS 'charset'@'localhost' IDENTIFIED BY 'pw'")
	s.Exec(t, "GRANT SELECT ON mysql.* TO 'charset'@'localhost'")
	old := s.Query(t, "SELECT @@GLOBAL.init_connect")[0][0]
	s.Exec(t, "SET GLOBAL init_connect = 'SET NAMES gbk'")
	t.Cleanup(func() {
		s.Exec(t, "SET GLOBAL init_connect = '"+old+"'")
		s.Exec(t, "DROP USER 'charset'@'localhost'")
	})
	cf := fmt.Sprintf("hosts = unix:%s\nuser = charset\npassword = pw\ndbname = mysql\nquery = SELECT CONCAT(@@character_set_connection, ' ', '%%s')\n", s.Socket())
	tb := openTable(t, parseCF(t, "/etc/postfix/charset.cf", cf), Options{})
	for _, k := range modeKeys {
		got, err := tb.Lookup(context.Background(), k)
		if err != nil {
			t.Errorf("Lookup(%q): %v", k, err)
			continue
		}
		if want := "utf8mb4 " + strings.ToLower(k); len(got) != 1 || got[0] != want {
			t.Errorf("Lookup(%q) = %q, want %q", k, got, want)
		}
	}
}

// TestMySQLEscape: the keys quote marks are escaped for the connection's
// mode; the rest of the query is left alone.
func TestMySQLEscape(t *testing.T) {
	q := mysqlDialect{}.quote
	tests := []struct {
		query      string
		nbe        bool
		want, fail string
	}{
		{"SELECT 1", false, "SELECT 1", ""},
		{`SELECT 'a\b', '` + q(`o'b\r"`) + `'`, false, `SELECT 'a\b', 'o\'b\\r\"'`, ""},
		{`SELECT 'a\b', '` + q(`o'b\r"`) + `'`, true, `SELECT 'a\b', 'o''b\r"'`, ""},
		{"'" + q("x\x00y") + "' = '" + q("") + "'", false, `'x\0y' = ''`, ""},
		{"'" + q("x\x00y") + "' = '" + q("") + "'", true, "'x\x00y' = ''", ""},
		{"SELECT '\x00'", false, "", "NUL byte"},
		{"SELECT '\x00zz\x00'", false, "", "NUL byte"},
	}
	for _, tt := range tests {
		got, err := (&mysqlConn{noBackslashEscapes: tt.nbe}).escape(tt.query)
		switch {
		case tt.fail != "" && (err == nil || !strings.Contains(err.Error(), tt.fail)):
			t.Errorf("escape(%q, nbe %v) = %q, %v; want an error with %q", tt.query, tt.nbe, got, err, tt.fail)
		case tt.fail == "" && (err != nil || got != tt.want):
			t.Errorf("escape(%q, nbe %v) = %q, %v; want %q", tt.query, tt.nbe, got, err, tt.want)
		}
	}
}
