package ldaptable

import (
	"errors"
	"fmt"
	"strings"

	ber "github.com/go-asn1-ber/asn1-ber"
)

// A filter is a parsed LDAP search filter (RFC 4511 section 4.5.1).
//
// Postfix expands query_filter as text and hands the string to libldap,
// whose parser is more lenient than RFC 4515: a filter without the outer
// parentheses ("objectClass=*"), spaces before and between the parts of
// "&", "|" and "!", LDAPv2 escapes ("\*") as well as "\2A". parseFilter
// accepts exactly what libldap 2.5 accepts and builds the same filter;
// String renders it in the strict RFC 4515 form github.com/go-ldap/ldap
// compiles to the same BER, every value byte but letters, digits and
// ".-_@" hex-escaped.
type filter struct {
	op    filterOp
	kids  []*filter // and, or, not (one)
	attr  string    // assertions: the attribute description
	value string    // equality, ge, le, approx, ext: the unescaped value

	// substrings: initial and final ("" when absent), any (never "").
	initial, final string
	any            []string

	// ext: the matching rule and the dnAttributes flag.
	rule    string
	dnAttrs bool
}

type filterOp int

const (
	opAnd filterOp = iota
	opOr
	opNot
	opEqual
	opSubstr
	opGE
	opLE
	opPresent
	opApprox
	opExt
)

var errBadFilter = errors.New("bad search filter")

func badFilter(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadFilter, fmt.Sprintf(format, args...))
}

// parseFilter parses s as libldap's ldap_pvt_put_filter does. Like libldap,
// which takes a C string, it ignores everything from a NUL byte on.
func parseFilter(s string) (*filter, error) {
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	return parseTop(s, 0)
}

// depth bounds the nesting, so a hostile value cannot exhaust the stack.
const maxFilterDepth = 100

// isSpace is libldap's LDAP_SPACE.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }

// parseTop is ldap_pvt_put_filter: one filter, optionally parenthesized,
// optionally preceded by spaces, nothing after it.
func parseTop(s string, depth int) (*filter, error) {
	if depth > maxFilterDepth {
		return nil, badFilter("nested too deeply")
	}
	// libldap skips one leading space and then wants the end of the
	// string; it encodes nothing then, which no server accepts.
	switch {
	case s == "" || s == " ":
		return nil, badFilter("empty filter")
	case s[0] == ' ':
		return nil, badFilter("space before the filter")
	case s[0] == ')':
		return nil, badFilter("unbalanced ')'")
	case s[0] != '(':
		// A simple type=value filter without parentheses: the whole string.
		return parseSimple(s)
	}
	i := 1
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	var f *filter
	var end int // index just after the closing ')'
	if i < len(s) && (s[i] == '&' || s[i] == '|' || s[i] == '!') {
		op := map[byte]filterOp{'&': opAnd, '|': opOr, '!': opNot}[s[i]]
		close := findRightParen(s, i+1)
		if close < 0 {
			return nil, badFilter("missing ')'")
		}
		kids, err := parseList(s[i+1:close], op, depth)
		if err != nil {
			return nil, err
		}
		f, end = &filter{op: op, kids: kids}, close+1
	} else {
		if i < len(s) && s[i] == '(' {
			return nil, badFilter("unexpected '('")
		}
		close := findRightParen(s, i)
		if close < 0 {
			return nil, badFilter("missing ')'")
		}
		var err error
		if f, err = parseSimple(s[i:close]); err != nil {
			return nil, err
		}
		end = close + 1
	}
	if end != len(s) {
		return nil, badFilter("text after the filter: %q", s[end:])
	}
	return f, nil
}

// findRightParen returns the index of the ')' that closes a '(' just
// before s[from:], skipping escaped characters, or -1.
func findRightParen(s string, from int) int {
	balance, escape := 1, false
	for i := from; i < len(s); i++ {
		if !escape {
			switch s[i] {
			case '(':
				balance++
			case ')':
				balance--
			}
		}
		if balance == 0 {
			return i
		}
		escape = s[i] == '\\' && !escape
	}
	return -1
}

// parseList is put_filter_list: "(f1)(f2)..." with optional spaces
// between; "!" takes exactly one.
func parseList(s string, op filterOp, depth int) ([]*filter, error) {
	var kids []*filter
	i := 0
	for i < len(s) {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) {
			break
		}
		close := findRightParen(s, i+1)
		if close < 0 {
			return nil, badFilter("bad list %q", s)
		}
		kid, err := parseTop(s[i:close+1], depth+1)
		if err != nil {
			return nil, err
		}
		kids = append(kids, kid)
		i = close + 1
		if op == opNot {
			break
		}
	}
	if op == opNot && (len(kids) != 1 || i != len(s)) {
		return nil, badFilter("'!' needs exactly one filter")
	}
	return kids, nil
}

