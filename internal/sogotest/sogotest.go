// Package sogotest starts a throwaway SOGo groupware server behind a
// throwaway nginx that includes iRedMail's real SOGo template
// (testdata/groupware/iredmail-sogo/etc/nginx/templates/sogo.tmpl), for
// tests that probe CalDAV, CardDAV and ActiveSync the way clients do.
//
// Each Start gives the test its own sogod (the Debian package's, run in
// the foreground as an unprivileged user), its own memcached on loopback,
// its own database in the test binary's shared throwaway PostgreSQL
// (pgtest) holding SOGo's tables and an SQL user source with one user,
// and its own nginx serving HTTPS on a free loopback port with a
// certificate from a throwaway CA. Nothing under /etc is read for the
// harness's settings or changed: sogod takes its settings as command-line
// defaults (which GNUstep puts above /etc/sogo/sogo.conf), nginx runs with
// its own prefix and configuration directory.
//
// Call Main from TestMain (it stops the shared PostgreSQL). When sogod,
// nginx, memcached or PostgreSQL is missing, tests are skipped, except
// with CI=true, where they fail.
package sogotest

import (
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/pgtest"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

// ServerName is the host name the harness's certificate and nginx server
// are for.
const ServerName = "mail.example.com"

// BundleDir is where Debian installs SOGo's bundles (sogo.tmpl's
// GNUstep directory); ActiveSync.SOGo comes from sogo-activesync.
const BundleDir = "/usr/lib/GNUstep/SOGo"

// workers is the number of sogod's worker processes (WOWorkersCount).
const workers = 2

// readyTimeout bounds the start of each server.
const readyTimeout = 30 * time.Second

// Main runs the tests of a package that uses Start, then stops the shared
// PostgreSQL: func TestMain(m *testing.M) { sogotest.Main(m) }. A package
// that uses other harnesses too calls testtool.Main with CloseShared and
// theirs.
func Main(m *testing.M) { testtool.Main(m, CloseShared) }

// CloseShared stops what the test binary's harnesses share (PostgreSQL).
func CloseShared() { pgtest.CloseShared() }

// Options choose what Start runs.
type Options struct {
	// ActiveSync: true runs SOGo with its ActiveSync bundle (the test
	// needs sogo-activesync); false runs it without, as when
	// sogo-activesync is not installed (hiding an installed bundle needs
	// root: a private mount namespace).
	ActiveSync bool
}

// A Host is a running SOGo behind nginx.
type Host struct {
	// Backend is the address SOGo listens on ("127.0.0.1:PORT"), where
	// iRedMail's nginx has 127.0.0.1:20000.
	Backend string
	// HTTPS is the address nginx serves HTTPS on ("127.0.0.1:PORT").
	HTTPS string
	// ServerName is the name in nginx's server_name and the certificate.
	ServerName string
	// CACert is the PEM certificate of the CA that signed the server's.
	CACert []byte
	// CAFile is the path of CACert.
	CAFile string
	// NginxConf is the path of nginx's main configuration; it includes
	// Template.
	NginxConf string
	// Template is the path of the harness's copy of sogo.tmpl.
	Template string
	// User (SOGo's c_uid, the login name), Password and Address (mail)
	// of the one user.
	User, Password, Address string

	dir       string
	sogoArgs  []string
	hideEAS   bool
	cred      *syscall.Credential
	nginxBin  string
	sogodBin  string
	unshare   string
	setpriv   string
	mu        sync.Mutex
	sogo      *proc
	nginx     *proc
	memcached *proc
}

// proc is a running server process, in a process group of its own.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
	// logStart is the size of log when the process started: what it
	// logs comes after.
	logStart int64
}

var seq struct {
	mu sync.Mutex
	n  int
}

