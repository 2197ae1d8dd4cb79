package mariadbtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

var shared struct {
	once sync.Once
	s    *Server
	err  error
}

// Main runs the tests of a package that uses Shared, then stops the shared
// server and removes its files. Call it from TestMain:
//
//	func TestMain(m *testing.M) { mariadbtest.Main(m) }
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain with more to clean up: it returns the exit
// code instead of exiting.
func Run(m *testing.M) int {
	code := m.Run()
	CloseShared()
	return code
}

// CloseShared stops the shared server, if one was started, and removes
// its files: for a TestMain that uses several harnesses' shared servers
// and so cannot call each one's Run.
//
//	code := m.Run()
//	mariadbtest.CloseShared()
//	pgtest.CloseShared()
func CloseShared() {
	if shared.s != nil {
		shared.s.close()
	}
}

// Shared returns the test binary's one server, starting it on first use.
// Never Stop it: tests that stop a server use Start. Without Main the
// server is killed when the binary exits, but its files stay behind.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.once.Do(func() { shared.s, shared.err = start() })
	if errors.Is(shared.err, exec.ErrNotFound) {
		missing(t, "mariadbd", shared.err)
	}
	if shared.err != nil {
		t.Fatalf("mariadbtest: %v", shared.err)
	}
	return shared.s
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
