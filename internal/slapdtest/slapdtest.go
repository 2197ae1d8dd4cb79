// Package slapdtest starts throwaway OpenLDAP servers (slapd 2.5) for tests:
// a fresh temporary directory holding a slapd.conf, an mdb database loaded
// with LDIF through slapadd, and listeners on a free loopback TCP port and a
// unix socket (ldapi://) in that directory. Nothing else on the machine is
// touched.
//
// The configuration is a slapd.conf template in the form of the corpus
// sets' ldap/slapd-test.conf.in: @SCHEMA@ stands for /etc/ldap/schema,
// @SET@ for the corpus set directory and @RUN@ for the temporary directory
// (its data/ subdirectory holds the database). Corpus builds the Config
// that starts exactly a set's server.
//
// A test binary should share servers (CI machines have two cores): call
// Main from TestMain and Shared from each test. Start gives a test a
// private server, for tests that Stop and Start it again: a restarted
// server listens on the same address and keeps its data.
//
// When slapd, slapadd or the schema files are missing, tests are skipped,
// except with CI=true, where they fail: CI must never pass by skipping.
package slapdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

// readyTimeout bounds server startup and shutdown.
const readyTimeout = 20 * time.Second

// SchemaDir is where Debian's slapd package keeps its schema files.
const SchemaDir = "/etc/ldap/schema"

// Config says which server to start.
type Config struct {
	// Template is the path of a slapd.conf template; "" means the
	// built-in one (DefaultTemplate).
	Template string
	// Set replaces @SET@ in the template.
	Set string
	// LDIF files are loaded, in order, with slapadd before the first start.
	LDIF []string
	// Extra lines are appended to the global part of the configuration,
	// before the first "database" line (limits, ACLs).
	Extra string
	// Debug is slapd's -d level ("0" when empty); "stats" logs every
	// operation, with the filter of each search, to Log.
	Debug string
	// TLSCertFile and TLSKeyFile, when set, give the server a certificate:
	// it then offers STARTTLS and listens on ldaps:// too (LDAPS).
	TLSCertFile, TLSKeyFile string
}

func (c Config) key() string {
	return strings.Join(append([]string{c.Template, c.Set, c.Extra, c.Debug, c.TLSCertFile, c.TLSKeyFile}, c.LDIF...), "\x00")
}

// DefaultTemplate is the configuration used when Config.Template is empty:
// the standard schemas, one mdb database for dc=example,dc=com whose root
// is cn=Manager,dc=example,dc=com with password secret-root, no ACLs
// (everyone may read), LDAPv2 binds refused as slapd does by default.
const DefaultTemplate = `include     @SCHEMA@/core.schema
include     @SCHEMA@/cosine.schema
include     @SCHEMA@/inetorgperson.schema
include     @SCHEMA@/nis.schema
pidfile     @RUN@/slapd.pid
argsfile    @RUN@/slapd.args
modulepath  /usr/lib/ldap
moduleload  back_mdb
database    mdb
suffix      dc=example,dc=com
directory   @RUN@/data
rootdn      cn=Manager,dc=example,dc=com
rootpw      secret-root
`

// Corpus returns the Config of a corpus set's throwaway server: the set's
// ldap/slapd-test.conf.in loaded with ldap/ldap-seed.ldif.
func Corpus(setDir string) Config {
	abs, err := filepath.Abs(setDir)
	if err != nil {
		abs = setDir
	}
	return Config{
		Template: filepath.Join(abs, "ldap", "slapd-test.conf.in"),
		Set:      abs,
		LDIF:     []string{filepath.Join(abs, "ldap", "ldap-seed.ldif")},
	}
}

// A Server is a running (or stopped) throwaway slapd.
type Server struct {
	dir     string // temporary directory: slapd.conf, data/, ldapi, slapd.log
	conf    string
	log     string
	socket  string
	addr    string // 127.0.0.1:port
	tlsAddr string // 127.0.0.1:port of ldaps://, "" without TLS
	rootDN  string
	rootPW  string
	debug   string // slapd -d level

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// tools returns the paths of slapd and slapadd, or an error wrapping
// exec.ErrNotFound.
func tools() (slapd, slapadd string, err error) {
	if slapd, err = lookPath("slapd"); err != nil {
		return "", "", err
	}
	if slapadd, err = lookPath("slapadd"); err != nil {
		return "", "", err
	}
	if _, err := os.Stat(filepath.Join(SchemaDir, "core.schema")); err != nil {
		return "", "", fmt.Errorf("schema files: %w (%w)", err, exec.ErrNotFound)
	}
	return slapd, slapadd, nil
}

// lookPath finds name in $PATH or in the sbin directories test
// environments often leave out of it.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}

func fail(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, exec.ErrNotFound) {
		testtool.Missing(t, "slapdtest: slapd not available: %v", err)
	}
	t.Fatalf("slapdtest: %v", err)
}

// Start starts a private server, stopped and removed when t ends.
func Start(t testing.TB, c Config) *Server {
	t.Helper()
	s, err := start(c)
	if err != nil {
		fail(t, err)
	}
	t.Cleanup(s.close)
	return s
}

