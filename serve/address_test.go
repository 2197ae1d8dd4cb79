package serve

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in          string
		local, dom  string
		errContains string
	}{
		{in: "fred@example.com", local: "fred", dom: "example.com"},
		{in: "Fred.Example@EXAMPLE.Com", local: "Fred.Example", dom: "example.com"},
		{in: "a+tag@example.com", local: "a+tag", dom: "example.com"},
		{in: "!#$%&'*+-/=?^_`{|}~@example.com", local: "!#$%&'*+-/=?^_`{|}~", dom: "example.com"},
		{in: `"john doe"@example.com`, local: `"john doe"`, dom: "example.com"},
		{in: `"a@b"@example.com`, local: `"a@b"`, dom: "example.com"},
		{in: `"a\"b"@example.com`, local: `"a\"b"`, dom: "example.com"},
		{in: `"<script>"@example.com`, local: `"<script>"`, dom: "example.com"},
		{in: "jörg@bücher.example", local: "jörg", dom: "xn--bcher-kva.example"},
		{in: "fred@XN--BCHER-KVA.example", local: "fred", dom: "xn--bcher-kva.example"},
		{in: "fred@BÜCHER.example", local: "fred", dom: "xn--bcher-kva.example"},
		{in: strings.Repeat("a", 64) + "@example.com", local: strings.Repeat("a", 64), dom: "example.com"},

		{in: "", errContains: "empty"},
		{in: "fred", errContains: "no @"},
		{in: "@example.com", errContains: "local part (before the @) is empty"},
		{in: "fred@", errContains: "domain is empty"},
		{in: ".fred@example.com", errContains: "empty part between dots"},
		{in: "fred.@example.com", errContains: "ends with a dot"},
		{in: "fr..ed@example.com", errContains: "empty part between dots"},
		{in: "fr ed@example.com", errContains: "a space"},
		{in: "fr<ed@example.com", errContains: `'<'`},
		{in: "fr\ned@example.com", errContains: "control character"},
		{in: "fred\u200b@example.com", errContains: "U+200B"},
		{in: `"unterminated@example.com`, errContains: "unterminated quote"},
		{in: `""@example.com`, errContains: "empty"},
		{in: `"a"b"@example.com`, errContains: "quote inside"},
		{in: "\"a\x01\"@example.com", errContains: "control character"},
		{in: strings.Repeat("a", 65) + "@example.com", errContains: "longer than 64"},
		{in: "fred@localhost", errContains: "single label"},
		{in: "fred@[192.0.2.1]", errContains: "address literal"},
		{in: "fred@example..com", errContains: "empty label"},
		{in: "fred@example.com.", errContains: "empty label"},
		{in: "fred@-example.com", errContains: "hyphen"},
		{in: "fred@exa_mple.com", errContains: `'_'`},
		{in: "fred@exa mple.com", errContains: "domain"},
		{in: "fred@" + strings.Repeat("a", 64) + ".com", errContains: "63"},
		{in: "fred@" + strings.Repeat("a.", 130) + "com", errContains: "longer than 253"},
		{in: strings.Repeat("a", 64) + "@" + strings.Repeat("b", 62) + "." + strings.Repeat("c", 62) + "." + strings.Repeat("d", 62) + ".com", errContains: "longer than 254"},
		{in: "fred@xn--zz.example", errContains: "internationalized"},
		{in: "fr\xffed@example.com", errContains: "UTF-8"},
	}
	for _, tt := range tests {
		a, err := ParseAddress(tt.in)
		if tt.errContains != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errContains) {
				t.Errorf("ParseAddress(%q) = %+v, %v, want error containing %q", tt.in, a, err, tt.errContains)
			}
			continue
		}
		if err != nil || a.Local != tt.local || a.Domain != tt.dom || a.LoginDomain != "" {
			t.Errorf("ParseAddress(%q) = %+v, %v, want {%s %s}", tt.in, a, err, tt.local, tt.dom)
		}
	}
}

func TestHostDomain(t *testing.T) {
	tests := []struct{ in, want string }{
		{"autoconfig.example.com", "example.com"},
		{"autodiscover.example.com", "example.com"},
		{"AutoDiscover.Example.COM", "example.com"},
		{"example.com", "example.com"},
		{"example.com.", "example.com"},
		{"autoconfig.example.com.:8443", "example.com"},
		{"autoconfig.example.com:80", "example.com"},
		{"mail.example.com", "mail.example.com"},
		{"autoconfig.autoconfig.example.com", "autoconfig.example.com"},
		{"autoconfig.bücher.example", "xn--bcher-kva.example"},
		{"autoconfig.", ""},
		{"autoconfig", ""},
		{"", ""},
		{"[::1]:8470", ""},
		{"[::1]", ""},
		{"127.0.0.1:8470", ""},
		{"192.0.2.1", ""},
		{"localhost", ""},
		{"exa mple.com", ""},
		{"example.com:80:80", ""},
		{"a..b", ""},
	}
	for _, tt := range tests {
		if got := hostDomain(tt.in); got != tt.want {
			t.Errorf("hostDomain(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestQueryParam(t *testing.T) {
	tests := []struct {
		raw, key, want string
		ok             bool
	}{
		{"emailaddress=fred%40example.com", "emailaddress", "fred%40example.com", true},
		{"EmailAddress=x&emailaddress=y", "emailaddress", "x", true},
		{"a=1&email=x", "Email", "x", true},
		{"a=1&emailaddres=x", "emailaddress", "", false},
		{"email%61ddress=z", "emailaddress", "z", true},
		{"emailaddress", "emailaddress", "", true},
		{"", "emailaddress", "", false},
	}
	for _, tt := range tests {
		if got, ok := queryParam(tt.raw, tt.key); got != tt.want || ok != tt.ok {
			t.Errorf("queryParam(%q, %q) = %q, %v, want %q, %v", tt.raw, tt.key, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzParseAddress checks that an accepted address is one the encoders can
// carry and the limits hold: valid UTF-8, no controls, a lower-case ASCII
// domain of at least two labels, and that parsing is idempotent.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		"fred@example.com", `"a b"@example.com`, `"a\"@example.com`, "jörg@bücher.example",
		"a@b@c.example", "fred@xn--bcher-kva.example", "fred@[::1]", ".@.", `"@"@x.y`,
		"\"\\\x7f\"@a.b", "x@" + strings.Repeat("a.", 200), "fred@ＥＸＡＭＰＬＥ.com",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			if a.Local != "" || a.Domain != "" {
				t.Fatalf("ParseAddress(%q) returned %+v with error %v", s, a, err)
			}
			return
		}
		if !utf8.ValidString(a.Local) || len(a.Local) > maxLocalLen || len(a.String()) > maxAddressLen {
			t.Fatalf("ParseAddress(%q) = %+v breaks a limit", s, a)
		}
		for _, r := range a.Local {
			if r < ' ' || r == 0x7f {
				t.Fatalf("ParseAddress(%q) local part has control %U", s, r)
			}
		}
		for i := 0; i < len(a.Domain); i++ {
			c := a.Domain[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
				t.Fatalf("ParseAddress(%q) domain %q has %q", s, a.Domain, c)
			}
		}
		if !strings.Contains(a.Domain, ".") {
			t.Fatalf("ParseAddress(%q) domain %q has one label", s, a.Domain)
		}
		b, err := ParseAddress(a.String())
		if err != nil || b != a {
			t.Fatalf("ParseAddress(ParseAddress(%q).String()) = %+v, %v, want %+v", s, b, err, a)
		}
	})
}
