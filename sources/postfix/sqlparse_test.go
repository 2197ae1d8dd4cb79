package postfix

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseSQLTable(t *testing.T) {
	const in = `# PostfixAdmin style
user = postfix
password = pa#ss word$x  
hosts = unix:/run/mysqld/mysqld.sock, 127.0.0.1:3306
	inet:db.example.com
dbname = postfix
query = SELECT domain FROM domain
  WHERE domain='%s' AND active = '1'
domain = example.com, hash:/etc/postfix/searchdomains
expansion_limit = 1
option_group =
tls_verify_cert = Yes
custom_thing = kept
`
	got, err := ParseSQLTable("mysql", "x.cf", strings.NewReader(in))
	if err != nil {
		t.Fatalf("ParseSQLTable: %v", err)
	}
	if got.Password != "pa#ss word$x" {
		t.Errorf("Password = %q, want %q", got.Password, "pa#ss word$x")
	}
	if want := []string{"unix:/run/mysqld/mysqld.sock", "127.0.0.1:3306", "inet:db.example.com"}; !reflect.DeepEqual(got.Hosts, want) {
		t.Errorf("Hosts = %q, want %q", got.Hosts, want)
	}
	if want := "SELECT domain FROM domain  WHERE domain='%s' AND active = '1'"; got.Query != want || got.Legacy {
		t.Errorf("Query = %q, Legacy %v, want %q", got.Query, got.Legacy, want)
	}
	if want := []string{"example.com", "hash:/etc/postfix/searchdomains"}; !reflect.DeepEqual(got.Domain, want) {
		t.Errorf("Domain = %q, want %q", got.Domain, want)
	}
	if got.User != "postfix" || got.DBName != "postfix" || got.ExpansionLimit != 1 || got.OptionGroup != "" ||
		!got.TLSVerifyCert || got.ResultFormat != "%s" || got.Params["custom_thing"] != "kept" ||
		got.Pos["query"].Line != 7 || got.Pos["hosts"].String() != "x.cf:4" {
		t.Errorf("ParseSQLTable = %+v", got)
	}
}

func TestParseSQLTableLegacy(t *testing.T) {
	const in = `hosts = localhost
user = u
password = p
dbname = mail
table = domains
select_field = domain
where_field = domain
additional_conditions = and active = '1'
`
	got, err := ParseSQLTable("mysql", "legacy.cf", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := "SELECT domain FROM domains WHERE domain='%s' and active = '1'"; got.Query != want || !got.Legacy {
		t.Errorf("Query = %q, Legacy %v, want %q, true", got.Query, got.Legacy, want)
	}
	got, err = ParseSQLTable("mysql", "legacy.cf", strings.NewReader("dbname=d\ntable=t\nselect_field=s\nwhere_field=w\n"))
	if err != nil || got.Query != "SELECT s FROM t WHERE w='%s' " || !reflect.DeepEqual(got.Hosts, []string{"localhost"}) || got.OptionGroup != "client" {
		t.Errorf("ParseSQLTable(no conditions) = %+v, %v", got, err)
	}
}

func TestParseSQLTableErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"no dbname", "query = SELECT 1\n", "x.cf: missing dbname"},
		{"no query", "dbname = d\ntable = t\n", "x.cf: missing query (or the legacy select_field, where_field)"},
		{"bad line", "dbname = d\nquery = q\nhosts localhost\n", `x.cf:3: missing '=' after parameter name: "hosts localhost"`},
		{"bad limit", "dbname = d\nquery = q\nexpansion_limit = x\n", `x.cf:3: bad expansion_limit "x": want a number >= 0`},
		{"bad bool", "dbname = d\nquery = q\ntls_verify_cert = true\n", `x.cf:3: bad tls_verify_cert "true": want yes or no`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSQLTable("mysql", "x.cf", strings.NewReader(tt.in))
			if err == nil || err.Error() != tt.want {
				t.Errorf("ParseSQLTable(%q) error = %v, want %q", tt.in, err, tt.want)
			}
		})
	}
}
