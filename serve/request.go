package serve

import (
	"net/url"
	"strings"

	"github.com/mailautoconf/mailautoconf/internal/domainname"
)

// hostDomain returns the mail domain a Host header names, when it names
// one: the port and a trailing dot removed, one leading "autoconfig." or
// "autodiscover." label stripped (PROTOCOLS.md §1.1), converted to
// lower-case A-labels. IP literals and malformed names give "".
func hostDomain(host string) string {
	if host == "" || host[0] == '[' {
		return "" // empty, or an IPv6 literal
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	for _, prefix := range [...]string{"autoconfig.", "autodiscover."} {
		if len(host) > len(prefix) && strings.EqualFold(host[:len(prefix)], prefix) {
			host = host[len(prefix):]
			break
		}
	}
	d, err := domainname.Normalize(host)
	if err != nil || isIPv4(d) {
		return ""
	}
	return d
}

// isIPv4 reports whether a normalized name is a dotted IPv4 address, which
// domainname.Normalize lets through (digits are valid in labels).
func isIPv4(d string) bool {
	for i := 0; i < len(d); i++ {
		if c := d[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// queryParam returns the raw (still escaped) value of the first parameter
// named key, compared without regard to case, and whether it is present.
// It does not build url.Values, so a request costs no map.
func queryParam(rawQuery, key string) (string, bool) {
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		k, v, _ := strings.Cut(pair, "=")
		if len(k) == len(key) && strings.EqualFold(k, key) {
			return v, true
		}
		if strings.ContainsAny(k, "%+") { // an escaped name: decode to compare
			if dk, err := url.QueryUnescape(k); err == nil && strings.EqualFold(dk, key) {
				return v, true
			}
		}
	}
	return "", false
}

// unescapeParam decodes a query value the way an HTML form or a client
// encodes it, trimming surrounding white space (people paste addresses).
func unescapeParam(raw string) (string, error) {
	if !strings.ContainsAny(raw, "%+") {
		return strings.TrimSpace(raw), nil
	}
	v, err := url.QueryUnescape(raw)
	return strings.TrimSpace(v), err
}
