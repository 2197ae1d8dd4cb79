package postfix

import (
	"errors"
	"fmt"
	"strings"
)

// Limits that keep expansion of hostile input finite and small.
const (
	maxExpandDepth = 100     // nested parameter references, as Postfix's "unreasonable macro call nesting"
	maxExpandBytes = 1 << 20 // bytes of output for one expansion
)

var errTooLong = errors.New("expansion longer than 1 MiB")

// An expander evaluates postconf(5) value expressions: $name, ${name},
// $(name), ${name?value}, ${name:value}, ${name?{v1}:{v2}}, relational
// expressions such as ${{$compatibility_level} <level {2} ? {a} : {b}}, and
// $$. An undefined parameter expands to the empty string, as postconf -x does.
//
// An expander is used for one expansion context and then dropped; it is not
// safe for concurrent use.
type expander struct {
	// lookup returns the unexpanded value of a parameter.
	lookup func(name string) (string, bool)
	// fallback, when set, computes the expanded value of a parameter that
	// lookup does not know (defaults that depend on other parameters).
	fallback func(e *expander, name string) (string, bool)

	memo    map[string]string
	active  map[string]bool
	depth   int
	written int   // bytes produced by all expansions so far
	err     error // the first error met
}

func newExpander(lookup func(string) (string, bool)) *expander {
	return &expander{lookup: lookup, memo: map[string]string{}, active: map[string]bool{}}
}

func (e *expander) fail(format string, args ...any) {
	if e.err == nil {
		e.err = fmt.Errorf(format, args...)
	}
}

// param returns the fully expanded value of the named parameter.
func (e *expander) param(name string) string {
	if v, ok := e.memo[name]; ok {
		return v
	}
	if e.active[name] || e.depth >= maxExpandDepth {
		e.fail("unreasonable macro call nesting: %q", name)
		return ""
	}
	e.active[name] = true
	e.depth++
	defer func() { e.depth--; delete(e.active, name) }()

	var v string
	if raw, ok := e.lookup(name); ok {
		v = e.expand(raw)
	} else if e.fallback != nil {
		v, _ = e.fallback(e, name)
	}
	e.memo[name] = v
	return v
}

// expand returns s with every parameter reference replaced.
func (e *expander) expand(s string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	defer func() { e.written += b.Len() }()
	for i := 0; i < len(s); {
		if e.written+b.Len() > maxExpandBytes {
			// Every expansion shares the budget, so nesting cannot
			// multiply it.
			e.err = errTooLong
			return b.String()
		}
		c := s[i]
		if c != '$' {
			j := strings.IndexByte(s[i:], '$')
			if j < 0 {
				j = len(s) - i
			}
			b.WriteString(s[i : i+j])
			i += j
			continue
		}
		i++
		if i >= len(s) {
			e.fail("empty macro name: %q", s)
			b.WriteByte('$')
			break
		}
		switch c := s[i]; {
		case c == '$':
			b.WriteByte('$')
			i++
		case c == '{' || c == '(':
			end := matchBracket(s, i)
			if end < 0 {
				e.fail("truncated macro reference: %q", s)
				b.WriteString(s[i-1:])
				i = len(s)
				break
			}
			b.WriteString(e.evalBraced(s[i+1 : end]))
			i = end + 1
		case isNameChar(c):
			j := i
			for j < len(s) && isNameChar(s[j]) {
				j++
			}
			b.WriteString(e.param(s[i:j]))
			i = j
		default:
			e.fail("empty macro name: %q", s)
			b.WriteByte('$')
		}
	}
	return b.String()
}

