package lookupkey

import (
	"fmt"
	"strings"
)

// What the templates of a table need from a key or a result value. A key
// or value that lacks a needed part suppresses the lookup or skips the
// value, as in Postfix's db_common.c.
const (
	needKeyDomain   = 1 << iota // %d or %D in a search template; %D or %1..%9 anywhere
	needKeyUser                 // %u or %U in a search template; %U in result_format
	needValueDomain             // %d in result_format
	needValueUser               // %u in result_format
)

// Templates are the %-templates of one table, validated, with what they
// need from keys and values. Postfix gathers the needs of all of them in
// one context: %D in result_format suppresses the query (or search) for a
// key without a domain, as %d in the query does.
type Templates struct {
	result string // result_format
	flags  int
	nparts int // highest %1..%9 used
}

// A Search is a template expanded with the key before the lookup: an SQL
// table's query, an LDAP table's search_base or query_filter. Param is its
// parameter, for errors.
type Search struct {
	Param, Format string
}

// Parse validates a table's templates and gathers what they need:
// resultFormat is result_format ("" for Postfix's default, "%s"), search
// the templates expanded with the key. An unknown %-sequence, or a '%' at
// the end, is the error Postfix refuses the table with; it names the
// parameter ("query_filter: invalid template ...").
func Parse(resultFormat string, search ...Search) (*Templates, error) {
	if resultFormat == "" {
		resultFormat = "%s"
	}
	t := &Templates{result: resultFormat}
	for _, s := range search {
		if err := t.parse(s.Format, true); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Param, err)
		}
	}
	if err := t.parse(resultFormat, false); err != nil {
		return nil, fmt.Errorf("result_format: %w", err)
	}
	return t, nil
}

// parse records what format needs; search tells a search template from
// result_format, where %u and %d stand for parts of the value.
func (t *Templates) parse(format string, search bool) error {
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		i++
		if i == len(format) {
			return fmt.Errorf("invalid template %q: it ends with a lone %%", format)
		}
		switch c := format[i]; c {
		case '%', 's', 'S':
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
			return fmt.Errorf("invalid template %q: unknown %%%c", format, c)
		}
	}
	return nil
}

// HasExpansions reports whether format depends on the key (or value) at
// all: whether it holds a %-expansion other than %%.
func HasExpansions(format string) bool {
	for i := 0; i+1 < len(format); i++ {
		if format[i] == '%' {
			if i++; format[i] != '%' {
				return true
			}
		}
	}
	return false
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
// them; ok false means Postfix skips the lookup (or the result).
func (t *Templates) keyParts(key string) (user, domain string, parts []string, ok bool) {
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

// Accepts reports whether Postfix expands the templates for the (folded)
// key at all: the key is not empty and has every part they need (a
// domain for %d, %D and %1..%9, with at least as many labels as the
// highest %1..%9; a local part for %u and %U when it has an '@').
func (t *Templates) Accepts(key string) bool {
	_, _, _, ok := t.keyParts(key)
	return ok && key != ""
}

// Expand expands the search template format (one of those given to
// Parse) for the (folded) key, quoting every expansion with quote; ok is
// false when Postfix does not look the key up at all.
func (t *Templates) Expand(format, key string, quote func(string) string) (expanded string, ok bool) {
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
		default: // '1'..'9', checked by Parse
			b.WriteString(quote(parts[len(parts)-int(c-'0')]))
		}
	}
	return b.String(), true
}

// FormatResult applies result_format to one result value found for the
// (folded) key; ok is false when Postfix skips the value. Postfix reads
// the value as a C string: it ends at the first NUL byte.
func (t *Templates) FormatResult(value, key string) (result string, ok bool) {
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