// Start starts memcached, SOGo and nginx for t; they are stopped and
// their files removed when t ends.
func Start(t testing.TB, opts Options) *Host {
	t.Helper()
	begin := time.Now()
	h := &Host{
		ServerName: ServerName,
		nginxBin:   testtool.Need(t, "nginx"),
		sogodBin:   testtool.Need(t, "sogod"),
	}
	memcached := testtool.Need(t, "memcached")
	hasEAS := fileExists(filepath.Join(BundleDir, "ActiveSync.SOGo"))
	switch {
	case opts.ActiveSync && !hasEAS:
		testtool.Missing(t, "sogotest: %s/ActiveSync.SOGo not installed (package sogo-activesync)", BundleDir)
	case !opts.ActiveSync && hasEAS:
		testtool.NeedRoot(t, "hiding the installed ActiveSync bundle from sogod takes a mount namespace")
		h.unshare = testtool.Need(t, "unshare")
		h.setpriv = testtool.Need(t, "setpriv")
		h.hideEAS = true
	}
	if !fileExists(filepath.Join(BundleDir, "WebServerResources")) {
		testtool.Missing(t, "sogotest: %s/WebServerResources not installed (package sogo)", BundleDir)
	}
	pg := pgtest.Shared(t)

	var err error
	if h.cred, err = serviceUser(); err != nil {
		t.Fatalf("sogotest: %v", err)
	}
	dir, err := testtool.SocketDir("sogo")
	if err != nil {
		t.Fatal(err)
	}
	h.dir = dir
	t.Cleanup(h.close)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	h.chown(t, home)

	// The database: SOGo creates its tables itself; the user source is
	// a table of our own, with the columns iRedMail's view has.
	seq.mu.Lock()
	seq.n++
	n := seq.n
	seq.mu.Unlock()
	db := pg.NewDatabase(t)
	role := fmt.Sprintf("sogo%d_%d", os.Getpid(), n)
	rolePW := randomHex(12)
	pg.CreateUser(t, role, rolePW)
	pg.Exec(t, "ALTER DATABASE "+pgtest.QuoteIdent(db)+" OWNER TO "+pgtest.QuoteIdent(role))
	h.Address = "alice@example.com"
	h.User = h.Address
	h.Password = randomHex(8)
	pg.ExecDB(t, db, "CREATE TABLE users (c_uid varchar(255) PRIMARY KEY, c_name varchar(255), c_password varchar(255),"+
		" c_cn varchar(255), mail varchar(255), domain varchar(255));"+
		"INSERT INTO users VALUES ("+pgtest.QuoteLiteral(h.User)+", "+pgtest.QuoteLiteral(h.User)+", "+
		pgtest.QuoteLiteral(ssha512(h.Password))+", 'Alice Example', "+pgtest.QuoteLiteral(h.Address)+", 'example.com');"+
		"ALTER TABLE users OWNER TO "+pgtest.QuoteIdent(role))
	dbURL := func(table string) string {
		return fmt.Sprintf("postgresql://%s:%s@%s/%s/%s", role, rolePW, pg.Addr(), db, table)
	}

	// memcached, on a loopback port of its own.
	mcAddr, err := h.startLoop(func(addr string) (*proc, error) {
		host, port, _ := net.SplitHostPort(addr)
		return h.spawn("memcached", filepath.Join(dir, "memcached.log"), h.cred,
			memcached, "-l", host, "-p", port, "-U", "0", "-m", "16", "-c", "64")
	}, func(p *proc, addr string) error { return waitTCP(p, addr) })
	if err != nil {
		t.Fatalf("sogotest: %v", err)
	}

	sources := `({ type = sql; id = users; viewURL = "` + dbURL("users") + `";` +
		` canAuthenticate = YES; isAddressBook = YES; displayName = "Users";` +
		` userPasswordAlgorithm = ssha512; prependPasswordScheme = YES; })`
	h.sogoArgs = []string{
		"-WONoDetach", "YES",
		"-WOLogFile", "-",
		"-WOPidFile", filepath.Join(home, "sogo.pid"),
		"-WOWorkersCount", strconv.Itoa(workers),
		"-SOGoMemcachedHost", mcAddr,
		"-SOGoProfileURL", dbURL("sogo_user_profile"),
		"-OCSFolderInfoURL", dbURL("sogo_folder_info"),
		"-OCSSessionsFolderURL", dbURL("sogo_sessions_folder"),
		"-OCSEMailAlarmsFolderURL", dbURL("sogo_alarms_folder"),
		"-OCSStoreURL", dbURL("sogo_store"),
		"-OCSAclURL", dbURL("sogo_acl"),
		"-OCSCacheFolderURL", dbURL("sogo_cache_folder"),
		"-SOGoUserSources", sources,
		"-SOGoMailDomain", "example.com",
		"-SOGoTimeZone", "UTC",
		"-SOGoLanguage", "English",
		"-SOGoIMAPServer", "imap://127.0.0.1:1",
		"-SOGoSieveServer", "sieve://127.0.0.1:1",
		"-SOGoSMTPServer", "smtp://127.0.0.1:1",
		"-SOGoMailingMechanism", "smtp",
		"-SOGoAppointmentSendEMailNotifications", "NO",
		"-SOGoPasswordChangeEnabled", "NO",
		"-SOGoEnableEMailAlarms", "NO",
	}
	if _, err := h.startLoop(h.startSOGoAt, h.waitSOGo); err != nil {
		t.Fatalf("sogotest: %v", err)
	}

	h.writeTLS(t)
	if err := h.writeTemplate(false); err != nil {
		t.Fatal(err)
	}
	if _, err := h.startLoop(h.startNginxAt, func(p *proc, addr string) error { return waitTCP(p, addr) }); err != nil {
		t.Fatalf("sogotest: %v", err)
	}
	t.Logf("sogotest: SOGo at %s, nginx at https://%s (%s), started in %s", h.Backend, h.HTTPS, h.ServerName, time.Since(begin).Round(time.Millisecond))
	return h
}

