package postfix

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

func TestTables(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc/postfix"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/postfix/main.cf", `mydomain = example.org
myhostname = mail.$mydomain
virtual_mailbox_domains = example.net, Example.INFO
    hash:/etc/postfix/vmail_domains,proxy:mysql:$config_directory/x.cf
  inline:{ a.example=x, { b.example = y z } } !bad.example
  /etc/postfix/domain_list
relay_domains = $mydestination
virtual_alias_domains = /etc/postfix/missing
`)
	write("etc/postfix/master.cf", "smtp inet n - y - - smtpd\n")
	write("etc/postfix/domain_list", "# names\nlisted.example, other.example\n  continued.example\nregexp:/etc/postfix/x.re\n")
	write("etc/postfix/vmail_domains", "Example.BIZ OK\n")
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(root, "/etc/postfix")
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Tables("virtual_mailbox_domains")
	if err != nil {
		t.Fatalf("Tables: %v", err)
	}
	m := hostfs.Pos{File: "/etc/postfix/main.cf", Line: 3}
	l := func(n int) hostfs.Pos { return hostfs.Pos{File: "/etc/postfix/domain_list", Line: n} }
	want := []Table{
		{Raw: "example.net", Name: "example.net", Pos: m},
		{Raw: "Example.INFO", Name: "Example.INFO", Pos: m},
		{Raw: "hash:/etc/postfix/vmail_domains", Type: "hash", Name: "/etc/postfix/vmail_domains", Pos: m},
		{Raw: "proxy:mysql:/etc/postfix/x.cf", Type: "mysql", Name: "/etc/postfix/x.cf", Proxy: true, Pos: m},
		{Raw: "inline:{ a.example=x, { b.example = y z } }", Type: "inline", Name: "{ a.example=x, { b.example = y z } }", Pos: m},
		{Raw: "!bad.example", Name: "bad.example", Negated: true, Pos: m},
		{Raw: "listed.example", Name: "listed.example", Pos: l(2)},
		{Raw: "other.example", Name: "other.example", Pos: l(2)},
		{Raw: "continued.example", Name: "continued.example", Pos: l(2)},
		{Raw: "regexp:/etc/postfix/x.re", Type: "regexp", Name: "/etc/postfix/x.re", Pos: l(4)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Tables(virtual_mailbox_domains) =\n%+v\nwant\n%+v", got, want)
	}

	keys := func(tb Table) string {
		k, err := c.TableKeys(tb)
		if err != nil {
			return "error: " + err.Error()
		}
		var s []string
		for _, x := range k {
			s = append(s, x.Key+"="+x.Value+"@"+x.Pos.String())
		}
		return strings.Join(s, " ")
	}
	for i, w := range []string{
		"example.net=example.net@/etc/postfix/main.cf:3",
		"example.info=Example.INFO@/etc/postfix/main.cf:3",
		"example.biz=OK@/etc/postfix/vmail_domains:1",
		"error: /etc/postfix/main.cf:3: mysql:/etc/postfix/x.cf is listed by querying the database: table type not supported yet",
		"a.example=x@/etc/postfix/main.cf:3 b.example=y z@/etc/postfix/main.cf:3",
	} {
		if g := keys(got[i]); g != w {
			t.Errorf("TableKeys(%s) = %q, want %q", got[i].Raw, g, w)
		}
	}
	if _, err := c.TableKeys(got[9]); !errors.Is(err, ErrUnsupported) {
		t.Errorf("TableKeys(regexp:) error = %v, want ErrUnsupported", err)
	}

	relay, err := c.Tables("relay_domains")
	if err != nil || len(relay) != 3 || relay[0].Name != "mail.example.org" || relay[1].Name != "localhost.example.org" {
		t.Errorf("Tables(relay_domains) = %+v, %v", relay, err)
	}
	if _, err := c.Tables("virtual_alias_domains"); err == nil || !strings.Contains(err.Error(), "/etc/postfix/missing") {
		t.Errorf("Tables(virtual_alias_domains) error = %v, want one naming /etc/postfix/missing", err)
	}
}

func TestSplitTableName(t *testing.T) {
	tests := []struct {
		in, typ, name string
		proxy         bool
	}{
		{"example.com", "", "example.com", false},
		{"hash:/etc/postfix/x", "hash", "/etc/postfix/x", false},
		{"proxy:mysql:/etc/x.cf", "mysql", "/etc/x.cf", true},
		{"proxy:unix:passwd.byname", "unix", "passwd.byname", true},
		{"static:all", "static", "all", false},
		{"mysql:name", "mysql", "name", false},
		{"Example.com:25", "", "Example.com:25", false},
		{"inline:{a=b}", "inline", "{a=b}", false},
	}
	for _, tt := range tests {
		typ, name, proxy := splitTableName(tt.in)
		if typ != tt.typ || name != tt.name || proxy != tt.proxy {
			t.Errorf("splitTableName(%q) = %q, %q, %v, want %q, %q, %v", tt.in, typ, name, proxy, tt.typ, tt.name, tt.proxy)
		}
	}
}
