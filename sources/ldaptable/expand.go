package ldaptable

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// What the templates of a table need from a key or a result value. Postfix
// gathers the needs of search_base, query_filter and result_format in one
// context, so %D in result_format suppresses the search for a key without
// a domain, as %d in query_filter does.
const (
	needKeyDomain   = 1 << iota // %d or %D in a search template, %D or %1..%9 anywhere
	needKeyUser                 // %u in a search template, %U anywhere
	needValueDomain             // %d in result_format
	needValueUser               // %u in result_format
)

// templates are a table's search_base, query_filter and result_format,
// validated, with what they need from keys and values.
type templates struct {
	base, filter, result string
	dynamicBase          bool // the search base depends on the key
	flags                int
	nparts               int // highest %1..%9 used
}

func parseTemplates(base, filter, result string) (*templates, error) {
	t := &templates{base: base, filter: filter, result: result}
	var err error
	if t.dynamicBase, err = t.parse(base, true); err != nil {
		return nil, fmt.Errorf("search_base: %w", err)
	}
	if _, err := t.parse(filter, true); err != nil {
		return nil, fmt.Errorf("query_filter: %w", err)
	}
	if _, err := t.parse(result, false); err != nil {
		return nil, fmt.Errorf("result_format: %w", err)
	}
	return t, nil
}

// parse records what format needs and reports whether it depends on the
// key or value at all. An unknown %-sequence, or a '%' at the end, is the
// error Postfix refuses the table with.
func (t *templates) parse(format string, search bool) (dynamic bool, err error) {
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		i++
		if i == len(format) {
			return false, fmt.Errorf("invalid template %q: it ends with a lone %%", format)
		}
		switch c := format[i]; c {
		case '%':
			continue
		case 's', 'S':
		case 'u':
			if search {
				t.flags |= needKeyUser
			} else {
				t.flags |= needValueUser
			}
		case 'd':
			if search {
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
			return false, fmt.Errorf("invalid template %q: unknown %%%c", format, c)
		}
		dynamic = true
	}
	return dynamic, nil
}

// splitAt splits s at its last '@'; ok is false when there is none.
func splitAt(s string) (local, domain string, ok bool) {
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
// them; ok false means Postfix skips the search (or the result).
func (t *templates) keyParts(key string) (user, domain string, parts []string, ok bool) {
	user, domain, hasAt := splitAt(key)
	if t.flags&(needKeyDomain|needKeyUser) == 0 {
		hasAt = false // Postfix does not look for the '@' then
	}
	if t.flags&needKeyDomain != 0 && (!hasAt || domain == "") {
		return "", "", nil, false
	}
	if t.flags&needKeyUser != 0 && hasAt && user == "" {
		return "", "", nil, false
	}
	if t.nparts > 0 {
		if parts = labels(domain); len(parts) < t.nparts {
			return "", "", nil, false
		}
	}
	if !hasAt {
		user = key
	}
	return user, domain, parts, true
}

// expandSearch expands a search template (the base or the filter) for key,
// quoting every expansion with quote; ok false means Postfix does not
// search at all.
func (t *templates) expandSearch(format, key string, quote func(string) string) (string, bool) {
	if key == "" {
		return "", false // Postfix: "empty query string -- ignored"
	}
	user, domain, parts, ok := t.keyParts(key)
	if !ok {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 == len(format) {
			b.WriteByte(c)
			continue
		}
		i++
		switch c := format[i]; c {
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

// formatResult applies result_format to one attribute value found for key;
// ok false means Postfix skips the value. Postfix reads the value as a C
// string: it ends at the first NUL byte.
func (t *templates) formatResult(value, key string) (string, bool) {
	if i := strings.IndexByte(value, 0); i >= 0 {
		value = value[:i]
	}
	if value == "" {
		return "", false // Postfix: "empty lookup result -- ignored"
	}
	vuser, vdomain, vHasAt := splitAt(value)
	if t.flags&(needValueDomain|needValueUser) == 0 {
		vHasAt = false
	}
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

// quoteFilter escapes a key for an LDAP search filter as Postfix's
// rfc2254_quote does: '*', '(', ')' and '\' become \XX (RFC 4515). A NUL
// byte never reaches it: Postfix keys are C strings, and Lookup refuses
// keys with NUL.
func quoteFilter(s string) string { return quoteBytes(s, "*()\\") }

// quoteDN escapes a key for the search base as Postfix's rfc2253_quote
// does: space, tab, '"', '#', '+', ',', ';', '<', '>' and '\' become \XX
// everywhere in the value, which RFC 4514 allows.
func quoteDN(s string) string { return quoteBytes(s, " \t\"#+,;<>\\") }

func quoteBytes(s, special string) string {
	if !strings.ContainsAny(s, special) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(special, s[i]) >= 0 {
			fmt.Fprintf(&b, "\\%02X", s[i])
		} else {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// foldKey folds a lookup key as Postfix 3.7 does with smtputf8_enable = yes
// (the default): an ASCII key is lower-cased; another UTF-8 key is case
// folded like ICU's full case folding ("Straße" becomes "strasse", "İ"
// becomes "i̇"). ok is false for a key Postfix never looks up: one that is
// not UTF-8 or holds a NUL byte.
func foldKey(s string) (folded string, ok bool) {
	if strings.IndexByte(s, 0) >= 0 {
		return "", false
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s), true
	}
	if !utf8.ValidString(s) {
		return "", false
	}
	var b strings.Builder
	for _, r := range s {
		switch f, special := fullFold[r]; {
		case special:
			b.WriteString(f)
		case r >= 0x13A0 && r <= 0x13F5: // Cherokee capitals fold to themselves
			b.WriteRune(r)
		case r >= 0xAB70 && r <= 0xABBF, r >= 0x13F8 && r <= 0x13FD: // Cherokee small letters fold to capitals
			b.WriteRune(unicode.ToUpper(r))
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String(), true
}

// fullFold holds the case foldings (Unicode CaseFolding.txt, status C and F)
// that differ from unicode.ToLower.
var fullFold = map[rune]string{
	'ß': "ss", 'ẞ': "ss", 'İ': "i\u0307", 'ŉ': "ʼn", 'ǰ': "ǰ", 'ΐ': "ΐ", 'ΰ': "ΰ",
	'և': "եւ", 'ẖ': "ẖ", 'ẗ': "ẗ", 'ẘ': "ẘ", 'ẙ': "ẙ", 'ẚ': "aʾ",
	'ﬀ': "ff", 'ﬁ': "fi", 'ﬂ': "fl", 'ﬃ': "ffi", 'ﬄ': "ffl", 'ﬅ': "st", 'ﬆ': "st",
	'ﬓ': "մն", 'ﬔ': "մե", 'ﬕ': "մի", 'ﬖ': "վն", 'ﬗ': "մխ",
	'ᾳ': "αι", 'ῃ': "ηι", 'ῳ': "ωι", 'ᾼ': "αι", 'ῌ': "ηι", 'ῼ': "ωι",
	'ς': "σ", 'ſ': "s", 'ϐ': "β", 'ϑ': "θ", 'ϕ': "φ", 'ϖ': "π", 'ϰ': "κ",
	'ϱ': "ρ", 'ϵ': "ε", '\u0345': "ι", 'ι': "ι", 'ẛ': "ṡ",
}