// serviceUser returns whom to run sogod, memcached and nginx's workers
// as: nil (the current user) unless root, then the package's "sogo" user
// or "nobody".
func serviceUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"sogo", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
	}
	return nil, errors.New("running as root, and neither a sogo nor a nobody user exists to run SOGo as")
}

func (h *Host) chown(t testing.TB, path string) {
	t.Helper()
	if h.cred == nil {
		return
	}
	if err := os.Lchown(path, int(h.cred.Uid), int(h.cred.Gid)); err != nil {
		t.Fatal(err)
	}
}

// startLoop picks a free loopback port, starts a server on it and waits
// until it is ready; another process may take the port between the probe
// and the server's bind, so it tries a few.
func (h *Host) startLoop(start func(addr string) (*proc, error), ready func(*proc, string) error) (string, error) {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var addr string
		if addr, err = freeAddr(); err != nil {
			return "", err
		}
		var p *proc
		if p, err = start(addr); err != nil {
			return "", err
		}
		if err = ready(p, addr); err == nil {
			h.mu.Lock()
			switch p.name {
			case "memcached":
				h.memcached = p
			case "sogod":
				h.sogo, h.Backend = p, addr
			case "nginx":
				h.nginx, h.HTTPS = p, addr
			}
			h.mu.Unlock()
			return addr, nil
		}
		p.stop()
		if !strings.Contains(p.tail(), "in use") {
			return "", fmt.Errorf("%w\n%s", err, p.tail())
		}
	}
	return "", err
}

