package sqltable

import (
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/sources/lookupkey"
)

func TestQuoteMySQL(t *testing.T) {
	tests := []struct {
		query, key, want string
	}{
		{"'%s'", "o'brien@example.com", `'o\'brien@example.com'`},
		{"%s", "a\x00b\nc\rd\\e\"f\x1ag", `a\0b\nc\rd\\e\"f\Zg`},
		{"'%u'@'%d'", `o'x@a"b.c`, `'o\'x'@'a\"b.c'`},
	}
	for _, tt := range tests {
		tm, err := lookupkey.Parse("", lookupkey.Search{Param: "query", Format: tt.query})
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := tm.Expand(tt.query, tt.key, quoteMySQL); !ok || got != tt.want {
			t.Errorf("Expand(%q, %q, quoteMySQL) = %q, %v; want %q", tt.query, tt.key, got, ok, tt.want)
		}
	}
}

// FuzzQuoteMySQL checks that quoting leaves no special character
// unescaped (every ', ", NUL, CR, LF and ^Z is preceded by a backslash)
// and that MySQL reads the quoted text back as the key.
func FuzzQuoteMySQL(f *testing.F) {
	f.Add("example.com")
	f.Add("o'brien\\@x..y")
	f.Add("a\x00b\nc\rd\\e\"f\x1ag")
	f.Add("\\'")
	f.Fuzz(func(t *testing.T, key string) {
		e := quoteMySQL(key)
		var raw strings.Builder
		for i := 0; i < len(e); i++ {
			if e[i] == '\\' {
				i++
				if i == len(e) {
					t.Fatalf("quoteMySQL(%q) = %q ends with a lone backslash", key, e)
				}
				switch c := e[i]; c {
				case '0':
					raw.WriteByte(0)
				case 'n':
					raw.WriteByte('\n')
				case 'r':
					raw.WriteByte('\r')
				case 'Z':
					raw.WriteByte(0x1a)
				default:
					raw.WriteByte(c)
				}
				continue
			}
			if strings.ContainsRune("'\"\x00\n\r\x1a", rune(e[i])) {
				t.Fatalf("quoteMySQL(%q) = %q leaves %q unescaped", key, e, e[i])
			}
			raw.WriteByte(e[i])
		}
		if raw.String() != key {
			t.Fatalf("quoteMySQL(%q) = %q, which reads back as %q", key, e, raw.String())
		}
	})
}
