package pgtest

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

// shared holds the test binary's one server.
var shared testtool.Servers[*Server]

// Main runs the tests of a package that uses Shared, then stops the shared
// server: func TestMain(m *testing.M) { pgtest.Main(m) }. A package that
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
		missing(t, "initdb/postgres", err)
	}
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return s
}

// superConn connects as the superuser to db over the socket.
func (s *Server) superConn(ctx context.Context, db string) (*pgx.Conn, error) {
	if !s.running() {
		return nil, errors.New("server is stopped")
	}
	return pgx.ConnectConfig(ctx, s.ConnConfig("unix", Superuser, "", db))
}

// exec runs sql as the superuser in db.
func (s *Server) exec(db, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	conn, err := s.superConn(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	// No arguments: the simple protocol, which runs several statements.
	_, err = conn.Exec(ctx, sql)
	return err
}

// Exec runs sql as the superuser in database "postgres". It may hold
// several statements separated by ";"; they run as one transaction, so
// CREATE DATABASE and DROP DATABASE must come alone.
func (s *Server) Exec(t testing.TB, sql string) {
	t.Helper()
	s.ExecDB(t, "postgres", sql)
}

// ExecDB is Exec in database db.
func (s *Server) ExecDB(t testing.TB, db, sql string) {
	t.Helper()
	if err := s.exec(db, sql); err != nil {
		t.Fatalf("pgtest: exec %q in %s: %v", abbrev(sql), db, err)
	}
}

// Query runs a query as the superuser in database "postgres" and returns
// its rows as PostgreSQL's text forms ("NULL" for NULL).
func (s *Server) Query(t testing.TB, sql string) [][]string {
	t.Helper()
	return s.QueryDB(t, "postgres", sql)
}

// QueryDB is Query in database db.
func (s *Server) QueryDB(t testing.TB, db, sql string) [][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	conn, err := s.superConn(ctx, db)
	if err != nil {
		t.Fatalf("pgtest: query %q in %s: %v", abbrev(sql), db, err)
	}
	defer conn.Close(context.Background())
	rows, err := QueryConn(ctx, conn, sql)
	if err != nil {
		t.Fatalf("pgtest: query %q in %s: %v", abbrev(sql), db, err)
	}
	return rows
}

// QueryConn runs a query on conn with the simple protocol, as libpq's
// PQexec does, and returns its rows as text ("NULL" for NULL).
func QueryConn(ctx context.Context, conn *pgx.Conn, sql string) ([][]string, error) {
	rows, err := conn.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		raw := rows.RawValues()
		row := make([]string, len(raw))
		for i, v := range raw {
			row[i] = "NULL"
			if v != nil {
				row[i] = string(v)
			}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

var dbSeq atomic.Int64

var unsafeName = regexp.MustCompile(`[^a-z0-9_]+`)

// NewDatabase creates an empty database (from template0) with a name
// unique in the test binary, derived from t's name, and drops it when t
// ends.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := unsafeName.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	name = fmt.Sprintf("t%d_%s", dbSeq.Add(1), name)
	s.Exec(t, "CREATE DATABASE "+QuoteIdent(name)+" TEMPLATE template0")
	t.Cleanup(func() {
		if s.running() {
			s.exec("postgres", "DROP DATABASE IF EXISTS "+QuoteIdent(name)+" WITH (FORCE)")
		}
	})
	return name
}

// CreateUser creates a login role with password (or resets the password
// of an existing one), stored as SCRAM-SHA-256.
func (s *Server) CreateUser(t testing.TB, user, password string) {
	t.Helper()
	s.createUser(t, user, password, QuoteLiteral(password))
}

// CreateUserMD5 is CreateUser with the password stored as an MD5 hash, as
// clusters made before PostgreSQL 14 keep them. Clients log in the same
// way; the server runs the md5 exchange instead of SCRAM.
func (s *Server) CreateUserMD5(t testing.TB, user, password string) {
	t.Helper()
	sum := md5.Sum([]byte(password + user))
	s.createUser(t, user, password, QuoteLiteral("md5"+hex.EncodeToString(sum[:])))
}

func (s *Server) createUser(t testing.TB, user, password, stored string) {
	t.Helper()
	role := QuoteIdent(user)
	s.Exec(t, "DO $pgtest$ BEGIN"+
		" IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "+QuoteLiteral(user)+") THEN CREATE ROLE "+role+" LOGIN; END IF;"+
		" END $pgtest$; ALTER ROLE "+role+" LOGIN PASSWORD "+stored)
	s.mu.Lock()
	s.passwords[user] = password
	s.mu.Unlock()
}

// GrantRead lets user connect to db and read every table now in its
// schema public, as a Postfix lookup user can.
func (s *Server) GrantRead(t testing.TB, user, db string) {
	t.Helper()
	s.Exec(t, "GRANT CONNECT ON DATABASE "+QuoteIdent(db)+" TO "+QuoteIdent(user))
	s.ExecDB(t, db, "GRANT USAGE ON SCHEMA public TO "+QuoteIdent(user)+";"+
		"GRANT SELECT ON ALL TABLES IN SCHEMA public TO "+QuoteIdent(user))
}

// Reset drops every database and role the tests created, so that a dump
// that creates fixed names (CREATE DATABASE vmail, CREATE USER vmail) can
// be loaded again. Only for tests that do not run in parallel with others
// using the same server.
func (s *Server) Reset(t testing.TB) {
	t.Helper()
	for _, r := range s.Query(t, "SELECT datname FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1')") {
		s.Exec(t, "DROP DATABASE "+QuoteIdent(r[0])+" WITH (FORCE)")
	}
	// Roles made by initdb have OIDs below FirstNormalObjectId (16384).
	var roles []string
	for _, r := range s.Query(t, "SELECT rolname FROM pg_roles WHERE oid >= 16384 ORDER BY 1") {
		roles = append(roles, QuoteIdent(r[0]))
	}
	if len(roles) > 0 {
		list := strings.Join(roles, ", ")
		// What they own or were granted in the databases that stay.
		for _, db := range []string{"postgres", "template1"} {
			s.ExecDB(t, db, "DROP OWNED BY "+list)
		}
		s.Exec(t, "DROP ROLE "+list)
	}
	s.mu.Lock()
	clear(s.passwords)
	s.mu.Unlock()
}

// QuoteIdent quotes a PostgreSQL identifier with double quotes.
func QuoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// QuoteLiteral quotes a PostgreSQL string literal (standard_conforming_strings
// on: a backslash is an ordinary character).
func QuoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func abbrev(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}
