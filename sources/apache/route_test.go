package apache

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// TestFindGroupwareMatchesApache is the routing differential test: a
// real apache2 serves each configuration over TLS in front of a backend
// that records what it is asked, and for each SOGo path FindGroupware's
// answer must be what happened: proxied to that backend with that path,
// or not proxied at all.
func TestFindGroupwareMatchesApache(t *testing.T) {
	bin := testtool.Need(t, "apache2")
	var mu sync.Mutex
	var got []string
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.EscapedPath())
		mu.Unlock()
		w.WriteHeader(299)
	}))
	defer backend.Close()
	b := backend.Listener.Addr().String()

	tests := []struct {
		name         string
		main, vhost  string // server-level and <VirtualHost> lines; B is the backend
		dav, eas     string // what each path must give: "-" or "B<path>"
		expectReason string // a word the Missing entry of the first "-" must hold
	}{
		{"SOGo's sample, ActiveSync uncommented", sogoSample(true), "", "B/SOGo/dav/", "B/SOGo/Microsoft-Server-ActiveSync", ""},
		{"SOGo's sample as shipped", sogoSample(false), "", "B/SOGo/dav/", "-", "no ProxyPass"},
		{"in <Location>", "<Location /SOGo>\n ProxyPass http://B/SOGo retry=0 nocanon\n</Location>\n<Location /Microsoft-Server-ActiveSync>\n ProxyPass http://B/SOGo/Microsoft-Server-ActiveSync\n</Location>\n", "",
			"B/SOGo/dav/", "B/SOGo/Microsoft-Server-ActiveSync", ""},
		{"ProxyPassMatch with back-references", "", "ProxyPassMatch ^/SOGo/(.*)$ http://B/SOGo/$1\nProxyPassMatch ^/(Microsoft-Server-ActiveSync)$ http://B/SOGo/$1\n",
			"B/SOGo/dav/", "B/SOGo/Microsoft-Server-ActiveSync", ""},
		{"ProxyPassMatch without back-references", "", "ProxyPassMatch ^/SOGo http://B\n", "B/SOGo/dav/", "-", "no ProxyPass"},
		{"RewriteRule [P]", "", "RewriteEngine On\nRewriteRule ^/Microsoft-Server-ActiveSync(.*)$ http://B/SOGo/Microsoft-Server-ActiveSync$1 [P,L]\nRewriteRule ^/SOGo/(.*) http://B/SOGo/$1 [P]\n",
			"B/SOGo/dav/", "B/SOGo/Microsoft-Server-ActiveSync", ""},
		{"RewriteRule [PT] before ProxyPass (SOGo's older sample)", "ProxyPass /SOGo http://B/SOGo retry=0\n", "RewriteEngine On\nRewriteRule ^/SOGo/(.*)$ /SOGo/$1 [env=REMOTE_HOST:%{REMOTE_ADDR},PT]\n",
			"B/SOGo/dav/", "-", "no ProxyPass"},
		{"RewriteRule redirect", "ProxyPass /SOGo http://B/SOGo\n", "RewriteEngine On\nRewriteRule ^/SOGo/dav/ /elsewhere [R=302]\n", "-", "-", "redirected"},
		{"exclusion before the rule", "", "ProxyPass /SOGo/dav !\nProxyPass /SOGo http://B/SOGo\nProxyPass /Microsoft-Server-ActiveSync http://B/SOGo/Microsoft-Server-ActiveSync\n",
			"-", "B/SOGo/Microsoft-Server-ActiveSync", "excluded"},
		{"exclusion after the rule", "", "ProxyPass /SOGo http://B/SOGo\nProxyPass /SOGo/dav !\n", "B/SOGo/dav/", "-", "no ProxyPass"},
		{"main server's rules come first", "ProxyPass /SOGo http://B/SOGo\n", "ProxyPass /SOGo/dav !\n", "B/SOGo/dav/", "-", ""},
		{"ProxyPassInherit Off in the vhost (undecided)", "ProxyPass /SOGo http://B/SOGo\n", "ProxyPassInherit Off\nProxyPass /Microsoft-Server-ActiveSync http://B/x\n", "?", "B/x", "ProxyPassInherit"},
		{"ProxyPassInherit Off in the main server (undecided)", "ProxyPassInherit Off\nProxyPass /SOGo http://B/SOGo\n", "ProxyPass /Microsoft-Server-ActiveSync http://B/x\n", "?", "B/x", "ProxyPassInherit"},
		{"ProxyPassInherit Off in both (undecided)", "ProxyPassInherit Off\nProxyPass /SOGo http://B/SOGo\n", "ProxyPassInherit Off\nProxyPass /Microsoft-Server-ActiveSync http://B/x\n", "?", "B/x", "ProxyPassInherit"},
		{"<Location> exclusion wins over the server's list", "ProxyPass /SOGo http://B/SOGo\n<Location /SOGo/dav>\n ProxyPass !\n</Location>\n", "", "-", "-", "excluded"},
		{"prefix ends inside a path segment", "", "ProxyPass /SOGo/da http://B/x\nProxyPass /Microsoft-Server-ActiveSync/ http://B/y/\n", "-", "-", "no ProxyPass"},
		{"main server's rewrite rules are not inherited", "RewriteEngine On\nRewriteRule ^/SOGo/(.*) http://B/SOGo/$1 [P]\n", "", "-", "-", "no ProxyPass"},
		{"RewriteOptions Inherit", "RewriteEngine On\nRewriteRule ^/SOGo/(.*) http://B/SOGo/$1 [P]\n", "RewriteEngine On\nRewriteOptions Inherit\n", "B/SOGo/dav/", "-", "no ProxyPass"},
		{"inside an <IfModule> of a module not loaded", "<IfModule mod_nope.c>\nProxyPass /SOGo http://B/SOGo\n</IfModule>\n", "", "-", "-", "no ProxyPass"},
		{"balancer (SOGo's Debian sample)", "<Proxy balancer://sogocluster>\n  BalancerMember http://B retry=1 max=1 timeout=120\n  ProxySet lbmethod=byrequests maxattempts=1\n</Proxy>\nProxyPass /SOGo balancer://sogocluster/SOGo\n", "", "B/SOGo/dav/", "-", "no ProxyPass"},
		{"vhost ProxyPass to a path without the prefix", "", "ProxyPass /SOGo/ http://B/\n", "B/dav/", "-", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			port := freePort(t)
			subst := func(s string) string { return strings.ReplaceAll(s, "http://B", "http://"+b) }
			snakeoil(t, dir)
			testtool.WriteFiles(t, dir, map[string]string{"conf/main.conf": fmt.Sprintf(`LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule socache_shmcb_module /usr/lib/apache2/modules/mod_socache_shmcb.so
LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_http_module /usr/lib/apache2/modules/mod_proxy_http.so
LoadModule rewrite_module /usr/lib/apache2/modules/mod_rewrite.so
LoadModule headers_module /usr/lib/apache2/modules/mod_headers.so
LoadModule setenvif_module /usr/lib/apache2/modules/mod_setenvif.so
LoadModule env_module /usr/lib/apache2/modules/mod_env.so
LoadModule slotmem_shm_module /usr/lib/apache2/modules/mod_slotmem_shm.so
LoadModule proxy_balancer_module /usr/lib/apache2/modules/mod_proxy_balancer.so
LoadModule lbmethod_byrequests_module /usr/lib/apache2/modules/mod_lbmethod_byrequests.so
ServerName localhost
ErrorLog %[1]s/log/error.log
PidFile %[1]s/run/httpd.pid
DefaultRuntimeDir %[1]s/run
Mutex file:%[1]s/run
Listen 127.0.0.1:%[2]d
%[3]s
<VirtualHost *:%[2]d>
  ServerName mail.example.org
  SSLEngine on
  SSLCertificateFile %[1]s/etc/ssl/certs/ssl-cert-snakeoil.pem
  SSLCertificateKeyFile %[1]s/etc/ssl/private/ssl-cert-snakeoil.key
%[4]s
</VirtualHost>
`, dir, port, subst(tt.main), subst(tt.vhost))})
			root, err := hostfs.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Read(root, Layout{Conf: "/conf/main.conf", ServerRoot: "/conf"}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			g := cfg.FindGroupware()
			v := g.Default()
			if v == nil {
				t.Fatalf("FindGroupware() has no default vhost: %+v", g)
			}

			stop := startApache(t, bin, dir)
			defer stop()
			for _, c := range []struct {
				path, want string
				p          *Proxy
			}{{PathDAV, tt.dav, v.DAV}, {PathEAS, tt.eas, v.EAS}} {
				mu.Lock()
				got = nil
				mu.Unlock()
				status := request(t, port, c.path)
				mu.Lock()
				reached := strings.Join(got, ",")
				mu.Unlock()
				real := "-"
				if reached != "" {
					real = "B" + reached
				}
				ours := "-"
				if c.p != nil {
					ours = "B" + c.p.Backend
					if len(c.p.Addrs) != 1 || c.p.Addrs[0] != b || !c.p.Loopback {
						ours = fmt.Sprintf("%v%s", c.p.Addrs, c.p.Backend)
					}
				}
				if c.want == "?" {
					// httpd's answer contradicts its documentation:
					// FindGroupware must not claim the path.
					if ours != "-" {
						t.Errorf("FindGroupware: %s → %s, want it undecided (apache2: %s)", c.path, ours, real)
					}
					if !strings.Contains(missingOf(v, c.path), tt.expectReason) {
						t.Errorf("Missing for %s = %q, want it to say %q", c.path, missingOf(v, c.path), tt.expectReason)
					}
					t.Logf("%s: apache2 gives %s", c.path, real)
					continue
				}
				if real != c.want {
					t.Errorf("apache2 handled %s with %d, backend asked for %q; the case expects %s", c.path, status, reached, c.want)
				}
				if ours != real {
					t.Errorf("FindGroupware: %s → %s (%+v, missing %q), apache2: %s (status %d)", c.path, ours, c.p, v.Missing, real, status)
				}
				if ours == "-" && tt.expectReason != "" && (c.path == PathDAV || tt.dav != "-" && tt.dav != "?") && !strings.Contains(missingOf(v, c.path), tt.expectReason) {
					t.Errorf("Missing for %s = %q, want it to say %q", c.path, missingOf(v, c.path), tt.expectReason)
				}
			}
		})
	}
}

