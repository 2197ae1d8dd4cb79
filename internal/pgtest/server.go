// Package pgtest starts throwaway PostgreSQL servers for tests: a fresh
// cluster (initdb) under os.TempDir, listening on a unix socket in that
// directory and on a free port of 127.0.0.1, never on other addresses.
//
// The superuser "postgres" logs in without a password over the socket only.
// Every other role needs its password, over the socket and over TCP alike
// (pg_hba method md5, which also runs SCRAM for roles whose password is
// stored as SCRAM), so tests can check what a wrong password does.
//
// A test binary should share one server (CI machines have two cores): call
// Main from TestMain and Shared from each test, and give every test its own
// database names (NewDatabase). Start gives a test a private server, for
// tests that stop and restart it; it comes back on the same port and socket
// directory.
//
// Run as root, the server runs as the "postgres" system user (or "nobody"),
// because PostgreSQL refuses to run as root. When initdb or postgres is
// missing, tests are skipped, except with CI=true, where they fail: CI must
// never pass by skipping.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

// Superuser is the role that owns the cluster. It needs no password over
// the unix socket and cannot log in over TCP.
const Superuser = "postgres"

// DefaultPort is the port libpq assumes when a client names only a socket
// directory (Postfix's "hosts = unix:/dir" does). SocketDir holds a
// .s.PGSQL.5432 link to the server's socket so such clients find it.
const DefaultPort = 5432

// readyTimeout bounds server startup and shutdown.
const readyTimeout = 20 * time.Second

// A Server is a running (or stopped) throwaway PostgreSQL.
type Server struct {
	dir  string // temporary directory: the socket directory, holding data/ and server.log
	data string
	log  string
	port int
	cred *syscall.Credential // the unprivileged user the server runs as; nil unless root
	bin  string              // directory of initdb and postgres

	mu        sync.Mutex
	cmd       *exec.Cmd
	done      chan struct{}     // closed when cmd has exited
	passwords map[string]string // role → password, from CreateUser, for LoadFile
}

// missing skips or fails t because a tool is not installed.
func missing(t testing.TB, what string, err error) {
	t.Helper()
	testtool.Missing(t, "pgtest: %s not available: %v", what, err)
}

// binDir returns the directory holding initdb and postgres: the newest
// /usr/lib/postgresql/N/bin (Debian keeps them out of $PATH), else the
// directory of initdb in $PATH.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(d string) int {
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		return n
	}
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	p, err := exec.LookPath("initdb")
	if err != nil {
		return "", err
	}
	d := filepath.Dir(p)
	if !isExec(filepath.Join(d, "postgres")) {
		return "", fmt.Errorf("postgres next to %s: %w", p, exec.ErrNotFound)
	}
	return d, nil
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Start creates and starts a private server, stopped and removed when t
// ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := start()
	if errors.Is(err, exec.ErrNotFound) {
		missing(t, "initdb/postgres", err)
	}
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(s.close)
	return s
}

// start creates a cluster in a new temporary directory and starts the
// server on a free port.
func start() (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir, err := tempDir(cred != nil)
	if err != nil {
		return nil, err
	}
	s := &Server{
		dir:       dir,
		data:      filepath.Join(dir, "data"),
		log:       filepath.Join(dir, "server.log"),
		cred:      cred,
		bin:       bin,
		passwords: map[string]string{},
	}
	if err := s.initdb(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// Another test binary may take the port between the probe and the
	// server's bind: try a few.
	for attempt := 1; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			break
		}
		if err = s.configure(); err != nil {
			break
		}
		err = s.run()
		if err == nil || !errors.Is(err, errPortInUse) || attempt == 5 {
			break
		}
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// serverCredential returns the user to run initdb and postgres as: nil
// (the current user) unless the test runs as root.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root, and neither a postgres nor a nobody user exists to run the server as")
}

// tempDir makes the server's directory. A unix socket path must fit in 108
// bytes, and as root the directory must be reachable by the server's user:
// fall back to /tmp when os.TempDir is long or closed to others.
func tempDir(asOther bool) (string, error) {
	base := os.TempDir()
	if len(base) > 60 || (asOther && !openToOthers(base)) {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "pg")
	if err != nil {
		return "", err
	}
	// Clients running as other users (postmap dropping privileges) must
	// reach the socket.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// openToOthers reports whether every directory from / to dir may be
// searched by any user.
func openToOthers(dir string) bool {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// command returns cmd for a server program, run as s.cred and killed
// when the test binary dies.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = append(cleanEnv(), "LC_ALL=C")
	// The server must not outlive the test binary, even when the binary
	// is killed before its cleanups run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: s.cred}
	return cmd
}

// cleanEnv is the environment without PG* variables, which would redirect
// libpq and the server.
func cleanEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PG") })
}

// chown gives path to the server's user when it is not the current one.
func (s *Server) chown(path string) error {
	if s.cred == nil {
		return nil
	}
	return os.Lchown(path, int(s.cred.Uid), int(s.cred.Gid))
}

// initdb creates the cluster.
func (s *Server) initdb() error {
	if err := s.chown(s.dir); err != nil {
		return err
	}
	cmd := s.command("initdb", "--pgdata="+s.data, "--username="+Superuser, "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v\n%s", err, out)
	}
	return nil
}

// hbaConf lets the superuser in over the socket without a password and
// asks everyone else for one; "md5" runs SCRAM for SCRAM-stored passwords.
const hbaConf = `# pgtest: superuser by trust over the socket only, passwords for the rest.
local all ` + Superuser + ` trust
local all all md5
host all ` + Superuser + ` 127.0.0.1/32 reject
host all all 127.0.0.1/32 md5
`

