// Package mariadbtest starts throwaway MariaDB servers for tests: a fresh
// data directory under os.TempDir, a unix socket, no TCP, and root without a
// password over that socket.
//
// A test binary should share one server (CI machines have two cores): call
// Main from TestMain and Shared from each test, and give every test its own
// database names (NewDatabase). Start gives a test a private server, for tests
// that stop it.
//
// When mariadbd or mariadb-install-db is missing, tests are skipped, except
// with CI=true, where they fail: CI must never pass by skipping.
package mariadbtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

// readyTimeout bounds server startup and shutdown.
const readyTimeout = 20 * time.Second

// A Server is a running (or stopped) throwaway MariaDB.
type Server struct {
	dir    string // temporary directory holding everything below
	data   string
	socket string
	pid    string
	log    string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	root *sql.DB       // root over the socket, nil while stopped
}

// missing skips or fails t because a tool is not installed.
func missing(t testing.TB, what string, err error) {
	t.Helper()
	testtool.Missing(t, "mariadbtest: %s not available: %v", what, err)
}

// tools returns the paths of mariadb-install-db and mariadbd.
func tools() (install, server string, err error) {
	install, err = lookPath("mariadb-install-db", "mysql_install_db")
	if err != nil {
		return "", "", err
	}
	server, err = lookPath("mariadbd", "mysqld")
	return install, server, err
}

// lookPath finds the first of names in $PATH or in /usr/sbin, /usr/bin
// (test environments often lack sbin in $PATH).
func lookPath(names ...string) (string, error) {
	var firstErr error
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err == nil {
			return p, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"} {
			p := filepath.Join(dir, n)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	return "", firstErr
}

// Start installs and starts a private server, stopped and removed when t
// ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := start()
	if errors.Is(err, exec.ErrNotFound) {
		missing(t, "mariadbd", err)
	}
	if err != nil {
		t.Fatalf("mariadbtest: %v", err)
	}
	t.Cleanup(s.close)
	return s
}

// start installs a data directory and starts the server on it.
func start() (*Server, error) {
	install, _, err := tools()
	if err != nil {
		return nil, err
	}
	dir, err := testtool.SocketDir("mdb")
	if err != nil {
		return nil, err
	}
	s := &Server{
		dir:    dir,
		data:   filepath.Join(dir, "data"),
		socket: filepath.Join(dir, "sock"),
		pid:    filepath.Join(dir, "pid"),
		log:    filepath.Join(dir, "error.log"),
	}
	// A private tmpdir: temporary tables of servers (and test binaries)
	// running side by side must not meet in /tmp.
	if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	args := []string{
		"--no-defaults",
		"--auth-root-authentication-method=normal",
		"--datadir=" + s.data,
		"--tmpdir=" + filepath.Join(dir, "tmp"),
		"--skip-test-db",
		"--skip-name-resolve",
		"--innodb-buffer-pool-size=16M",
		"--skip-log-bin",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root") // mariadbd refuses to run as root otherwise
	}
	cmd := exec.Command(install, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%s: %v\n%s", install, err, out)
	}
	if err := s.run(); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// run starts mariadbd on the installed data directory and waits until root
// can connect.
func (s *Server) run() error {
	_, server, err := tools()
	if err != nil {
		return err
	}
	args := []string{
		"--no-defaults",
		"--datadir=" + s.data,
		"--tmpdir=" + filepath.Join(s.dir, "tmp"),
		"--socket=" + s.socket,
		"--pid-file=" + s.pid,
		"--log-error=" + s.log,
		"--skip-networking",
		"--skip-name-resolve",
		"--innodb-buffer-pool-size=16M",
		"--innodb-log-file-size=8M",
		"--skip-log-bin",
		"--max-connections=200",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	cmd := exec.Command(server, args...)
	cmd.Dir = s.dir
	// The server must not outlive the test binary, even when the binary
	// is killed before its cleanups run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", server, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()

	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "unix"
	cfg.Addr = s.socket
	cfg.MultiStatements = true
	cfg.Timeout = 2 * time.Second
	cfg.Logger = nopLogger{}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)

	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-done:
			db.Close()
			return fmt.Errorf("mariadbd exited during startup: %s\n%s", cmd.ProcessState, s.logTail())
		default:
		}
		if _, err := os.Stat(s.socket); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err = db.PingContext(ctx)
			cancel()
			if err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			<-done
			db.Close()
			return fmt.Errorf("mariadbd not ready after %s\n%s", readyTimeout, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.mu.Lock()
	s.cmd, s.done, s.root = cmd, done, db
	s.mu.Unlock()
	return nil
}

type nopLogger struct{}

func (nopLogger) Print(...any) {}

// logTail returns the end of the server's error log, for failure messages.
func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Socket returns the path of the server's unix socket.
func (s *Server) Socket() string { return s.socket }

// Stop stops the server (SIGTERM, then SIGKILL after readyTimeout) and
// waits until it has exited. Its data directory stays for Restart.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Fatalf("mariadbtest: %v", err)
	}
}

