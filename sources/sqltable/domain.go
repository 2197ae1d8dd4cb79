package sqltable

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// matchDomain matches domain against the table's "domain" list the way
// Postfix's string_list does: patterns are compared whole and without
// regard to case, the first match decides, "!pattern" excludes, and a
// "/file" pattern stands for the patterns in that file. A "type:table"
// pattern cannot be evaluated here and gives an error when reached.
func (t *Table) matchDomain(domain string) (bool, error) {
	return t.matchList(t.domain, domain, 0)
}

func (t *Table) matchList(patterns []string, domain string, depth int) (bool, error) {
	for _, p := range patterns {
		neg := false
		for strings.HasPrefix(p, "!") {
			neg = !neg
			p = p[1:]
		}
		var match bool
		switch {
		case strings.HasPrefix(p, "/"):
			if depth > 5 {
				return false, fmt.Errorf("%s %s: domain list file %s: nested too deeply", t.dialect.name(), t.path, p)
			}
			b, err := t.root.ReadFile(p)
			if err != nil {
				return false, fmt.Errorf("%s %s: domain list: %w", t.dialect.name(), t.path, err)
			}
			var inner []string
			for _, line := range strings.Split(string(b), "\n") {
				if line = strings.TrimSpace(line); line != "" && line[0] != '#' {
					inner = append(inner, splitHosts([]string{line})...)
				}
			}
			if match, err = t.matchList(inner, domain, depth+1); err != nil {
				return false, err
			}
		case strings.Contains(p, ":"):
			return false, fmt.Errorf("%s %s: domain list entry %q: lookup tables in the domain list are not supported", t.dialect.name(), t.path, p)
		default:
			match = strings.EqualFold(p, domain)
		}
		if match {
			return !neg, nil
		}
	}
	return false, nil
}

func validUTF8(s string) bool { return utf8.ValidString(s) }

// IsDomainName reports whether s, already lower-cased, is a DNS domain name
// a mail client could use: at least two labels of letters, digits and
// hyphens (or non-ASCII letters, for internationalized names), no label
// longer than 63 bytes or starting or ending with a hyphen, and a last label
// that is not all digits. It drops PostfixAdmin's "ALL" pseudo-domain,
// single-label names like "localhost", and IP addresses.
func IsDomainName(s string) bool {
	if len(s) > 253 || !utf8.ValidString(s) {
		return false
	}
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return false
	}
	for _, l := range parts {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			case r >= utf8.RuneSelf && r != utf8.RuneError && !isSpaceOrPunct(r):
			default:
				return false
			}
		}
	}
	last := parts[len(parts)-1]
	return strings.Trim(last, "0123456789") != ""
}

// isSpaceOrPunct rejects the non-ASCII runes that cannot be part of an
// internationalized label: spaces, dots and other separators.
func isSpaceOrPunct(r rune) bool {
	switch r {
	case '\u00a0', '\u3002', '\uff0e', '\uff61', '\u2028', '\u2029', '\ufeff':
		return true
	}
	return r >= 0x2000 && r <= 0x206f
}
