package serve

import (
	"net/http"
	"strings"
)

// forwardedProto returns the scheme ("http", "https", lower case) over which
// the client reached the proxy in front, as that proxy reports it, or ""
// when it does not say.
//
// Which value counts. Each proxy on the way appends its own: to
// X-Forwarded-Proto as another comma-separated value (or another header
// line), to Forwarded (RFC 7239 §4) as another comma-separated element.
// Only the last was added by the proxy in front of this server, the one an
// admin configured and that passes requests to it over loopback or a unix
// socket; anything before it came from further away, the client included,
// and may be made up. So the last X-Forwarded-Proto value counts, and the
// proto parameter of the last Forwarded element (an element without one
// says nothing, whatever earlier elements claim).
//
// X-Forwarded-Proto is read first: the shipped nginx and Apache snippets set
// it (replacing whatever the client sent), and they pass a client's
// Forwarded header through unchanged. Forwarded counts when there is no
// X-Forwarded-Proto (HAProxy's "option forwarded", for one).
func forwardedProto(h http.Header) string {
	if lines := h["X-Forwarded-Proto"]; len(lines) > 0 {
		last := ""
		for _, line := range lines {
			for v := range strings.SplitSeq(line, ",") {
				if v = strings.TrimSpace(v); v != "" {
					last = v
				}
			}
		}
		return strings.ToLower(last)
	}
	if lines := h["Forwarded"]; len(lines) > 0 {
		return strings.ToLower(lastForwardedParam(lines, "proto"))
	}
	return ""
}

// lastForwardedParam returns the value of the parameter key (compared
// without regard to case) in the last element of the Forwarded header
// lines, unquoted: RFC 7239 §4, elements separated by commas, pairs by
// semicolons, values tokens or quoted strings with backslash escapes. A
// header it cannot parse gives "".
func lastForwardedParam(lines []string, key string) string {
	// Split the lines into elements; only the last is looked at, but the
	// commas inside quoted strings must be skipped to find it.
	var last string
	for _, line := range lines {
		for rest := line; rest != ""; {
			elem, after, ok := cutUnquoted(rest, ',')
			if !ok {
				return "" // an unterminated quoted string
			}
			if strings.TrimSpace(elem) != "" {
				last = elem
			}
			rest = after
		}
	}
	for last != "" {
		var pair string
		pair, last, _ = cutUnquoted(last, ';') // the quotes are balanced
		k, v, ok := strings.Cut(pair, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), key) {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			var b strings.Builder
			for i := 1; i < len(v)-1; i++ {
				if v[i] == '\\' && i+1 < len(v)-1 {
					i++
				}
				b.WriteByte(v[i])
			}
			return b.String()
		}
		if strings.ContainsAny(v, "\" \t") {
			return ""
		}
		return v
	}
	return ""
}

// cutUnquoted cuts s around the first sep outside a quoted string (with
// backslash escapes), or returns all of s as before when there is none.
// ok is false when s ends inside a quoted string.
func cutUnquoted(s string, sep byte) (before, after string, ok bool) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == sep:
			return s[:i], s[i+1:], true
		}
	}
	return s, "", !quoted
}
