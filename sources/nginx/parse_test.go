package nginx

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// flat renders directives one per line as name|arg|arg@line, blocks
// nested in braces, for compact table tests.
func flat(ds []*Directive) string {
	var b strings.Builder
	var rec func([]*Directive)
	rec = func(ds []*Directive) {
		for _, d := range ds {
			b.WriteString(strings.Join(append([]string{d.Name}, d.Args...), "|"))
			b.WriteString("@")
			b.WriteString(strconv.Itoa(d.Pos.Line))
			if d.IsBlock {
				b.WriteString("{")
				rec(d.Block)
				b.WriteString("}")
			}
			b.WriteString(";")
		}
	}
	rec(ds)
	return b.String()
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"simple", "worker_processes 1;\n", "worker_processes|1@1;"},
		{"blank separated", "a\tb  c\r\nd;", "a|b|c|d@1;"},
		{"block", "events {\n worker_connections 1024;\n}\n", "events@1{worker_connections|1024@2;};"},
		{"empty block", "events {}", "events@1{};"},
		{"comment", "# x; {\na 1; # b 2;\n#}\n", "a|1@2;"},
		{"hash inside word", "a b#c;", "a|b#c@1;"},
		{"double quotes", `a "b c" "";`, "a|b c|@1;"},
		{"single quotes", `a 'b "c' 'x';`, `a|b "c|x@1;`},
		{"escapes in quotes", `a "x\"y\\z\tq\nr\ts";`, "a|x\"y\\z\tq\nr\ts@1;"},
		{"escape outside quotes keeps the backslash", `a b\;c \{ \"x\";`, `a|b\;c|\{|"x"@1;`},
		{"backslash kept before other chars", `gzip_disable "MSIE [1-6]\.";`, `gzip_disable|MSIE [1-6]\.@1;`},
		{"regex with braces needs quotes", `location ~ "^/x{2}$" {}`, `location|~|^/x{2}$@1{};`},
		{"variables kept", `proxy_pass http://$host$request_uri;`, `proxy_pass|http://$host$request_uri@1;`},
		{"braced variable", `set $a ${b}c;`, `set|$a|${b}c@1;`},
		{"semicolon ends word", "a b;c d;", "a|b@1;c|d@1;"},
		{"brace ends word", "server{listen 80;}", "server@1{listen|80@1;};"},
		{"if parentheses", `if ($host = "x") { return 301; }`, `if|($host|=|x|)@1{return|301@1;};`},
		{"quote inside a word is a character", `if ("a" ) {}`, `if|("a"|)@1{};`},
		{"multi-line directive starts at first word", "\n\ngzip_types\n  text/css\n  text/xml;\n", "gzip_types|text/css|text/xml@3;"},
		{"nested", "http {\n server {\n  location / {\n   return 200;\n  }\n }\n}\n", "http@1{server@2{location|/@3{return|200@4;};};};"},
		{"include kept by Parse", "include a/*.conf;", "include|a/*.conf@1;"},
		{"unicode", "a é\"ü\";", "a|é\"ü\"@1;"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := Parse("t.conf", []byte(tt.in))
			if err != nil {
				t.Fatalf("Parse(%q) error = %v", tt.in, err)
			}
			if got := flat(ds); got != tt.want {
				t.Errorf("Parse(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

// TestParseErrors checks messages and lines; TestNginxErrorLines checks
// the same inputs' lines against the real nginx.
func TestParseErrors(t *testing.T) {
	for _, tt := range parseErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.conf", []byte(tt.in))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Parse(%q) error = %v, want %q", tt.in, err, tt.want)
			}
			var pe *hostfs.PosError
			if !errors.As(err, &pe) || pe.Pos.File != "t.conf" {
				t.Errorf("Parse(%q) error %v is not a *hostfs.PosError in t.conf", tt.in, err)
			}
		})
	}
}

var parseErrorTests = []struct {
	name, in, want string
}{
	{"unclosed block", "events {\n", `t.conf:2: unexpected end of file, expecting "}"`},
	{"missing semicolon at end", "events {}\nworker_processes 1", `t.conf:2: unexpected end of file, expecting ";" or "}"`},
	{"unclosed quote", "events {}\npid \"/x;\n\n", `t.conf:4: unexpected end of file, expecting ";" or "}"`},
	{"stray close", "events {}\n}\n", `t.conf:2: unexpected "}"`},
	{"close after words", "events {}\nhttp { a }\n", `t.conf:2: unexpected "}"`},
	{"empty directive", "events {}\n;\n", `t.conf:2: unexpected ";"`},
	{"empty block name", "events {}\n\n{\n}\n", `t.conf:3: unexpected "{"`},
	{"text after quote", "events {}\npid \"a\"b;\n", `t.conf:2: unexpected "b"`},
	{"brace after quote", "events {}\nhttp { a \"b\"}\n", `t.conf:2: unexpected "}"`},
	{"too long word", "events {}\npid " + strings.Repeat("x", 5000) + ";\n", `t.conf:2: too long parameter "xxxxxxxxxx..." started`},
	{"too long quoted", "events {}\npid \"" + strings.Repeat("x", 5000) + "\";\n", `t.conf:2: too long parameter, probably missing terminating """ character`},
}

func TestDirectiveString(t *testing.T) {
	ds, err := Parse("t", []byte(`add_header X "a b;\"c\\d" always; location / {}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`add_header X "a b;\"c\\d" always;`, `location / {...}`}
	for i, d := range ds {
		if got := d.String(); got != want[i] {
			t.Errorf("String() = %s, want %s", got, want[i])
		}
	}
	again, err := Parse("t", []byte(ds[0].String()))
	if err != nil || flat(again) != flat(ds[:1]) {
		t.Errorf("reparse of %s = %s, %v; want %s", ds[0], flat(again), err, flat(ds[:1]))
	}
}
