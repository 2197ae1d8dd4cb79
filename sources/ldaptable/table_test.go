package ldaptable

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestOpen(t *testing.T) {
	tests := []struct {
		name, text string
		opt        Options
		endpoints  []string
		err        string
	}{
		{"bare hosts", "server_host = ldap1.example.com ldap2.example.com:1444\n", Options{}, []string{"ldap://ldap1.example.com:389", "ldap://ldap2.example.com:1444"}, ""},
		{"urls", "server_host = ldaps://l.example.com ldapi:// ldapi://%2Frun%2Fslapd%2Fldapi\n", Options{}, []string{"ldaps://l.example.com", "ldapi://", "ldapi://%2Frun%2Fslapd%2Fldapi"}, ""},
		{"override", "server_host = ldap1.example.com ldap2.example.com\n", Options{Override: "ldapi://%2Ftmp%2Fs"}, []string{"ldapi://%2Ftmp%2Fs"}, ""},
		{"sasl", "bind = sasl\n", Options{}, nil, "test.cf:1: bind = sasl is not supported yet"},
		{"bad template", "query_filter = (mail=%x)\n", Options{}, nil, `query_filter: invalid template "(mail=%x)": unknown %x`},
		{"lone percent", "result_format = 100%\n", Options{}, nil, "ends with a lone %"},
		{"bad port", "server_host = ldap.example.com:http\n", Options{}, nil, "server_host ldap://ldap.example.com:http"},
		{"bad override", "", Options{Override: "ldap://[::1"}, nil, "server_host ldap://[::1"},
		{"no server", "server_host = ldap://[::1\n", Options{}, nil, "no usable server_host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cf := parseCF(t, "/etc/postfix/ldap/test.cf", tt.text)
			tb, err := Open(cf, tt.opt)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "ldap /etc/postfix/ldap/test.cf: ") {
					t.Fatalf("Open error %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer tb.Close()
			if !slices.Equal(tb.Endpoints(), tt.endpoints) {
				t.Errorf("Endpoints = %q, want %q", tb.Endpoints(), tt.endpoints)
			}
		})
	}
	tb := openCF(t, "server_host = ldapi://%2Fnonexistent\nversion = 2\ntimeout = 1\n", Options{QueryTimeout: time.Minute})
	if tb.version != 3 || tb.queryTimeout != time.Second || tb.servers[0].addr != "/nonexistent" {
		t.Errorf("version %d queryTimeout %s addr %q, want 3 (ldapi), 1s (the table's timeout), /nonexistent", tb.version, tb.queryTimeout, tb.servers[0].addr)
	}
}

// TestLookupWithoutSearch covers keys Postfix never searches for: no
// server is needed (the one named does not exist).
func TestLookupWithoutSearch(t *testing.T) {
	ctx := context.Background()
	tb := openCF(t, "server_host = ldapi://%2Fnonexistent\nquery_filter = (mail=%d)\n", Options{})
	for _, k := range []string{"", "\xff@example.com", "a\x00b@example.com", "example.com", "user@", "@"} {
		if r, err := tb.Lookup(ctx, k); r != nil || err != nil {
			t.Errorf("Lookup(%q) = %q, %v; want no search", k, r, err)
		}
	}
	if _, err := tb.Lookup(ctx, "user@example.com"); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("Lookup(user@example.com) = %v, want the unreachable server", err)
	}
	if err := tb.EachDomain(ctx, func(d, _ string) { t.Errorf("listed %s", d) }, func() {}); err != nil {
		t.Errorf("EachDomain of a %%d table: %v, want nothing at all", err)
	}
	tb = openCF(t, "server_host = ldapi://%2Fnonexistent\nquery_filter = (mail=%s)\ndomain = example.com, /nonexistent/list\n", Options{})
	for _, k := range []string{"example.com", "@example.com", "user@other.example"} {
		if r, err := tb.Lookup(ctx, k); r != nil || (err != nil) != (k == "user@other.example") {
			t.Errorf("Lookup(%q) = %q, %v", k, r, err)
		}
	}
	tb = openCF(t, "server_host = ldapi://%2Fnonexistent\ntimeout = 0\n", Options{})
	if _, err := tb.Lookup(ctx, "x"); err == nil || !strings.Contains(err.Error(), "timeout = 0") {
		t.Errorf("timeout = 0: %v", err)
	}
}

func TestSubtype(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"mail", "mail", 1}, {"mail", "MAIL;lang-en", 1}, {"mail;lang-en", "mail", -1}, {"mail", "mailbox", 0}, {"mail;x", "mail;y", 0}} {
		if got := subtype(tt.a, tt.b); got != tt.want {
			t.Errorf("subtype(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
