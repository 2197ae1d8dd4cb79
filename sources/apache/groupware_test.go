package apache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// proxySum is a Proxy in one word: addresses, backend path, the
// directive's line, "!lo" when not loopback.
func proxySum(p *Proxy) string {
	if p == nil {
		return "-"
	}
	s := strings.Join(p.Addrs, ",") + p.Backend + fmt.Sprintf("@%d", p.Pos.Line)
	if p.Balancer != "" {
		s = p.Balancer + "=" + s
	}
	if !p.Loopback {
		s += "!lo"
	}
	return s
}

// TestFindGroupwareSOGo reads Debian's layout with SOGo's sample: the
// default-ssl vhost inherits the sample's server-level ProxyPass /SOGo;
// ActiveSync is commented out there.
func TestFindGroupwareSOGo(t *testing.T) {
	root, err := hostfs.New(fixture)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Read(root, Debian, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Notes) != 0 {
		t.Errorf("Notes = %q, want none (envvars defines every variable)", cfg.Notes)
	}
	if got := cfg.Env["APACHE_LOG_DIR"]; got != "/var/log/apache2" {
		t.Errorf("APACHE_LOG_DIR from envvars = %q, want /var/log/apache2", got)
	}
	g := cfg.FindGroupware()
	if len(g.Vhosts) != 1 {
		t.Fatalf("FindGroupware() found %d TLS vhosts, want 1 (default-ssl.conf)", len(g.Vhosts))
	}
	v := g.Default()
	if v == nil || v.Pos.String() != "/etc/apache2/sites-enabled/default-ssl.conf:1" || v.Port != 443 || !v.SSL {
		t.Fatalf("Default() = %+v, want the *:443 vhost at default-ssl.conf:1", v)
	}
	const sogo = "/etc/apache2/conf-enabled/SOGo.conf"
	for _, w := range []struct {
		name    string
		p       *Proxy
		backend string
	}{{"SOGo", v.SOGo, "/SOGo/"}, {"DAV", v.DAV, "/SOGo/dav/"}} {
		p := w.p
		if p == nil {
			t.Errorf("%s: not found; missing: %q", w.name, v.Missing)
			continue
		}
		if p.Pos.String() != sogo+":83" || p.Location != p.Pos || p.Directive != "ProxyPass" || p.Match != "/SOGo" ||
			p.Target != "http://127.0.0.1:20000/SOGo" || p.URI != "/SOGo" || p.Backend != w.backend ||
			strings.Join(p.Addrs, ",") != "127.0.0.1:20000" || !p.Loopback || p.TLS {
			t.Errorf("%s = %+v, want ProxyPass /SOGo at %s:83 to 127.0.0.1:20000%s", w.name, p, sogo, w.backend)
		}
	}
	if v.EAS != nil || len(v.Missing) != 1 || !strings.HasPrefix(v.Missing[0], PathEAS+": no ProxyPass") {
		t.Errorf("EAS = %+v, Missing = %q; want ActiveSync missing (commented out in the sample)", v.EAS, v.Missing)
	}
}

