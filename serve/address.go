package serve

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/mailautoconf/mailautoconf/render"
)

// Limits from RFC 5321 §4.5.3.1: a local part of at most 64 octets, and a
// path of at most 256 octets including the angle brackets, so 254 for the
// address itself.
const (
	maxLocalLen   = 64
	maxAddressLen = 254
	maxDomainLen  = 253
)

// ParseAddress validates an e-mail address as a client sends it and returns
// it as a render.Address: the local part as sent (an RFC 5321 dot-string,
// or a quoted string; UTF-8 is accepted in both as RFC 6531 allows), the
// domain converted to lower-case A-labels. LoginDomain is left empty: it
// depends on the snapshot.
//
// The error says what is wrong without repeating the input, so it can be
// shown to the client as it is.
func ParseAddress(s string) (render.Address, error) {
	if s == "" {
		return render.Address{}, errors.New("the address is empty")
	}
	if !utf8.ValidString(s) {
		return render.Address{}, errors.New("the address is not valid UTF-8")
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return render.Address{}, errors.New("the address has no @")
	}
	local, domain := s[:at], s[at+1:]
	if err := checkLocal(local); err != nil {
		return render.Address{}, err
	}
	d, err := normalizeDomain(domain)
	if err != nil {
		return render.Address{}, fmt.Errorf("the domain %w", err)
	}
	if len(local)+1+len(d) > maxAddressLen {
		return render.Address{}, fmt.Errorf("the address is longer than %d characters", maxAddressLen)
	}
	return render.Address{Local: local, Domain: d}, nil
}

// checkLocal checks an RFC 5321 Local-part: Dot-string / Quoted-string.
func checkLocal(l string) error {
	switch {
	case l == "":
		return errors.New("the local part (before the @) is empty")
	case len(l) > maxLocalLen:
		return fmt.Errorf("the local part (before the @) is longer than %d characters", maxLocalLen)
	case l[0] == '"':
		return checkQuoted(l)
	}
	// Dot-string = Atom *("." Atom)
	prevDot := true // a leading dot is an empty atom
	for _, r := range l {
		switch {
		case r == '.':
			if prevDot {
				return errors.New("the local part (before the @) has an empty part between dots")
			}
			prevDot = true
			continue
		case !isAtext(r):
			return fmt.Errorf("the local part (before the @) contains %s, which is only allowed inside quotes", describeRune(r))
		}
		prevDot = false
	}
	if prevDot {
		return errors.New("the local part (before the @) ends with a dot")
	}
	return nil
}

// checkQuoted checks an RFC 5321 Quoted-string: DQUOTE *QcontentSMTP DQUOTE.
func checkQuoted(l string) error {
	if len(l) < 2 || l[len(l)-1] != '"' {
		return errors.New("the local part (before the @) has an unterminated quote")
	}
	body := l[1 : len(l)-1]
	if body == "" {
		return errors.New("the local part (before the @) is empty")
	}
	for i := 0; i < len(body); {
		r, n := utf8.DecodeRuneInString(body[i:])
		i += n
		switch {
		case r == '\\':
			// quoted-pairSMTP = %d92 %d32-126
			if i >= len(body) || body[i] < 32 || body[i] > 126 {
				return errors.New("the local part (before the @) has a backslash not followed by a printable character")
			}
			i++
		case r == '"':
			return errors.New("the local part (before the @) has a quote inside the quotes")
		case r >= 32 && r <= 126, r >= utf8.RuneSelf && isUTF8Text(r):
			// qtextSMTP = %d32-33 / %d35-91 / %d93-126, plus UTF8-non-ascii (RFC 6531)
		default:
			return fmt.Errorf("the local part (before the @) contains %s", describeRune(r))
		}
	}
	return nil
}

// isAtext reports whether r is an RFC 5321 atext character, or non-ASCII
// text as RFC 6531 adds.
func isAtext(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	case r < utf8.RuneSelf:
		return strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)
	}
	return isUTF8Text(r)
}

// isUTF8Text accepts the non-ASCII characters that are text: letters,
// marks, digits, punctuation and symbols, not spaces, controls, format
// characters or U+FFFD (the mark of a decoding error).
func isUTF8Text(r rune) bool {
	return r != utf8.RuneError && unicode.IsGraphic(r) && !unicode.IsSpace(r)
}

func describeRune(r rune) string {
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

// normalizeDomain returns a domain name as lower-case A-labels, or an error
// that completes the sentence "the domain ...".
func normalizeDomain(name string) (string, error) {
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
	a = lowerASCII(a)
	if len(a) > maxDomainLen {
		return "", fmt.Errorf("is longer than %d characters", maxDomainLen)
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
				return "", fmt.Errorf("contains %s", describeRune(rune(c)))
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

// lowerASCII lower-cases ASCII letters, returning s itself when it has none
// to change (no allocation on the common path).
func lowerASCII(s string) string {
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
