package nginx

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// proxySum is a Proxy in one word: addresses, URI, the proxy_pass line,
// "!lo" when not loopback.
func proxySum(p *Proxy) string {
	if p == nil {
		return "-"
	}
	s := strings.Join(p.Addrs, ",") + p.URI + fmt.Sprintf("@%d", p.Pos.Line)
	if p.Upstream != "" {
		s = p.Upstream + "=" + s
	}
	if !p.Loopback {
		s += "!lo"
	}
	return s
}

func wellKnownSum(w *WellKnown) string {
	switch {
	case w == nil:
		return "-"
	case w.Proxy != nil:
		return "proxy:" + proxySum(w.Proxy)
	}
	return fmt.Sprintf("%d:%s@%d", w.Status, w.Target, w.Pos.Line)
}

func vhostSum(v *Vhost) string {
	if v == nil {
		return "no default vhost"
	}
	return fmt.Sprintf("sogo=%s dav=%s eas=%s caldav=%s carddav=%s",
		proxySum(v.SOGo), proxySum(v.DAV), proxySum(v.EAS), wellKnownSum(v.CalDAV), wellKnownSum(v.CardDAV))
}

// TestFindGroupwareIRedMail reads iRedMail's tree with its real sogo.tmpl.
func TestFindGroupwareIRedMail(t *testing.T) {
	root, err := hostfs.New("../../testdata/groupware/iredmail-sogo")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Read(root, DefaultConf)
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.FindGroupware()
	if len(g.Vhosts) != 1 {
		t.Fatalf("FindGroupware() found %d HTTPS vhosts, want 1 (00-default-ssl.conf)", len(g.Vhosts))
	}
	v := g.Default()
	if v == nil || v.Pos.String() != "/etc/nginx/sites-enabled/00-default-ssl.conf:5" {
		t.Fatalf("Default() = %+v, want the server at 00-default-ssl.conf:5", v)
	}
	const tmpl = "/etc/nginx/templates/sogo.tmpl"
	want := []struct {
		name     string
		p        *Proxy
		loc, pos string
		match    string
		uri      string
	}{
		{"SOGo", v.SOGo, tmpl + ":14", tmpl + ":17", "^~ /SOGo/", ""},
		{"DAV", v.DAV, tmpl + ":14", tmpl + ":17", "^~ /SOGo/", ""},
		{"EAS", v.EAS, tmpl + ":35", tmpl + ":36", "^~ /Microsoft-Server-ActiveSync", "/SOGo/Microsoft-Server-ActiveSync"},
	}
	for _, w := range want {
		p := w.p
		if p == nil {
			t.Errorf("%s: not found; missing: %q", w.name, v.Missing)
			continue
		}
		if p.Location.String() != w.loc || p.Pos.String() != w.pos || p.Match != w.match || p.URI != w.uri ||
			!p.Loopback || strings.Join(p.Addrs, ",") != "127.0.0.1:20000" || p.TLS {
			t.Errorf("%s = %+v, want location %s %q, proxy_pass at %s to 127.0.0.1:20000%s on loopback", w.name, p, w.loc, w.match, w.pos, w.uri)
		}
	}
	for _, w := range []struct {
		got  *WellKnown
		want string
	}{{v.CalDAV, "301 /SOGo/dav at " + tmpl + ":10"}, {v.CardDAV, "301 /SOGo/dav at " + tmpl + ":11"}} {
		if w.got == nil || fmt.Sprintf("%d %s at %s", w.got.Status, w.got.Target, w.got.Pos) != w.want {
			t.Errorf("well-known = %+v, want %s", w.got, w.want)
		}
	}
	if len(v.Missing) != 0 {
		t.Errorf("Missing = %q, want none", v.Missing)
	}
}

