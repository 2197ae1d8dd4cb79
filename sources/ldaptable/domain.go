package ldaptable

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// matchDomain matches domain against the table's "domain" list as
// Postfix's string_list does: patterns are compared whole and without
// regard to case, the first match decides, "!pattern" excludes, and a
// "/file" pattern stands for the patterns in that file. A "type:table"
// pattern cannot be evaluated here and is an error when reached.
func (t *Table) matchDomain(domain string) (bool, error) {
	return t.matchList(t.domain, domain, 0)
}

func (t *Table) matchList(patterns []string, domain string, depth int) (bool, error) {
	for _, p := range patterns {
		neg := false
		for strings.HasPrefix(p, "!") {
			neg, p = !neg, p[1:]
		}
		var match bool
		switch {
		case strings.HasPrefix(p, "/"):
			if depth > 5 {
				return false, fmt.Errorf("ldap %s: domain list file %s: nested too deeply", t.path, p)
			}
			b, err := t.root.ReadFile(p)
			if err != nil {
				return false, fmt.Errorf("ldap %s: domain list: %w", t.path, err)
			}
			var inner []string
			for _, line := range strings.Split(string(b), "\n") {
				if line = strings.TrimSpace(line); line != "" && line[0] != '#' {
					inner = append(inner, strings.FieldsFunc(line, func(r rune) bool {
						return r == ',' || r == ' ' || r == '\t' || r == '\r'
					})...)
				}
			}
			if match, err = t.matchList(inner, domain, depth+1); err != nil {
				return false, err
			}
		case strings.Contains(p, ":"):
			return false, fmt.Errorf("ldap %s: domain list entry %q: lookup tables in the domain list are not supported", t.path, p)
		default:
			match = strings.EqualFold(p, domain)
		}
		if match {
			return !neg, nil
		}
	}
	return false, nil
}

// isDomainName reports whether s (folded) is a DNS name a mail client could
// use: two or more labels of letters, digits and hyphens (non-ASCII
// letters allowed), none longer than 63 bytes or starting or ending with a
// hyphen, and a last label that is not all digits. It leaves out
// single-label names, addresses and values that are not names at all.
func isDomainName(s string) bool {
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
			case r >= 0x80 && r != utf8.RuneError && !(r >= 0x2000 && r <= 0x206f) &&
				!strings.ContainsRune("\u00a0\u3002\uff0e\uff61\ufeff", r):
			default:
				return false
			}
		}
	}
	return strings.Trim(parts[len(parts)-1], "0123456789") != ""
}
