package postfix

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

func TestParseLDAPTableDefaults(t *testing.T) {
	tb, err := ParseLDAPTable("d.cf", strings.NewReader("search_base = dc=example,dc=com\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := &LDAPTable{
		Path: "d.cf", ServerHost: []string{"localhost"}, Servers: []string{"ldap://localhost:389"},
		ServerPort: 389, SearchBase: "dc=example,dc=com", QueryFilter: "(mailacceptinggeneralid=%s)",
		ResultFormat: "%s", ResultAttribute: []string{"maildrop"}, Scope: "sub", Bind: "yes",
		Version: 3, Timeout: 10, RecursionLimit: 1000,
		Params: map[string]string{"search_base": "dc=example,dc=com"},
		Pos:    map[string]hostfs.Pos{"search_base": {File: "d.cf", Line: 1}},
	}
	if !reflect.DeepEqual(tb, want) {
		t.Errorf("ParseLDAPTable =\n%+v\nwant\n%+v", tb, want)
	}
}

func TestLoadLDAPTableCorpus(t *testing.T) {
	root, err := hostfs.New("../../testdata/corpus/iredmail-openldap-debian12")
	if err != nil {
		t.Fatal(err)
	}
	tb, err := LoadLDAPTable(root, "/etc/postfix/ldap/virtual_mailbox_domains.cf")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tb.Servers, []string{"ldap://127.0.0.1:389"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Servers = %q, want %q", got, want)
	}
	if tb.Scope != "one" || tb.Version != 3 || tb.Bind != "yes" || tb.BindDN != "cn=vmail,dc=example,dc=com" ||
		tb.BindPW != "secret" || tb.SearchBase != "o=domains,dc=example,dc=com" || tb.StartTLS {
		t.Errorf("table = %+v", tb)
	}
	if got, want := tb.ResultAttribute, []string{"domainName"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ResultAttribute = %q, want %q", got, want)
	}
	if !strings.HasPrefix(tb.QueryFilter, "(&(objectClass=mailDomain)(|(domainName=%s)") {
		t.Errorf("QueryFilter = %q", tb.QueryFilter)
	}
	if p := tb.Pos["bind_pw"]; p.Line != 6 {
		t.Errorf("bind_pw at %v, want line 6", p)
	}
	if _, err := LoadLDAPTable(root, "/etc/postfix/ldap/missing.cf"); err == nil || !strings.Contains(err.Error(), "/etc/postfix/ldap/missing.cf") {
		t.Errorf("missing file: error %v, want one naming the host path", err)
	}
}

func TestParseLDAPTableValues(t *testing.T) {
	tests := []struct {
		name, in string
		check    func(*LDAPTable) bool
	}{
		{"hosts and ports", "server_host = ldap1.example.com, ldap2.example.com:1444\n\tldaps://ldap3.example.com ldapi://%2Frun%2Fslapd%2Fldapi\nserver_port = 778\n",
			func(t *LDAPTable) bool {
				return reflect.DeepEqual(t.Servers, []string{"ldap://ldap1.example.com:778", "ldap://ldap2.example.com:1444",
					"ldaps://ldap3.example.com", "ldapi://%2Frun%2Fslapd%2Fldapi"}) && t.ServerPort == 778
			}},
		{"ldaps forces version 3", "version = 2\nserver_host = ldaps://x/\n", func(t *LDAPTable) bool { return t.Version == 3 && len(t.Warnings) == 1 }},
		{"ldap keeps version 2", "version = 2\nserver_host = ldap://x/\n", func(t *LDAPTable) bool { return t.Version == 2 && len(t.Warnings) == 0 }},
		{"start_tls forces version 3", "version = 2\nstart_tls = YES\n", func(t *LDAPTable) bool { return t.Version == 3 && t.StartTLS }},
		{"unknown version", "version = 4\n", func(t *LDAPTable) bool { return t.Version == 3 && len(t.Warnings) == 1 }},
		{"bad URL skipped", "server_host = ldap://[::1 ldap://h/??bogus h2\n", func(t *LDAPTable) bool {
			return reflect.DeepEqual(t.Servers, []string{"ldap://h2:389"}) && len(t.Warnings) == 2
		}},
		{"bind synonyms", "bind = NONE\n", func(t *LDAPTable) bool { return t.Bind == "no" }},
		{"bind simple", "bind = simple\n", func(t *LDAPTable) bool { return t.Bind == "yes" }},
		{"bind sasl", "bind = sasl\n", func(t *LDAPTable) bool { return t.Bind == "sasl" }},
		{"scope case", "scope = ONE\n", func(t *LDAPTable) bool { return t.Scope == "one" }},
		{"bad scope", "scope = bogus\n", func(t *LDAPTable) bool { return t.Scope == "sub" && len(t.Warnings) == 1 }},
		{"bad dereference", "dereference = 7\n", func(t *LDAPTable) bool { return t.Dereference == 0 && len(t.Warnings) == 1 }},
		{"size_limit follows expansion_limit", "expansion_limit = 5\n", func(t *LDAPTable) bool { return t.SizeLimit == 5 && t.ExpansionLimit == 5 }},
		{"negative limits pass", "expansion_limit = -1\ntimeout = -1\n", func(t *LDAPTable) bool { return t.SizeLimit == -1 && t.Timeout == -1 }},
		{"result_filter", "result_filter = smtp:[%s]\n", func(t *LDAPTable) bool { return t.ResultFormat == "smtp:[%s]" }},
		{"empty result_format", "result_format =\nresult_filter = x%s\n", func(t *LDAPTable) bool { return t.ResultFormat == "x%s" }},
		{"attribute lists", "result_attribute =\nterminal_result_attribute = maildrop\nleaf_result_attribute = mail,cn\nspecial_result_attribute = member memberURL\n",
			func(t *LDAPTable) bool {
				return len(t.ResultAttribute) == 0 && reflect.DeepEqual(t.TerminalResultAttribute, []string{"maildrop"}) &&
					reflect.DeepEqual(t.LeafResultAttribute, []string{"mail", "cn"}) &&
					reflect.DeepEqual(t.SpecialResultAttribute, []string{"member", "memberURL"})
			}},
		{"tls", "start_tls = yes\ntls_require_cert = yes\ntls_ca_cert_file = /etc/ssl/ca.pem\ntls_ca_cert_dir = /etc/ssl/certs\ntls_cert = /c.pem\ntls_key = /k.pem\n",
			func(t *LDAPTable) bool {
				return t.TLSRequireCert && t.TLSCACertFile == "/etc/ssl/ca.pem" && t.TLSCACertDir == "/etc/ssl/certs" &&
					t.TLSCert == "/c.pem" && t.TLSKey == "/k.pem"
			}},
		{"domain list", "domain = example.com, !x.y {a b}\n", func(t *LDAPTable) bool {
			return reflect.DeepEqual(t.Domain, []string{"example.com", "!x.y", "{a b}"})
		}},
		{"cache ignored", "cache = yes\ncache_size = 5\n", func(t *LDAPTable) bool { return len(t.Warnings) == 2 }},
		{"password with hash", "bind_pw = se#cret word\n", func(t *LDAPTable) bool { return t.BindPW == "se#cret word" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb, err := ParseLDAPTable("x.cf", strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("ParseLDAPTable(%q): %v", tt.in, err)
			}
			if !tt.check(tb) {
				t.Errorf("ParseLDAPTable(%q) = %+v", tt.in, tb)
			}
		})
	}
}

// The messages are Postfix's own (postmap -q prints them as fatal errors).
func TestParseLDAPTableErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty server_host", "a = b\nserver_host =\n", "x.cf:2: bad string length 0 < 1: server_host = "},
		{"bad port", "server_port = x\n", "x.cf:1: bad numerical configuration: server_port = x"},
		{"version 1", "version = 1\n", "x.cf:1: invalid version parameter value 1 < 2"},
		{"version text", "version = 2x\n", "x.cf:1: bad numerical configuration: version = 2x"},
		{"bad bool", "start_tls = maybe\n", "x.cf:1: bad boolean configuration: start_tls = maybe"},
		{"numeric bool", "chase_referrals = 0\n", "x.cf:1: bad boolean configuration: chase_referrals = 0"},
		{"bad bind", "\nbind = kerberos\n", "x.cf:2: unsupported parameter value: bind = kerberos"},
		{"recursion_limit 0", "recursion_limit = 0\n", "x.cf:1: invalid recursion_limit parameter value 0 < 1"},
		{"empty result_filter", "result_filter =\n", "x.cf:1: bad string length 0 < 1: result_filter = "},
		{"bad dereference", "dereference = x\n", "x.cf:1: bad numerical configuration: dereference = x"},
		{"no equals", "server_host\n", `x.cf:1: missing '=' after parameter name: "server_host"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb, err := ParseLDAPTable("x.cf", strings.NewReader(tt.in))
			if err == nil || err.Error() != tt.want {
				t.Errorf("ParseLDAPTable(%q) error = %v, want %q", tt.in, err, tt.want)
			}
			var pe *hostfs.PosError
			if !errors.As(err, &pe) {
				t.Errorf("error %v is not a *hostfs.PosError", err)
			}
			if tb == nil {
				t.Errorf("no table returned with the error")
			}
		})
	}
}

func TestParseLDAPURL(t *testing.T) {
	tests := []struct {
		in   string
		want *LDAPURL // nil: an error
	}{
		{"ldap://h", &LDAPURL{Scheme: "ldap", Host: "h"}},
		{"LDAP://h:1444/", &LDAPURL{Scheme: "ldap", Host: "h", Port: 1444}},
		{"ldaps://[::1]:636", &LDAPURL{Scheme: "ldaps", Host: "::1", Port: 636}},
		{"ldapi://%2Frun%2Fslapd%2Fldapi", &LDAPURL{Scheme: "ldapi", Host: "/run/slapd/ldapi"}},
		{"ldap:///ou=Groups,dc=example,dc=com??sub?(mail=*)", &LDAPURL{Scheme: "ldap", DN: "ou=Groups,dc=example,dc=com", Scope: "sub", Filter: "(mail=*)"}},
		{"<URL:ldap:///cn=a%20b,dc=x?mail,,cn?one>", &LDAPURL{Scheme: "ldap", DN: "cn=a b,dc=x", Attrs: []string{"mail", "cn"}, Scope: "one"}},
		{"ldap:///dc=x?,", &LDAPURL{Scheme: "ldap", DN: "dc=x", Attrs: []string{}}},
		{"ldap:///dc=x????!e", &LDAPURL{Scheme: "ldap", DN: "dc=x", Exts: []string{"!e"}}},
		{"ldap://h:99999/", &LDAPURL{Scheme: "ldap", Host: "h", Port: 99999}},
		{"ldap://[::1", nil},
		{"ldap://h:x/", nil},
		{"ldap://h:/", nil},
		{"ldap://h/??bogus", nil},
		{"ldap:///x?????", nil},
		{"ldap:///x????,", nil},
		{"<ldap://h", nil},
		{"http://h", nil},
	}
	for _, tt := range tests {
		got, err := ParseLDAPURL(tt.in)
		switch {
		case tt.want == nil && err == nil:
			t.Errorf("ParseLDAPURL(%q) = %+v, want an error", tt.in, got)
		case tt.want != nil && err != nil:
			t.Errorf("ParseLDAPURL(%q): %v", tt.in, err)
		case tt.want != nil && !reflect.DeepEqual(got, tt.want):
			t.Errorf("ParseLDAPURL(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	if IsLDAPURL("cn=x,dc=y") || !IsLDAPURL("URL:ldapi://") {
		t.Errorf("IsLDAPURL wrong")
	}
}

func FuzzParseLDAPTable(f *testing.F) {
	f.Add([]byte("server_host = ldap://127.0.0.1:389 h2:1444, ldaps://[::1]/\nversion = 2\nbind_pw = p#ss word\nquery_filter = (&(mail=%s)(x=y))\n"))
	f.Add([]byte("scope = bogus\ndereference = 9\nsize_limit = -1\nresult_format =\nresult_filter = %d\n  continued\n"))
	f.Add([]byte("server_host =\nversion = 1\nbind = sasl\nstart_tls = maybe\nrecursion_limit = 0\norphan\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tb, err := ParseLDAPTable("x.cf", bytes.NewReader(data))
		if tb == nil {
			t.Fatalf("no table returned")
		}
		for _, e := range unjoin(err) {
			var pe *hostfs.PosError
			if !errors.As(e, &pe) || pe.Pos.File != "x.cf" {
				t.Fatalf("error without a position: %v", e)
			}
		}
		for _, w := range tb.Warnings {
			var pe *hostfs.PosError
			if !errors.As(w, &pe) || pe.Pos.File != "x.cf" {
				t.Fatalf("warning without a position: %v", w)
			}
		}
		if tb.Version != 2 && tb.Version != 3 {
			t.Fatalf("Version = %d", tb.Version)
		}
		if tb.Scope != "sub" && tb.Scope != "one" && tb.Scope != "base" {
			t.Fatalf("Scope = %q", tb.Scope)
		}
		if tb.Bind != "yes" && tb.Bind != "no" && tb.Bind != "sasl" {
			t.Fatalf("Bind = %q", tb.Bind)
		}
		if tb.Dereference < 0 || tb.Dereference > 3 || tb.RecursionLimit < 1 || tb.ResultFormat == "" {
			t.Fatalf("table = %+v", tb)
		}
		for _, s := range tb.Servers {
			if !IsLDAPURL(s) {
				t.Fatalf("server %q is not a URL", s)
			}
			if _, err := ParseLDAPURL(s); err != nil && !strings.HasPrefix(s, "ldap://") {
				t.Fatalf("server %q does not parse: %v", s, err)
			}
		}
		for k := range tb.Params {
			if tb.Pos[k].Line < 1 {
				t.Fatalf("parameter %q has no line", k)
			}
		}
		if tb.Version == 2 {
			for _, s := range tb.Servers {
				if u, err := ParseLDAPURL(s); err == nil && u.Scheme != "ldap" {
					t.Fatalf("version 2 with %s", s)
				}
			}
		}
	})
}

// unjoin flattens errors.Join trees.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

func ExampleParseLDAPTable() {
	tb, err := ParseLDAPTable("/etc/postfix/ldap/virtual_mailbox_domains.cf", strings.NewReader(
		"server_host = ldap.example.com ldaps://ldap2.example.com\nsearch_base = o=domains,dc=example,dc=com\nquery_filter = (domainName=%s)\nresult_attribute = domainName\n"))
	fmt.Println(tb.Servers, tb.Version, tb.Scope, tb.ResultAttribute, err)
	// Output: [ldap://ldap.example.com:389 ldaps://ldap2.example.com] 3 sub [domainName] <nil>
}