// parseSimple is put_simple_filter: attr=value, attr~=, attr>=, attr<=,
// attr=*, substrings, and extensible matches.
func parseSimple(s string) (*filter, error) {
	eq := strings.IndexByte(s, '=')
	if eq <= 0 {
		return nil, badFilter("no attribute=value in %q", s)
	}
	value := s[eq+1:]
	attr := s[:eq]
	var f *filter
	switch attr[len(attr)-1] {
	case '<':
		f, attr = &filter{op: opLE}, attr[:len(attr)-1]
	case '>':
		f, attr = &filter{op: opGE}, attr[:len(attr)-1]
	case '~':
		f, attr = &filter{op: opApprox}, attr[:len(attr)-1]
	case ':':
		return parseExt(attr[:len(attr)-1], value)
	default:
		if !isDesc(attr) {
			return nil, badFilter("bad attribute description %q", attr)
		}
		star, ok := findWildcard(value, 0)
		switch {
		case !ok:
			return nil, badFilter("bad value %q", value)
		case star == len(value):
			f = &filter{op: opEqual}
		case value == "*":
			return &filter{op: opPresent, attr: attr}, nil
		default:
			return parseSubstrings(attr, value, star)
		}
	}
	if !isDesc(attr) {
		return nil, badFilter("bad attribute description %q", attr)
	}
	v, ok := unescapeValue(value)
	if !ok {
		return nil, badFilter("bad value %q", value)
	}
	f.attr, f.value = attr, v
	return f, nil
}

// parseExt parses the extensible match "type[:dn][:rule]:=value" or
// "[:dn]:rule:=value"; left is everything before ":=".
func parseExt(left, value string) (*filter, error) {
	f := &filter{op: opExt}
	attr := left
	var rule string
	hasRule := false
	if a, rest, ok := strings.Cut(left, ":"); ok {
		attr = a
		if dn, r, two := strings.Cut(rest, ":"); two {
			if !strings.EqualFold(dn, "dn") {
				return nil, badFilter("bad extensible match %q", left)
			}
			f.dnAttrs, rule, hasRule = true, r, true
		} else if strings.EqualFold(rest, "dn") {
			if !isDesc(attr) {
				return nil, badFilter("bad extensible match %q", left)
			}
			f.dnAttrs, hasRule = true, true
		} else {
			rule, hasRule = rest, true
		}
	}
	if attr == "" && (!hasRule || rule == "") {
		return nil, badFilter("extensible match without type or rule")
	}
	if attr != "" && !isDesc(attr) {
		return nil, badFilter("bad attribute description %q", attr)
	}
	if rule != "" && !isOID(rule) {
		return nil, badFilter("bad matching rule %q", rule)
	}
	v, ok := unescapeValue(value)
	if !ok {
		return nil, badFilter("bad value %q", value)
	}
	f.attr, f.rule, f.value = attr, rule, v
	return f, nil
}

// parseSubstrings is put_substring_filter; star is the first wildcard.
func parseSubstrings(attr, value string, star int) (*filter, error) {
	f := &filter{op: opSubstr, attr: attr}
	gotStar := false
	for val := value; val != ""; {
		if gotStar {
			var ok bool
			if star, ok = findWildcard(val, 0); !ok {
				return nil, badFilter("bad value %q", value)
			}
		}
		part, kind := val, 'f'
		if star < len(val) {
			part, val = val[:star], val[star+1:]
			kind = 'a'
			if !gotStar {
				kind = 'i'
			}
			gotStar = true
		} else {
			val = ""
		}
		if part == "" && kind != 'a' {
			continue
		}
		v, ok := unescapeValue(part)
		if !ok || v == "" {
			return nil, badFilter("bad value %q", value)
		}
		switch kind {
		case 'i':
			f.initial = v
		case 'a':
			f.any = append(f.any, v)
		default:
			f.final = v
		}
	}
	return f, nil
}

// findWildcard is ldap_pvt_find_wildcard: the index of the first unescaped
// '*' at or after from, len(s) when there is none, ok false for an
// unescaped parenthesis or a bad escape.
func findWildcard(s string, from int) (int, bool) {
	for i := from; i < len(s); i++ {
		switch s[i] {
		case '*':
			return i, true
		case '(', ')':
			return 0, false
		case '\\':
			if i+1 == len(s) {
				return 0, false
			}
			if i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
				i += 2
				continue
			}
			switch s[i+1] {
			case '*', '(', ')', '\\': // RFC 1960 escapes
				i++
			default:
				return 0, false
			}
		}
	}
	return len(s), true
}