// spawn starts a server process (as cred, nil for the current user) in its
// own process group, killed when the test binary dies, its output appended
// to logPath.
func (h *Host) spawn(name, logPath string, cred *syscall.Credential, argv ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	var logStart int64
	if fi, err := logf.Stat(); err == nil {
		logStart = fi.Size()
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = h.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: logPath, logStart: logStart}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop kills the process's group and waits for the process.
func (p *proc) stop() {
	if p == nil {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// logSince returns what the process has logged.
func (p *proc) logSince() string {
	f, err := os.Open(p.log)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.NewSectionReader(f, p.logStart, 1<<30))
	return string(b)
}

// tail returns the end of the process's log, for failure messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// startSOGoAt starts sogod on addr: as h.cred, with HOME in the harness's
// directory, and, when the ActiveSync bundle must be absent, in a mount
// namespace where BundleDir holds every bundle but that one.
func (h *Host) startSOGoAt(addr string) (*proc, error) {
	home := filepath.Join(h.dir, "home")
	args := append([]string{h.sogodBin, "-WOPort", addr}, h.sogoArgs...)
	env := []string{"HOME=" + home, "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "TZ=UTC"}
	var argv []string
	cred := h.cred
	if h.hideEAS {
		// Root: in a private mount namespace, keep the real directory
		// reachable at real/, cover BundleDir with a tmpfs and bind
		// every bundle but ActiveSync.SOGo back into it; then drop to
		// the service user with setpriv.
		real := filepath.Join(h.dir, "real")
		if err := os.MkdirAll(real, 0o755); err != nil {
			return nil, err
		}
		script := `set -e; real=$1; dir=$2; shift 2
mount --make-rprivate /
mount --bind "$dir" "$real"
mount -t tmpfs -o mode=0755 sogotest "$dir"
for b in "$real"/*; do
	n=${b##*/}
	[ "$n" = ActiveSync.SOGo ] && continue
	if [ -L "$b" ]; then cp -P "$b" "$dir/$n"
	elif [ -d "$b" ]; then mkdir "$dir/$n"; mount --bind "$b" "$dir/$n"
	else touch "$dir/$n"; mount --bind "$b" "$dir/$n"; fi
done
exec "$@"`
		argv = []string{h.unshare, "-m", "--", "/bin/sh", "-c", script, "sh", real, BundleDir}
		if h.cred != nil {
			argv = append(argv, h.setpriv, "--reuid="+strconv.Itoa(int(h.cred.Uid)), "--regid="+strconv.Itoa(int(h.cred.Gid)), "--clear-groups", "--")
		}
		argv = append(argv, "/usr/bin/env", "-i")
		argv = append(argv, env...)
		argv = append(argv, args...)
		cred = nil
	} else {
		argv = append([]string{"/usr/bin/env", "-i"}, env...)
		argv = append(argv, args...)
	}
	return h.spawn("sogod", filepath.Join(h.dir, "sogo.log"), cred, argv...)
}

// waitSOGo waits until every worker of sogod has told its watchdog that
// it is ready (before, a request may find no worker and be dropped) and
// SOGo answers HTTP on addr.
func (h *Host) waitSOGo(p *proc, addr string) error {
	if err := waitTCP(p, addr); err != nil {
		return err
	}
	deadline := time.Now().Add(readyTimeout)
	for strings.Count(p.logSince(), "notified the watchdog that we are ready") < workers {
		select {
		case <-p.done:
			return fmt.Errorf("sogod exited during startup: %s", p.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sogod's %d workers not ready after %s", workers, readyTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		resp, err := client.Get("http://" + addr + "/SOGo/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /SOGo/: %s", resp.Status)
		}
		select {
		case <-p.done:
			return fmt.Errorf("sogod exited during startup: %s", p.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sogod on %s does not answer HTTP: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StopSOGo stops sogod (nginx stays, and answers 502).
func (h *Host) StopSOGo(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	p := h.sogo
	h.sogo = nil
	h.mu.Unlock()
	p.stop()
}

// StartSOGo starts sogod again on the same backend address.
func (h *Host) StartSOGo(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	running := h.sogo != nil
	h.mu.Unlock()
	if running {
		return
	}
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		var p *proc
		if p, err = h.startSOGoAt(h.Backend); err != nil {
			break
		}
		if err = h.waitSOGo(p, h.Backend); err == nil {
			h.mu.Lock()
			h.sogo = p
			h.mu.Unlock()
			return
		}
		err = fmt.Errorf("%w\n%s", err, p.tail())
		p.stop()
		time.Sleep(100 * time.Millisecond) // the old listener may linger
	}
	t.Fatalf("sogotest: restart SOGo: %v", err)
}

// DisableActiveSyncLocation comments out the template's
// "location ^~ /Microsoft-Server-ActiveSync" block in the harness's copy
// and restarts nginx on the same address, as an admin who removed it and
// reloaded.
func (h *Host) DisableActiveSyncLocation(t testing.TB) {
	t.Helper()
	if err := h.writeTemplate(true); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	p := h.nginx
	h.nginx = nil
	h.mu.Unlock()
	p.stop()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if p, err = h.startNginxAt(h.HTTPS); err != nil {
			break
		}
		if err = waitTCP(p, h.HTTPS); err == nil {
			h.mu.Lock()
			h.nginx = p
			h.mu.Unlock()
			return
		}
		err = fmt.Errorf("%w\n%s", err, p.tail())
		p.stop()
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("sogotest: restart nginx: %v", err)
}

// SOGoLog returns what sogod has logged so far.
func (h *Host) SOGoLog() string {
	b, _ := os.ReadFile(filepath.Join(h.dir, "sogo.log"))
	return string(b)
}

// close stops every process and removes the harness's files.
func (h *Host) close() {
	h.mu.Lock()
	ps := []*proc{h.nginx, h.sogo, h.memcached}
	h.nginx, h.sogo, h.memcached = nil, nil, nil
	h.mu.Unlock()
	for _, p := range ps {
		p.stop()
	}
	if h.dir != "" {
		os.RemoveAll(h.dir)
	}
}

// waitTCP waits until something accepts connections on addr, or p exits.
func waitTCP(p *proc, addr string) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited during startup: %s", p.name, p.cmd.ProcessState)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening on %s after %s", p.name, addr, readyTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ssha512 hashes password as SOGo's ssha512 with the scheme prepended
// ("{SSHA512}" base64(sha512(password salt) salt)), as iRedMail stores
// passwords.
func ssha512(password string) string {
	salt := make([]byte, 8)
	rand.Read(salt)
	sum := sha512.Sum512(append([]byte(password), salt...))
	return "{SSHA512}" + base64.StdEncoding.EncodeToString(append(sum[:], salt...))
}

// templatePath is iRedMail's real sogo.tmpl in the repository.
func templatePath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "groupware", "iredmail-sogo", "etc", "nginx", "templates", "sogo.tmpl")
}
