package dovecot

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// leafErrors flattens errors.Join trees.
func leafErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leafErrors(e)...)
		}
		return out
	}
	return []error{err}
}

func checkPositioned(t *testing.T, err error) {
	t.Helper()
	for _, e := range leafErrors(err) {
		var pe *hostfs.PosError
		if !errors.As(e, &pe) || pe.Pos.Line < 1 || pe.Pos.File == "" {
			t.Fatalf("error without a position: %v", e)
		}
	}
}

var fuzzSeeds = []string{
	"ssl = yes\n",
	"protocols = \"imap pop3\" # c\nprotocols = $protocols submission\n",
	"service imap-login {\n  inet_listener imaps {\n    port = 993\n    ssl = yes\n  }\n}\n",
	"listen = a \\\n b \\\n# c\n",
	"protocol imap { ssl = yes }\n}\n{\n",
	"k = <<EOF\nx\n",
	"k = <<EOF\n}\nEOF\nmailbox \"Sent Messages {\n",
	"!include conf.d/*.conf\n!include_try {a,b{c,d}}.conf\n!include_try [\n",
	"dovecot_config_version = 2.4.0\nprotocols {\n imap = yes\n pop3 = maybe\n}\nssl_server {\n cert_file = /x\n}\n",
	"local 10.0.0.1 {\n remote 10.0.0.0/8 {\n  protocol imap {\n   disable_plaintext_auth = no\n  }\n }\n}\n",
	"k = '\\\n'\"#\n= x\n}\n",
	"k = $SET:k $SET:j\nj = $SET:k\n",
	"service imap-login {\n inet_listener {\n port = -1\n haproxy = 1\n }\n}\nsubmission_relay_port = x\n",
	"dovecot_config_version = 2.4.1\n@g = v\ngroup @g v {\n ssl = maybe\n ssl_server {\n  cert_file = /c\n }\n protocol imap {\n }\n}\nlocal_name x {\n @g = v\n}\nservice pop3-login {\n listen = ::1\n}\n",
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.conf", bytes.NewReader(data))
		if err != nil {
			checkPositioned(t, err)
		}
		if file == nil {
			t.Fatal("Parse returned no File")
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		for _, l := range file.Lines {
			if l.Pos.Line < 1 || l.Pos.Line > lines || l.Pos.File != "fuzz.conf" {
				t.Fatalf("line at %v outside the input's %d lines", l.Pos, lines)
			}
			if (l.Kind == LineSetting || l.Kind == LineSectionStart) && l.Key == "" {
				t.Fatalf("line at %v has no key", l.Pos)
			}
		}
	})
}

// FuzzLoad loads fuzzed data as dovecot.conf next to a small include tree.
func FuzzLoad(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte("!include conf.d/*.conf\n!include_try /usr/share/dovecot/protocols.d/*.protocol\nssl_cert = <x\n"))
	dir := f.TempDir()
	testtool.WriteFiles(f, dir, map[string]string{
		"etc/dovecot/conf.d/10-a.conf":                   "ssl = required\nservice pop3-login {\n",
		"etc/dovecot/conf.d/20-b.conf":                   "}\n!include ../dovecot.conf\n",
		"usr/share/dovecot/protocols.d/imapd.protocol":   "protocols = $protocols imap\n",
		"usr/share/dovecot/protocols.d/lmtpd.protocol":   "protocols {\n  lmtp = yes\n}\n",
		"etc/dovecot/private/placeholder-not-a-cert.pem": "",
	})
	root, err := hostfs.New(dir)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, "etc/dovecot/dovecot.conf"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Load(root, conf)
		if err != nil {
			checkPositioned(t, err)
			return
		}
		e := c.Effective()
		if !slices.Contains([]string{"no", "yes", "required"}, e.SSL) {
			t.Fatalf("Effective().SSL = %q", e.SSL)
		}
		ls := c.Listeners()
		for i, l := range ls {
			if l.Port < 0 || l.Port > 65535 || l.Protocol == "" || len(l.Address) == 0 && len(e.Listen) > 0 {
				t.Fatalf("bad listener %+v", l)
			}
			if !slices.Contains([]string{"implicit", "starttls-required", "starttls-optional", "none"}, l.TLS) {
				t.Fatalf("listener TLS = %q", l.TLS)
			}
			if i > 0 && (ls[i-1].Service > l.Service || ls[i-1].Service == l.Service && ls[i-1].Name > l.Name) {
				t.Fatalf("listeners not sorted: %+v", ls)
			}
		}
		if fs := c.Files(); len(fs) == 0 || fs[0] != conf {
			t.Fatalf("Files() = %q", fs)
		}
	})
}