// matchBracket returns the index of the bracket that closes the one at
// s[open] ('{' or '('), counting nested brackets of the same kind, or -1.
func matchBracket(s string, open int) int {
	o := s[open]
	cl := byte('}')
	if o == '(' {
		cl = ')'
	}
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case o:
			depth++
		case cl:
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

func isNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func skipSpace(s string) string { return strings.TrimLeft(s, " \t\r\n\v\f") }

// evalBraced evaluates the text between "${" and "}" (or "$(" and ")").
func (e *expander) evalBraced(body string) string {
	var cond bool
	var rest string
	if t := skipSpace(body); strings.HasPrefix(t, "{") {
		var ok bool
		cond, rest, ok = e.relational(t)
		if !ok {
			return ""
		}
		if strings.TrimSpace(rest) == "" {
			e.fail("\"?\" or \":\" expected after relational expression: %q", body)
			return ""
		}
		rest = skipSpace(rest)
	} else {
		i := 0
		for i < len(body) && isNameChar(body[i]) {
			i++
		}
		if i == 0 {
			e.fail("empty macro name: \"${%s}\"", body)
			return ""
		}
		name := body[:i]
		if i == len(body) {
			return e.param(name)
		}
		rest = body[i:]
		cond = e.param(name) != ""
	}
	op := rest[0]
	if op != '?' && op != ':' {
		e.fail("unexpected input in macro reference: %q", body)
		return ""
	}
	v1, v2, hasV2, ok := e.splitConditional(op, rest[1:], body)
	if !ok {
		return ""
	}
	switch {
	case op == '?' && cond:
		return e.expand(v1)
	case op == '?' && hasV2:
		return e.expand(v2)
	case op == ':' && !cond:
		return e.expand(v1)
	}
	return ""
}

// splitConditional parses what follows '?' or ':' in a conditional
// expression. After '?', a braced value may be followed by ":value2". A
// value without braces runs to the end of the expression.
func (e *expander) splitConditional(op byte, t, body string) (v1, v2 string, hasV2, ok bool) {
	s := skipSpace(t)
	if !strings.HasPrefix(s, "{") {
		return t, "", false, true
	}
	end := matchBracket(s, 0)
	if end < 0 {
		e.fail("missing '}' in macro reference: %q", body)
		return "", "", false, false
	}
	v1 = s[1:end]
	after := skipSpace(s[end+1:])
	if after == "" {
		return v1, "", false, true
	}
	if op != '?' || after[0] != ':' {
		e.fail("unexpected input in macro reference: %q", body)
		return "", "", false, false
	}
	t2 := after[1:]
	s2 := skipSpace(t2)
	if !strings.HasPrefix(s2, "{") {
		return v1, t2, true, true
	}
	end2 := matchBracket(s2, 0)
	if end2 < 0 {
		e.fail("missing '}' in macro reference: %q", body)
		return "", "", false, false
	}
	if skipSpace(s2[end2+1:]) != "" {
		e.fail("unexpected input in macro reference: %q", body)
		return "", "", false, false
	}
	return v1, s2[1:end2], true, true
}

// relational evaluates "{text1} op {text2}" at the start of s and returns
// the truth value and the text after it.
func (e *expander) relational(s string) (cond bool, rest string, ok bool) {
	end := matchBracket(s, 0)
	if end < 0 {
		e.fail("missing '}' in relational expression: %q", s)
		return false, "", false
	}
	left := e.expand(s[1:end])
	t := skipSpace(s[end+1:])
	var op string
	for _, o := range []string{"==", "!=", "<=", ">=", "<", ">"} {
		if strings.HasPrefix(t, o) {
			op = o
			break
		}
	}
	if op == "" {
		e.fail("relational operator expected in %q", s)
		return false, "", false
	}
	t = t[len(op):]
	level := false
	if i := strings.IndexFunc(t, func(r rune) bool { return !(r >= 'a' && r <= 'z') }); i != 0 {
		suffix := t
		if i > 0 {
			suffix = t[:i]
		}
		if suffix != "level" {
			e.fail("bad operator suffix %q in %q", suffix, s)
			return false, "", false
		}
		level = true
		t = t[len(suffix):]
	}
	t = skipSpace(t)
	if !strings.HasPrefix(t, "{") {
		e.fail("'{' expected after operator in %q", s)
		return false, "", false
	}
	end2 := matchBracket(t, 0)
	if end2 < 0 {
		e.fail("missing '}' in relational expression: %q", s)
		return false, "", false
	}
	right := e.expand(t[1:end2])
	var c int
	if level {
		var err error
		if c, err = compareLevels(left, right); err != nil {
			e.fail("%v", err)
			return false, "", false
		}
	} else {
		c = compareValues(left, right)
	}
	switch op {
	case "==":
		cond = c == 0
	case "!=":
		cond = c != 0
	case "<":
		cond = c < 0
	case "<=":
		cond = c <= 0
	case ">":
		cond = c > 0
	case ">=":
		cond = c >= 0
	}
	return cond, t[end2+1:], true
}

// compareValues compares numerically when both are all digits, else as
// strings.
func compareValues(a, b string) int {
	if allDigits(a) && allDigits(b) {
		return compareNumbers(a, b)
	}
	return strings.Compare(a, b)
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// compareNumbers compares two digit strings of any length.
func compareNumbers(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// compareLevels compares compatibility levels "major[.minor[.patch]]".
func compareLevels(a, b string) (int, error) {
	pa, err := parseLevel(a)
	if err != nil {
		return 0, err
	}
	pb, err := parseLevel(b)
	if err != nil {
		return 0, err
	}
	for i := range pa {
		if c := compareNumbers(pa[i], pb[i]); c != 0 {
			return c, nil
		}
	}
	return 0, nil
}

func parseLevel(s string) ([3]string, error) {
	var p [3]string
	parts := strings.Split(s, ".")
	if len(parts) > 3 {
		return p, fmt.Errorf("bad compatibility level %q", s)
	}
	for i := range p {
		p[i] = "0"
	}
	for i, x := range parts {
		if !allDigits(x) {
			return p, fmt.Errorf("bad compatibility level %q", s)
		}
		p[i] = x
	}
	return p, nil
}