// TestFindGroupwareIRedMailDisabled turns parts of the iRedMail tree off
// the way admins do: commenting out the EAS locations (iRedMail's
// documented way to turn EAS off), or the include of sogo.tmpl.
func TestFindGroupwareIRedMailDisabled(t *testing.T) {
	tests := []struct {
		name, file string
		from, to   int // 1-based lines to comment out
		want       string
		missing    string
	}{
		{"EAS locations commented out", "etc/nginx/templates/sogo.tmpl", 35, 57,
			"sogo=127.0.0.1:20000@17 dav=127.0.0.1:20000@17 eas=- caldav=301:/SOGo/dav@10 carddav=301:/SOGo/dav@11",
			"/Microsoft-Server-ActiveSync: no location of the server at /etc/nginx/sites-enabled/00-default-ssl.conf:5 matches"},
		{"only /Microsoft-Server-ActiveSync commented out", "etc/nginx/templates/sogo.tmpl", 35, 45,
			"sogo=127.0.0.1:20000@17 dav=127.0.0.1:20000@17 eas=- caldav=301:/SOGo/dav@10 carddav=301:/SOGo/dav@11",
			"/Microsoft-Server-ActiveSync: no location"},
		{"sogo.tmpl not included", "etc/nginx/sites-available/00-default-ssl.conf", 17, 17,
			"sogo=- dav=- eas=- caldav=- carddav=-",
			"/.well-known/caldav: location ~ ^/.well-known/ at /etc/nginx/templates/misc.tmpl:2 neither redirects nor proxies"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			testtool.CopyTree(t, "../../testdata/groupware/iredmail-sogo", dir)
			p := filepath.Join(dir, tt.file)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(string(b), "\n")
			for i := tt.from - 1; i < tt.to; i++ {
				lines[i] = "#" + lines[i]
			}
			if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
				t.Fatal(err)
			}
			root, err := hostfs.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Read(root, DefaultConf)
			if err != nil {
				t.Fatal(err)
			}
			v := cfg.FindGroupware().Default()
			if got := vhostSum(v); got != tt.want {
				t.Errorf("FindGroupware() = %s, want %s", got, tt.want)
			}
			if m := strings.Join(v.Missing, "\n"); !strings.Contains(m, tt.missing) {
				t.Errorf("Missing = %s\nwant it to contain %q", m, tt.missing)
			}
		})
	}
}