func start(c Config) (*Server, error) {
	_, slapadd, err := tools()
	if err != nil {
		return nil, err
	}
	tmpl := DefaultTemplate
	if c.Template != "" {
		b, err := os.ReadFile(c.Template)
		if err != nil {
			return nil, err
		}
		tmpl = string(b)
	}
	dir, err := testtool.SocketDir("slapd")
	if err != nil {
		return nil, err
	}
	s := &Server{
		dir:    dir,
		conf:   filepath.Join(dir, "slapd.conf"),
		log:    filepath.Join(dir, "slapd.log"),
		socket: filepath.Join(dir, "ldapi"),
		debug:  c.Debug,
	}
	if s.debug == "" {
		s.debug = "0"
	}
	text := strings.NewReplacer("@SCHEMA@", SchemaDir, "@SET@", c.Set, "@RUN@", dir).Replace(tmpl)
	extra := c.Extra
	if c.TLSCertFile != "" {
		extra += "\nTLSCertificateFile " + c.TLSCertFile + "\nTLSCertificateKeyFile " + c.TLSKeyFile + "\n"
	}
	if extra != "" {
		i := strings.Index(text, "\ndatabase")
		if i < 0 {
			i = len(text)
		}
		text = text[:i] + "\n" + strings.TrimSpace(extra) + "\n" + text[i:]
	}
	s.rootDN, s.rootPW = confValue(text, "rootdn"), confValue(text, "rootpw")
	if err := os.WriteFile(s.conf, []byte(text), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	for _, l := range c.LDIF {
		out, err := exec.Command(slapadd, "-q", "-f", s.conf, "-l", l).CombinedOutput()
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("slapadd -l %s: %v\n%s", l, err, out)
		}
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.addr = net.JoinHostPort("127.0.0.1", port)
	if c.TLSCertFile != "" {
		if port, err = freePort(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		s.tlsAddr = net.JoinHostPort("127.0.0.1", port)
	}
	if err := s.run(); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// confValue returns the value of the first "key value" line of a
// slapd.conf text.
func confValue(text, key string) string {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && strings.EqualFold(f[0], key) {
			return strings.Join(f[1:], " ")
		}
	}
	return ""
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

// run starts slapd on the prepared directory and waits until it accepts
// connections on both listeners.
func (s *Server) run() error {
	slapd, _, err := tools()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	// -d keeps slapd in the foreground; level 0 logs only problems.
	listen := s.URL() + " " + s.LDAPI()
	if s.tlsAddr != "" {
		listen += " " + s.LDAPS()
	}
	cmd := exec.Command(slapd, "-f", s.conf, "-h", listen, "-d", s.debug)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// The server must not outlive the test binary, even when the binary
	// is killed before its cleanups run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", slapd, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("slapd exited during startup: %s\n%s", cmd.ProcessState, s.logTail())
		default:
		}
		if reachable("tcp", s.addr) && reachable("unix", s.socket) && (s.tlsAddr == "" || reachable("tcp", s.tlsAddr)) {
			break
		}
		if time.Now().After(deadline) {
			syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			<-done
			return fmt.Errorf("slapd not ready after %s\n%s", readyTimeout, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return nil
}

func reachable(network, addr string) bool {
	c, err := net.DialTimeout(network, addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// logTail returns the end of the server's log, for failure messages.
func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Log returns what slapd logged so far (see Config.Debug).
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// URL returns the server's TCP listener, "ldap://127.0.0.1:PORT/".
func (s *Server) URL() string { return "ldap://" + s.addr + "/" }

// LDAPS returns the TLS listener, "ldaps://127.0.0.1:PORT/", or "" when
// the Config has no certificate.
func (s *Server) LDAPS() string {
	if s.tlsAddr == "" {
		return ""
	}
	return "ldaps://" + s.tlsAddr + "/"
}

// Addr returns the TCP listener's "127.0.0.1:PORT".
func (s *Server) Addr() string { return s.addr }

// LDAPI returns the unix socket listener as an ldapi:// URL (the socket
// path percent-encoded in the host part, as libldap wants it).
func (s *Server) LDAPI() string {
	return "ldapi://" + strings.ReplaceAll(url.PathEscape(s.socket), "/", "%2F") + "/"
}

// Socket returns the path of the ldapi unix socket.
func (s *Server) Socket() string { return s.socket }

// Dir returns the server's temporary directory.
func (s *Server) Dir() string { return s.dir }

// RootDN and RootPW return the configuration's rootdn and rootpw.
func (s *Server) RootDN() string { return s.rootDN }

// RootPW returns the rootdn's password.
func (s *Server) RootPW() string { return s.rootPW }

// Stop stops the server (SIGTERM, then SIGKILL after readyTimeout) and waits
// until it has exited. Its data and address stay for Start.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Fatalf("slapdtest: %v", err)
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
	return testtool.StopProcess("slapd", cmd, done, syscall.SIGTERM, readyTimeout)
}

// Start starts the stopped server again, on the same address and data.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	running := s.cmd != nil
	s.mu.Unlock()
	if running {
		return
	}
	if err := s.run(); err != nil {
		t.Fatalf("slapdtest: restart: %v", err)
	}
}

// close stops the server and removes its directory.
func (s *Server) close() {
	s.stop()
	os.RemoveAll(s.dir)
}

// Add adds the entries of an LDIF text as the rootdn (ldapadd).
func (s *Server) Add(t testing.TB, ldif string) {
	t.Helper()
	s.ldapmodify(t, ldif, "-a")
}

// Modify applies an LDIF change text as the rootdn (ldapmodify).
func (s *Server) Modify(t testing.TB, ldif string) {
	t.Helper()
	s.ldapmodify(t, ldif)
}

func (s *Server) ldapmodify(t testing.TB, ldif string, args ...string) {
	t.Helper()
	tool, err := lookPath("ldapmodify")
	if err != nil {
		testtool.Missing(t, "slapdtest: ldapmodify (ldap-utils) not available: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	args = append(args, "-x", "-H", s.LDAPI(), "-D", s.rootDN, "-w", s.rootPW)
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Stdin = strings.NewReader(ldif)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("slapdtest: ldapmodify: %v\n%s", err, out.String())
	}
}
