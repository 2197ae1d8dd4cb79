package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/mailautoconf/mailautoconf/internal/mariadbtest"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

// daemonBinary is the mailautoconf binary the tests run, built once per
// test binary by buildDaemon; TestMain removes it.
var daemonBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// buildDaemon returns the mailautoconf binary, building it on first use.
func buildDaemon(t *testing.T) string {
	t.Helper()
	d := &daemonBinary
	d.once.Do(func() {
		start := time.Now()
		if d.dir, d.err = os.MkdirTemp("", "mailautoconf-test-"); d.err != nil {
			return
		}
		d.path = filepath.Join(d.dir, "mailautoconf")
		if out, err := exec.Command("go", "build", "-o", d.path, ".").CombinedOutput(); err != nil {
			d.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		t.Logf("go build: %v", time.Since(start).Round(time.Millisecond))
	})
	if d.err != nil {
		t.Fatal(d.err)
	}
	return d.path
}

// notifySocket is a NOTIFY_SOCKET for the daemon: it collects every
// sd_notify datagram.
type notifySocket struct {
	path string
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []string
}

func newNotifySocket(t *testing.T, dir string) *notifySocket {
	t.Helper()
	ns := &notifySocket{path: filepath.Join(dir, "notify")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: ns.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	ns.conn = conn
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			ns.mu.Lock()
			ns.msgs = append(ns.msgs, string(buf[:n]))
			ns.mu.Unlock()
		}
	}()
	return ns
}

func (ns *notifySocket) all() []string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return append([]string(nil), ns.msgs...)
}

// wait returns the first message from index from on that has every line
// of want, and the index after it; it fails t after timeout.
func (ns *notifySocket) wait(t *testing.T, from int, timeout time.Duration, want ...string) (string, int) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		msgs := ns.all()
		for i := from; i < len(msgs); i++ {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(msgs[i], w)
			}
			if ok {
				return msgs[i], i + 1
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no sd_notify message with %q within %v; got:\n%s", want, timeout, strings.Join(msgs[from:], "\n--\n"))
		}
	}
}

// runningDaemon is mailautoconf serve running under systemd-socket-activate.
type runningDaemon struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited, with err set
	err    error
	stderr *syncBuffer
	notify *notifySocket
	client *http.Client // to the "http" unix socket
	sock   string       // the "http" unix socket's path
	https  string       // the "https" socket's address
}

// startDaemon runs bin serve under systemd-socket-activate with an "http"
// unix socket and an "https" TCP socket, and a NOTIFY_SOCKET.
func startDaemon(t *testing.T, bin, root string, args ...string) *runningDaemon {
	t.Helper()
	return startDaemonWrapped(t, nil, bin, root, args...)
}

// startDaemonWrapped is startDaemon with bin run through the command wrap
// (setpriv, to run it as another user), which must exec it in place: the
// sockets are passed to systemd-socket-activate's child's PID.
func startDaemonWrapped(t *testing.T, wrap []string, bin, root string, args ...string) *runningDaemon {
	t.Helper()
	activate := testtool.Need(t, "systemd-socket-activate")
	dir := t.TempDir()
	sock := filepath.Join(dir, "http.sock")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpsAddr := l.Addr().String()
	l.Close() // systemd-socket-activate binds it again

	d := &runningDaemon{done: make(chan struct{}), stderr: &syncBuffer{}, notify: newNotifySocket(t, dir), https: httpsAddr, sock: sock}
	argv := []string{"-l", sock, "-l", httpsAddr, "--fdname=http:https", "-E", "NOTIFY_SOCKET=" + d.notify.path}
	argv = append(append(argv, wrap...), bin, "serve", "--root", root, "-v")
	d.cmd = exec.Command(activate, append(argv, args...)...)
	d.cmd.Stderr = d.stderr
	d.cmd.Stdout = d.stderr
	d.cmd.WaitDelay = 2 * time.Second // a stray child must not hold the test
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.stderr.String())
		}
	})
	d.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives: true,
	}}
	// systemd-socket-activate binds and listens on the sockets, says
	// "Listening on ADDR as FD." for each, then starts the daemon on the
	// first connection. The socket file exists from bind() on, before
	// listen(): waiting for the file alone races with a refused connect.
	if !d.logged(5*time.Second, "Listening on "+sock+" ", "Listening on "+httpsAddr+" ") {
		t.Fatalf("systemd-socket-activate did not listen on %s and %s\n%s", sock, httpsAddr, d.stderr.String())
	}
	return d
}

