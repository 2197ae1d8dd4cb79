package sqltable

import (
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/postfix"
)

func TestParseHost(t *testing.T) {
	local := func() (string, error) { return "/run/local.sock", nil }
	tests := []struct{ in, want string }{
		{"127.0.0.1:3306", "127.0.0.1:3306"},
		{"127.0.0.1", "127.0.0.1:3306"},
		{"inet:db.example.com:3307", "db.example.com:3307"},
		{"inet:db.example.com", "db.example.com:3306"},
		{"db.example.com:mysql", "db.example.com:3306"},
		{"[::1]:3307", "[::1]:3307"},
		{"inet:[2001:db8::1]", "[2001:db8::1]:3306"},
		{"::1", "[::1]:3306"},
		{"unix:/var/run/mysqld/mysqld.sock", "unix:/var/run/mysqld/mysqld.sock"},
		{"localhost", "localhost (unix:/run/local.sock)"},
		{"inet:localhost:3306", "inet:localhost:3306 (unix:/run/local.sock)"},
		{"LocalHost", "LocalHost (unix:/run/local.sock)"},
	}
	for _, tt := range tests {
		ep, err := parseHost(tt.in, local)
		if err != nil || ep.String() != tt.want {
			t.Errorf("parseHost(%q) = %q, %v, want %q", tt.in, ep.String(), err, tt.want)
		}
	}
	for _, bad := range []string{"unix:", "db:notaport", "[::1", "[::1]x"} {
		if ep, err := parseHost(bad, local); err == nil {
			t.Errorf("parseHost(%q) = %q, want error", bad, ep.String())
		}
	}
}

func writeFiles(t *testing.T, files map[string]string) hostfs.Root {
	t.Helper()
	dir := t.TempDir()
	testtool.WriteFiles(t, dir, files)
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestLocalSocket(t *testing.T) {
	root := writeFiles(t, map[string]string{
		"etc/mysql/my.cnf":                     "[mysqld]\nsocket = /wrong\n!includedir /etc/mysql/conf.d/\n",
		"etc/mysql/conf.d/50-client.cnf":       "[client]\nsocket = /run/a.sock\n[client-mariadb]\n# comment\n",
		"etc/mysql/conf.d/60-postfix.cnf":      "[postfix]\nsocket = \"/run/postfix.sock\"\n",
		"etc/postfix/mysql-options.cnf":        "[client]\nsocket=/run/option-file.sock\n!include /etc/postfix/more.cnf\n",
		"etc/postfix/more.cnf":                 "[special]\nsocket = /run/special.sock # trailing\n",
		"etc/mysql/conf.d/README":              "socket = /not/read\n",
		"etc/postfix/mysql-options-nosock.cnf": "[client]\nuser = x\n",
	})
	tests := []struct{ file, group, want string }{
		{"", "", DefaultSocket},
		{"", "client", "/run/a.sock"},
		{"", "postfix", "/run/postfix.sock"},
		{"/etc/postfix/mysql-options.cnf", "client", "/run/option-file.sock"},
		{"/etc/postfix/mysql-options.cnf", "special", "/run/special.sock"},
		{"/etc/postfix/mysql-options-nosock.cnf", "client", DefaultSocket},
	}
	for _, tt := range tests {
		got, err := localSocket(root, tt.file, tt.group)
		if err != nil || got != tt.want {
			t.Errorf("localSocket(%q, %q) = %q, %v, want %q", tt.file, tt.group, got, err, tt.want)
		}
	}
	if _, err := localSocket(root, "/etc/postfix/missing.cnf", "client"); err == nil || !strings.Contains(err.Error(), "/etc/postfix/missing.cnf") {
		t.Errorf("localSocket with a missing option_file: error = %v", err)
	}
}

func TestOpen(t *testing.T) {
	base := postfix.SQLTable{Type: "mysql", Path: "/etc/postfix/t.cf", DBName: "db", Query: "SELECT d FROM t WHERE d='%s'", OptionGroup: "client"}
	tests := []struct {
		name   string
		edit   func(*postfix.SQLTable)
		want   []string // endpoints
		errSub string
	}{
		{"default host", func(m *postfix.SQLTable) {}, []string{"localhost (unix:" + DefaultSocket + ")"}, ""},
		{"unix first", func(m *postfix.SQLTable) { m.Hosts = []string{"db1:3307, unix:/s1", "db2", "unix:/s2"} },
			[]string{"unix:/s1", "unix:/s2", "db1:3307", "db2:3306"}, ""},
		{"no query", func(m *postfix.SQLTable) { m.Query = " " }, nil, "no query"},
		{"no dbname", func(m *postfix.SQLTable) { m.DBName = "" }, nil, "dbname"},
		{"bad query", func(m *postfix.SQLTable) { m.Query = "SELECT '%x'" }, nil, `query: invalid template "SELECT '%x'": unknown %x`},
		{"bad result_format", func(m *postfix.SQLTable) { m.ResultFormat = "%" }, nil, "result_format"},
		{"bad host", func(m *postfix.SQLTable) { m.Hosts = []string{"db:badport"} }, nil, "bad port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base
			tt.edit(&m)
			tb, err := Open(&m, Options{})
			if tt.errSub != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errSub) || !strings.HasPrefix(err.Error(), "mysql /etc/postfix/t.cf: ") {
					t.Errorf("Open() error = %v, want one saying %q", err, tt.errSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer tb.Close()
			if got := tb.Endpoints(); strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("Endpoints() = %q, want %q", got, tt.want)
			}
		})
	}

	// Options.Socket overrides every host.
	m := base
	m.Hosts = []string{"db1", "unix:/s1"}
	tb, err := Open(&m, Options{Override: "/tmp/x.sock"})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	if got := strings.Join(tb.Endpoints(), "|"); got != "unix:/s1 (unix:/tmp/x.sock)|db1 (unix:/tmp/x.sock)" {
		t.Errorf("Endpoints() with Socket = %q", got)
	}
}
