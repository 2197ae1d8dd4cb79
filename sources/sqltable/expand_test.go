package sqltable

import (
	"strings"
	"testing"
)

func TestExpandQuery(t *testing.T) {
	tests := []struct {
		query, key, want string // want "-" means suppressed
	}{
		{"%s", "example.com", "example.com"},
		{"%u", "example.com", "example.com"},
		{"%d", "example.com", "-"},
		{"%1", "example.com", "-"}, // a bare domain has no domain part
		{"%S|%U", "example.com", "example.com|example.com"},
		{"%D", "example.com", "-"},
		{"%u|%d", "user@example.com", "user|example.com"},
		{"%U|%D", "user@example.com", "user|example.com"},
		{"%u", "@example.com", "-"}, // empty local part
		{"%s", "@example.com", "@example.com"},
		{"%d", "user@", "-"},
		{"%u", "user@", "user"},
		{"%u|%d", "a@b@mail.example.com", "a@b|mail.example.com"},
		{"%1.%2.%3", "x@mail.example.com", "com.example.mail"},
		{"%3", "x@example.com", "-"},
		{"%2", "x@a..example.com", "example"},
		{"%3", "x@a..example.com", "a"},
		{"100%% %s", "k", "100% k"},
		{"%s", "", "-"},
		{"'%s'", "o'brien@example.com", `'o\'brien@example.com'`},
		{"%s", "a\x00b\nc\rd\\e\"f\x1ag", `a\0b\nc\rd\\e\"f\Zg`},
	}
	for _, tt := range tests {
		tm, err := parseTemplates(tt.query, "%s")
		if err != nil {
			t.Fatalf("parseTemplates(%q): %v", tt.query, err)
		}
		got, ok := tm.expandQuery(tt.key, quoteMySQL)
		if !ok {
			got = "-"
		}
		if got != tt.want {
			t.Errorf("expandQuery(%q, %q) = %q, want %q", tt.query, tt.key, got, tt.want)
		}
	}
}

func TestFormatResult(t *testing.T) {
	tests := []struct {
		format, value, key, want string
	}{
		{"%s", "example.com", "example.com", "example.com"},
		{"smtp:[%s]", "mx.example.com", "k", "smtp:[mx.example.com]"},
		{"%u", "user@example.com", "k", "user"},
		{"%u", "plain", "k", "plain"},
		{"%u", "@example.com", "k", "-"},
		{"%d", "plain", "k", "-"},
		{"%d", "user@example.com", "k", "example.com"},
		{"%S=%s", "v", "key@example.com", "key@example.com=v"},
		{"%U/%D", "v", "key@example.com", "key/example.com"},
		{"%D", "v", "example.com", "-"}, // a bare domain key has no %D
		{"%2", "v", "a@mail.example.com", "example"},
		{"%s", "", "k", "-"},
		{"%%%s%%", "v", "k", "%v%"},
	}
	for _, tt := range tests {
		tm, err := parseTemplates("SELECT '%s'", tt.format)
		if err != nil {
			t.Fatalf("parseTemplates(%q): %v", tt.format, err)
		}
		got, ok := tm.formatResult(tt.value, tt.key)
		if !ok {
			got = "-"
		}
		if got != tt.want {
			t.Errorf("formatResult(%q, %q, %q) = %q, want %q", tt.format, tt.value, tt.key, got, tt.want)
		}
	}
}

func TestParseTemplatesErrors(t *testing.T) {
	for _, q := range []string{"SELECT '%x'", "LIKE 'a%'", "%"} {
		if _, err := parseTemplates(q, "%s"); err == nil {
			t.Errorf("parseTemplates(%q) = nil error, want invalid template", q)
		}
	}
	if _, err := parseTemplates("%s", "%q"); err == nil || !strings.HasPrefix(err.Error(), "result_format:") {
		t.Errorf("parseTemplates with bad result_format: error = %v", err)
	}
}

func TestFoldKey(t *testing.T) {
	for in, want := range map[string]string{
		"Example.CH": "example.ch", "ÄBC.com": "äbc.com", "x": "x", "Straße": "strasse", "ΣΑΣ": "σασ",
		"\xffA": "\xffa", "İ": "i\u0307", "ﬁ": "fi", "ꭰᎠ": "ᎠᎠ",
	} {
		if got := foldKey(in); got != want {
			t.Errorf("foldKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsDomainName(t *testing.T) {
	for s, want := range map[string]bool{
		"example.com": true, "xn--bcher-kva.example": true, "bücher.example": true, "a-b.c0.de": true,
		"all": false, "localhost": false, "": false, "example.com.": false, ".example.com": false,
		"-a.com": false, "a-.com": false, "1.2.3.4": false, "user@example.com": false,
		"a b.com": false, "a_b.com": false, strings.Repeat("a", 64) + ".com": false,
	} {
		if got := IsDomainName(s); got != want {
			t.Errorf("IsDomainName(%q) = %v, want %v", s, got, want)
		}
	}
}

func FuzzExpand(f *testing.F) {
	f.Add("SELECT d FROM t WHERE d='%s'", "%s", "example.com")
	f.Add("%u %d %1 %2 %9 %%", "%U|%D|%S|%u|%d", "a@b@mail.example.com")
	f.Add("'%s'", "smtp:[%s]", "o'brien\\@x..y")
	f.Add("%", "%", "")
	f.Add("x", "%s", "ẞᾼꭰİ")
	f.Fuzz(func(t *testing.T, query, format, key string) {
		if k := foldKey(key); foldKey(k) != k {
			t.Fatalf("foldKey(%q) = %q, but foldKey(%q) = %q", key, k, k, foldKey(k))
		}
		tm, err := parseTemplates(query, format)
		if err != nil {
			return
		}
		q, ok := tm.expandQuery(key, quoteMySQL)
		if !ok {
			return
		}
		// Quoting leaves no unescaped quote: every ' in an expansion is
		// preceded by a backslash.
		if tm2, _ := parseTemplates("%s", "%s"); tm2 != nil {
			e, _ := tm2.expandQuery(key, quoteMySQL)
			for i := 0; i < len(e); i++ {
				if e[i] == '\\' {
					i++
					continue
				}
				if strings.ContainsRune("'\"\x00\n\r\x1a", rune(e[i])) {
					t.Fatalf("quoteMySQL(%q) = %q leaves %q unescaped", key, e, e[i])
				}
			}
		}
		if !strings.Contains(query, "%") && q != query {
			t.Fatalf("expandQuery(%q) = %q, changed a template without expansions", query, q)
		}
		tm.formatResult(key, key)
	})
}
