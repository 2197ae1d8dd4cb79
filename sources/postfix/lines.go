package postfix

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// A logicalLine is one entry of a Postfix configuration file after
// continuation lines have been joined: main.cf, master.cf, mysql_table(5)
// files and postmap(1) input all share this syntax.
type logicalLine struct {
	text string // the joined text, trailing whitespace removed
	line int    // 1-based number of the line where the entry starts
	// conts holds, for each continuation line, its offset in text and its
	// line number.
	conts []lineStart
}

type lineStart struct{ off, line int }

// lineAt returns the number of the physical line that holds text[off].
func (l logicalLine) lineAt(off int) int {
	n := l.line
	for _, c := range l.conts {
		if c.off > off {
			break
		}
		n = c.line
	}
	return n
}

// maxLineBytes bounds one physical line, so a corrupt file cannot exhaust
// memory.
const maxLineBytes = 1 << 20

// readLogicalLines splits r into logical lines as Postfix's readllines does:
// empty lines, whitespace-only lines and lines whose first non-blank
// character is '#' are ignored; a line that starts with whitespace continues
// the current logical line (the newline is dropped, the whitespace kept),
// even after an ignored comment line. A continuation line with no logical
// line to continue is reported through orphan and otherwise ignored.
// A read error is a *hostfs.PosError at the line that could not be read.
func readLogicalLines(name string, r io.Reader, orphan func(line int, text string)) ([]logicalLine, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxLineBytes)
	var (
		out []logicalLine
		cur *strings.Builder
		n   int
	)
	flush := func() {
		if cur != nil {
			out[len(out)-1].text = strings.TrimRight(cur.String(), " \t\r\n\v\f")
			cur = nil
		}
	}
	for sc.Scan() {
		n++
		raw := strings.TrimSuffix(sc.Text(), "\r")
		trimmed := strings.TrimLeft(raw, " \t\r\v\f")
		if trimmed == "" || trimmed[0] == '#' {
			continue
		}
		if trimmed != raw { // starts with whitespace: a continuation
			if cur == nil {
				if orphan != nil {
					orphan(n, trimmed)
				}
				continue
			}
			out[len(out)-1].conts = append(out[len(out)-1].conts, lineStart{off: cur.Len(), line: n})
			cur.WriteString(raw)
			continue
		}
		flush()
		cur = &strings.Builder{}
		cur.WriteString(raw)
		out = append(out, logicalLine{line: n})
	}
	flush()
	if err := sc.Err(); err != nil {
		return out, hostfs.Errorf(name, n+1, "read: %v", err)
	}
	return out, nil
}

// isSpace reports whether c is whitespace in Postfix's sense.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}

// collapseSpace replaces every run of whitespace in s by one space and
// trims both ends, the way postconf(1) prints a value.
func collapseSpace(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// splitNameValue splits "name = value" as Postfix's split_nameval does: the
// name ends at whitespace or '=', whitespace around '=' and at the end is
// ignored. msg is "" on success.
func splitNameValue(s string) (name, value, msg string) {
	s = strings.TrimLeft(s, " \t\r\n\v\f")
	i := 0
	for i < len(s) && !isSpace(s[i]) && s[i] != '=' {
		i++
	}
	name = s[:i]
	rest := strings.TrimLeft(s[i:], " \t\r\n\v\f")
	switch {
	case name == "":
		return "", "", fmt.Sprintf("missing parameter name: %q", s)
	case rest == "" || rest[0] != '=':
		return "", "", fmt.Sprintf("missing '=' after parameter name: %q", s)
	}
	value = strings.Trim(rest[1:], " \t\r\n\v\f")
	return name, value, ""
}
