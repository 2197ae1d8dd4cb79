package lookupkey

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

func TestCheckDomain(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"list":  "# hosted\nlisted.example, other.example\n!/etc/postfix/deny\n{b.example c.example}\n",
		"deny":  "denied.example\n",
		"neg":   "!a.b\nc.d\n",
		"loop":  "/etc/postfix/loop\n",
		"table": "hash:/etc/postfix/domains\n",
	} {
		p := filepath.Join(dir, "etc", "postfix", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		patterns []string
		key      string
		want     string // "yes", "no" or an error
	}{
		{nil, "example.com", "yes"},
		{nil, "", "yes"},
		{[]string{"example.com"}, "u@Example.COM", "yes"},
		{[]string{"example.com"}, "example.com", "no"},  // a bare domain: no '@'
		{[]string{"example.com"}, "@example.com", "no"}, // an empty local part
		{[]string{"example.com"}, "u@sub.example.com", "no"},
		{[]string{"!x.y", "x.y"}, "u@x.y", "no"},
		{[]string{"!!x.y"}, "u@x.y", "yes"},
		{[]string{"/etc/postfix/list"}, "u@other.example", "yes"},
		{[]string{"!/etc/postfix/deny", "denied.example"}, "u@denied.example", "no"},
		{[]string{"/etc/postfix/list", "denied.example"}, "u@denied.example", "no"}, // the file's "!/deny" decides first
		{[]string{"/etc/postfix/neg", "a.b"}, "u@a.b", "no"},                        // a negated match in a file decides
		{[]string{"!/etc/postfix/neg", "x.y"}, "u@a.b", "yes"},                      // "!/file" inverts "!a.b"
		{[]string{"!/etc/postfix/neg", "c.d"}, "u@c.d", "no"},
		{[]string{"{x.y z.w}"}, "u@{x.y z.w}", "yes"}, // braces group, and stay
		{[]string{"{x.y z.w}"}, "u@x.y", "no"},
		{[]string{"/etc/postfix/list"}, "u@{b.example c.example}", "yes"},
		{[]string{"/etc/postfix/list"}, "u@b.example", "no"},
		{[]string{"/etc/postfix/missing"}, "u@x.y", "domain list: read /etc/postfix/missing"},
		{[]string{"/etc/postfix/loop"}, "u@x.y", "domain list file /etc/postfix/loop: nested too deeply"},
		{[]string{"/etc/postfix/table"}, "u@x.y", `domain list entry "hash:/etc/postfix/domains": lookup tables in the domain list are not supported`},
		{[]string{"x.y", "hash:/etc/postfix/domains"}, "u@x.y", "yes"}, // decided before the table is reached
	}
	for _, tt := range tests {
		ok, err := CheckDomain(root, tt.patterns, tt.key)
		got := map[bool]string{true: "yes", false: "no"}[ok]
		if err != nil {
			got = err.Error()
		}
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("CheckDomain(%q, %q) = %q, want %q", tt.patterns, tt.key, got, tt.want)
		}
	}
}

func TestSplitPatterns(t *testing.T) {
	for in, want := range map[string][]string{
		"a, b\tc":         {"a", "b", "c"},
		"{a b}, c":        {"{a b}", "c"},
		" x{a, b}y ,, z ": {"x{a, b}y", "z"},
		"{a {b c} d} e":   {"{a {b c} d}", "e"},
		"} a":             {"}", "a"},
		"":                nil,
		"{unclosed a b":   {"{unclosed a b"},
	} {
		if got := splitPatterns(in); !slices.Equal(got, want) {
			t.Errorf("splitPatterns(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsDomainName(t *testing.T) {
	for s, want := range map[string]bool{
		"example.com": true, "xn--bcher-kva.example": true, "bücher.example": true, "a-b.c0.de": true,
		"all": false, "localhost": false, "": false, "example.com.": false, ".example.com": false,
		"-a.com": false, "a-.com": false, "1.2.3.4": false, "user@example.com": false,
		"a b.com": false, "a_b.com": false, strings.Repeat("a", 64) + ".com": false,
		"a\u00a0b.com": false, "a\u3002b": false, "a\u2028b.com": false, "\xff.com": false,
	} {
		if got := IsDomainName(s); got != want {
			t.Errorf("IsDomainName(%q) = %v, want %v", s, got, want)
		}
	}
}
