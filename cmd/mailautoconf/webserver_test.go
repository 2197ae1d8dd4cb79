package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

// The web server snippets in packaging/, run by the real nginx and Apache
// httpd in front of the real daemon: the include line the package
// documents keeps "nginx -t" passing before the package is installed, with
// its template, and after purge took the template away (issue 11 item 4),
// the settings page is reachable through them (item 8), and nginx keeps
// its connections to the daemon open between requests (issue 13 item 3).

const (
	iredmailTemplate = "../../packaging/nginx/iredmail-mailautoconf.tmpl"
	nginxExample     = "../../packaging/nginx/mailautoconf.conf"
	nginxUpstream    = "../../packaging/nginx/mailautoconf-upstream.conf"
	iredmailUpstream = "../../packaging/nginx/iredmail-mailautoconf-upstream.conf"
	apacheExample    = "../../packaging/apache/mailautoconf.conf"
	packagedSocket   = "/run/mailautoconf/http.sock"
	templatesDir     = "/etc/nginx/templates/"
)

// documentedInclude returns the include line the iRedMail template tells
// admins to add, and checks that README.md and the man page give the same.
func documentedInclude(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(iredmailTemplate)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^#\s+(include /etc/nginx/templates/\S+;)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s: no documented include line", iredmailTemplate)
	}
	line := string(m[1])
	for _, doc := range []string{"../../README.md", "../../packaging/mailautoconf.8"} {
		d, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(d), `\-`, "-") // roff
		if !strings.Contains(text, line) {
			t.Errorf("%s does not give the include line %q of %s", doc, line, iredmailTemplate)
		}
	}
	return line
}

// nginxServer is a throwaway nginx: one config under dir, listening on a
// unix socket, run as the test's user (master_process off: nginx switches
// to no other user, so it can reach the daemon's socket in a private
// temporary directory).
type nginxServer struct {
	bin, dir, conf, sock string
	client               *http.Client
}

func newNginx(t *testing.T) *nginxServer {
	t.Helper()
	n := &nginxServer{bin: testtool.Need(t, "nginx"), dir: t.TempDir()}
	n.conf = filepath.Join(n.dir, "nginx.conf")
	n.sock = filepath.Join(n.dir, "nginx.sock")
	n.client = unixClient(n.sock)
	return n
}

// unixClient is an HTTP client whose every connection goes to sock.
func unixClient(sock string) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// connCounter stands between nginx and the daemon: a unix socket that
// counts the connections made to it and copies each one to the daemon's
// socket, so that a test sees whether nginx reuses its connections.
type connCounter struct {
	sock  string
	conns atomic.Int64
}

// newConnCounter listens on a new socket and forwards to target until t
// ends.
func newConnCounter(t *testing.T, target string) *connCounter {
	t.Helper()
	c := &connCounter{sock: filepath.Join(t.TempDir(), "counter.sock")}
	l, err := net.Listen("unix", c.sock)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		open  []net.Conn
		wg    sync.WaitGroup
		track = func(cs ...net.Conn) {
			mu.Lock()
			open = append(open, cs...)
			mu.Unlock()
		}
	)
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, conn := range open {
			conn.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	// halfCopy copies one direction and passes its end on.
	halfCopy := func(dst, src net.Conn) {
		defer wg.Done()
		io.Copy(dst, src)
		dst.(*net.UnixConn).CloseWrite()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			c.conns.Add(1)
			out, err := net.Dial("unix", target)
			if err != nil {
				in.Close()
				continue
			}
			track(in, out)
			wg.Add(2)
			go halfCopy(out, in)
			go halfCopy(in, out)
		}
	}()
	return c
}

// reused fails t unless nginx keeps its connection to the daemon for path
// on host: after a first request, which may open one or take one kept
// from before, two more open none. Without keep-alive each request opens
// one, and a request that takes a kept connection and closes it leaves
// the next to open one.
func (c *connCounter) reused(t *testing.T, n *nginxServer, host, path string) {
	t.Helper()
	var before int64
	for i := range 3 {
		if i == 1 {
			before = c.conns.Load()
		}
		if code, _ := n.get(t, host, path); code >= 500 {
			t.Fatalf("%s on %s through nginx: %d", path, host, code)
		}
	}
	if opened := c.conns.Load() - before; opened != 0 {
		t.Errorf("%s on %s through nginx: the second and third request opened %d connections to the daemon, want 0 (no upstream keep-alive)", path, host, opened)
	}
}

