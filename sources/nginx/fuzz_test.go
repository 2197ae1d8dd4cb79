package nginx

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// render writes directives back in nginx syntax, every word quoted where
// needed, so that Parse reads the same words again.
func render(b *strings.Builder, ds []*Directive) {
	for _, d := range ds {
		b.WriteString(quote(d.Name))
		for _, a := range d.Args {
			b.WriteByte(' ')
			b.WriteString(quote(a))
		}
		if !d.IsBlock {
			b.WriteString(";\n")
			continue
		}
		b.WriteString(" {\n")
		render(b, d.Block)
		b.WriteString("}\n")
	}
}

// FuzzParse checks the tokenizer's invariants: an error always carries a
// position inside the input; directives start on lines of the input; and
// what Parse read, written back, reads the same. FindGroupware must not
// fail on anything Parse accepts. Seeds are in testdata/fuzz/FuzzParse too.
func FuzzParse(f *testing.F) {
	f.Add([]byte("events {}\nhttp { server { listen 443 ssl; location ^~ /SOGo/ { proxy_pass http://127.0.0.1:20000; } } }\n"))
	f.Add([]byte(`a "q\"uo\\te" 'single' b\;c ${var}x;`))                // quotes and escapes
	f.Add([]byte("# comment {\na 1; # x;\n}"))                           // stray close after a comment
	f.Add([]byte(`if ($host ~* "^(a|b)$" ) { rewrite ^ /x last; }`))     // parentheses after a quote
	f.Add([]byte("a \"unterminated;\n"))                                 // EOF inside quotes
	f.Add([]byte("http { server { listen 443 ssl; return 301 x; }"))     // EOF inside a block
	f.Add([]byte("x " + strings.Repeat("y", 4100) + ";"))                // too long parameter
	f.Add([]byte("\"\"{}'';"))                                           // empty words
	f.Add([]byte("rewrite ^/(.*)$ /$1$2$x permanent;\nlocation ~ ( {}")) // captures, bad regex
	f.Fuzz(func(t *testing.T, data []byte) {
		ds, err := Parse("fuzz.conf", data)
		lines := bytes.Count(data, []byte("\n")) + 1
		if err != nil {
			var pe *hostfs.PosError
			if !errors.As(err, &pe) || pe.Pos.File != "fuzz.conf" || pe.Pos.Line < 1 || pe.Pos.Line > lines {
				t.Fatalf("Parse error without a position inside the input (%d lines): %v", lines, err)
			}
			return
		}
		long := false
		Walk(ds, func(d *Directive, _ []*Directive) bool {
			if d.Pos.Line < 1 || d.Pos.Line > lines {
				t.Fatalf("directive %s at line %d, input has %d lines", d, d.Pos.Line, lines)
			}
			for _, a := range append([]string{d.Name}, d.Args...) {
				long = long || len(a) > 1000
			}
			return true
		})
		cfg := &Config{Directives: ds}
		cfg.FindGroupware()
		if long {
			return // quoting could make a word longer than nginx's buffer
		}
		var b strings.Builder
		render(&b, ds)
		again, err := Parse("again.conf", []byte(b.String()))
		if err != nil {
			t.Fatalf("rendered directives do not parse: %v\n%s", err, b.String())
		}
		if flat(stripPos(again)) != flat(stripPos(ds)) {
			t.Fatalf("round trip changed the directives:\n%s\n%s", flat(stripPos(ds)), flat(stripPos(again)))
		}
	})
}

// stripPos zeroes positions, which a round trip does not keep.
func stripPos(ds []*Directive) []*Directive {
	Walk(ds, func(d *Directive, _ []*Directive) bool {
		d.Pos = hostfs.Pos{}
		return true
	})
	return ds
}
