package lookupkey

import (
	"strings"
	"testing"
)

// bracket quotes an expansion visibly, to show where each one went.
func bracket(s string) string { return "[" + s + "]" }

func TestExpand(t *testing.T) {
	tests := []struct {
		query, key, want string // want "-" means suppressed
	}{
		{"%s", "example.com", "[example.com]"},
		{"%u", "example.com", "[example.com]"},
		{"%d", "example.com", "-"},
		{"%1", "example.com", "-"}, // a bare domain has no domain part
		{"%S|%U", "example.com", "[example.com]|[example.com]"},
		{"%D", "example.com", "-"},
		{"%u|%d", "user@example.com", "[user]|[example.com]"},
		{"%U|%D", "user@example.com", "[user]|[example.com]"},
		{"%u", "@example.com", "-"}, // empty local part
		{"%s", "@example.com", "[@example.com]"},
		{"%d", "user@", "-"},
		{"%u", "user@", "[user]"},
		{"%u|%d", "a@b@mail.example.com", "[a@b]|[mail.example.com]"},
		{"%1.%2.%3", "x@mail.example.com", "[com].[example].[mail]"},
		{"%3", "x@example.com", "-"},
		{"%2", "x@a..example.com", "[example]"},
		{"%3", "x@a..example.com", "[a]"},
		{"100%% %s", "k", "100% [k]"},
		{"%s", "", "-"},
		{"no expansion", "k", "no expansion"},
	}
	for _, tt := range tests {
		tm, err := Parse("%s", Search{"query", tt.query})
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.query, err)
		}
		got, ok := tm.Expand(tt.query, tt.key, bracket)
		if !ok {
			got = "-"
		}
		if got != tt.want {
			t.Errorf("Expand(%q, %q) = %q, want %q", tt.query, tt.key, got, tt.want)
		}
		if tm.Accepts(tt.key) != ok {
			t.Errorf("Accepts(%q) = %v for %q, but Expand ok = %v", tt.key, !ok, tt.query, ok)
		}
	}
}

// TestExpandOneContext checks that the needs of every template of a table
// decide for each: Postfix gathers them in one context.
func TestExpandOneContext(t *testing.T) {
	tm, err := Parse("%D", Search{"search_base", "o=domains"}, Search{"query_filter", "(mail=%s)"})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := tm.Expand("(mail=%s)", "example.com", bracket); ok {
		t.Errorf("Expand with result_format %%D, key without a domain = %q, want suppressed", got)
	}
	if got, ok := tm.Expand("o=domains", "u@example.com", bracket); !ok || got != "o=domains" {
		t.Errorf("Expand(base) = %q, %v", got, ok)
	}
	tm, err = Parse("", Search{"search_base", "dc=%2,dc=%1"}, Search{"query_filter", "(mail=%s)"})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := tm.Expand("(mail=%s)", "u@com", bracket); ok {
		t.Errorf("Expand(filter) with %%2 in the base, one label = %q, want suppressed", got)
	}
}

func TestFormatResult(t *testing.T) {
	tests := []struct {
		format, value, key, want string
	}{
		{"%s", "example.com", "example.com", "example.com"},
		{"", "example.com", "example.com", "example.com"}, // the default
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
		// A value is a C string to Postfix: it ends at its first NUL.
		{"%s", "a\x00b", "k", "a"},
		{"<%s>", "\x00b", "k", "-"},
		{"%d", "u@x\x00@y", "k", "x"},
	}
	for _, tt := range tests {
		tm, err := Parse(tt.format, Search{"query", "SELECT '%s'"})
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.format, err)
		}
		got, ok := tm.FormatResult(tt.value, tt.key)
		if !ok {
			got = "-"
		}
		if got != tt.want {
			t.Errorf("FormatResult(%q, %q, %q) = %q, want %q", tt.format, tt.value, tt.key, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		result string
		search []Search
		want   string
	}{
		{"%s", []Search{{"query", "SELECT '%x'"}}, `query: invalid template "SELECT '%x'": unknown %x`},
		{"%s", []Search{{"query", "LIKE 'a%'"}}, `query: invalid template "LIKE 'a%'": unknown %'`},
		{"%s", []Search{{"query", "%"}}, `query: invalid template "%": it ends with a lone %`},
		{"%q", []Search{{"query", "%s"}}, `result_format: invalid template "%q": unknown %q`},
		{"100%", nil, `result_format: invalid template "100%": it ends with a lone %`},
		{"%s", []Search{{"search_base", "cn=%s"}, {"query_filter", "(mail=%x)"}}, `query_filter: invalid template "(mail=%x)": unknown %x`},
	}
	for _, tt := range tests {
		if _, err := Parse(tt.result, tt.search...); err == nil || err.Error() != tt.want {
			t.Errorf("Parse(%q, %q) error = %v, want %q", tt.result, tt.search, err, tt.want)
		}
	}
}

func TestHasExpansions(t *testing.T) {
	for format, want := range map[string]bool{
		"": false, "o=domains": false, "100%%": false, "%%s": false, "%s": true, "cn=%u,o=x": true, "%%%1": true, "%D": true,
	} {
		if got := HasExpansions(format); got != want {
			t.Errorf("HasExpansions(%q) = %v, want %v", format, got, want)
		}
	}
}

func FuzzExpand(f *testing.F) {
	f.Add("SELECT d FROM t WHERE d='%s'", "%s", "example.com")
	f.Add("%u %d %1 %2 %9 %%", "%U|%D|%S|%u|%d", "a@b@mail.example.com")
	f.Add("'%s'", "smtp:[%s]", "o'brien\\@x..y")
	f.Add("%", "%", "")
	f.Add("x", "%s", "ẞᾼꭰİ")
	f.Add("(mail=%s)", "%D", "a\x00@b.c")
	f.Fuzz(func(t *testing.T, query, format, key string) {
		k, ok := Fold(key)
		if k2, ok2 := Fold(k); k2 != k || ok2 != ok {
			t.Fatalf("Fold(%q) = %q, %v, but Fold(%q) = %q, %v", key, k, ok, k, k2, ok2)
		}
		if a, ok2 := FoldASCII(key); ok2 != ok || !strings.EqualFold(a, key) {
			t.Fatalf("FoldASCII(%q) = %q, %v; Fold ok = %v", key, a, ok2, ok)
		}
		tm, err := Parse(format, Search{"query", query})
		if err != nil {
			return
		}
		q, ok := tm.Expand(query, key, bracket)
		if ok != tm.Accepts(key) {
			t.Fatalf("Expand(%q, %q) ok = %v, Accepts = %v", query, key, ok, !ok)
		}
		if ok && !HasExpansions(query) && q != strings.ReplaceAll(query, "%%", "%") {
			t.Fatalf("Expand(%q) = %q, changed a template without expansions", query, q)
		}
		r, ok := tm.FormatResult(key, key)
		if ok && format != "" && !HasExpansions(format) && r != strings.ReplaceAll(format, "%%", "%") {
			t.Fatalf("FormatResult(%q) with %q = %q, changed a template without expansions", key, format, r)
		}
		if ok && (format == "" || format == "%s") && r != strings.Split(key, "\x00")[0] {
			t.Fatalf("FormatResult(%q) with %q = %q, want the value up to its NUL", key, format, r)
		}
	})
}