// TestFindGroupware covers nginx's location search and proxy_pass forms
// on small configurations; each server block is put in http {}.
func TestFindGroupware(t *testing.T) {
	const sogo = `
        location ^~ /SOGo/ { proxy_pass http://127.0.0.1:20000; }
        location ^~ /Microsoft-Server-ActiveSync { proxy_pass http://127.0.0.1:20000/SOGo/Microsoft-Server-ActiveSync; }
`
	tests := []struct {
		name, http, want string
	}{
		{"no https server", `server { listen 80; ` + sogo + `}`, "no default vhost"},
		{"ssl on old style", `server { listen 443; ssl on; ` + sogo + `}`,
			"sogo=127.0.0.1:20000@2 dav=127.0.0.1:20000@2 eas=127.0.0.1:20000/SOGo/Microsoft-Server-ActiveSync@3 caldav=- carddav=-"},
		{"upstream block", `upstream SOGo { server 127.0.0.1:20000 weight=1; server [::1]:20000; }
    server { listen 443 ssl;
        location ^~ /SOGo { proxy_pass http://sogo; }
    }`, "sogo=SOGo=127.0.0.1:20000,[::1]:20000@3 dav=SOGo=127.0.0.1:20000,[::1]:20000@3 eas=- caldav=- carddav=-"},
		{"not loopback", `server { listen 443 ssl; location /SOGo/ { proxy_pass https://sogo.internal; } }`,
			"sogo=sogo.internal:443@1!lo dav=sogo.internal:443@1!lo eas=- caldav=- carddav=-"},
		{"localhost and unix socket", `server { listen 443 ssl;
        location /SOGo/ { proxy_pass http://localhost:20000; }
        location /Microsoft-Server-ActiveSync { proxy_pass http://unix:/run/sogo.sock:/SOGo/Microsoft-Server-ActiveSync; }
    }`, "sogo=localhost:20000@2 dav=localhost:20000@2 eas=unix:/run/sogo.sock/SOGo/Microsoft-Server-ActiveSync@3 caldav=- carddav=-"},
		{"variable target", `server { listen 443 ssl; location /SOGo/ { proxy_pass http://$sogo; } }`,
			"sogo=@1!lo dav=@1!lo eas=- caldav=- carddav=-"},
		{"exact beats prefix", `server { listen 443 ssl; ` + sogo + ` location = /Microsoft-Server-ActiveSync { return 403; } }`,
			"sogo=127.0.0.1:20000@2 dav=127.0.0.1:20000@2 eas=- caldav=- carddav=-"},
		{"regex beats plain prefix", `server { listen 443 ssl;
        location /SOGo/ { proxy_pass http://127.0.0.1:20000; }
        location ~* /dav/ { deny all; }
    }`, "sogo=127.0.0.1:20000@2 dav=- eas=- caldav=- carddav=-"},
		{"^~ beats regex", `server { listen 443 ssl;
        location ^~ /SOGo/ { proxy_pass http://127.0.0.1:20000; }
        location ~* /dav/ { deny all; }
    }`, "sogo=127.0.0.1:20000@2 dav=127.0.0.1:20000@2 eas=- caldav=- carddav=-"},
		{"longest prefix", `server { listen 443 ssl;
        location / { proxy_pass http://127.0.0.1:8080; }
        location /SOGo/ { proxy_pass http://127.0.0.1:20000; }
        location /SOGo/dav/ { return 404; }
    }`, "sogo=127.0.0.1:20000@3 dav=- eas=127.0.0.1:8080@2 caldav=proxy:127.0.0.1:8080@2 carddav=proxy:127.0.0.1:8080@2"},
		{"nested location", `server { listen 443 ssl;
        location /SOGo/ {
            proxy_pass http://127.0.0.1:20000;
            location /SOGo/dav/ { proxy_pass http://127.0.0.1:20001; }
        }
    }`, "sogo=127.0.0.1:20000@3 dav=127.0.0.1:20001@4 eas=- caldav=- carddav=-"},
		{"server-level return", `server { listen 443 ssl; return 301 https://example.org$request_uri; ` + sogo + `}`,
			"sogo=- dav=- eas=- caldav=301:https://example.org$request_uri@1 carddav=301:https://example.org$request_uri@1"},
		{"well-known by location return", `server { listen 443 ssl; ` + sogo + `
        location = /.well-known/caldav { return 301 /SOGo/dav/; }
        location = /.well-known/carddav { return 302 https://$host/SOGo/dav/; }
    }`, "sogo=127.0.0.1:20000@2 dav=127.0.0.1:20000@2 eas=127.0.0.1:20000/SOGo/Microsoft-Server-ActiveSync@3 caldav=301:/SOGo/dav/@5 carddav=302:https://$host/SOGo/dav/@6"},
		{"rewrite last into a proxied location", `server { listen 443 ssl; ` + sogo + `
        location /dav/ { rewrite ^/dav/(.*)$ /SOGo/dav/$1 last; }
        location /.well-known/ { rewrite ^/.well-known/(cal|card)dav$ /dav/$1 last; }
    }`, "sogo=127.0.0.1:20000@2 dav=127.0.0.1:20000@2 eas=127.0.0.1:20000/SOGo/Microsoft-Server-ActiveSync@3 caldav=proxy:127.0.0.1:20000@2 carddav=proxy:127.0.0.1:20000@2"},
		{"default_server on 443 chosen over a first server", `server { listen 443 ssl; server_name a; }
    server { listen 443 ssl default_server; ` + sogo + `}`,
			"sogo=127.0.0.1:20000@3 dav=127.0.0.1:20000@3 eas=127.0.0.1:20000/SOGo/Microsoft-Server-ActiveSync@4 caldav=- carddav=-"},
		{"PCRE named group in location", `server { listen 443 ssl; location ~ ^/SOGo/(?<rest>.*)$ { proxy_pass http://127.0.0.1:20000; } }`,
			"sogo=127.0.0.1:20000@1 dav=127.0.0.1:20000@1 eas=- caldav=- carddav=-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			testtool.WriteFiles(t, dir, map[string]string{"etc/nginx/nginx.conf": "events {} http { " + tt.http + " }\n"})
			root, err := hostfs.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Read(root, DefaultConf)
			if err != nil {
				t.Fatal(err)
			}
			v := cfg.FindGroupware().Default()
			if got := vhostSum(v); got != tt.want {
				t.Errorf("FindGroupware() on\n%s\n= %s\nwant %s", tt.http, got, tt.want)
				if v != nil {
					t.Logf("missing: %q\nnotes: %q", v.Missing, v.Notes)
				}
			}
		})
	}
}

func TestParseListen(t *testing.T) {
	tests := []struct{ in, want string }{
		{"443 ssl", ":443 ssl=true default=false"},
		{"*:443 ssl default_server", ":443 ssl=true default=true"},
		{"[::]:443 ssl http2", "[::]:443 ssl=true default=false"},
		{"127.0.0.1:8443 ssl default", "127.0.0.1:8443 ssl=true default=true"},
		{"192.0.2.1", "192.0.2.1:80 ssl=false default=false"},
		{"[::1]", "[::1]:80 ssl=false default=false"},
		{"unix:/run/x.sock", "unix:/run/x.sock:0 ssl=false default=false"},
	}
	for _, tt := range tests {
		l := parseListen(&Directive{Name: "listen", Args: strings.Fields(tt.in)})
		if got := fmt.Sprintf("%s ssl=%t default=%t", l.key(), l.SSL, l.Default); got != tt.want {
			t.Errorf("parseListen(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
