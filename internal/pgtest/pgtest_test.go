package pgtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestMain(m *testing.M) { Main(m) }

// queryAs connects as user and returns the rows of sql, or the error.
func queryAs(t *testing.T, s *Server, network, user, password, db, sql string) ([][]string, error) {
	t.Helper()
	conn, err := s.Connect(t, network, user, password, db)
	if err != nil {
		return nil, err
	}
	return QueryConn(context.Background(), conn, sql)
}

// wantCode fails t unless err is a server error with SQLSTATE code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != code {
		t.Errorf("%s: error = %v, want SQLSTATE %s", what, err, code)
	}
}

func TestSharedDatabaseAndUsers(t *testing.T) {
	s := Shared(t)
	if Shared(t) != s {
		t.Errorf("Shared returned a second server")
	}
	db := s.NewDatabase(t)
	s.ExecDB(t, db, "CREATE TABLE d (name varchar(64)); INSERT INTO d VALUES ('example.com'), (NULL)")
	tests := []struct {
		name   string
		create func(testing.TB, string, string)
		user   string
		stored string // prefix of pg_authid.rolpassword
	}{
		{"scram", s.CreateUser, "lookup", "SCRAM-SHA-256$"},
		{"md5", s.CreateUserMD5, "old'lookup", "md5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const password = `se'cr"et:\x`
			tt.create(t, tt.user, password)
			tt.create(t, tt.user, password) // again: resets, does not fail
			s.GrantRead(t, tt.user, db)
			got := s.Query(t, "SELECT left(rolpassword, "+strconv.Itoa(len(tt.stored))+") FROM pg_authid WHERE rolname = "+QuoteLiteral(tt.user))
			if len(got) != 1 || got[0][0] != tt.stored {
				t.Errorf("stored password of %q begins %q, want %q", tt.user, got, tt.stored)
			}
			for _, network := range []string{"unix", "tcp"} {
				rows, err := queryAs(t, s, network, tt.user, password, db, "SELECT name FROM d ORDER BY 1")
				if err != nil {
					t.Errorf("%s: %v", network, err)
				} else if len(rows) != 2 || rows[0][0] != "example.com" || rows[1][0] != "NULL" {
					t.Errorf("%s: rows = %q, want [[example.com] [NULL]]", network, rows)
				}
				_, err = queryAs(t, s, network, tt.user, "wrong", db, "SELECT 1")
				wantCode(t, network+" with a wrong password", err, "28P01")
				_, err = queryAs(t, s, network, tt.user, "", db, "SELECT 1")
				if err == nil {
					t.Errorf("%s without a password: connected", network)
				}
				_, err = queryAs(t, s, network, tt.user, password, "postgres", "CREATE TABLE x (i int)")
				wantCode(t, network+" CREATE in postgres", err, "42501") // no CREATE on public since PostgreSQL 15
			}
		})
	}
	// The superuser: no password over the socket, never over TCP.
	if _, err := queryAs(t, s, "unix", Superuser, "", db, "SELECT 1"); err != nil {
		t.Errorf("superuser over the socket: %v", err)
	}
	_, err := queryAs(t, s, "tcp", Superuser, "", db, "SELECT 1")
	wantCode(t, "superuser over TCP", err, "28000")
}

func TestSocketLinks(t *testing.T) {
	s := Shared(t)
	for _, port := range []int{s.Port(), DefaultPort} {
		p := filepath.Join(s.SocketDir(), ".s.PGSQL."+strconv.Itoa(port))
		if fi, err := os.Stat(p); err != nil || fi.Mode()&os.ModeSocket == 0 {
			t.Errorf("stat %s: %v, want a socket", p, err)
		}
	}
	if want := "127.0.0.1:" + strconv.Itoa(s.Port()); s.Addr() != want {
		t.Errorf("Addr() = %q, want %q", s.Addr(), want)
	}
	got := s.Query(t, "SHOW listen_addresses")
	if got[0][0] != "127.0.0.1" {
		t.Errorf("listen_addresses = %q, want 127.0.0.1", got)
	}
}

func TestLoadSQLAndReset(t *testing.T) {
	s := Shared(t)
	s.CreateUser(t, "known", "k")
	// A dump that creates fixed names and reconnects as the roles it made.
	s.LoadSQL(t, "template1", `
CREATE USER fixed WITH ENCRYPTED PASSWORD 'x:y\z';
CREATE ROLE "Quoted" LOGIN PASSWORD 'it''s';
CREATE DATABASE resetme OWNER fixed;
\c resetme fixed
CREATE TABLE owned (i int);
\c resetme "Quoted"
SELECT 1;
\c resetme known
\c resetme postgres
GRANT SELECT ON owned TO known;
`)
	if got := s.QueryDB(t, "resetme", "SELECT tableowner FROM pg_tables WHERE tablename = 'owned'"); len(got) != 1 || got[0][0] != "fixed" {
		t.Errorf("owner of owned = %q, want fixed", got)
	}
	s.Reset(t)
	if got := s.Query(t, "SELECT count(*) FROM pg_database WHERE datname = 'resetme'"); got[0][0] != "0" {
		t.Errorf("resetme still exists after Reset")
	}
	if got := s.Query(t, "SELECT count(*) FROM pg_roles WHERE oid >= 16384"); got[0][0] != "0" {
		t.Errorf("%s roles still exist after Reset", got[0][0])
	}
}

func TestLoadError(t *testing.T) {
	s := Shared(t)
	db := s.NewDatabase(t)
	ft := &fakeT{TB: t}
	func() {
		defer func() { recover() }()
		s.LoadSQL(ft, db, "CREATE TABLE a (i int);\nSELECT nosuchcolumn FROM a;\nCREATE TABLE b (i int);\n")
	}()
	if !ft.failed {
		t.Fatalf("LoadSQL of a failing statement did not fail the test")
	}
	// ON_ERROR_STOP: nothing after the error ran.
	if got := s.QueryDB(t, db, "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'"); got[0][0] != "a" {
		t.Errorf("tables after a failed load = %q, want a", got)
	}
}

// fakeT records a Fatalf instead of ending the test, and stops the caller
// with a panic as FailNow would with Goexit.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Fatalf(string, ...any) { f.failed = true; panic("fatal") }

func TestStopRestart(t *testing.T) {
	begin := time.Now()
	s := Start(t)
	took := time.Since(begin)
	t.Logf("private server (initdb + start) ready in %s", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("server start took %s, want under 5s", took)
	}
	if s == Shared(t) {
		t.Fatalf("Start returned the shared server")
	}
	s.Exec(t, "CREATE DATABASE keep")
	s.CreateUser(t, "u", "p")
	port, dir := s.Port(), s.SocketDir()
	s.Stop(t)
	s.Stop(t) // twice is fine
	for _, network := range []string{"unix", "tcp"} {
		if _, err := queryAs(t, s, network, "u", "p", "keep", "SELECT 1"); err == nil {
			t.Errorf("%s: query on a stopped server succeeded", network)
		}
	}
	begin = time.Now()
	s.Restart(t)
	t.Logf("restart took %s", time.Since(begin).Round(time.Millisecond))
	if s.Port() != port || s.SocketDir() != dir {
		t.Errorf("after Restart: %s port %d, want %s port %d", s.SocketDir(), s.Port(), dir, port)
	}
	for _, network := range []string{"unix", "tcp"} {
		if _, err := queryAs(t, s, network, "u", "p", "keep", "SELECT 1"); err != nil {
			t.Errorf("%s after Restart: %v", network, err)
		}
	}
	s.Restart(t) // while running: stops first
	if got := s.Query(t, "SELECT count(*) FROM pg_database WHERE datname = 'keep'"); got[0][0] != "1" {
		t.Errorf("database keep lost across Restart")
	}
}