// TestFindGroupwareCases covers what only the reading decides, on the
// Debian fixture with one file changed or added.
func TestFindGroupwareCases(t *testing.T) {
	const sogoConf = "etc/apache2/conf-available/SOGo.conf"
	sample, err := os.ReadFile(filepath.Join(fixture, sogoConf))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		files   map[string]string // written over a copy of the fixture
		remove  []string
		want    string // "dav=... eas=..."
		missing string // part of a Missing entry
		notes   string // part of Notes or the vhost's notes
	}{
		{"ActiveSync uncommented", map[string]string{sogoConf: strings.Replace(strings.Replace(string(sample),
			"#ProxyPass /Microsoft-Server-ActiveSync \\\n# http", "ProxyPass /Microsoft-Server-ActiveSync \\\n http", 1), "# retry=60", " retry=60", 1)},
			nil, "dav=127.0.0.1:20000/SOGo/dav/@83 eas=127.0.0.1:20000/SOGo/Microsoft-Server-ActiveSync@79", "", ""},
		{"mod_proxy not enabled", nil, []string{"etc/apache2/mods-enabled/proxy.load", "etc/apache2/mods-enabled/proxy.conf"},
			"dav=- eas=-", "mod_proxy is not loaded", ""},
		{"mod_proxy_http not enabled", nil, []string{"etc/apache2/mods-enabled/proxy_http.load"},
			"dav=- eas=-", "mod_proxy_http is not loaded", ""},
		{"SOGo.conf not enabled", nil, []string{"etc/apache2/conf-enabled/SOGo.conf"}, "dav=- eas=-", "no ProxyPass", ""},
		{"ProxyPass to a variable", map[string]string{"etc/apache2/conf-enabled/00-z.conf": "Define BACK 127.0.0.1:20000\nProxyPass /Microsoft-Server-ActiveSync http://${BACK}/SOGo/Microsoft-Server-ActiveSync\nProxyPass /SOGo/dav http://${NOPE}/SOGo/dav\n"},
			nil, "dav=@3!lo eas=127.0.0.1:20000/SOGo/Microsoft-Server-ActiveSync@2", "", "${NOPE} is not defined"},
		{"RewriteRule under a RewriteCond", map[string]string{"etc/apache2/sites-enabled/default-ssl.conf": "<VirtualHost *:443>\nSSLEngine on\nRewriteEngine On\nRewriteCond %{HTTP_HOST} ^mail\nRewriteRule ^/SOGo/dav/(.*) http://127.0.0.1:20000/SOGo/dav/$1 [P]\n</VirtualHost>\n"},
			nil, "dav=- eas=-", "RewriteCond", ""},
		{"RewriteRule [P] to a server variable", map[string]string{"etc/apache2/sites-enabled/default-ssl.conf": "<VirtualHost *:443>\nSSLEngine on\nRewriteEngine On\nRewriteRule ^/(Microsoft-Server-ActiveSync)$ http://%{HTTP_HOST}:20000/SOGo/$1 [P]\n</VirtualHost>\n"},
			nil, "dav=127.0.0.1:20000/SOGo/dav/@83 eas=-", "only a request resolves", ""},
		{"proxy to another host", map[string]string{"etc/apache2/conf-enabled/z.conf": "ProxyPass /Microsoft-Server-ActiveSync https://sogo.internal/SOGo/Microsoft-Server-ActiveSync\n"},
			nil, "dav=127.0.0.1:20000/SOGo/dav/@83 eas=sogo.internal:443/SOGo/Microsoft-Server-ActiveSync@1!lo", "", ""},
		{"unix socket", map[string]string{"etc/apache2/conf-enabled/z.conf": "ProxyPass /Microsoft-Server-ActiveSync unix:/run/sogo.sock|http://localhost/SOGo/Microsoft-Server-ActiveSync\n"},
			nil, "dav=127.0.0.1:20000/SOGo/dav/@83 eas=unix:/run/sogo.sock/SOGo/Microsoft-Server-ActiveSync@1", "", ""},
		{"443 without SSLEngine", map[string]string{"etc/apache2/sites-enabled/default-ssl.conf": "<VirtualHost *:443>\n</VirtualHost>\n"},
			nil, "dav=- eas=-", "without SSLEngine on", ""},
		{"proxying inside <If>", map[string]string{"etc/apache2/conf-enabled/z.conf": "<If \"%{HTTP_HOST} == 'x'\">\nProxyPass /Microsoft-Server-ActiveSync http://127.0.0.1:20000/x\n</If>\n"},
			nil, "dav=127.0.0.1:20000/SOGo/dav/@83 eas=-", "no ProxyPass", "proxying inside <If> is not followed"},
		{"regular expression Go cannot read", map[string]string{"etc/apache2/conf-enabled/z.conf": "ProxyPassMatch ^/(?!SOGo) http://127.0.0.1:8080/\n"},
			nil, "dav=127.0.0.1:20000/SOGo/dav/@83 eas=-", "ProxyPassMatch ^/(?!SOGo) at /etc/apache2/conf-enabled/z.conf:1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			testtool.CopyTree(t, fixture, dir)
			for _, r := range tt.remove {
				if err := os.Remove(filepath.Join(dir, r)); err != nil {
					t.Fatal(err)
				}
			}
			for p := range tt.files {
				os.Remove(filepath.Join(dir, p)) // a link to the fixture's file
			}
			testtool.WriteFiles(t, dir, tt.files)
			root, err := hostfs.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Read(root, Debian, Options{})
			if err != nil {
				t.Fatal(err)
			}
			g := cfg.FindGroupware()
			v := g.Default()
			if v == nil && len(g.Vhosts) > 0 {
				v = g.Vhosts[0] // not TLS: no default
			}
			if v == nil {
				t.Fatalf("no default vhost in %+v", g)
			}
			if got := fmt.Sprintf("dav=%s eas=%s", proxySum(v.DAV), proxySum(v.EAS)); got != tt.want {
				t.Errorf("FindGroupware() = %s, want %s; missing %q", got, tt.want, v.Missing)
			}
			if tt.missing != "" && !strings.Contains(strings.Join(v.Missing, "\n"), tt.missing) {
				t.Errorf("Missing = %q, want one saying %q", v.Missing, tt.missing)
			}
			if notes := strings.Join(append(g.Notes, v.Notes...), "\n"); tt.notes != "" && !strings.Contains(notes, tt.notes) {
				t.Errorf("Notes = %q, want one saying %q", notes, tt.notes)
			}
		})
	}
}