// logged reports whether the log (the daemon's and systemd-socket-
// activate's) holds every one of parts within timeout. The log arrives
// through a pipe, so it can lag behind a notification sent after it.
func (d *runningDaemon) logged(timeout time.Duration, parts ...string) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		log := d.stderr.String()
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(log, p) }) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// get fetches url over the http socket.
func (d *runningDaemon) get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := d.client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, d.stderr.String())
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// eventually polls url until check accepts the answer, failing t after
// timeout; it returns how long that took.
func (d *runningDaemon) eventually(t *testing.T, url string, timeout time.Duration, what string, check func(code int, body string) bool) time.Duration {
	t.Helper()
	start := time.Now()
	var code int
	var body string
	for deadline := start.Add(timeout); ; time.Sleep(25 * time.Millisecond) {
		code, body = d.get(t, url)
		if check(code, body) {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last answer %d:\n%s", what, timeout, code, body)
		}
	}
}

func (d *runningDaemon) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// httpsCert connects to the https socket asking for serverName and returns
// the certificate presented.
func (d *runningDaemon) httpsCert(t *testing.T, serverName string) *x509.Certificate {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", d.https,
		&tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS to %s as %s: %v", d.https, serverName, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// mailHost writes a mail host under dir: Postfix with submission 587 and
// smtps 465, domains from MySQL (domains.cf, through --mysql-socket),
// Dovecot with IMAPS, and a certbot-style certificate for
// mail.example.com (live/ links into archive/). It returns the certificate.
func mailHost(t *testing.T, dir, dbName string) *x509.Certificate {
	t.Helper()
	files := map[string]string{
		"etc/postfix/main.cf": `compatibility_level = 3.6
myhostname = mail.example.com
mydestination = localhost
virtual_mailbox_domains = mysql:/etc/postfix/sql/domains.cf
smtpd_tls_cert_file = /etc/letsencrypt/live/mail.example.com/fullchain.pem
smtpd_tls_key_file = /etc/letsencrypt/live/mail.example.com/privkey.pem
smtpd_tls_security_level = may
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
`,
		"etc/postfix/sql/domains.cf": "user = vmail\npassword = secret\nhosts = localhost\ndbname = " + dbName + "\n" +
			"query = SELECT domain FROM domain WHERE domain='%s' AND active = 1\n",
		"etc/postfix/master.cf": `smtp      inet  n       -       y       -       -       smtpd
submission inet n       -       y       -       -       smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
smtps     inet  n       -       y       -       -       smtpd
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
`,
		"etc/dovecot/dovecot.conf": dovecotConf,
	}
	for name, content := range files {
		writeTestFile(t, filepath.Join(dir, name), content)
	}
	return installCert(t, dir, 1)
}

const dovecotConf = `protocols = imap
ssl = required
ssl_cert = </etc/letsencrypt/live/mail.example.com/fullchain.pem
ssl_key = </etc/letsencrypt/live/mail.example.com/privkey.pem
auth_mechanisms = plain
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = 993
    ssl = yes
  }
}
`

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	// Write and rename, as editors do.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// installCert writes a self-signed certificate for mail.example.com as
// certbot's archive/ version n and points the live/ links at it, replacing
// them atomically as certbot does. It returns the certificate.
func installCert(t *testing.T, dir string, n int) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(int64(1000 + n)),
		Subject:      pkix.Name{CommonName: "mail.example.com"},
		DNSNames:     []string{"mail.example.com"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(90 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageEmailProtection},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "etc/letsencrypt/archive/mail.example.com")
	live := filepath.Join(dir, "etc/letsencrypt/live/mail.example.com")
	for _, d := range []string{archive, live} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, block := range map[string]*pem.Block{
		"fullchain": {Type: "CERTIFICATE", Bytes: der},
		"privkey":   {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		file := fmt.Sprintf("%s%d.pem", name, n)
		if err := os.WriteFile(filepath.Join(archive, file), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(live, name+".pem")
		if err := os.Symlink("../../archive/mail.example.com/"+file, link+".new"); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(link+".new", link); err != nil {
			t.Fatal(err)
		}
	}
	return cert
}

// profileSigner fetches an Apple profile and returns its CMS signer.
func (d *runningDaemon) profileSigner(t *testing.T) *x509.Certificate {
	t.Helper()
	code, body := d.get(t, "http://autoconfig.example.com/mobileconfig?emailaddress=alice%40example.com")
	if code != 200 {
		t.Fatalf("profile: %d\n%s", code, body)
	}
	p7, err := pkcs7.Parse([]byte(body))
	if err != nil {
		t.Fatalf("profile is not signed: %v", err)
	}
	signer := p7.GetOnlySigner()
	if signer == nil {
		t.Fatal("profile has no signer")
	}
	return signer
}

const autoconfigURL = "http://autoconfig.example.com/mail/config-v1.1.xml"

// TestDaemon runs the daemon as systemd runs it, with socket activation
// and sd_notify, and changes the mail host under it: every live reload
// case of the issue, in one run (the binary and MariaDB start once).
func TestDaemon(t *testing.T) {
	testtool.Need(t, "systemd-socket-activate")
	testStart := time.Now()
	bin := buildDaemon(t)

	db := mariadbtest.Start(t) // private: the test stops it
	dbName := db.NewDatabase(t)
	db.Exec(t, "CREATE TABLE "+dbName+".domain (domain VARCHAR(255) PRIMARY KEY, active TINYINT NOT NULL DEFAULT 1);"+
		"INSERT INTO "+dbName+".domain (domain) VALUES ('example.com')")
	db.GrantUser(t, "vmail", "secret", dbName)

	root := t.TempDir()
	cert1 := mailHost(t, root, dbName)
	d := startDaemon(t, bin, root, "--mysql-socket", db.Socket(), "--refresh", "500ms")
	t.Logf("setup: %v", time.Since(testStart).Round(time.Millisecond))

	var next int
	step := func(name string, f func(t *testing.T)) {
		start := time.Now()
		if !t.Run(name, f) {
			t.FailNow()
		}
		t.Logf("%s: %v", name, time.Since(start).Round(time.Millisecond))
	}

	step("socket activation", func(t *testing.T) {
		code, body := d.get(t, autoconfigURL) // starts the daemon
		if code != 200 || !strings.Contains(body, `<emailProvider id="example.com">`) || !strings.Contains(body, "<port>587</port>") {
			t.Fatalf("autoconfig over the http socket: %d\n%s", code, body)
		}
		var msg string
		msg, next = d.notify.wait(t, 0, 5*time.Second, "READY=1")
		if !strings.Contains(msg, "STATUS=serving 1 domains, ") {
			t.Errorf("READY message = %q, want a STATUS with the counts", msg)
		}
		if got := d.httpsCert(t, "autoconfig.example.com"); !got.Equal(cert1) {
			t.Errorf("https socket presents %v, want the mail host's certificate", got.Subject)
		}
		if !strings.Contains(d.stderr.String(), "socket_activation=true") {
			t.Errorf("the daemon did not use the passed sockets:\n%s", d.stderr.String())
		}
	})

	step("SIGHUP", func(t *testing.T) {
		d.signal(t, syscall.SIGHUP)
		_, next = d.notify.wait(t, next, 5*time.Second, "RELOADING=1", "MONOTONIC_USEC=")
		_, next = d.notify.wait(t, next, 5*time.Second, "READY=1", "STATUS=serving 1 domains")
	})

	step("master.cf port change", func(t *testing.T) {
		master, err := os.ReadFile(filepath.Join(root, "etc/postfix/master.cf"))
		if err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, filepath.Join(root, "etc/postfix/master.cf"), strings.Replace(string(master), "submission inet", "2587 inet", 1))
		took := d.eventually(t, autoconfigURL, 2*time.Second, "port 2587 served", func(code int, body string) bool {
			return code == 200 && strings.Contains(body, "<port>2587</port>")
		})
		t.Logf("new port served after %v", took.Round(time.Millisecond))
		_, next = d.notify.wait(t, next, 2*time.Second, "RELOADING=1")
	})

	step("broken dovecot.conf", func(t *testing.T) {
		conf := filepath.Join(root, "etc/dovecot/dovecot.conf")
		writeTestFile(t, conf, strings.Replace(dovecotConf, "service imap-login {", "service imap-login {\n  {", 1))
		var msg string
		msg, next = d.notify.wait(t, next, 3*time.Second, "STATUS=reload failed, serving previous snapshot: ")
		if !strings.Contains(msg, "/etc/dovecot/dovecot.conf:") {
			t.Errorf("STATUS lacks the file:line: %q", msg)
		}
		if !d.logged(2*time.Second, "reload failed", "/etc/dovecot/dovecot.conf:") {
			t.Errorf("the log lacks the error with file:line:\n%s", d.stderr.String())
		}
		if code, body := d.get(t, autoconfigURL); code != 200 || !strings.Contains(body, "<port>993</port>") || !strings.Contains(body, "<port>2587</port>") {
			t.Errorf("the previous snapshot is not served: %d\n%s", code, body)
		}
		writeTestFile(t, conf, strings.Replace(dovecotConf, "port = 993", "port = 1993", 1))
		_, next = d.notify.wait(t, next, 3*time.Second, "READY=1", "STATUS=serving 1 domains")
		d.eventually(t, autoconfigURL, 2*time.Second, "fixed dovecot.conf served", func(code int, body string) bool {
			return code == 200 && strings.Contains(body, "<port>1993</port>")
		})
	})

	step("certificate renewal", func(t *testing.T) {
		if got := d.profileSigner(t); !got.Equal(cert1) {
			t.Fatalf("profile signed by serial %v, want %v", got.SerialNumber, cert1.SerialNumber)
		}
		cert2 := installCert(t, root, 2)
		start := time.Now()
		for d.profileSigner(t).Equal(cert1) {
			if time.Since(start) > 3*time.Second {
				t.Fatal("the renewed certificate is not used for signing after 3 s")
			}
			time.Sleep(25 * time.Millisecond)
		}
		if got := d.profileSigner(t); !got.Equal(cert2) {
			t.Errorf("profile signed by serial %v, want the renewed %v", got.SerialNumber, cert2.SerialNumber)
		}
		t.Logf("renewed certificate used after %v", time.Since(start).Round(time.Millisecond))
		if got := d.httpsCert(t, "mail.example.com"); !got.Equal(cert2) {
			t.Errorf("https socket presents serial %v, want the renewed %v", got.SerialNumber, cert2.SerialNumber)
		}
	})

	newURL := "http://autoconfig.example.com/mail/config-v1.1.xml?emailaddress=bob%40new.example.org"
	step("domain added in the database", func(t *testing.T) {
		db.Exec(t, "INSERT INTO "+dbName+".domain (domain) VALUES ('new.example.org')")
		if code, body := d.get(t, newURL); code != 200 || !strings.Contains(body, "new.example.org") {
			t.Fatalf("a domain just added: %d\n%s", code, body)
		}
		// The next refresh lists it.
		_, next = d.notify.wait(t, next, 3*time.Second, "STATUS=serving 2 domains")
	})

	step("database down", func(t *testing.T) {
		db.Stop(t)
		if code, body := d.get(t, autoconfigURL); code != 200 || !strings.Contains(body, `<emailProvider id="example.com">`) {
			t.Errorf("known domain while the database is down: %d\n%s", code, body)
		}
		// A refresh while it is down carries the known domains forward.
		_, next = d.notify.wait(t, next, 5*time.Second, "STATUS=domain table unreachable (", "serving 2 known domains")
		for _, u := range []string{autoconfigURL, newURL} {
			if code, body := d.get(t, u); code != 200 {
				t.Errorf("%s after a refresh without the database: %d\n%s", u, code, body)
			}
		}
		code, _ := d.get(t, "http://autoconfig.example.com/mail/config-v1.1.xml?emailaddress=x%40unknown.example")
		if code != http.StatusServiceUnavailable {
			t.Errorf("an unknown domain while the database is down: %d, want 503", code)
		}
	})

	step("SIGTERM", func(t *testing.T) {
		d.signal(t, syscall.SIGTERM)
		select {
		case <-d.done:
			if d.err != nil {
				t.Errorf("exit: %v", d.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no exit within 10 s of SIGTERM")
		}
		d.notify.wait(t, next, time.Second, "STOPPING=1")
	})
}

// TestDaemonExitIdle checks --exit-idle-after: after its last request the
// daemon exits cleanly, telling systemd it is stopping.
func TestDaemonExitIdle(t *testing.T) {
	testtool.Need(t, "systemd-socket-activate")
	bin := buildDaemon(t)
	d := startDaemon(t, bin, "../../testdata/corpus/handmade-static-domains", "--exit-idle-after", "300ms")
	if code, body := d.get(t, "http://autoconfig.example.net/mail/config-v1.1.xml"); code != 200 {
		t.Fatalf("autoconfig: %d\n%s", code, body)
	}
	start := time.Now()
	select {
	case <-d.done:
		if d.err != nil {
			t.Errorf("exit: %v\n%s", d.err, d.stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still running 5 s after the last request")
	}
	t.Logf("exited %v after the last request", time.Since(start).Round(time.Millisecond))
	d.notify.wait(t, 0, time.Second, "STOPPING=1")
	if !strings.Contains(d.stderr.String(), "no request") {
		t.Errorf("log lacks the reason:\n%s", d.stderr.String())
	}
}
