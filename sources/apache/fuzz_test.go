package apache

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// render writes directives back in httpd syntax, every word quoted where
// needed, so that Parse reads the same words again.
func render(b *strings.Builder, ds []*Directive) {
	for _, d := range ds {
		if d.IsBlock {
			b.WriteByte('<')
		}
		b.WriteString(quote(d.Name))
		for _, a := range d.Args {
			b.WriteByte(' ')
			b.WriteString(quote(a))
		}
		if !d.IsBlock {
			b.WriteByte('\n')
			continue
		}
		b.WriteString(">\n")
		render(b, d.Block)
		b.WriteString("</" + d.Name + ">\n")
	}
}

// flat prints directives without positions, one per line, nested ones
// indented.
func flat(ds []*Directive, indent string, b *strings.Builder) {
	for _, d := range ds {
		b.WriteString(indent + d.String() + "\n")
		flat(d.Block, indent+"  ", b)
	}
}

// FuzzParse checks the reader's invariants: an error always names a line
// of the input; directives start on lines of the input; what Parse read,
// written back, reads the same; FindGroupware does not fail on anything
// Parse accepts. Seeds are in testdata/fuzz/FuzzParse too.
func FuzzParse(f *testing.F) {
	f.Add([]byte("LoadModule proxy_module x.so\nLoadModule proxy_http_module y.so\n<VirtualHost *:443>\nSSLEngine on\nProxyPass /SOGo http://127.0.0.1:20000/SOGo retry=0\n</VirtualHost>\n"))
	f.Add([]byte("ProxyPass /Microsoft-Server-ActiveSync \\\n http://127.0.0.1:20000/SOGo/Microsoft-Server-ActiveSync \\\n retry=60\n")) // continuations
	f.Add([]byte("# comment \\\nProxyPass /SOGo http://x/\n"))                                                                           // a comment swallowing a line
	f.Add([]byte(`Header set X "a \"quoted\" \\ word" 'single'` + "\n"))                                                                 // quotes
	f.Add([]byte("<IfModule !mod_x.c>\n<IfDefine NOPE>\n<Location /a>\n</Location>\n</IfDefine>\n</IfModule>\n"))                        // soaked sections
	f.Add([]byte("<Location /SOGo>\nProxyPass ! \n</Location>\n<LocationMatch ^/(a|b)>\nProxyPass http://h/$1\n</LocationMatch>\n"))     // location forms
	f.Add([]byte("<VirtualHost *:443\n</VirtualHost>\n"))                                                                                // missing '>'
	f.Add([]byte("</Location>\n"))                                                                                                       // stray close
	f.Add([]byte("Define X 1\nDefine Y ${X}${Z}\nUndefine X\n<IfVersion >= 2.4>\nRewriteEngine on\nRewriteRule ^/(.*) http://l/$1 [P,NC]\n</IfVersion>\n"))
	f.Add([]byte("<Proxy balancer://c>\nBalancerMember http://127.0.0.1:1\n</Proxy>\nProxyPass /SOGo balancer://c/SOGo\nSSLEngine on\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ds, err := Parse("fuzz.conf", data)
		lines := bytes.Count(data, []byte("\n")) + 1
		if err != nil {
			var pe *hostfs.PosError
			if !errors.As(err, &pe) || pe.Pos.File != "fuzz.conf" || pe.Pos.Line < 1 || pe.Pos.Line > lines {
				t.Fatalf("Parse error without a line of the input (%d lines): %v", lines, err)
			}
			return
		}
		odd := false
		Walk(ds, func(d *Directive) bool {
			if d.Pos.Line < 1 || d.Pos.Line > lines || d.Line < d.Pos.Line || d.Line > lines {
				t.Fatalf("directive %s at lines %d-%d, input has %d lines", d, d.Pos.Line, d.Line, lines)
			}
			for _, w := range append([]string{d.Name}, d.Args...) {
				// Words that do not survive quoting: variables (expanded
				// again), names that read as containers or comments.
				odd = odd || strings.Contains(w, "${") || strings.ContainsAny(w, "\x00\n\r") || strings.HasSuffix(w, `\`)
			}
			odd = odd || strings.HasPrefix(d.Name, "<") || strings.HasPrefix(d.Name, "#") || strings.HasPrefix(d.Name, "\"") ||
				strings.HasPrefix(d.Name, "'") || d.Name == "" || strings.ContainsAny(d.Name, "> \t\"'\\")
			return true
		})
		cfg := &Config{Directives: ds, Layout: Layout{Conf: "fuzz.conf"}}
		cfg.FindGroupware()
		if odd {
			return
		}
		var b strings.Builder
		render(&b, ds)
		again, err := Parse("again.conf", []byte(b.String()))
		if err != nil {
			t.Fatalf("rendered directives do not parse: %v\n%s", err, b.String())
		}
		var want, got strings.Builder
		flat(ds, "", &want)
		flat(again, "", &got)
		if got.String() != want.String() {
			t.Fatalf("round trip changed the directives:\n%s\n%s", want.String(), got.String())
		}
	})
}
