package postfix

import (
	"strings"
	"testing"
)

func TestParseMainCF(t *testing.T) {
	const in = `# comment
myhostname = mail.example.org
   # indented comment

virtual_mailbox_domains = example.net,
    example.info
  # a comment inside a continuation does not end it
	hash:/etc/postfix/vmail_domains
password = se#cret  x   
empty =
spaced=value
myhostname = mail2.example.org
`
	m, err := ParseMainCF("main.cf", strings.NewReader(in))
	if err != nil {
		t.Fatalf("ParseMainCF: %v", err)
	}
	tests := []struct {
		name, value string
		line        int
	}{
		{"myhostname", "mail2.example.org", 12},
		{"virtual_mailbox_domains", "example.net,    example.info\thash:/etc/postfix/vmail_domains", 5},
		{"password", "se#cret  x", 9},
		{"empty", "", 10},
		{"spaced", "value", 11},
	}
	for _, tt := range tests {
		s, ok := m.Lookup(tt.name)
		if !ok || s.Value != tt.value || s.Pos.Line != tt.line || s.Pos.File != "main.cf" {
			t.Errorf("Lookup(%q) = %+v, %v, want %q at line %d", tt.name, s, ok, tt.value, tt.line)
		}
	}
	if len(m.Settings) != 6 {
		t.Errorf("len(Settings) = %d, want 6", len(m.Settings))
	}
	if len(m.Warnings) != 1 || !strings.Contains(m.Warnings[0].Error(), "main.cf:12: myhostname is set again") {
		t.Errorf("Warnings = %v, want one about myhostname at line 12", m.Warnings)
	}
}

func TestParseMainCFErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"missing equals", "myhostname mail.example.org\n", `main.cf:1: missing '=' after parameter name: "myhostname mail.example.org"`},
		{"space in name", "a b = c\n", `main.cf:1: missing '=' after parameter name: "a b = c"`},
		{"missing name", "ok = 1\n= x\n", `main.cf:2: missing parameter name: "= x"`},
		{"every bad line", "x\nok = 1\ny\n", "main.cf:1: missing '=' after parameter name: \"x\"\nmain.cf:3: missing '=' after parameter name: \"y\""},
		{"continued bad line", "x\n  = 1\ny\n", `main.cf:3: missing '=' after parameter name: "y"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMainCF("main.cf", strings.NewReader(tt.in))
			if err == nil || err.Error() != tt.want {
				t.Errorf("ParseMainCF(%q) error = %v, want %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestParseMainCFOrphan(t *testing.T) {
	m, err := ParseMainCF("main.cf", strings.NewReader("   lead = x\nb = 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Lookup("lead"); ok {
		t.Errorf("Lookup(lead) found a continuation line with nothing to continue")
	}
	if len(m.Warnings) != 1 || !strings.HasPrefix(m.Warnings[0].Error(), "main.cf:1: logical line must not start with whitespace") {
		t.Errorf("Warnings = %v", m.Warnings)
	}
}
