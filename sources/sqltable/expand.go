package sqltable

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Template flags: which parts of the lookup key (key*) or of a result value
// (value*) a query or result_format template needs. A key or value that
// lacks a needed part suppresses the query or skips the result, as in
// Postfix's db_common.c.
const (
	needKeyDomain   = 1 << iota // %d %D %1..%9 in the query; %D %1..%9 in result_format
	needKeyUser                 // %u %U in the query; %U in result_format
	needValueDomain             // %d in result_format
	needValueUser               // %u in result_format
)

// templates holds what the query and result_format templates of one table
// need; Postfix accumulates both into one context, so a result_format that
// uses %D suppresses the query for a key without a domain.
type templates struct {
	query, result string
	flags         int
	nparts        int // highest %1..%9 used
}

// parseTemplates validates the query and result_format templates.
func parseTemplates(query, result string) (*templates, error) {
	t := &templates{query: query, result: result}
	if err := t.parse(query, true); err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	if err := t.parse(result, false); err != nil {
		return nil, fmt.Errorf("result_format: %w", err)
	}
	return t, nil
}

func (t *templates) parse(format string, query bool) error {
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		i++
		if i == len(format) {
			return fmt.Errorf("%q ends with a lone %%", format)
		}
		switch c := format[i]; c {
		case '%', 's', 'S':
		case 'u':
			if query {
				t.flags |= needKeyUser
			} else {
				t.flags |= needValueUser
			}
		case 'd':
			if query {
				t.flags |= needKeyDomain
			} else {
				t.flags |= needValueDomain
			}
		case 'U':
			t.flags |= needKeyUser
		case 'D':
			t.flags |= needKeyDomain
		case '1', '2', '3', '4', '5', '6', '7', '8', '9':
			t.nparts = max(t.nparts, int(c-'0'))
			t.flags |= needKeyDomain
		default:
			return fmt.Errorf("invalid %%%c in %q", c, format)
		}
	}
	return nil
}