// TestFind tells the layouts apart and a host without httpd.
func TestFind(t *testing.T) {
	root, _ := hostfs.New(fixture)
	if l, err := Find(root); err != nil || l != Debian {
		t.Errorf("Find(fixture) = %+v, %v; want Debian", l, err)
	}
	dir := t.TempDir()
	empty, _ := hostfs.New(dir)
	if _, err := Find(empty); !errors.Is(err, ErrNoConfig) {
		t.Errorf("Find(empty) = %v, want ErrNoConfig", err)
	}
	if _, err := Read(empty, RedHat, Options{}); !errors.Is(err, ErrNoConfig) {
		t.Errorf("Read(empty) = %v, want ErrNoConfig", err)
	}
	testtool.WriteFiles(t, dir, map[string]string{"etc/httpd/conf/httpd.conf": "Include conf.d/*.conf\n", "etc/httpd/conf.d/a.conf": "Listen 443\n"})
	if l, err := Find(empty); err != nil || l != RedHat {
		t.Errorf("Find(Red Hat tree) = %+v, %v; want RedHat", l, err)
	}
	cfg, err := Read(empty, RedHat, Options{})
	if err != nil || len(cfg.Files) != 2 || cfg.Files[1].Path != "/etc/httpd/conf.d/a.conf" {
		t.Errorf("Read(Red Hat tree) = %+v, %v; want conf.d/a.conf read relative to /etc/httpd", cfg, err)
	}
}

// TestReadDirectoryLoop reads a directory that holds a link to itself:
// an error naming the Include, not endless recursion.
func TestReadDirectoryLoop(t *testing.T) {
	dir := t.TempDir()
	testtool.WriteFiles(t, dir, map[string]string{"conf/main.conf": "# x\nInclude d\n", "conf/d/a.conf": "# a\n"})
	if err := os.Symlink(".", filepath.Join(dir, "conf/d/loop")); err != nil {
		t.Fatal(err)
	}
	root, _ := hostfs.New(dir)
	_, err := Read(root, Layout{Conf: "/conf/main.conf", ServerRoot: "/conf"}, Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "/conf/main.conf:2: ") {
		t.Errorf("Read = %v, want an error at /conf/main.conf:2", err)
	}
}