// unescapeValue is ldap_pvt_filter_value_unescape: \XX (LDAPv3) and
// \*, \(, \), \\ (LDAPv2) escapes; an unescaped '(', ')' or '*' or any
// other backslash is an error.
func unescapeValue(s string) (string, bool) {
	if !strings.ContainsAny(s, "()*\\") {
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '(', ')', '*':
			return "", false
		case '\\':
			i++
			if i == len(s) {
				return "", false
			}
			if isHex(s[i]) {
				if i+1 == len(s) || !isHex(s[i+1]) {
					return "", false
				}
				b = append(b, hexVal(s[i])<<4|hexVal(s[i+1]))
				i++
				continue
			}
			switch s[i] {
			case '(', ')', '*', '\\':
				b = append(b, s[i])
			default:
				return "", false
			}
		default:
			b = append(b, c)
		}
	}
	return string(b), true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func hexVal(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isLDH(c byte) bool   { return isAlpha(c) || isDigit(c) || c == '-' }

// isDesc is ldap_is_desc: a name or numeric OID, then ";option"s.
func isDesc(s string) bool {
	name, options, hasOptions := strings.Cut(s, ";")
	if !isOID(name) {
		return false
	}
	if !hasOptions {
		return true
	}
	for _, o := range strings.Split(options, ";") {
		if o == "" {
			return false
		}
		for i := 0; i < len(o); i++ {
			if !isLDH(o[i]) {
				return false
			}
		}
	}
	return true
}

// isOID is ldap_is_oid: a letter then letters, digits and hyphens, or
// digits separated by single dots.
func isOID(s string) bool {
	if s == "" {
		return false
	}
	if isAlpha(s[0]) {
		for i := 1; i < len(s); i++ {
			if !isLDH(s[i]) {
				return false
			}
		}
		return true
	}
	if !isDigit(s[0]) {
		return false
	}
	dot := false
	for i := 1; i < len(s); i++ {
		switch {
		case isDigit(s[i]):
			dot = false
		case s[i] == '.' && !dot:
			dot = true
		default:
			return false
		}
	}
	return !dot
}

// String renders f in RFC 4515 form with every value byte other than
// letters, digits and ".-_@" escaped as \XX.
func (f *filter) String() string {
	var b strings.Builder
	f.write(&b)
	return b.String()
}

func (f *filter) write(b *strings.Builder) {
	b.WriteByte('(')
	switch f.op {
	case opAnd, opOr, opNot:
		b.WriteByte("&|!"[f.op])
		for _, k := range f.kids {
			k.write(b)
		}
	case opEqual:
		b.WriteString(f.attr + "=" + escapeValue(f.value))
	case opGE:
		b.WriteString(f.attr + ">=" + escapeValue(f.value))
	case opLE:
		b.WriteString(f.attr + "<=" + escapeValue(f.value))
	case opApprox:
		b.WriteString(f.attr + "~=" + escapeValue(f.value))
	case opPresent:
		b.WriteString(f.attr + "=*")
	case opSubstr:
		b.WriteString(f.attr + "=" + escapeValue(f.initial) + "*")
		for _, a := range f.any {
			b.WriteString(escapeValue(a) + "*")
		}
		b.WriteString(escapeValue(f.final))
	case opExt:
		b.WriteString(f.attr)
		if f.dnAttrs {
			b.WriteString(":dn")
		}
		if f.rule != "" {
			b.WriteString(":" + f.rule)
		}
		b.WriteString(":=" + escapeValue(f.value))
	}
	b.WriteByte(')')
}

func escapeValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if isAlpha(c) || isDigit(c) || c == '.' || c == '-' || c == '_' || c == '@' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\%02x", c)
		}
	}
	return b.String()
}

// BER encodes f as libldap does (RFC 4511 Filter), for tests that check
// that String renders f exactly.
func (f *filter) BER() *ber.Packet {
	ctx := func(tag ber.Tag, constructed bool) *ber.Packet {
		t := ber.TypePrimitive
		if constructed {
			t = ber.TypeConstructed
		}
		return ber.Encode(ber.ClassContext, t, tag, nil, "")
	}
	str := func(class ber.Class, tag ber.Tag, s string) *ber.Packet {
		return ber.NewString(class, ber.TypePrimitive, tag, s, "")
	}
	octets := func(s string) *ber.Packet { return str(ber.ClassUniversal, ber.TagOctetString, s) }
	switch f.op {
	case opAnd, opOr, opNot:
		p := ctx(ber.Tag(f.op), true)
		for _, k := range f.kids {
			p.AppendChild(k.BER())
		}
		return p
	case opPresent:
		return str(ber.ClassContext, ber.Tag(opPresent), f.attr)
	case opSubstr:
		p := ctx(ber.Tag(opSubstr), true)
		p.AppendChild(octets(f.attr))
		seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
		if f.initial != "" {
			seq.AppendChild(str(ber.ClassContext, 0, f.initial))
		}
		for _, a := range f.any {
			seq.AppendChild(str(ber.ClassContext, 1, a))
		}
		if f.final != "" {
			seq.AppendChild(str(ber.ClassContext, 2, f.final))
		}
		p.AppendChild(seq)
		return p
	case opExt:
		p := ctx(ber.Tag(opExt), true)
		if f.rule != "" {
			p.AppendChild(str(ber.ClassContext, 1, f.rule))
		}
		if f.attr != "" {
			p.AppendChild(str(ber.ClassContext, 2, f.attr))
		}
		p.AppendChild(str(ber.ClassContext, 3, f.value))
		if f.dnAttrs {
			p.AppendChild(ber.NewBoolean(ber.ClassContext, ber.TypePrimitive, 4, true, ""))
		}
		return p
	}
	p := ctx(ber.Tag(f.op), true)
	p.AppendChild(octets(f.attr))
	p.AppendChild(octets(f.value))
	return p
}
