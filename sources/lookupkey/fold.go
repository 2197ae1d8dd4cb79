package lookupkey

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Fold folds a lookup key as Postfix 3.x does with smtputf8_enable = yes
// (the default): an ASCII key is lower-cased; another UTF-8 key is case
// folded like ICU's full case folding ("Straße" becomes "strasse", "İ"
// becomes "i̇", "ΣΑΣ" becomes "σασ").
//
// ok is false for a key Postfix never looks up: one that holds a NUL byte
// (keys are C strings) or is not UTF-8 (Postfix refuses it as non-UTF-8).
// folded is given even then, for callers that fold values rather than
// keys: a string that is not UTF-8 has its ASCII letters lower-cased.
func Fold(key string) (folded string, ok bool) {
	ok = strings.IndexByte(key, 0) < 0
	if isASCII(key) {
		return asciiLower(key), ok
	}
	if !utf8.ValidString(key) {
		return asciiLower(key), false
	}
	var b strings.Builder
	for _, r := range key {
		switch f, special := fullFold[r]; {
		case special:
			b.WriteString(f)
		case r >= 0x13A0 && r <= 0x13F5: // Cherokee capitals fold to themselves
			b.WriteRune(r)
		case r >= 0xAB70 && r <= 0xABBF, r >= 0x13F8 && r <= 0x13FD: // Cherokee small letters fold to capitals
			b.WriteRune(unicode.ToUpper(r))
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String(), ok
}

// FoldASCII folds a lookup key as Postfix does with smtputf8_enable = no
// (as Mail-in-a-Box sets): only ASCII letters are lower-cased ("ÄBC"
// becomes "Äbc", "Straße" stays). ok is false, as for Fold, for a key
// that holds a NUL byte or is not UTF-8: the sqlite differential test
// shows Postfix answering no such key in this mode either.
func FoldASCII(key string) (folded string, ok bool) {
	return asciiLower(key), strings.IndexByte(key, 0) < 0 && utf8.ValidString(key)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// fullFold holds the case foldings (Unicode CaseFolding.txt, status C and
// F) that differ from unicode.ToLower: the multi-character (full) foldings
// and the simple foldings of letters that are already lower case.
var fullFold = map[rune]string{
	'ß': "ss", 'ẞ': "ss", 'İ': "i\u0307", 'ŉ': "ʼn", 'ǰ': "ǰ", 'ΐ': "ΐ", 'ΰ': "ΰ",
	'և': "եւ", 'ẖ': "ẖ", 'ẗ': "ẗ", 'ẘ': "ẘ", 'ẙ': "ẙ", 'ẚ': "aʾ",
	'ﬀ': "ff", 'ﬁ': "fi", 'ﬂ': "fl", 'ﬃ': "ffi", 'ﬄ': "ffl", 'ﬅ': "st", 'ﬆ': "st",
	'ﬓ': "մն", 'ﬔ': "մե", 'ﬕ': "մի", 'ﬖ': "վն", 'ﬗ': "մխ",
	'ᾳ': "αι", 'ῃ': "ηι", 'ῳ': "ωι", 'ᾼ': "αι", 'ῌ': "ηι", 'ῼ': "ωι",
	'ς': "σ", 'ſ': "s", 'ϐ': "β", 'ϑ': "θ", 'ϕ': "φ", 'ϖ': "π", 'ϰ': "κ",
	'ϱ': "ρ", 'ϵ': "ε", '\u0345': "ι", 'ι': "ι", 'ẛ': "ṡ",
}

// asciiLower lower-cases ASCII letters only.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
