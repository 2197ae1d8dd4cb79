package lookupkey

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// CheckDomain applies a table's "domain" restriction list to the (folded)
// key as Postfix's db_common_check_domain does: with no list every key is
// looked up; with one, only an address with a non-empty local part whose
// domain the list matches (see MatchDomain). root reads "/file" patterns.
func CheckDomain(root hostfs.Root, patterns []string, key string) (bool, error) {
	if len(patterns) == 0 {
		return true, nil
	}
	user, domain, ok := splitAt(key)
	if !ok || user == "" {
		return false, nil
	}
	return MatchDomain(root, patterns, domain)
}

// MatchDomain matches domain against a "domain" restriction list the way
// Postfix's string_list does: patterns are compared whole and without
// regard to case, the first match decides, "!pattern" excludes, and a
// "/file" pattern (read through root) stands for the patterns in that
// file, each line split at commas and white space outside "{ }" as the
// list itself is; "!/file" inverts every pattern of the file. A
// "type:table" pattern cannot be evaluated here and is an error when
// reached.
func MatchDomain(root hostfs.Root, patterns []string, domain string) (bool, error) {
	_, match, err := matchList(root, patterns, domain, false, 0)
	return match, err
}

// matchList reports whether a pattern matches domain (found) and what the
// first that does decides (match); invert is set inside "!/file".
func matchList(root hostfs.Root, patterns []string, domain string, invert bool, depth int) (found, match bool, err error) {
	for _, p := range patterns {
		neg := invert
		for strings.HasPrefix(p, "!") {
			neg, p = !neg, p[1:]
		}
		switch {
		case strings.HasPrefix(p, "/"):
			if depth > 5 {
				return false, false, fmt.Errorf("domain list file %s: nested too deeply", p)
			}
			b, err := root.ReadFile(p)
			if err != nil {
				return false, false, fmt.Errorf("domain list: %w", err)
			}
			var inner []string
			for _, line := range strings.Split(string(b), "\n") {
				if line = strings.TrimSpace(line); line != "" && line[0] != '#' {
					inner = append(inner, splitPatterns(line)...)
				}
			}
			if found, match, err := matchList(root, inner, domain, neg, depth+1); found || err != nil {
				return found, match, err
			}
		case strings.Contains(p, ":"):
			return false, false, fmt.Errorf("domain list entry %q: lookup tables in the domain list are not supported", p)
		case strings.EqualFold(p, domain):
			return true, !neg, nil
		}
	}
	return false, false, nil
}

// splitPatterns splits a line of a list file at commas and white space
// outside "{ }", as Postfix's mystrtokq does; the braces stay.
func splitPatterns(line string) []string {
	var out []string
	start, depth := -1, 0
	for i := 0; i <= len(line); i++ {
		sep := i == len(line) || depth == 0 && strings.IndexByte(", \t\r\n", line[i]) >= 0
		switch {
		case sep && start >= 0:
			out = append(out, line[start:i])
			start = -1
		case sep:
		case start < 0:
			start = i
		}
		if i < len(line) && line[i] == '{' {
			depth++
		} else if i < len(line) && line[i] == '}' && depth > 0 {
			depth--
		}
	}
	return out
}

// IsDomainName reports whether s, already folded, is a DNS domain name a
// mail client could use: at least two labels of letters, digits and
// hyphens (or non-ASCII letters, for internationalized names), no label
// longer than 63 bytes or starting or ending with a hyphen, and a last
// label that is not all digits. It leaves out PostfixAdmin's "ALL"
// pseudo-domain, single-label names like "localhost", IP addresses,
// addresses and values that are not names at all.
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
	return strings.Trim(parts[len(parts)-1], "0123456789") != ""
}

// isSpaceOrPunct tells the non-ASCII runes that cannot be part of an
// internationalized label: spaces, dots and other separators.
func isSpaceOrPunct(r rune) bool {
	switch r {
	case '\u00a0', '\u3002', '\uff0e', '\uff61', '\ufeff':
		return true
	}
	return r >= 0x2000 && r <= 0x206f // general punctuation, \u2028 and \u2029 included
}
