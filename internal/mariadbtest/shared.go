package mariadbtest

import (
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

// shared holds the test binary's one server.
var shared testtool.Servers[*Server]

// Main runs the tests of a package that uses Shared, then stops the shared
// server: func TestMain(m *testing.M) { mariadbtest.Main(m) }. A package that
// uses several harnesses calls testtool.Main with each one's CloseShared.
func Main(m *testing.M) { testtool.Main(m, CloseShared) }

// CloseShared stops the shared server, if started, and removes its files.
func CloseShared() { shared.Close((*Server).close) }

// Shared returns the test binary's one server, starting it on first use.
// Never Stop it: tests that stop a server use Start. Without Main the
// server is killed when the binary exits, but its files stay behind.
func Shared(t testing.TB) *Server {
	t.Helper()
	s, err := shared.Get("", start)
	if errors.Is(err, exec.ErrNotFound) {
		missing(t, "mariadbd", err)
	}
	if err != nil {
		t.Fatalf("mariadbtest: %v", err)
	}
	return s
}

var dbSeq atomic.Int64

var unsafeName = regexp.MustCompile(`[^a-z0-9_]+`)

// NewDatabase creates an empty database with a name unique in the test
// binary, derived from t's name, and drops it when t ends.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := unsafeName.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	name = fmt.Sprintf("t%d_%s", dbSeq.Add(1), name)
	s.Exec(t, "CREATE DATABASE "+QuoteIdent(name))
	t.Cleanup(func() {
		s.mu.Lock()
		db := s.root
		s.mu.Unlock()
		if db != nil {
			db.Exec("DROP DATABASE IF EXISTS " + QuoteIdent(name))
		}
	})
	return name
}

// GrantUser creates user@localhost (or resets its password) and grants it
// SELECT on every table of db, as a Postfix lookup user has.
func (s *Server) GrantUser(t testing.TB, user, password, db string) {
	t.Helper()
	acct := QuoteString(user) + "@'localhost'"
	s.Exec(t, "CREATE USER IF NOT EXISTS "+acct+" IDENTIFIED BY "+QuoteString(password)+";"+
		"ALTER USER "+acct+" IDENTIFIED BY "+QuoteString(password)+";"+
		"GRANT SELECT ON "+QuoteIdent(db)+".* TO "+acct)
}

// Reset drops every database and user the tests created, so that a dump
// that creates fixed names (CREATE USER 'vmail'@'localhost') can be loaded
// again. Only for tests that do not run in parallel with others using the
// same server.
func (s *Server) Reset(t testing.TB) {
	t.Helper()
	var stmts []string
	for _, r := range s.Query(t, "SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT IN ('mysql','information_schema','performance_schema','sys')") {
		stmts = append(stmts, "DROP DATABASE "+QuoteIdent(r[0]))
	}
	for _, r := range s.Query(t, "SELECT user, host FROM mysql.global_priv WHERE user NOT IN ('root','mariadb.sys','mysql','PUBLIC','')") {
		stmts = append(stmts, "DROP USER "+QuoteString(r[0])+"@"+QuoteString(r[1]))
	}
	if len(stmts) > 0 {
		s.Exec(t, strings.Join(stmts, ";"))
	}
}

// QuoteIdent quotes a MySQL identifier with backquotes.
func QuoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// QuoteString quotes a MySQL string literal.
func QuoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`).Replace(s) + "'"
}