func (s *Server) stop() error {
	s.mu.Lock()
	cmd, done, db := s.cmd, s.done, s.root
	s.cmd, s.done, s.root = nil, nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if db != nil {
		db.Close()
	}
	return testtool.StopProcess("mariadbd", cmd, done, syscall.SIGTERM, readyTimeout)
}

// Restart starts the stopped server again on the same data directory and
// socket.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	running := s.cmd != nil
	s.mu.Unlock()
	if running {
		s.Stop(t)
	}
	if err := s.run(); err != nil {
		t.Fatalf("mariadbtest: restart: %v", err)
	}
}

// close stops the server and removes its directory.
func (s *Server) close() {
	s.stop()
	os.RemoveAll(s.dir)
}

// rootDB returns the root connection pool, failing t while stopped.
func (s *Server) rootDB(t testing.TB) *sql.DB {
	t.Helper()
	s.mu.Lock()
	db := s.root
	s.mu.Unlock()
	if db == nil {
		t.Fatalf("mariadbtest: server is stopped")
	}
	return db
}

// Exec runs sql as root; it may hold several statements separated by ";"
// (but no DELIMITER commands: use LoadFile for dump files).
func (s *Server) Exec(t testing.TB, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if _, err := s.rootDB(t).ExecContext(ctx, sql); err != nil {
		t.Fatalf("mariadbtest: exec %q: %v", abbrev(sql), err)
	}
}

// LoadFile runs the SQL file at path as root through the mariadb client, as
// "mariadb < path" would, so dumps with client commands and comments load.
func (s *Server) LoadFile(t testing.TB, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("mariadbtest: %v", err)
	}
	defer f.Close()
	s.load(t, path, f)
}

// LoadSQL runs sql as root through the mariadb client (see LoadFile).
func (s *Server) LoadSQL(t testing.TB, sql string) {
	t.Helper()
	s.load(t, abbrev(sql), strings.NewReader(sql))
}

func (s *Server) load(t testing.TB, name string, r interface{ Read([]byte) (int, error) }) {
	t.Helper()
	client, err := lookPath("mariadb", "mysql")
	if err != nil {
		missing(t, "mariadb client", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, client, "--no-defaults", "--socket="+s.socket, "--user=root", "--batch")
	cmd.Stdin = r
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("mariadbtest: load %s: %v\n%s", name, err, out.String())
	}
}

// Query runs a query as root and returns its rows as strings ("NULL" for
// NULL).
func (s *Server) Query(t testing.TB, query string) [][]string {
	t.Helper()
	rows, err := QueryDB(s.rootDB(t), query)
	if err != nil {
		t.Fatalf("mariadbtest: query %q: %v", abbrev(query), err)
	}
	return rows
}

// QueryDB runs a query on db and returns its rows as strings ("NULL" for
// NULL).
func QueryDB(db *sql.DB, query string) ([][]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = "NULL"
			if v.Valid {
				row[i] = v.String
			}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// DB opens a connection pool to the server as user, closed when t ends.
func (s *Server) DB(t testing.TB, user, password, dbname string) *sql.DB {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = user, password, dbname
	cfg.Net, cfg.Addr = "unix", s.socket
	cfg.Timeout = 2 * time.Second
	cfg.Logger = nopLogger{}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatalf("mariadbtest: %v", err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { db.Close() })
	return db
}

func abbrev(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}
