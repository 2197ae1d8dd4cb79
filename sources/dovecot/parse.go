package dovecot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// A File is one configuration file split into its logical lines, without its
// includes resolved.
type File struct {
	Name  string
	Lines []Line
}

// A Kind says what a logical line is.
type Kind int

const (
	LineSetting      Kind = iota + 1 // key = value
	LineSectionStart                 // type [args...] {
	LineSectionEnd                   // }
	LineInclude                      // !include pattern, !include_try pattern
)

// A ValueKind says how a setting's value was written.
type ValueKind int

const (
	Plain    ValueKind = iota // key = value (may start with $ for a variable)
	Quoted                    // key = "value": taken literally, never expanded
	FromFile                  // key = </path: Value is the path as written
	HereDoc                   // key = <<MARKER: Value is the lines up to MARKER
)

// A Line is one logical line of a configuration file: continuation lines are
// joined, comments and blank lines are dropped.
type Line struct {
	Kind Kind
	Pos  hostfs.Pos // first physical line

	Key       string    // setting key or section type
	Value     string    // setting value (see ValueKind); include pattern
	ValueKind ValueKind // Setting only
	Args      []string  // LineSectionStart: the words between the type and "{"
	Try       bool      // Include: !include_try
}

// Parse reads one configuration file's lines without following its includes.
// Unbalanced braces are reported here; Load checks them over the whole include
// tree instead, since Dovecot lets a section span files.
func Parse(name string, r io.Reader) (*File, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	f, errs := parseLines(name, data)
	var open []hostfs.Pos
	for _, l := range f.Lines {
		switch l.Kind {
		case LineSectionStart:
			open = append(open, l.Pos)
		case LineSectionEnd:
			if len(open) == 0 {
				errs = append(errs, hostfs.Errorf(name, l.Pos.Line, "unexpected '}'"))
				continue
			}
			open = open[:len(open)-1]
		}
	}
	for _, p := range open {
		errs = append(errs, &hostfs.PosError{Pos: p, Err: errors.New("missing '}'")})
	}
	return f, errors.Join(errs...)
}

func isWhite(c byte) bool { return c == ' ' || c == '\t' || c == '\r' }

// parseLines splits data into logical lines as Dovecot's config parser does,
// and returns every bad line as a *hostfs.PosError.
func parseLines(name string, data []byte) (*File, []error) {
	f := &File{Name: name}
	var errs []error
	phys := bytes.Split(data, []byte("\n"))
	var cont strings.Builder // the joined continuation lines so far
	contStart := 0
	for i := 0; i < len(phys); i++ {
		n := i + 1
		s := strings.TrimLeft(string(phys[i]), " \t\r")
		if s == "" || s[0] == '#' {
			// Dovecot drops a continuation that a blank or comment
			// line interrupts.
			cont.Reset()
			continue
		}
		s = strings.TrimRight(stripComment(s), " \t\r")
		if strings.HasSuffix(s, `\`) {
			s = strings.TrimRight(s[:len(s)-1], " \t\r")
			if cont.Len() == 0 {
				contStart = n
			}
			if s != "" {
				cont.WriteString(s)
				cont.WriteByte(' ')
			}
			continue
		}
		start := n
		if cont.Len() > 0 {
			cont.WriteString(s)
			s = cont.String()
			cont.Reset()
			start = contStart
		}
		if s == "" {
			continue
		}
		l, err := parseLine(s)
		l.Pos = hostfs.Pos{File: name, Line: start}
		if err != nil {
			errs = append(errs, hostfs.Errorf(name, start, "%v", err))
			continue
		}
		if l.Kind == LineSetting && l.ValueKind == HereDoc {
			marker := l.Value
			var body []string
			end := -1
			for j := i + 1; j < len(phys); j++ {
				if strings.Trim(string(phys[j]), " \t\r") == marker {
					end = j
					break
				}
				body = append(body, strings.TrimRight(string(phys[j]), "\r"))
			}
			if end < 0 {
				errs = append(errs, hostfs.Errorf(name, start, "missing end marker %q of %s", marker, l.Key))
				i = len(phys)
				continue
			}
			l.Value = strings.Join(body, "\n")
			i = end
		}
		f.Lines = append(f.Lines, l)
	}
	if cont.Len() > 0 {
		// A continued last line is still a line.
		s := strings.TrimRight(cont.String(), " ")
		l, err := parseLine(s)
		l.Pos = hostfs.Pos{File: name, Line: contStart}
		if err != nil {
			errs = append(errs, hostfs.Errorf(name, contStart, "%v", err))
		} else if l.ValueKind != HereDoc {
			f.Lines = append(f.Lines, l)
		}
	}
	return f, errs
}

// stripComment cuts s at the first # outside quotes. A backslash escapes the
// next character inside quotes; an unterminated quote ends the scan.
func stripComment(s string) string {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\'':
			j := i + 1
			for ; j < len(s) && s[j] != c; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
			}
			if j >= len(s) {
				return s
			}
			i = j
		case '#':
			return s[:i]
		}
	}
	return s
}

// parseLine reads one logical line, already without comments and surrounding
// white space.
func parseLine(s string) (Line, error) {
	i := 0
	for i < len(s) && !isWhite(s[i]) && s[i] != '=' {
		i++
	}
	key := s[:i]
	rest := strings.TrimLeft(s[i:], " \t\r")
	switch key {
	case "!include", "!include_try":
		if rest == "" {
			return Line{}, fmt.Errorf("%s without a file name", key)
		}
		return Line{Kind: LineInclude, Value: rest, Try: key == "!include_try"}, nil
	}
	if strings.HasPrefix(rest, "=") {
		if key == "" {
			return Line{}, errors.New("missing setting name before '='")
		}
		v := strings.TrimLeft(rest[1:], " \t\r")
		l := Line{Kind: LineSetting, Key: key, Value: v}
		switch {
		case strings.HasPrefix(v, "<<"):
			l.ValueKind = HereDoc
			l.Value = strings.TrimSpace(v[2:])
			if l.Value == "" {
				return Line{}, fmt.Errorf("%s: missing here-document marker after <<", key)
			}
		case strings.HasPrefix(v, "<"):
			l.ValueKind = FromFile
			l.Value = strings.TrimLeft(v[1:], " \t\r")
		case len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0]:
			l.ValueKind = Quoted
			l.Value = unescape(v[1 : len(v)-1])
		}
		return l, nil
	}
	if key == "}" && rest == "" {
		return Line{Kind: LineSectionEnd}, nil
	}
	if key == "" {
		return Line{}, fmt.Errorf("unexpected %q", s)
	}
	// type [name...] {
	l := Line{Kind: LineSectionStart, Key: key}
	for rest != "" && rest[0] != '{' {
		var arg string
		if rest[0] == '"' {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return Line{}, fmt.Errorf("unterminated quote in %q", s)
			}
			arg = unescape(rest[1 : end+1])
			rest = rest[end+2:]
		} else {
			j := 0
			for j < len(rest) && !isWhite(rest[j]) {
				j++
			}
			arg, rest = rest[:j], rest[j:]
		}
		l.Args = append(l.Args, arg)
		rest = strings.TrimLeft(rest, " \t\r")
	}
	if rest == "" {
		return Line{}, fmt.Errorf("expecting '{' or '=' after %q", key)
	}
	if rest != "{" {
		return Line{}, fmt.Errorf("garbage after '{' in %q (a section's settings go on their own lines)", s)
	}
	return l, nil
}

// unescape drops each backslash and keeps the character after it.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
