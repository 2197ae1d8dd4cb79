package check

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/dnstest"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/serve"
)

// livePorts are the loopback ports the real servers listen on, by the
// standard port the configuration advertises.
type livePorts map[int]int

// freePorts finds a free loopback port for each advertised port.
func freePorts(t testing.TB, advertised ...int) livePorts {
	t.Helper()
	ports := livePorts{}
	var ls []net.Listener
	for _, p := range advertised {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports[p] = l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// serverDir makes a directory the servers' unprivileged users can reach
// (t.TempDir's parent is private to root).
func serverDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mailautoconf-check-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// waitPort waits until something accepts connections on addr.
func waitPort(t testing.TB, addr string, what string, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s does not listen on %s after 10 s\n%s", what, addr, logs())
}

// logFile creates a file for a server's output, closed when t ends.
func logFile(t testing.TB, path string) *os.File {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// A dovecot is a running test Dovecot.
type dovecot struct {
	cmd  *exec.Cmd
	once sync.Once
}

// startDovecot runs Dovecot in the foreground with IMAP and POP3 on the
// loopback ports, the certificate in dir/cert.pem and dir/key.pem, and its
// auth socket at dir/auth-client for Postfix. Nobody can log in.
func startDovecot(t testing.TB, bin, dir string, ports livePorts) *dovecot {
	t.Helper()
	conf := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(filepath.Join(dir, "users"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf(`base_dir = %[1]s/base
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
instance_name = %[2]s
protocols = imap pop3
listen = 127.0.0.1
ssl = required
ssl_cert = <%[1]s/cert.pem
ssl_key = <%[1]s/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain login
mail_location = maildir:%[1]s/mail/%%u
passdb {
  driver = passwd-file
  args = %[1]s/users
}
userdb {
  driver = static
  args = uid=dovecot gid=dovecot home=%[1]s/mail/%%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[3]d
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = %[4]d
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = %[5]d
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = %[6]d
    ssl = yes
  }
}
service auth {
  unix_listener %[1]s/auth-client {
    mode = 0666
  }
}
`, dir, "mac-check-"+filepath.Base(dir), ports[143], ports[993], ports[110], ports[995])
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	// Output goes to a file, not a pipe: Dovecot's children inherit it,
	// and Wait would wait for them to close a pipe.
	out := logFile(t, filepath.Join(dir, "dovecot.out"))
	d := &dovecot{cmd: exec.Command(bin, "-F", "-c", conf)}
	d.cmd.Stdout, d.cmd.Stderr = out, out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} // a killed test leaves no server behind
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.stop)
	logs := func() string {
		a, _ := os.ReadFile(filepath.Join(dir, "dovecot.out"))
		b, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
		return string(a) + string(b)
	}
	for _, p := range []int{143, 993, 110, 995} {
		waitPort(t, "127.0.0.1:"+strconv.Itoa(ports[p]), "Dovecot", logs)
	}
	return d
}

// stop ends Dovecot and waits for it (and its children) to go.
func (d *dovecot) stop() { d.once.Do(func() { stopProcess(d.cmd) }) }

// stopProcess ends a server's master process with SIGTERM, which stops
// its children too, and waits for it; SIGKILL after 10 s.
func stopProcess(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// reload makes Dovecot read its configuration and certificates again.
func (d *dovecot) reload() { d.cmd.Process.Signal(syscall.SIGHUP) }

// startPostfix runs Postfix (postfix start-fg) with its own configuration
// and queue directories, submission (STARTTLS) and smtps (implicit TLS)
// on loopback ports, SASL through Dovecot's socket in dir.
func startPostfix(t testing.TB, bin, dir string, ports livePorts) {
	t.Helper()
	conf := filepath.Join(dir, "postfix")
	data := filepath.Join(dir, "postfix-data")
	for _, d := range []string{conf, data, filepath.Join(dir, "postfix-queue")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Postfix's master writes its lock into data_directory as user postfix.
	out, err := exec.Command("chown", "postfix:postfix", data).CombinedOutput()
	if err != nil {
		t.Fatalf("chown postfix %s: %v\n%s", data, err, out)
	}
	main := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/postfix-queue
data_directory = %[1]s/postfix-data
myhostname = mail.example.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
smtpd_tls_chain_files = %[1]s/key.pem, %[1]s/cert.pem
smtpd_tls_security_level = may
smtpd_sasl_type = dovecot
smtpd_sasl_path = %[1]s/auth-client
maillog_file = /dev/stdout
`, dir)
	master := fmt.Sprintf(`127.0.0.1:%d inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
127.0.0.1:%d inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`, ports[587], ports[465])
	for name, text := range map[string]string{"main.cf": main, "master.cf": master} {
		if err := os.WriteFile(filepath.Join(conf, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// postfix check creates the queue directories; the master then runs
	// in the foreground (-d) as our child, so that it dies with the test.
	if out, err := exec.Command(bin, "-c", conf, "check").CombinedOutput(); err != nil {
		t.Fatalf("postfix check: %v\n%s", err, out)
	}
	daemonDir, err := exec.Command(testtool.Need(t, "postconf"), "-c", conf, "-h", "daemon_directory").Output()
	if err != nil {
		t.Fatalf("postconf daemon_directory: %v", err)
	}
	logPath := filepath.Join(dir, "postfix.log")
	logOut := logFile(t, logPath)
	logs := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	cmd := exec.Command(filepath.Join(strings.TrimSpace(string(daemonDir)), "master"), "-c", conf, "-d")
	cmd.Stdout, cmd.Stderr = logOut, logOut
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopProcess(cmd) })
	for _, p := range []int{587, 465} {
		waitPort(t, "127.0.0.1:"+strconv.Itoa(ports[p]), "Postfix", logs)
	}
}

// TestLive checks a real Dovecot and Postfix on loopback, with the
// discovery URLs served by the real serve.Handler over HTTPS and DNS by a
// loopback server: all is well, then each injected fault is named.
func TestLive(t *testing.T) {
	testtool.NeedRoot(t, "Dovecot and Postfix start as root and drop to their own users")
	dovecotBin := testtool.Need(t, "dovecot")
	postfixBin := testtool.Need(t, "postfix")
	start := time.Now()

	pki := newPKI(t)
	chain, key, goodCert := pki.leaf(t, 90*24*time.Hour, allNames...)
	rootDir := t.TempDir()
	writeRoot(t, rootDir, chain, key)
	snap, root := buildSnapshot(t, rootDir)

	dir := serverDir(t)
	writeCert := func(chain, key []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "cert.pem"), chain, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "key.pem"), key, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCert(chain, key)
	ports := freePorts(t, 143, 993, 110, 995, 587, 465)
	dc := startDovecot(t, dovecotBin, dir, ports)
	startPostfix(t, postfixBin, dir, ports)

	// HTTPS: the real handler, with a certificate the test can swap.
	site, err := serve.NewSite(root, snap, nil)
	if err != nil {
		t.Fatal(err)
	}
	var store serve.Store
	store.Swap(site)
	var httpsCert atomic.Pointer[tls.Certificate]
	httpsCert.Store(&goodCert)
	web := httptest.NewUnstartedServer(serve.NewHandler(&store, nil))
	web.TLS = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return httpsCert.Load(), nil }}
	web.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes the check refuses
	web.StartTLS()
	t.Cleanup(web.Close)

	zone := goodZone(t, snap)
	dnsSrv := dnstest.Start(t, zone)

	connect := map[string]string{}
	for adv, real := range ports {
		connect[fmt.Sprintf("%s:%d", testHost, adv)] = fmt.Sprintf("127.0.0.1:%d", real)
	}
	for _, name := range []string{"autoconfig." + testDomain, "autodiscover." + testDomain, testDomain} {
		connect[name+":443"] = web.Listener.Addr().String()
	}
	opt := Options{Snapshot: snap, Resolver: dnsSrv.Addr, Roots: pki.pool, Connect: connect, Timeout: 3 * time.Second}
	check := func(t *testing.T, opt Options) []Result {
		t.Helper()
		begin := time.Now()
		results, err := Run(context.Background(), opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("check ran in %v:\n%s", time.Since(begin).Round(time.Millisecond), dump(results))
		return results
	}
	want := func(t *testing.T, results []Result, name string, status Status, detail, fix string) {
		t.Helper()
		got := find(t, results, name)
		if got.Status != status || !strings.Contains(got.Detail, detail) || !strings.Contains(got.Fix, fix) {
			t.Errorf("%s = %+v\nwant %s, detail with %q, fix with %q", name, got, status, detail, fix)
		}
	}
	t.Logf("setup took %v", time.Since(start).Round(time.Millisecond))

	t.Run("healthy", func(t *testing.T) {
		results := check(t, opt)
		if ok, warn, fail := Count(results); warn+fail > 0 || ok < 25 {
			t.Errorf("healthy setup: %d ok, %d warnings, %d failed; want everything ok", ok, warn, fail)
		}
		want(t, results, "IMAP mail.example.test:143 (STARTTLS)", OK, "after TLS: PLAIN LOGIN", "")
		want(t, results, "POP3 mail.example.test:110 (STARTTLS)", OK, "PLAIN LOGIN", "")
		want(t, results, "SMTP mail.example.test:587 (STARTTLS)", OK, "after TLS: PLAIN LOGIN", "")
		want(t, results, "SMTP mail.example.test:465 (implicit TLS)", OK, "greeting 220 mail.example.test ESMTP", "")
		want(t, results, "POST https://autodiscover.example.test/autodiscover/autodiscover.xml", OK, "answers with this host's servers", "")
	})

	t.Run("SRV record dropped", func(t *testing.T) {
		dnsSrv.SetZone(t, without(zone, "_submission._tcp"))
		defer dnsSrv.SetZone(t, zone)
		results := check(t, opt)
		want(t, results, "SRV _submission._tcp.example.test", Fail, "missing",
			`publish "_submission._tcp.example.test. 3600 IN SRV 10 1 587 mail.example.test."`)
		if _, _, fail := Count(results); fail != 1 {
			t.Errorf("%d failures, want 1", fail)
		}
	})

	t.Run("HTTPS certificate for the wrong name", func(t *testing.T) {
		_, _, wrong := pki.leaf(t, 90*24*time.Hour, "www.example.org")
		httpsCert.Store(&wrong)
		defer httpsCert.Store(&goodCert)
		results := check(t, opt)
		want(t, results, "certificate autoconfig.example.test", Fail,
			"wrong name: the certificate covers www.example.org, not autoconfig.example.test",
			"add autoconfig.example.test to the certificate the web server presents for autoconfig.example.test")
		want(t, results, "certificate autodiscover.example.test", Fail, "not autodiscover.example.test", "add autodiscover.example.test")
		want(t, results, "certificate example.test", Warn, "not example.test", "or make it refuse the path")
	})

	t.Run("certificate expiring", func(t *testing.T) {
		o := opt
		o.Now = func() time.Time { return time.Now().Add(80 * 24 * time.Hour) } // 10 days left
		results := check(t, o)
		want(t, results, "certificate mail.example.test:993", Fail, "expires in 9 days",
			"renew the certificate Dovecot presents (/etc/ssl/mail/fullchain.pem) now")
		want(t, results, "certificate mail.example.test:587", Fail, "expires in 9 days", "renew the certificate Postfix presents")
	})

	t.Run("Dovecot certificate for the wrong name", func(t *testing.T) {
		wchain, wkey, _ := pki.leaf(t, 90*24*time.Hour, "imap.example.org")
		writeCert(wchain, wkey)
		dc.reload()
		defer func() { writeCert(chain, key); dc.reload() }()
		// The reload takes effect for new login processes: wait for it.
		var results []Result
		for range 50 {
			r, _ := newRun(opt)
			results = r.probe(context.Background(), endpoint(t, snap, "imap", 993))
			if len(results) == 2 && results[0].Status == Fail {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("%s", dump(results))
		want(t, results, "certificate mail.example.test:993", Fail,
			"wrong name: the certificate covers imap.example.org, not mail.example.test",
			"add mail.example.test to the certificate Dovecot presents (/etc/ssl/mail/fullchain.pem)")
	})

	t.Run("Dovecot stopped", func(t *testing.T) {
		dc.stop()
		results := check(t, opt)
		for _, name := range []string{"IMAP mail.example.test:993 (implicit TLS)", "IMAP mail.example.test:143 (STARTTLS)",
			"POP3 mail.example.test:995 (implicit TLS)", "POP3 mail.example.test:110 (STARTTLS)"} {
			want(t, results, name, Fail, "connection refused", "start Dovecot (systemctl start dovecot) and check that it listens on port")
		}
	})
	t.Logf("TestLive took %v", time.Since(start).Round(time.Millisecond))
}