// configure writes the server's settings and access rules for s.port.
func (s *Server) configure() error {
	conf := strings.Join([]string{
		"listen_addresses = '127.0.0.1'",
		"port = " + strconv.Itoa(s.port),
		"unix_socket_directories = '" + strings.ReplaceAll(s.dir, "'", "''") + "'",
		"unix_socket_permissions = 0777",
		"max_connections = 100",
		"shared_buffers = 16MB",
		"fsync = off",
		"synchronous_commit = off",
		"full_page_writes = off",
		"jit = off",
		"password_encryption = 'scram-sha-256'",
		"timezone = 'UTC'",
		"lc_messages = 'C'",
		"log_line_prefix = '%m [%p] %q%u@%d '",
		"",
	}, "\n")
	files := map[string]string{
		"postgresql.auto.conf": "# Written by pgtest.\n" + conf,
		"pg_hba.conf":          hbaConf,
	}
	for name, content := range files {
		p := filepath.Join(s.data, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return err
		}
		if err := s.chown(p); err != nil {
			return err
		}
	}
	// Clients that know only the socket directory use the default port.
	link := filepath.Join(s.dir, ".s.PGSQL."+strconv.Itoa(DefaultPort))
	os.Remove(link)
	if s.port != DefaultPort {
		if err := os.Symlink(".s.PGSQL."+strconv.Itoa(s.port), link); err != nil {
			return err
		}
	}
	return nil
}

var errPortInUse = errors.New("port in use")

// run starts postgres on the cluster and waits until the superuser can
// connect.
func (s *Server) run() error {
	logf, err := os.OpenFile(s.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := s.command("postgres", "-D", s.data)
	cmd.Stdout, cmd.Stderr = logf, logf
	logStart, _ := logf.Seek(0, 2)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()

	cfg := s.ConnConfig("unix", Superuser, "", "postgres")
	cfg.ConnectTimeout = time.Second
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-done:
			tail := s.logTail(logStart)
			if strings.Contains(tail, "could not create any TCP/IP sockets") || strings.Contains(tail, "Address already in use") {
				return fmt.Errorf("postgres on port %d: %w\n%s", s.port, errPortInUse, tail)
			}
			return fmt.Errorf("postgres exited during startup: %s\n%s", cmd.ProcessState, tail)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.ConnectConfig(ctx, cfg)
		cancel()
		if err == nil {
			conn.Close(context.Background())
			break
		}
		if time.Now().After(deadline) {
			syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			<-done
			return fmt.Errorf("postgres not ready after %s: %v\n%s", readyTimeout, err, s.logTail(logStart))
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return nil
}

// logTail returns the server log from offset from, at most its last 4000
// bytes, for failure messages.
func (s *Server) logTail(from int64) string {
	b, _ := os.ReadFile(s.log)
	if from > 0 && from <= int64(len(b)) {
		b = b[from:]
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// SocketDir returns the directory of the server's unix socket, the "host"
// libpq and Postfix take for a socket. It holds .s.PGSQL.<Port> and a
// .s.PGSQL.5432 link to it, for clients that give no port.
func (s *Server) SocketDir() string { return s.dir }

// Port returns the server's TCP port on 127.0.0.1, which is also the number
// in its socket's name.
func (s *Server) Port() int { return s.port }

// Addr returns the server's TCP address, "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// ConnConfig returns the settings to connect to database db as user, over
// the unix socket (network "unix") or TCP ("tcp"), without TLS. PG*
// environment variables play no part.
func (s *Server) ConnConfig(network, user, password, db string) *pgx.ConnConfig {
	cfg, err := pgx.ParseConfig("sslmode=disable")
	if err != nil {
		panic("pgtest: " + err.Error()) // only PG* variables (PGSERVICE) can break a constant string
	}
	cfg.Host = "127.0.0.1"
	if network == "unix" {
		cfg.Host = s.dir
	}
	cfg.Port = uint16(s.port)
	cfg.User, cfg.Password, cfg.Database = user, password, db
	cfg.TLSConfig, cfg.Fallbacks = nil, nil
	cfg.ConnectTimeout = 5 * time.Second
	cfg.RuntimeParams = map[string]string{}
	return cfg
}

// Connect connects to database db as user over network ("unix" or "tcp")
// and closes the connection when t ends. It returns the error rather than
// failing t, for tests of refused logins: a wrong password gives a
// *pgconn.PgError with Code "28P01".
func (s *Server) Connect(t testing.TB, network, user, password, db string) (*pgx.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, s.ConnConfig(network, user, password, db))
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, nil
}

// Stop stops the server (fast shutdown: sessions are ended, then SIGKILL
// after readyTimeout) and waits until it has exited. Its cluster stays for
// Restart.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

func (s *Server) stop() error {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	return testtool.StopProcess("postgres", cmd, done, syscall.SIGINT, readyTimeout) // SIGINT: fast shutdown
}

// Restart starts the server again on the same cluster, port and socket
// directory, stopping it first if it runs.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Fatalf("pgtest: restart: %v", err)
	}
	if err := s.run(); err != nil {
		t.Fatalf("pgtest: restart: %v", err)
	}
}

// running reports whether the server has been started and not stopped.
func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// close stops the server and removes its directory.
func (s *Server) close() {
	s.stop()
	os.RemoveAll(s.dir)
}
