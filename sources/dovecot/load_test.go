package dovecot

import (
	"strings"
	"testing"
)

const conf = "/etc/dovecot/dovecot.conf"

func TestLoadSettings(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  map[string]string // setting → value; "@" + name for ProtocolSetting("imap", name)
		pos   map[string]string // setting → position
	}{
		{
			name: "relative glob and try includes in order",
			files: map[string]string{
				conf:                             "protocols = imap\n!include conf.d/*.conf\n!include_try local.conf\n!include_try nothing.d/*.conf\n!include_try /etc/dovecot/nofile.conf\n",
				"/etc/dovecot/conf.d/10-a.conf":  "ssl = required\n!include ../sub/b.conf\n",
				"/etc/dovecot/conf.d/20-b.conf":  "ssl = no\n",
				"/etc/dovecot/conf.d/.hide.conf": "ssl = hidden\n",
				"/etc/dovecot/sub/b.conf":        "listen = 10.0.0.1\n",
				"/etc/dovecot/local.conf":        "protocols = $protocols pop3\n",
			},
			want: map[string]string{"ssl": "no", "listen": "10.0.0.1", "protocols": "imap pop3"},
			pos:  map[string]string{"ssl": "/etc/dovecot/conf.d/20-b.conf:1", "protocols": "/etc/dovecot/local.conf:1", "listen": "/etc/dovecot/sub/b.conf:1"},
		},
		{
			name:  "braces",
			files: map[string]string{conf: "!include {x,y}.conf\n", "/etc/dovecot/x.conf": "ssl = no\n", "/etc/dovecot/y.conf": "listen = *\n"},
			want:  map[string]string{"ssl": "no", "listen": "*"},
		},
		{
			name:  "defaults",
			files: map[string]string{conf: "\n"},
			want: map[string]string{"protocols": "imap pop3 lmtp", "listen": "*, ::", "ssl": "yes", "disable_plaintext_auth": "yes",
				"auth_mechanisms": "plain", "auth_username_format": "%Lu", "submission_relay_port": "25"},
			pos: map[string]string{"ssl": "default"},
		},
		{
			name:  "debian protocols default",
			files: map[string]string{conf: "!include_try /usr/share/dovecot/protocols.d/*.protocol\n", "/usr/share/dovecot/protocols.d/imapd.protocol": "protocols = $protocols imap\n"},
			want:  map[string]string{"protocols": " imap"},
		},
		{
			name:  "variables",
			files: map[string]string{conf: "protocols = imap\nprotocols = $protocols  pop3\nlisten = $ssl x\nhostname = \"$ssl\"\nauth_mechanisms = $nosuch y\n"},
			want:  map[string]string{"protocols": "imap  pop3", "listen": "yes x", "hostname": "$ssl", "auth_mechanisms": "$nosuch y"},
		},
		{
			name: "file values",
			files: map[string]string{
				conf:                  "auth_mechanisms = <mechs\nssl_cert = <certs/x.pem\nssl_key = </nonexistent/key.pem\n",
				"/etc/dovecot/mechs":  "plain login\n",
				"/etc/dovecot/certs/": "",
			},
			want: map[string]string{"auth_mechanisms": "plain login", "ssl_cert": "<certs/x.pem", "ssl_key": "</nonexistent/key.pem"},
		},
		{
			name: "protocol filters",
			files: map[string]string{conf: "ssl = yes\nprotocol imap {\n  ssl = required\n  mail_plugins = $mail_plugins imap_quota\n}\n" +
				"protocol pop3 {\n  ssl = no\n}\nlocal 127.0.0.1 {\n  protocol imap {\n    ssl = no\n  }\n}\nmail_plugins = acl\n"},
			want: map[string]string{"ssl": "yes", "@ssl": "required", "@mail_plugins": "$mail_plugins imap_quota", "@listen": "*, ::", "mail_plugins": "acl"},
			pos:  map[string]string{"@ssl": "/etc/dovecot/dovecot.conf:3"},
		},
		{
			name:  "section spans files",
			files: map[string]string{conf: "protocol imap {\n!include inner.conf\n", "/etc/dovecot/inner.conf": "ssl = no\n}\n"},
			want:  map[string]string{"ssl": "yes", "@ssl": "no"},
		},
		{
			name:  "ignored sections",
			files: map[string]string{conf: "plugin {\n  ssl = no\n  sieve {\n  listen = x\n  }\n}\nnamespace inbox {\n  mailbox \"Sent Messages\" {\n  }\n}\n"},
			want:  map[string]string{"ssl": "yes", "listen": "*, ::"},
		},
		{
			name:  "2.4 set expansion",
			files: map[string]string{conf: "dovecot_config_version = 2.4.0\nhostname = mx\nk = a\nk = $SET:k b\nj = $SET:hostname x\nhostname = later\n"},
			want:  map[string]string{"k": "a b", "j": "later x", "protocols": "", "auth_allow_cleartext": "no"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeRoot(t, tt.files), conf)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			for k, want := range tt.want {
				var got string
				if name, ok := strings.CutPrefix(k, "@"); ok {
					got, _ = c.ProtocolSetting("imap", name)
				} else {
					got, _ = c.Setting(k)
				}
				if got != want {
					t.Errorf("Setting(%q) = %q, want %q", k, got, want)
				}
			}
			for k, want := range tt.pos {
				var got string
				if name, ok := strings.CutPrefix(k, "@"); ok {
					_, p := c.ProtocolSetting("imap", name)
					got = p.String()
				} else {
					_, p := c.Setting(k)
					got = p.String()
				}
				if got != want {
					t.Errorf("Setting(%q) pos = %s, want %s", k, got, want)
				}
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string // each must appear in the error
	}{
		{"missing include", map[string]string{conf: "ssl = yes\n!include conf.d/missing.conf\n"},
			[]string{"/etc/dovecot/dovecot.conf:2: !include conf.d/missing.conf: stat /etc/dovecot/conf.d/missing.conf: no such file or directory"}},
		{"glob without match", map[string]string{conf: "!include conf.d/*.conf\n"},
			[]string{"/etc/dovecot/dovecot.conf:1: !include conf.d/*.conf: no matching files"}},
		{"include loop", map[string]string{conf: "!include a.conf\n", "/etc/dovecot/a.conf": "\n!include dovecot.conf\n"},
			[]string{"/etc/dovecot/a.conf:2: !include dovecot.conf: recursive include of /etc/dovecot/dovecot.conf"}},
		{"syntax in included file", map[string]string{conf: "!include a.conf\n", "/etc/dovecot/a.conf": "ssl yes\n"},
			[]string{`/etc/dovecot/a.conf:1: expecting '{' or '=' after "ssl"`}},
		{"unbalanced over the tree", map[string]string{conf: "service imap-login {\n!include a.conf\n", "/etc/dovecot/a.conf": "\n"},
			[]string{"/etc/dovecot/dovecot.conf:1: missing '}'"}},
		{"extra brace", map[string]string{conf: "ssl = yes\n}\n"}, []string{"/etc/dovecot/dovecot.conf:2: unexpected '}'"}},
		{"bad port", map[string]string{conf: "service imap-login {\n inet_listener imap {\n  port = 99999\n }\n}\n"},
			[]string{`/etc/dovecot/dovecot.conf:3: service imap-login inet_listener imap: invalid port "99999"`}},
		{"bad bool", map[string]string{conf: "disable_plaintext_auth = maybe\n"},
			[]string{`/etc/dovecot/dovecot.conf:1: disable_plaintext_auth: invalid boolean value "maybe" (use yes or no)`}},
		{"bad ssl", map[string]string{conf: "ssl = sometimes\n"}, []string{`/etc/dovecot/dovecot.conf:1: ssl: invalid value "sometimes"`}},
		{"unreadable wanted file value", map[string]string{conf: "auth_mechanisms = </etc/dovecot/none\n"},
			[]string{"/etc/dovecot/dovecot.conf:1: auth_mechanisms: read /etc/dovecot/none: no such file or directory"}},
		{"every error", map[string]string{conf: "a b\n!include x.conf\nssl = sometimes\n"},
			[]string{"dovecot.conf:1:", "dovecot.conf:2:", "dovecot.conf:3:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeRoot(t, tt.files), conf)
			if err == nil {
				t.Fatalf("Load succeeded, want errors %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load error = %v, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadMainFileMissing(t *testing.T) {
	_, err := Load(writeRoot(t, map[string]string{"/etc/hostname": "x\n"}), conf)
	if err == nil || !strings.Contains(err.Error(), "read /etc/dovecot/dovecot.conf") {
		t.Errorf("Load error = %v, want it to name /etc/dovecot/dovecot.conf", err)
	}
}

func TestListenersAndEffective(t *testing.T) {
	files := map[string]string{
		conf: `protocols = imap submission
listen = 192.0.2.1, ::1
ssl = required
disable_plaintext_auth = no
auth_mechanisms = PLAIN Login
ssl_cert = <certs/cert.pem
ssl_key = <certs/key.pem
submission_relay_host = smtp.internal
submission_relay_port = 2525
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    address = 127.0.0.1
    ssl = yes
  }
  inet_listener alt {
    port = 8143
    haproxy = yes
  }
  inet_listener {
    port = 9143
  }
}
service submission-login {
  inet_listener submission {
    port = 587
  }
}
service lmtp {
  inet_listener lmtp {
    port = 24
  }
}
remote 10.0.0.0/8 {
  ssl = yes
  local_name "a.example.org b.example.org" {
    ssl_cert = </etc/ssl/ab.pem
  }
}
local_name mail.example.org {
  ssl_cert = </etc/ssl/mail.pem
  ssl_key = </etc/ssl/mail.key
}
protocol pop3 {
  mail_max_userip_connections = 10
}
`,
	}
	c, err := Load(writeRoot(t, files), conf)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`imap-login/ 9143 ssl=false haproxy=false enabled=true loopback=false starttls-required ["192.0.2.1" "::1"]`,
		`imap-login/alt 8143 ssl=false haproxy=true enabled=true loopback=false starttls-required ["192.0.2.1" "::1"]`,
		`imap-login/imap 0 ssl=false haproxy=false enabled=true loopback=false starttls-required ["192.0.2.1" "::1"]`,
		`imap-login/imaps 993 ssl=true haproxy=false enabled=true loopback=true implicit ["127.0.0.1"]`,
		`managesieve-login/sieve 4190 ssl=false haproxy=false enabled=false loopback=false starttls-required ["192.0.2.1" "::1"]`,
		`pop3-login/pop3 110 ssl=false haproxy=false enabled=false loopback=false starttls-required ["192.0.2.1" "::1"]`,
		`pop3-login/pop3s 995 ssl=true haproxy=false enabled=false loopback=false implicit ["192.0.2.1" "::1"]`,
		`submission-login/submission 587 ssl=false haproxy=false enabled=true loopback=false starttls-required ["192.0.2.1" "::1"]`,
	}
	ls := c.Listeners()
	if len(ls) != len(want) {
		t.Fatalf("Listeners() has %d, want %d", len(ls), len(want))
	}
	for i := range want {
		if got := lis(ls[i]); got != want[i] {
			t.Errorf("Listeners()[%d] = %s, want %s", i, got, want[i])
		}
	}
	if p := ls[3].Pos.String(); p != "/etc/dovecot/dovecot.conf:14" {
		t.Errorf("imaps Pos = %s, want its block's line", p)
	}
	if p := ls[2].Pos.String(); p != "/etc/dovecot/dovecot.conf:12" {
		t.Errorf("imap Pos = %s, want its port's line", p)
	}
	if p := ls[4].Pos; !p.IsZero() {
		t.Errorf("sieve Pos = %s, want default", p)
	}
	e := c.Effective()
	if e.CertFile != "/etc/dovecot/certs/cert.pem" || e.KeyFile != "/etc/dovecot/certs/key.pem" || e.CertPos.Line != 6 {
		t.Errorf("CertFile, KeyFile, CertPos = %q, %q, %s", e.CertFile, e.KeyFile, e.CertPos)
	}
	if !e.PlaintextAuthAllowed || strings.Join(e.AuthMechanisms, " ") != "PLAIN Login" {
		t.Errorf("PlaintextAuthAllowed, AuthMechanisms = %v, %q", e.PlaintextAuthAllowed, e.AuthMechanisms)
	}
	if e.SubmissionRelayHost != "smtp.internal" || e.SubmissionRelayPort != 2525 {
		t.Errorf("submission relay = %s:%d", e.SubmissionRelayHost, e.SubmissionRelayPort)
	}
	var filters []string
	for _, f := range e.Filters {
		filters = append(filters, strings.Join(append(f.Within, f.Kind+" "+f.Arg), " / ")+" "+f.Pos.String())
	}
	wantFilters := "remote 10.0.0.0/8 /etc/dovecot/dovecot.conf:36|remote 10.0.0.0/8 / local_name a.example.org b.example.org /etc/dovecot/dovecot.conf:38|local_name mail.example.org /etc/dovecot/dovecot.conf:42"
	if got := strings.Join(filters, "|"); got != wantFilters {
		t.Errorf("Filters = %s, want %s", got, wantFilters)
	}
	if len(e.LocalNameCerts) != 2 || strings.Join(e.LocalNameCerts[0].Names, ",") != "a.example.org,b.example.org" ||
		e.LocalNameCerts[1].CertFile != "/etc/ssl/mail.pem" || e.LocalNameCerts[1].KeyFile != "/etc/ssl/mail.key" {
		t.Errorf("LocalNameCerts = %+v", e.LocalNameCerts)
	}
	files2 := c.Files()
	if len(files2) == 0 || files2[0] != conf || !strings.Contains(strings.Join(files2, " "), "/etc/dovecot/certs/cert.pem") {
		t.Errorf("Files() = %q", files2)
	}
}