func missingOf(v *Vhost, p string) string {
	for _, m := range v.Missing {
		if strings.HasPrefix(m, p+": ") {
			return m
		}
	}
	return ""
}

// sogoSample is the proxying part of SOGo's Apache/SOGo.conf, with its
// ActiveSync lines uncommented or not.
func sogoSample(eas bool) string {
	b, err := os.ReadFile(filepath.Join(fixture, "etc/apache2/conf-available/SOGo.conf"))
	if err != nil {
		panic(err)
	}
	s := string(b)
	if eas {
		s = strings.Replace(s, "#ProxyPass /Microsoft-Server-ActiveSync \\\n# http", "ProxyPass /Microsoft-Server-ActiveSync \\\n http", 1)
		s = strings.Replace(s, "# retry=60", " retry=60", 1)
	}
	// The <Directory> and Alias parts need modules the test does not load.
	s = s[strings.Index(s, "ProxyRequests Off"):]
	s = strings.ReplaceAll(s, "Order allow,deny\n  Allow from all\n", "")
	return strings.ReplaceAll(s, "127.0.0.1:20000", "B")[0:]
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startApache starts apache2 in the foreground on the tree in dir and
// returns a function that stops it.
func startApache(t *testing.T, bin, dir string) func() {
	t.Helper()
	for _, d := range []string{"run", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-d", dir+"/conf", "-f", dir+"/conf/main.conf", "-D", "FOREGROUND", "-X")
	var errb strings.Builder
	cmd.Stdout, cmd.Stderr = &errb, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stop := func() {
		if err := testtool.StopProcess("apache2", cmd, done, syscall.SIGTERM, 5*time.Second); err != nil {
			t.Error(err)
		}
	}
	pidFile := filepath.Join(dir, "run/httpd.pid")
	for deadline := time.Now().Add(10 * time.Second); ; {
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "log/error.log"))
			t.Fatalf("apache2 exited: %s\n%s", errb.String(), log)
		default:
		}
		if _, err := os.Stat(pidFile); err == nil {
			return stop
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("apache2 did not start: %s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// request asks apache2 for path over TLS and returns the status.
func request(t *testing.T, port int, path string) int {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "mail.example.org"}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var resp *http.Response
	var err error
	for i := 0; i < 50; i++ {
		req, _ := http.NewRequest("GET", fmt.Sprintf("https://127.0.0.1:%d%s", port, path), nil)
		req.Host = "mail.example.org"
		resp, err = cl.Do(req)
		if err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
