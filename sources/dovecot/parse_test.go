package dovecot

import (
	"fmt"
	"strings"
	"testing"
)

// brief prints a file's lines compactly for comparison.
func brief(f *File) string {
	var parts []string
	for _, l := range f.Lines {
		switch l.Kind {
		case LineSetting:
			parts = append(parts, fmt.Sprintf("%d:%s=%d%q", l.Pos.Line, l.Key, l.ValueKind, l.Value))
		case LineSectionStart:
			parts = append(parts, fmt.Sprintf("%d:%s%q{", l.Pos.Line, l.Key, l.Args))
		case LineSectionEnd:
			parts = append(parts, fmt.Sprintf("%d:}", l.Pos.Line))
		case LineInclude:
			parts = append(parts, fmt.Sprintf("%d:include(try=%v)%q", l.Pos.Line, l.Try, l.Value))
		}
	}
	return strings.Join(parts, " ")
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "ssl = yes\n", `1:ssl=0"yes"`},
		{"no spaces", "ssl=yes", `1:ssl=0"yes"`},
		{"empty value", "ssl_ca =\n", `1:ssl_ca=0""`},
		{"comment and blanks", "# c\n\n  ssl = yes # trailing\n", `3:ssl=0"yes"`},
		{"hash without space", "listen = x#y\n", `1:listen=0"x"`},
		{"double quoted", `protocols = "imap pop3"  # c`, `1:protocols=1"imap pop3"`},
		{"single quoted", `protocols = 'imap pop3'`, `1:protocols=1"imap pop3"`},
		{"quoted hash and escapes", `k = "# a \"q\"  "`, `1:k=1"# a \"q\"  "`},
		{"half quoted stays", `listen = "a b" x`, `1:listen=0"\"a b\" x"`},
		{"file", "ssl_cert = < /etc/ssl/a.pem\n", `1:ssl_cert=2"/etc/ssl/a.pem"`},
		{"variable kept", "protocols = $protocols pop3\n", `1:protocols=0"$protocols pop3"`},
		{"continuation", "listen = a \\\n   b \\\n\tc\nx = y\n", `1:listen=0"a b c" 4:x=0"y"`},
		{"continuation without space", "k = a\\\nb\n", `1:k=0"a b"`},
		{"continuation cut by comment", "k = a \\\n# c\nx = y\n", `3:x=0"y"`},
		{"sections", "service imap-login {\n inet_listener imaps {\n  port = 993\n }\n}\n",
			`1:service["imap-login"]{ 2:inet_listener["imaps"]{ 3:port=0"993" 4:} 5:}`},
		{"unnamed section", "passdb {\n}\n", `1:passdb[]{ 2:}`},
		{"quoted section name", "mailbox \"Sent Messages\" {\n}\n", `1:mailbox["Sent Messages"]{ 2:}`},
		{"group", "group @mysql default {\n}\n", `1:group["@mysql" "default"]{ 2:}`},
		{"includes", "!include conf.d/*.conf\n!include_try local.conf # c\n",
			`1:include(try=false)"conf.d/*.conf" 2:include(try=true)"local.conf"`},
		{"heredoc", "k = <<EOF\na {\n}\n  EOF\nx = y\n", `1:k=3"a {\n}" 5:x=0"y"`},
		{"crlf", "ssl = yes\r\nlisten = *\r\n", `1:ssl=0"yes" 2:listen=0"*"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("dovecot.conf", strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("Parse(%q) error = %v", tt.in, err)
			}
			if got := brief(f); got != tt.want {
				t.Errorf("Parse(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"bare word", "ssl yes\n", `dovecot.conf:1: expecting '{' or '=' after "ssl"`},
		{"brace on same line", "service imap {}\n", `dovecot.conf:1: garbage after '{' in "service imap {}" (a section's settings go on their own lines)`},
		{"settings after brace", "protocol imap { ssl = yes }\n", `dovecot.conf:1: garbage after '{' in "protocol imap { ssl = yes }" (a section's settings go on their own lines)`},
		{"extra close", "ssl = yes\n}\n", `dovecot.conf:2: unexpected '}'`},
		{"missing close", "a = b\nservice x {\n  port = 1\n", `dovecot.conf:2: missing '}'`},
		{"missing key", "= x\n", `dovecot.conf:1: missing setting name before '='`},
		{"heredoc without end", "k = <<END\nabc\n", `dovecot.conf:1: missing end marker "END" of k`},
		{"several", "a b\nc d\n", "dovecot.conf:1: expecting '{' or '=' after \"a\"\ndovecot.conf:2: expecting '{' or '=' after \"c\""},
		{"include without name", "!include\n", `dovecot.conf:1: !include without a file name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("dovecot.conf", strings.NewReader(tt.in))
			if err == nil || err.Error() != tt.want {
				t.Errorf("Parse(%q) error = %v, want %q", tt.in, err, tt.want)
			}
		})
	}
}