// splitAddr splits s at its last '@'; ok is false when there is none.
func splitAddr(s string) (user, domain string, ok bool) {
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// labels returns the non-empty dot-separated labels of domain, as Postfix's
// argv_split does.
func labels(domain string) []string {
	return strings.FieldsFunc(domain, func(r rune) bool { return r == '.' })
}

// keyParts checks that key has every part the templates need and returns
// them. ok false means Postfix suppresses the query (or skips the result).
func (t *templates) keyParts(key string) (user, domain string, parts []string, ok bool) {
	user, domain, hasAt := splitAddr(key)
	if t.flags&needKeyDomain != 0 && (!hasAt || domain == "") {
		return "", "", nil, false
	}
	if t.flags&needKeyUser != 0 && hasAt && user == "" {
		return "", "", nil, false
	}
	if t.nparts > 0 {
		parts = labels(domain)
		if len(parts) < t.nparts {
			return "", "", nil, false
		}
	}
	if !hasAt {
		user = key
	}
	return user, domain, parts, true
}

// expandQuery returns the query for key with every expansion quoted by
// quote, or ok false when Postfix would suppress the query.
func (t *templates) expandQuery(key string, quote func(string) string) (q string, ok bool) {
	if key == "" {
		return "", false // Postfix: "empty query string -- ignored"
	}
	user, domain, parts, ok := t.keyParts(key)
	if !ok {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(t.query); i++ {
		c := t.query[i]
		if c != '%' || i+1 == len(t.query) {
			b.WriteByte(c)
			continue
		}
		i++
		switch c := t.query[i]; c {
		case '%':
			b.WriteByte('%')
		case 's', 'S':
			b.WriteString(quote(key))
		case 'u', 'U':
			b.WriteString(quote(user))
		case 'd', 'D':
			b.WriteString(quote(domain))
		default: // '1'..'9', checked by parse
			b.WriteString(quote(parts[len(parts)-int(c-'0')]))
		}
	}
	return b.String(), true
}

// formatResult applies result_format to one result value of key, or
// returns ok false when Postfix skips the value.
func (t *templates) formatResult(value, key string) (string, bool) {
	if value == "" {
		return "", false // Postfix: "empty lookup result -- ignored"
	}
	vuser, vdomain, vHasAt := splitAddr(value)
	if t.flags&needValueDomain != 0 && (!vHasAt || vdomain == "") {
		return "", false
	}
	if t.flags&needValueUser != 0 && vHasAt && vuser == "" {
		return "", false
	}
	if !vHasAt {
		vuser = value
	}
	kuser, kdomain, parts, ok := t.keyParts(key)
	if !ok {
		return "", false
	}
	if t.result == "%s" {
		return value, true
	}
	var b strings.Builder
	for i := 0; i < len(t.result); i++ {
		c := t.result[i]
		if c != '%' || i+1 == len(t.result) {
			b.WriteByte(c)
			continue
		}
		i++
		switch c := t.result[i]; c {
		case '%':
			b.WriteByte('%')
		case 's':
			b.WriteString(value)
		case 'u':
			b.WriteString(vuser)
		case 'd':
			b.WriteString(vdomain)
		case 'S':
			b.WriteString(key)
		case 'U':
			b.WriteString(kuser)
		case 'D':
			b.WriteString(kdomain)
		default:
			b.WriteString(parts[len(parts)-int(c-'0')])
		}
	}
	return b.String(), true
}

// foldKey folds a lookup key as Postfix 3.x does with smtputf8_enable = yes
// (the default): ASCII keys are lower-cased; other UTF-8 keys are case
// folded like ICU's full case folding ("Straße" becomes "strasse"). Invalid
// UTF-8 is only lower-cased in ASCII; Postfix never looks it up.
func foldKey(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii || !utf8.ValidString(s) {
		return asciiLower(s)
	}
	var b strings.Builder
	for _, r := range s {
		if f, ok := fullFold[r]; ok {
			b.WriteString(f)
			continue
		}
		switch {
		case r >= 0x13A0 && r <= 0x13F5: // Cherokee capitals fold to themselves
			b.WriteRune(r)
		case r >= 0xAB70 && r <= 0xABBF, r >= 0x13F8 && r <= 0x13FD: // Cherokee small letters fold to capitals
			b.WriteRune(unicode.ToUpper(r))
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// fullFold lists the case foldings that differ from unicode.ToLower: the
// multi-character (full) foldings and the simple foldings of letters that
// are already lower case.
var fullFold = map[rune]string{
	'ß': "ss", 'ẞ': "ss", 'İ': "i\u0307", 'ŉ': "ʼn", 'ǰ': "ǰ", 'ΐ': "ΐ", 'ΰ': "ΰ",
	'և': "եւ", 'ẖ': "ẖ", 'ẗ': "ẗ", 'ẘ': "ẘ", 'ẙ': "ẙ", 'ẚ': "aʾ",
	'ﬀ': "ff", 'ﬁ': "fi", 'ﬂ': "fl", 'ﬃ': "ffi", 'ﬄ': "ffl", 'ﬅ': "st", 'ﬆ': "st",
	'ﬓ': "մն", 'ﬔ': "մե", 'ﬕ': "մի", 'ﬖ': "վն", 'ﬗ': "մխ",
	'ᾳ': "αι", 'ῃ': "ηι", 'ῳ': "ωι", 'ᾼ': "αι", 'ῌ': "ηι", 'ῼ': "ωι",
	'ς': "σ", 'ſ': "s", 'ϐ': "β", 'ϑ': "θ", 'ϕ': "φ", 'ϖ': "π", 'ϰ': "κ",
	'ϱ': "ρ", 'ϵ': "ε", '\u0345': "ι", 'ι': "ι", 'ẛ': "ṡ",
}

// asciiLower lower-cases ASCII letters only.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
