package apache

import (
	"fmt"
	"slices"
	"testing"
)

func TestSplitLines(t *testing.T) {
	tests := []struct {
		in   string
		want []string // "first-last:text"
	}{
		{"a b\n\n  c  \n", []string{"1-1:a b", "2-2:", "3-3:c"}},
		{"a \\\n  b\nc", []string{"1-2:a   b", "3-3:c"}},
		{"a\\\r\nb\r\n", []string{"1-2:ab"}},
		{"# x \\\nInclude y\nz", []string{"1-2:# x Include y", "3-3:z"}},
		{"a\\\\\nb\n", []string{"1-2:a\\b"}}, // httpd 2.4.71 continues after "\\" too
		{"a\\ \nb\n", []string{"1-1:a\\", "2-2:b"}},
		{"a\\", []string{"1-1:a\\"}},
	}
	for _, tt := range tests {
		var got []string
		for _, l := range splitLines([]byte(tt.in)) {
			got = append(got, fmt.Sprintf("%d-%d:%s", l.first, l.last, l.text))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("splitLines(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`ProxyPass /SOGo http://127.0.0.1:20000/SOGo retry=0`, []string{"ProxyPass", "/SOGo", "http://127.0.0.1:20000/SOGo", "retry=0"}},
		{`Header set "a \"b\" \\ c" 'd\'e'`, []string{"Header", "set", `a "b" \ c`, "d'e"}},
		{`a "unterminated b`, []string{"a", "unterminated b"}},
		{`x\\y x"y" "a"b`, []string{`x\y`, `x"y"`, "a", "b"}},
		{`"" ''`, []string{"", ""}},
	}
	for _, tt := range tests {
		if got := words(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("words(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEvalIfVersion(t *testing.T) {
	tests := []struct {
		args          []string
		result, known bool
	}{
		{[]string{"<", "2.4"}, false, true},
		{[]string{">=", "2.4"}, true, true},
		{[]string{"2.4"}, true, true},
		{[]string{">", "2.2.34"}, true, true},
		{[]string{">=", "2.4.30"}, false, false},
		{[]string{"~", "^2"}, false, false},
		{[]string{"<", "3"}, true, true},
		{[]string{">=", "2"}, false, false},
	}
	for _, tt := range tests {
		if r, k := evalIfVersion(tt.args); r != tt.result || k != tt.known {
			t.Errorf("evalIfVersion(%q) = %v, %v; want %v, %v", tt.args, r, k, tt.result, tt.known)
		}
	}
}
