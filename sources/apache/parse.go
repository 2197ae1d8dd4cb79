package apache

import (
	"bytes"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// A Directive is one directive of the configuration: its name as written
// (containers without the '<'), its arguments as ap_getword_conf leaves
// them (quotes removed, \" and \\ undone, ${VAR} already replaced) and,
// for a container, the directives inside it.
type Directive struct {
	Name string
	Args []string
	// Pos is the line the directive starts on; Line is the last line of
	// a directive continued with backslashes, which httpd names in its
	// messages and in DUMP_INCLUDES.
	Pos  hostfs.Pos
	Line int
	// Block holds a container's directives (<VirtualHost>, <Location>,
	// ...), with Include replaced by what it includes and <IfModule>,
	// <IfDefine>, <IfVersion> and <IfFile> replaced by their contents
	// when true. IsBlock tells "<Location /x></Location>" from a plain
	// directive.
	Block   []*Directive
	IsBlock bool
}

// Is reports whether d is named name, ignoring case as httpd does.
func (d *Directive) Is(name string) bool { return strings.EqualFold(d.Name, name) }

// String formats d as it would be written, without a container's contents.
func (d *Directive) String() string {
	var b strings.Builder
	if d.IsBlock {
		b.WriteByte('<')
	}
	b.WriteString(d.Name)
	for _, a := range d.Args {
		b.WriteByte(' ')
		b.WriteString(quote(a))
	}
	if d.IsBlock {
		b.WriteByte('>')
	}
	return b.String()
}

// quote writes a word so that ap_getword_conf reads it back as the same
// word.
func quote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\r\n\v\f\"'\\>") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// A line is one logical configuration line: physical lines joined where
// one ends in a backslash, trimmed of surrounding blanks.
type line struct {
	text        string
	first, last int // physical line numbers
}

// splitLines splits src into logical lines as ap_cfg_getline does
// (server/util.c): a line ending in a backslash (before "\n" or "\r\n")
// continues on the next, that backslash removed and nothing put in its
// place (httpd 2.4.71 continues after "\\" too). Leading and trailing
// white space is removed. Comments are not removed here: a comment line
// ending in a backslash swallows the next.
func splitLines(src []byte) []line {
	var out []line
	n := 0 // physical lines consumed
	for len(src) > 0 {
		var b strings.Builder
		first := n + 1
		for {
			i := bytes.IndexByte(src, '\n')
			var seg string
			if i < 0 {
				seg, src = string(src), nil
			} else {
				seg, src = string(src[:i]), src[i+1:]
			}
			n++
			if i >= 0 {
				seg = strings.TrimSuffix(seg, "\r")
				if strings.HasSuffix(seg, `\`) && len(src) > 0 {
					b.WriteString(seg[:len(seg)-1])
					continue
				}
			}
			b.WriteString(seg)
			break
		}
		out = append(out, line{text: strings.TrimFunc(b.String(), isSpace), first: first, last: n})
	}
	return out
}

// isSpace is apr_isspace: the C locale's isspace.
func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\v' || r == '\f' || r == '\r'
}

// getWord returns the first word of s and the rest after the blanks that
// follow it, as ap_getword_conf does: a word starting with '"' or '\”
// runs to the matching quote (or the end of s), in which \<quote> and
// \\ stand for the character; any other word runs to the next blank, in
// which \\ stands for one backslash.
func getWord(s string) (word, rest string) {
	s = strings.TrimLeftFunc(s, isSpace)
	if s == "" {
		return "", ""
	}
	var b strings.Builder
	if q := s[0]; q == '"' || q == '\'' {
		i := 1
		for i < len(s) && s[i] != q {
			if s[i] == '\\' && i+1 < len(s) && (s[i+1] == q || s[i+1] == '\\') {
				b.WriteByte(s[i+1])
				i += 2
				continue
			}
			b.WriteByte(s[i])
			i++
		}
		if i < len(s) {
			i++ // the closing quote
		}
		return b.String(), strings.TrimLeftFunc(s[i:], isSpace)
	}
	i := 0
	for i < len(s) && !isSpace(rune(s[i])) {
		if s[i] == '\\' && i+1 < len(s) && s[i+1] == '\\' {
			b.WriteByte('\\')
			i += 2
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String(), strings.TrimLeftFunc(s[i:], isSpace)
}

// words splits s into all its words.
func words(s string) []string {
	var out []string
	for {
		var w string
		rest := strings.TrimLeftFunc(s, isSpace)
		if rest == "" {
			return out
		}
		w, s = getWord(rest)
		out = append(out, w)
	}
}
