package serve

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mailautoconf/mailautoconf/internal/domainname"
	"github.com/mailautoconf/mailautoconf/render"
)

// Limits from RFC 5321 §4.5.3.1: a local part of at most 64 octets, and a
// path of at most 256 octets including the angle brackets, so 254 for the
// address itself.
const (
	maxLocalLen   = 64
	maxAddressLen = 254
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
	d, err := domainname.Normalize(domain)
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
			return fmt.Errorf("the local part (before the @) contains %s, which is only allowed inside quotes", domainname.DescribeRune(r))
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
			return fmt.Errorf("the local part (before the @) contains %s", domainname.DescribeRune(r))
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
