// Package domainname checks mail domain names and turns them into the form
// every part of mailautoconf compares: lower-case A-labels (IDNA), at least
// two labels, letters, digits and hyphens only. Its errors never repeat the
// name, so they can be shown to a client as they are.
package domainname

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// maxLen is the longest domain name RFC 1035 allows in text form.
const maxLen = 253

// DescribeRune names r for an error message: "a space", "a control
// character", the quoted ASCII character, or its U+ code.
func DescribeRune(r rune) string {
	switch {
	case r == ' ':
		return "a space"
	case r < ' ' || r == 0x7f:
		return "a control character"
	case r < utf8.RuneSelf:
		return fmt.Sprintf("%q", r)
	}
	return fmt.Sprintf("the character %U", r)
}

// Normalize returns a domain name as lower-case A-labels, or an error that
// completes the sentence "the domain ...".
func Normalize(name string) (string, error) {
	if name == "" {
		return "", errors.New("is empty")
	}
	if name[0] == '[' {
		return "", errors.New("is an address literal; use the mail domain")
	}
	ascii := true
	for i := 0; i < len(name); i++ {
		if name[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	a := name
	if !ascii || hasACE(name) {
		var err error
		a, err = idna.Lookup.ToASCII(name)
		if err != nil {
			return "", errors.New("is not a valid internationalized domain name")
		}
	}
	a = LowerASCII(a)
	if len(a) > maxLen {
		return "", fmt.Errorf("is longer than %d characters", maxLen)
	}
	labels := 0
	for l := range strings.SplitSeq(a, ".") {
		labels++
		if l == "" {
			return "", errors.New("has an empty label (two dots in a row, or a dot at an end)")
		}
		if len(l) > 63 {
			return "", errors.New("has a label longer than 63 characters")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", errors.New("has a label that starts or ends with a hyphen")
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", fmt.Errorf("contains %s", DescribeRune(rune(c)))
			}
		}
	}
	if labels < 2 {
		return "", errors.New("has a single label; a mail domain has at least two")
	}
	return a, nil
}

// hasACE reports whether an ASCII name has a label starting "xn--", whose
// Punycode idna must check.
func hasACE(name string) bool {
	for l := range strings.SplitSeq(name, ".") {
		if len(l) >= 4 && strings.EqualFold(l[:4], "xn--") {
			return true
		}
	}
	return false
}

// LowerASCII lower-cases ASCII letters, returning s itself when it has none
// to change (no allocation on the common path).
func LowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