// write writes the config: the main context, and servers in http.
func (n *nginxServer) write(t *testing.T, servers string) {
	t.Helper()
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events {}
http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
%[2]s
}
`, n.dir, servers)
	writeTestFile(t, n.conf, conf)
}

// args are the command-line flags that keep nginx inside n.dir.
func (n *nginxServer) args(extra ...string) []string {
	return append([]string{"-p", n.dir + "/", "-c", n.conf, "-e", filepath.Join(n.dir, "error.log")}, extra...)
}

// test runs nginx -t on the config and returns its output and error.
func (n *nginxServer) test() (string, error) {
	out, err := exec.Command(n.bin, n.args("-t")...).CombinedOutput()
	return string(out), err
}

// run starts nginx and stops it when t ends.
func (n *nginxServer) run(t *testing.T) {
	t.Helper()
	os.Remove(n.sock)
	cmd := exec.Command(n.bin, n.args()...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", n.sock); err == nil {
			c.Close()
			return
		}
		select {
		case err := <-done:
			log, _ := os.ReadFile(filepath.Join(n.dir, "error.log"))
			t.Fatalf("nginx exited: %v\n%s%s", err, out.String(), log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not listen on %s", n.sock)
		}
	}
}

// get asks nginx for path with the Host header host.
func (n *nginxServer) get(t *testing.T, host, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+host+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := n.client.Do(req)
	if err != nil {
		t.Fatalf("GET http://%s%s through nginx: %v", host, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// iredmailServer is the http block of iRedMail's nginx.conf, which reads
// conf-enabled/*.conf, and an HTTPS server of iRedMail's shape
// (sites-available/00-default-ssl.conf), over plain HTTP on a unix socket
// for the test: a document root with no index file, the admin's include
// line first, then locations like those of iRedMail's misc.tmpl (all of
// /.well-known/ from a directory) and roundcube.tmpl (all of /mail/).
func iredmailServer(n *nginxServer, include string) string {
	return fmt.Sprintf(`    include %[2]s/conf-enabled/*.conf;
    server {
        listen unix:%[1]s;
        server_name _;
        root %[2]s/html;
        index index.php index.html;

        %[3]s

        location ~ ^/.well-known/ {
            root %[2]s/well-known;
        }
        location ~ /\. { deny all; }
        location = /mail {
            return 301 /mail/;
        }
        location ~ ^/mail/(.*) {
            alias %[2]s/roundcube/$1;
            index index.html;
        }
    }`, n.sock, n.dir, include)
}

// TestNginxIRedMailTemplate takes the iRedMail template and the upstream
// it proxies to through a package's life: not installed, installed,
// removed (the files kept, the daemon gone), purged. The server includes
// the template with the documented line, the http block conf-enabled/ as
// iRedMail's nginx.conf does; nginx -t must pass at every step, and while
// the package is installed the discovery paths and the settings page (on
// the autoconfig.* and autodiscover.* names) reach the daemon over kept
// connections, while webmail and "/" on the mail host's name are served as
// before.
func TestNginxIRedMailTemplate(t *testing.T) {
	n := newNginx(t)
	testtool.Need(t, "systemd-socket-activate")
	root := t.TempDir()
	staticHost(t, root)
	d := startDaemon(t, buildDaemon(t), root)

	tmpl, err := os.ReadFile(iredmailTemplate)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(tmpl), "unix:") {
		t.Errorf("%s proxies to a socket itself, not to the upstream with keep-alive", iredmailTemplate)
	}
	upstream, err := os.ReadFile(iredmailUpstream)
	if err != nil {
		t.Fatal(err)
	}
	counter := newConnCounter(t, d.sock)
	templates := filepath.Join(n.dir, "templates") + "/"
	installed := filepath.Join(templates, "mailautoconf.tmpl")
	// iRedMail's conf-enabled/ holds its own files too, and stays.
	installedUpstream := filepath.Join(n.dir, "conf-enabled", "mailautoconf-upstream.conf")
	writeTestFile(t, filepath.Join(n.dir, "conf-enabled", "0-general.conf"), "server_tokens off;\n")
	include := strings.Replace(documentedInclude(t), templatesDir, templates, 1)
	writeTestFile(t, filepath.Join(n.dir, "roundcube/index.html"), "roundcube webmail\n")
	writeTestFile(t, filepath.Join(n.dir, "roundcube/config-v1.1.xml"), "not an autoconfig document\n")
	if err := os.MkdirAll(filepath.Join(n.dir, "html"), 0o755); err != nil {
		t.Fatal(err)
	}
	n.write(t, iredmailServer(n, include))

	webmailAsBefore := func(t *testing.T) {
		t.Helper()
		if code, body := n.get(t, "mail.example.com", "/mail/"); code != 200 || body != "roundcube webmail\n" {
			t.Errorf("webmail /mail/: %d %q, want roundcube's page", code, body)
		}
		// iRedMail's document root has no index file: 403, as before.
		if code, _ := n.get(t, "mail.example.com", "/"); code != 403 {
			t.Errorf("/ on the mail host's name: %d, want 403 as without the template", code)
		}
	}

	t.Run("before install", func(t *testing.T) {
		if out, err := n.test(); err != nil {
			t.Fatalf("nginx -t with %q and no template: %v\n%s", include, err, out)
		}
		n.run(t)
		webmailAsBefore(t)
		if code, _ := n.get(t, "autoconfig.example.com", "/"); code != 403 {
			t.Errorf("/ on autoconfig.example.com without the template: %d, want 403", code)
		}
	})

	t.Run("installed", func(t *testing.T) {
		writeTestFile(t, installed, string(tmpl))
		writeTestFile(t, installedUpstream, strings.ReplaceAll(string(upstream), packagedSocket, counter.sock))
		if out, err := n.test(); err != nil {
			t.Fatalf("nginx -t with the template: %v\n%s", err, out)
		}
		n.run(t)
		webmailAsBefore(t)
		for _, path := range []string{
			"/mail/config-v1.1.xml?emailaddress=fred@example.com",
			"/.well-known/autoconfig/mail/config-v1.1.xml",
		} {
			code, body := n.get(t, "autoconfig.example.com", path)
			if code != 200 || !strings.Contains(body, `<emailProvider id="example.com">`) || !strings.Contains(body, "<port>993</port>") {
				t.Errorf("%s through nginx: %d, want the daemon's document\n%s", path, code, body)
			}
		}
		// Outlook's plain-HTTP probe is redirected to HTTPS: the daemon
		// saw X-Forwarded-Proto and the Host through nginx.
		res, err := n.client.Get("http://AutoDiscover.example.net/Autodiscover/Autodiscover.xml")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if loc := res.Header.Get("Location"); res.StatusCode != 302 || loc != "https://autodiscover.example.net/Autodiscover/Autodiscover.xml" {
			t.Errorf("GET /Autodiscover/Autodiscover.xml over http through nginx: %d, Location %q", res.StatusCode, loc)
		}
		for _, host := range []string{"autoconfig.example.com", "AutoDiscover.example.net"} {
			code, body := n.get(t, host, "/")
			if code != 200 || !strings.Contains(body, `<form method="get" action="/">`) {
				t.Errorf("settings page on %s: %d, want the daemon's form\n%s", host, code, body)
			}
		}
		code, body := n.get(t, "autoconfig.example.com", "/?emailaddress=fred%40example.com")
		if code != 200 || !strings.Contains(body, "Mail settings for") || !strings.Contains(body, "<code>mail.example.com</code>") {
			t.Errorf("settings table through nginx: %d\n%s", code, body)
		}
		// The page's profile link goes through the discovery location.
		if code, body := n.get(t, "autoconfig.example.com", "/mobileconfig?emailaddress=fred%40example.com"); code != 200 || !strings.Contains(body, "com.apple.mail.managed") {
			t.Errorf("profile link through nginx: %d", code)
		}
		// Both locations keep their connections to the daemon.
		counter.reused(t, n, "autoconfig.example.com", "/.well-known/autoconfig/mail/config-v1.1.xml")
		counter.reused(t, n, "autoconfig.example.com", "/")
		t.Logf("%d connections to the daemon", counter.conns.Load())
	})

	// Removed, not purged: the template and the upstream stay, the
	// daemon's socket is gone.
	t.Run("removed", func(t *testing.T) {
		gone := filepath.Join(t.TempDir(), "http.sock")
		writeTestFile(t, installedUpstream, strings.ReplaceAll(string(upstream), packagedSocket, gone))
		if out, err := n.test(); err != nil {
			t.Fatalf("nginx -t after remove: %v\n%s", err, out)
		}
		n.run(t)
		webmailAsBefore(t)
		if code, _ := n.get(t, "autoconfig.example.com", "/mail/config-v1.1.xml"); code != 502 {
			t.Errorf("/mail/config-v1.1.xml after remove: %d, want 502", code)
		}
	})

	t.Run("purged", func(t *testing.T) {
		for _, f := range []string{installed, templates, installedUpstream} { // dpkg removes the emptied directory too
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
		if out, err := n.test(); err != nil {
			t.Fatalf("nginx -t with %q after purge: %v\n%s", include, err, out)
		}
		n.run(t)
		webmailAsBefore(t)
		if code, body := n.get(t, "autoconfig.example.com", "/mail/config-v1.1.xml"); code != 200 || body != "not an autoconfig document\n" {
			t.Errorf("/mail/config-v1.1.xml after purge: %d %q, want webmail's file", code, body)
		}
	})

	// What the documented line avoids: a plain file name fails once the
	// package is purged, and with it every later reload.
	t.Run("plain include fails after purge", func(t *testing.T) {
		n.write(t, iredmailServer(n, "include "+installed+";"))
		out, err := n.test()
		if err == nil || !strings.Contains(out, "No such file") {
			t.Fatalf("nginx -t with a plain include of a missing file: %v, want a failure\n%s", err, out)
		}
	})
}

// TestNginxUpstreamCopies checks that the two upstream files the package
// installs (conf.d/ for Debian's and Fedora's nginx.conf, conf-enabled/ for
// iRedMail's) define the same upstream under their own names.
func TestNginxUpstreamCopies(t *testing.T) {
	var blocks []string
	for _, f := range []struct{ file, name string }{{nginxUpstream, "mailautoconf"}, {iredmailUpstream, "mailautoconf_iredmail"}} {
		b, err := os.ReadFile(f.file)
		if err != nil {
			t.Fatal(err)
		}
		block := regexp.MustCompile(`(?m)^\s*#.*\n`).ReplaceAllString(string(b), "")
		head := "upstream " + f.name + " {"
		if !strings.Contains(block, head) || !strings.Contains(block, "keepalive") {
			t.Errorf("%s: no %s with keepalive:\n%s", f.file, head, block)
		}
		// The same socket and keep-alive under each name: an nginx.conf
		// that reads both directories defines each once.
		blocks = append(blocks, strings.Replace(block, head, "upstream NAME {", 1))
	}
	if blocks[0] != blocks[1] {
		t.Errorf("%s and %s define different upstreams:\n%s\n%s", nginxUpstream, iredmailUpstream, blocks[0], blocks[1])
	}
}

// TestNginxExample checks the generic example: its location block pasted
// into a server, with the commented settings-page location, and its
// commented dedicated autoconfig server blocks (port 80 form), proxy to
// the daemon through the packaged upstream, read from conf.d/ as Debian's
// and Fedora's nginx.conf read it, over kept connections.
func TestNginxExample(t *testing.T) {
	n := newNginx(t)
	testtool.Need(t, "systemd-socket-activate")
	root := t.TempDir()
	staticHost(t, root)
	d := startDaemon(t, buildDaemon(t), root)

	b, err := os.ReadFile(nginxExample)
	if err != nil {
		t.Fatal(err)
	}
	example := string(b)
	if strings.Contains(example, "unix:") {
		t.Errorf("%s proxies to a socket itself, not to the packaged upstream with keep-alive", nginxExample)
	}
	upstream, err := os.ReadFile(nginxUpstream)
	if err != nil {
		t.Fatal(err)
	}
	counter := newConnCounter(t, d.sock)
	writeTestFile(t, filepath.Join(n.dir, "conf.d", "mailautoconf-upstream.conf"), strings.ReplaceAll(string(upstream), packagedSocket, counter.sock))
	// The commented blocks, uncommented: the "location = /" one goes into
	// the server; the first dedicated server block (port 80) is used with
	// the test's socket instead of its listen lines.
	blocks := regexp.MustCompile(`(?ms)^# (location = / \{|server \{)\n.*?^# \}\n`).FindAllString(example, -1)
	if len(blocks) != 3 {
		t.Fatalf("%s: %d commented blocks, want 3 (location = /, two servers)", nginxExample, len(blocks))
	}
	uncomment := func(s string) string { return regexp.MustCompile(`(?m)^# ?`).ReplaceAllString(s, "") }
	settings := uncomment(blocks[0])
	dedicated := regexp.MustCompile(`(?m)^\s*listen .*\n`).ReplaceAllString(uncomment(blocks[1]), "")
	dedicatedSock := filepath.Join(n.dir, "dedicated.sock")
	dedicated = strings.Replace(dedicated, "server {", "server {\n    listen unix:"+dedicatedSock+";", 1)
	writeTestFile(t, filepath.Join(n.dir, "html/index.html"), "static site\n")
	n.write(t, fmt.Sprintf(`    include %[2]s/conf.d/*.conf;
    server {
        listen unix:%[1]s;
        root %[2]s/html;
%[3]s
%[4]s
    }
%[5]s`, n.sock, n.dir, example, settings, dedicated))
	if out, err := n.test(); err != nil {
		t.Fatalf("nginx -t with the example: %v\n%s", err, out)
	}
	n.run(t)
	if code, body := n.get(t, "mail.example.com", "/mail/config-v1.1.xml?emailaddress=fred@example.com"); code != 200 || !strings.Contains(body, "<port>993</port>") {
		t.Errorf("autoconfig through the example's location: %d\n%s", code, body)
	}
	if code, body := n.get(t, "autoconfig.example.com", "/"); code != 200 || !strings.Contains(body, `<form method="get" action="/">`) {
		t.Errorf("settings page through the example's location = /: %d\n%s", code, body)
	}
	if code, body := n.get(t, "www.example.com", "/"); code != 200 || body != "static site\n" {
		t.Errorf("/ on another name: %d %q, want the static site", code, body)
	}

	// The dedicated server block, on its own socket.
	dn := *n
	dn.sock, dn.client = dedicatedSock, unixClient(dedicatedSock)
	if code, body := dn.get(t, "autoconfig.example.net", "/"); code != 200 || !strings.Contains(body, `<form method="get" action="/">`) {
		t.Errorf("settings page through the dedicated server block: %d\n%s", code, body)
	}
	if code, body := dn.get(t, "autodiscover.example.net", "/autodiscover/autodiscover.json?Email=fred@example.net&Protocol=AutodiscoverV1"); code != 200 || !strings.Contains(body, `"Protocol":"AutodiscoverV1"`) {
		t.Errorf("autodiscover.json through the dedicated server block: %d\n%s", code, body)
	}

	// Each block keeps its connections to the daemon.
	counter.reused(t, n, "mail.example.com", "/mail/config-v1.1.xml?emailaddress=fred@example.com")
	counter.reused(t, n, "autoconfig.example.com", "/")
	counter.reused(t, &dn, "autoconfig.example.net", "/")
	t.Logf("%d connections to the daemon", counter.conns.Load())
}

// apacheModules is where Debian's apache2 keeps its modules.
const apacheModules = "/usr/lib/apache2/modules"

// TestApacheExample runs Apache httpd with the example copied into an
// IncludeOptional directory as the README says: valid with no copy, with
// it, and after it is gone; the discovery paths and, through its
// commented dedicated <VirtualHost>, the settings page reach the daemon.
func TestApacheExample(t *testing.T) {
	bin := testtool.Need(t, "apache2")
	if _, err := os.Stat(filepath.Join(apacheModules, "mod_proxy_http.so")); err != nil {
		testtool.Missing(t, "no mod_proxy_http: %v", err)
	}
	testtool.Need(t, "systemd-socket-activate")
	root := t.TempDir()
	staticHost(t, root)
	d := startDaemon(t, buildDaemon(t), root)
	counter := newConnCounter(t, d.sock)
	user := ""
	if os.Geteuid() == 0 {
		// Apache's children run as nobody: let them reach the socket (the
		// test's temporary directories share one parent).
		for _, p := range []string{filepath.Dir(filepath.Dir(counter.sock)), filepath.Dir(counter.sock)} {
			if err := os.Chmod(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(counter.sock, 0o666); err != nil {
			t.Fatal(err)
		}
		user = "User nobody\nGroup nogroup\n"
	}

	b, err := os.ReadFile(apacheExample)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	example := strings.ReplaceAll(string(b), packagedSocket, counter.sock)
	vhost := regexp.MustCompile(`(?ms)^# <VirtualHost \*:80>\n.*?^# </VirtualHost>\n`).FindString(example)
	if vhost == "" {
		t.Fatalf("%s: no commented <VirtualHost *:80>", apacheExample)
	}
	vhost = strings.Replace(regexp.MustCompile(`(?m)^# ?`).ReplaceAllString(vhost, ""), "*:80", "*:"+port, 1)

	dir := t.TempDir()
	conf := filepath.Join(dir, "httpd.conf")
	copied := filepath.Join(dir, "conf-enabled/mailautoconf.conf")
	site := filepath.Join(dir, "sites-enabled/mailautoconf.conf")
	mods := ""
	for _, m := range []string{"mpm_event", "authz_core", "dir", "proxy", "proxy_http", "headers"} {
		mods += fmt.Sprintf("LoadModule %s_module %s/mod_%s.so\n", m, apacheModules, m)
	}
	writeTestFile(t, filepath.Join(dir, "html/index.html"), "static site\n")
	writeTestFile(t, conf, fmt.Sprintf(`ServerRoot %[1]s
PidFile %[1]s/httpd.pid
ErrorLog %[1]s/error.log
Listen %[2]s
ServerName mail.example.com
%[3]s%[4]sDocumentRoot %[1]s/html
IncludeOptional %[1]s/conf-enabled/*.conf
<VirtualHost *:%[5]s>
    ServerName mail.example.com
    DocumentRoot %[1]s/html
</VirtualHost>
IncludeOptional %[1]s/sites-enabled/*.conf
`, dir, addr, user, mods, port))
	for _, sub := range []string{"conf-enabled", "sites-enabled"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	configTest := func(t *testing.T, state string) {
		t.Helper()
		if out, err := exec.Command(bin, "-f", conf, "-t").CombinedOutput(); err != nil {
			t.Fatalf("apache2 -t %s: %v\n%s", state, err, out)
		}
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(t *testing.T, host, path string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s on %s through Apache: %v", path, host, err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}

	configTest(t, "without the example")
	writeTestFile(t, copied, example)
	writeTestFile(t, site, vhost)
	configTest(t, "with the example and its <VirtualHost>")

	cmd := exec.Command(bin, "-f", conf, "-DFOREGROUND")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("apache2:\n%s%s", out.String(), log)
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Apache does not listen on %s", addr)
		}
	}
	if code, body := get(t, "mail.example.com", "/Mail/Config-v1.1.xml?emailaddress=fred@example.com"); code != 200 || !strings.Contains(body, "<port>993</port>") {
		t.Errorf("autoconfig through the example: %d\n%s", code, body)
	}
	if code, body := get(t, "mail.example.com", "/"); code != 200 || body != "static site\n" {
		t.Errorf("/ on the mail host's name: %d %q, want the site", code, body)
	}
	if code, body := get(t, "autoconfig.example.net", "/"); code != 200 || !strings.Contains(body, `<form method="get" action="/">`) {
		t.Errorf("settings page through the <VirtualHost>: %d\n%s", code, body)
	}
	if code, body := get(t, "autodiscover.example.net", "/?emailaddress=fred%40example.net"); code != 200 || !strings.Contains(body, "Mail settings for") {
		t.Errorf("settings table through the <VirtualHost>: %d\n%s", code, body)
	}
	// Apache keeps its connections to the daemon: one pool per child
	// process, so a few connections for many requests. A ProxyPassMatch
	// whose URL has a backreference ($1) proxies through Apache's default
	// worker instead, which opens a connection for every request.
	for _, r := range []struct{ host, path string }{
		{"mail.example.com", "/mail/config-v1.1.xml?emailaddress=fred@example.com"},
		{"autoconfig.example.net", "/"},
	} {
		const requests = 20
		before := counter.conns.Load()
		for range requests {
			if code, _ := get(t, r.host, r.path); code != 200 {
				t.Fatalf("%s on %s through Apache: %d", r.path, r.host, code)
			}
		}
		if opened := counter.conns.Load() - before; opened > requests/2 {
			t.Errorf("%d requests for %s on %s through Apache opened %d connections to the daemon: no connection reuse", requests, r.path, r.host, opened)
		}
	}

	for _, f := range []string{copied, site} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	configTest(t, "after the copies are removed")
}
