package postfix

import (
	"bytes"
	"strings"
	"testing"
)

func FuzzParseMainCF(f *testing.F) {
	f.Add([]byte("myhostname = mail.example.org\n"))
	f.Add([]byte("smtpd_tls_chain_files =\n  /etc/ssl/key.pem\n# comment\n\tcert.pem\n"))
	f.Add([]byte(" orphan\n=\nx y = z\nnovalue\n"))
	f.Add([]byte("a = ${b?{x}:{y}} $(c) $$\r\nb=1\r\n  # c\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMainCF("main.cf", bytes.NewReader(data))
		checkPosErrors(t, err, "main.cf", 1)
		for _, w := range m.Warnings {
			checkPosErrors(t, w, "main.cf", 1)
		}
		prev := 0
		for _, s := range m.Settings {
			if s.Name == "" || strings.ContainsAny(s.Name, " \t\r\n=") {
				t.Fatalf("bad parameter name %q", s.Name)
			}
			if s.Pos.Line <= prev {
				t.Fatalf("settings out of order: line %d after %d", s.Pos.Line, prev)
			}
			prev = s.Pos.Line
			if s.Value != strings.Trim(s.Value, " \t\r\n\v\f") {
				t.Fatalf("value %q not trimmed", s.Value)
			}
			if got, ok := m.Lookup(s.Name); !ok || got.Pos.Line < s.Pos.Line {
				t.Fatalf("Lookup(%q) = %+v, %v, want the last definition", s.Name, got, ok)
			}
		}
	})
}

func FuzzParseMasterCF(f *testing.F) {
	f.Add([]byte("smtp inet n - y - - smtpd\n"))
	f.Add([]byte("submission inet n - y - - smtpd\n  -o { a = b c }\n#  -o x=y\n  -o b=$c -ov=1 { -o } {d=e}\n"))
	f.Add([]byte("[::1]:587 inet n - y - - smtpd\n127.0.0.1:smtps inet n - - - - smtpd -o\n*:0 inet\n"))
	f.Add([]byte("x unix - - - 1000? 1 pipe flags=R user=vmail argv=/usr/bin/x {a b} {c\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		services, err := ParseMasterCF("master.cf", bytes.NewReader(data))
		checkPosErrors(t, err, "master.cf", 1)
		seen := map[string]bool{}
		for _, s := range services {
			if s.Name == "" || s.Command == "" || s.Pos.Line < 1 {
				t.Fatalf("bad service %+v", s)
			}
			if seen[s.Name+"/"+s.Type] {
				t.Fatalf("service %s/%s listed twice", s.Name, s.Type)
			}
			seen[s.Name+"/"+s.Type] = true
			if s.Type == "inet" && (s.Port < 1 || s.Port > 65535) || s.Type != "inet" && s.Port != 0 {
				t.Fatalf("service %s/%s has port %d", s.Name, s.Type, s.Port)
			}
			for _, o := range s.Overrides {
				if o.Name == "" || o.Pos.Line < s.Pos.Line {
					t.Fatalf("bad override %+v of %+v", o, s)
				}
			}
		}
	})
}

func FuzzParseSQLTable(f *testing.F) {
	f.Add([]byte("hosts = 127.0.0.1:3306\nuser = u\npassword = p#ss word\ndbname = d\nquery = SELECT 1 WHERE x='%s'\n"))
	f.Add([]byte("dbname=d\ntable=t\nselect_field=s\nwhere_field=w\nadditional_conditions = and a\n"))
	f.Add([]byte("hosts\nexpansion_limit = -1\ntls_verify_cert = maybe\n  orphan\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseSQLTable("mysql", "x.cf", bytes.NewReader(data))
		checkPosErrors(t, err, "x.cf", 0)
		if m == nil || len(m.Hosts) == 0 {
			t.Fatalf("ParseSQLTable = %+v, want a table with hosts", m)
		}
		for _, typ := range []string{"pgsql", "sqlite"} {
			o, oerr := ParseSQLTable(typ, "x.cf", bytes.NewReader(data))
			checkPosErrors(t, oerr, "x.cf", 0)
			if oerr == nil && o.Query == "" {
				t.Fatalf("%s: no error, but no query", typ)
			}
		}
		if err == nil && (m.DBName == "" || m.Query == "") {
			t.Fatalf("no error, but dbname %q query %q", m.DBName, m.Query)
		}
		for k := range m.Params {
			if m.Pos[k].Line < 1 {
				t.Fatalf("parameter %q has no line", k)
			}
		}
	})
}

func FuzzParseTableSource(f *testing.F) {
	f.Add([]byte("Example.COM OK\n  continued\n# c\nnovalue\n\"Quoted Key\" v\n\"esc\\\"q\" x\n\"bad\n"))
	f.Add([]byte("a\tb\r\n\r\n  \n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseTableSource("tbl", bytes.NewReader(data))
		checkPosErrors(t, err, "tbl", 1)
		for _, k := range keys {
			if k.Key != strings.ToLower(k.Key) || k.Value == "" || k.Pos.Line < 1 {
				t.Fatalf("bad entry %+v", k)
			}
		}
	})
}

func FuzzExpand(f *testing.F) {
	f.Add("a = $b\nb = ${c?{x}:{y}}\nc = 1\n", "$a $(b) ${{$c} <level {2} ? {old} : {new}}")
	f.Add("a = $a\n", "${a}")
	f.Add("a = $b$b$b$b\nb = $c$c$c$c\nc = $d$d$d$d\nd = xxxxxxxxxxxxxxxx\n", "$a$a$a$a")
	f.Add("x = ${y:{${x}}}\n", "${x?${x}:$$}")
	f.Add("", "${{a} == {b} ? {eq}} ${a?{x}y} $( ${")
	f.Fuzz(func(t *testing.T, mainCF, expr string) {
		m, _ := ParseMainCF("main.cf", strings.NewReader(mainCF))
		c := &Config{dir: "/etc/postfix", main: m, hostname: "vm"}
		got, _ := c.Expand(expr)
		if len(got) > maxExpandBytes+len(expr) {
			t.Fatalf("Expand returned %d bytes", len(got))
		}
		for _, s := range m.Settings {
			if v, _ := c.Param(s.Name); len(v) > maxExpandBytes+len(mainCF) {
				t.Fatalf("Param(%q) returned %d bytes", s.Name, len(v))
			}
		}
	})
}
