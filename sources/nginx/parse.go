package nginx

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// A Directive is one directive of the configuration: its name, its
// arguments as nginx's tokenizer leaves them (quotes removed, escapes
// undone, $variables kept as text) and, for a block directive, the
// directives inside its braces.
type Directive struct {
	Name string
	Args []string
	// Pos is where the directive's name starts.
	Pos hostfs.Pos
	// Block holds the directives between the braces of a block directive
	// (http, server, location, upstream, ...), with include directives
	// replaced by what they include. IsBlock tells "name {}" from "name;".
	Block   []*Directive
	IsBlock bool
}

// String formats d as it would be written, without its block's contents.
func (d *Directive) String() string {
	var b strings.Builder
	b.WriteString(d.Name)
	for _, a := range d.Args {
		b.WriteByte(' ')
		b.WriteString(quote(a))
	}
	if d.IsBlock {
		b.WriteString(" {...}")
	} else {
		b.WriteByte(';')
	}
	return b.String()
}

// quote writes a word so that nginx reads it back as the same word.
func quote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\r\n;{}\"'\\#") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\t", `\t`, "\r", `\r`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// maxToken is nginx's NGX_CONF_BUFFER: a word that fills the whole read
// buffer is "too long parameter".
const maxToken = 4096

// token kinds returned by the scanner, after ngx_conf_read_token's results.
type tokenKind int

const (
	tokDirective  tokenKind = iota // words ended by ';' (NGX_OK)
	tokBlockStart                  // words ended by '{' (NGX_CONF_BLOCK_START)
	tokBlockDone                   // '}' (NGX_CONF_BLOCK_DONE)
	tokEOF                         // end of file (NGX_CONF_FILE_DONE)
)

// scanner splits one file into directives as ngx_conf_read_token in
// src/core/ngx_conf_file.c does: words are separated by blanks, '#'
// starts a comment to the end of the line, "..." and '...' quote, a
// backslash escapes the next character, ';' ends a directive, '{' opens a
// block and '}' closes one. It also keeps nginx's 4 KiB read buffer in
// step, because nginx rejects a word (or comment) that fills it whole.
type scanner struct {
	file    string
	src     []byte
	off     int
	line    int // current line, as nginx counts it for its messages
	bufLast int // offset where the data in nginx's read buffer ends
}

func newScanner(file string, src []byte) *scanner {
	return &scanner{file: file, src: src, line: 1}
}

func (s *scanner) errorf(format string, args ...any) error {
	return hostfs.Errorf(s.file, s.line, format, args...)
}

// next returns the words of the next directive, the line its first word
// starts on, and how the directive ended.
func (s *scanner) next() (words []string, line int, kind tokenKind, err error) {
	var (
		lastSpace    = true
		sharpComment bool
		variable     bool
		quoted       bool
		sQuoted      bool
		dQuoted      bool
		needSpace    bool
		start        = s.off
		startLine    = s.line
	)
	line = s.line
	for {
		if s.off >= s.bufLast {
			if s.bufLast >= len(s.src) {
				if len(words) > 0 || !lastSpace {
					return nil, line, 0, s.errorf(`unexpected end of file, expecting ";" or "}"`)
				}
				return nil, line, tokEOF, nil
			}
			n := s.off - start // the unfinished word nginx moves to the buffer's start
			if n == maxToken {
				s.line = startLine
				switch {
				case dQuoted:
					return nil, line, 0, s.errorf(`too long parameter, probably missing terminating """ character`)
				case sQuoted:
					return nil, line, 0, s.errorf(`too long parameter, probably missing terminating "'" character`)
				}
				return nil, line, 0, s.errorf(`too long parameter "%s..." started`, s.src[start:start+10])
			}
			s.bufLast = s.off + min(maxToken-n, len(s.src)-s.off)
		}
		ch := s.src[s.off]
		s.off++
		if ch == '\n' {
			s.line++
			if sharpComment {
				sharpComment = false
			}
		}
		if sharpComment {
			continue
		}
		if quoted {
			quoted = false
			continue
		}
		if needSpace {
			switch ch {
			case ' ', '\t', '\r', '\n':
				lastSpace, needSpace = true, false
				continue
			case ';':
				return words, line, tokDirective, nil
			case '{':
				return words, line, tokBlockStart, nil
			case ')':
				lastSpace, needSpace = true, false
			default:
				return nil, line, 0, s.errorf(`unexpected "%c"`, ch)
			}
		}
		if lastSpace {
			start = s.off - 1
			startLine = s.line
			if len(words) == 0 {
				line = s.line
			}
			switch ch {
			case ' ', '\t', '\r', '\n':
				continue
			case ';', '{':
				if len(words) == 0 {
					return nil, line, 0, s.errorf(`unexpected "%c"`, ch)
				}
				if ch == '{' {
					return words, line, tokBlockStart, nil
				}
				return words, line, tokDirective, nil
			case '}':
				if len(words) != 0 {
					return nil, line, 0, s.errorf(`unexpected "}"`)
				}
				return nil, line, tokBlockDone, nil
			case '#':
				sharpComment = true
				continue
			case '\\':
				quoted = true
				lastSpace = false
				continue
			case '"':
				start++
				dQuoted = true
				lastSpace = false
				continue
			case '\'':
				start++
				sQuoted = true
				lastSpace = false
				continue
			case '$':
				variable = true
				lastSpace = false
				continue
			default:
				lastSpace = false
			}
			continue
		}
		if ch == '{' && variable {
			continue // "${name}"
		}
		variable = false
		if ch == '\\' {
			quoted = true
			continue
		}
		if ch == '$' {
			variable = true
			continue
		}
		found := false
		switch {
		case dQuoted:
			if ch == '"' {
				dQuoted, needSpace, found = false, true, true
			}
		case sQuoted:
			if ch == '\'' {
				sQuoted, needSpace, found = false, true, true
			}
		case ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == ';' || ch == '{':
			lastSpace, found = true, true
		}
		if !found {
			continue
		}
		words = append(words, unescape(s.src[start:s.off-1]))
		switch ch {
		case ';':
			return words, line, tokDirective, nil
		case '{':
			return words, line, tokBlockStart, nil
		}
	}
}

// unescape undoes the escapes nginx undoes in a word: \" \' \\ \t \r \n.
// A backslash before any other character stays.
func unescape(raw []byte) string {
	var b strings.Builder
	b.Grow(len(raw))
	for i := 0; i < len(raw); i++ {
		if raw[i] == '\\' && i+1 < len(raw) {
			switch raw[i+1] {
			case '"', '\'', '\\':
				i++
			case 't':
				b.WriteByte('\t')
				i++
				continue
			case 'r':
				b.WriteByte('\r')
				i++
				continue
			case 'n':
				b.WriteByte('\n')
				i++
				continue
			}
		}
		b.WriteByte(raw[i])
	}
	return b.String()
}

// errNotTerminated is nginx's complaint about "include x {".
var errNotTerminated = errors.New(`directive "include" is not terminated by ";"`)

// Parse reads one file's directives without following includes: an
// include stays a directive of its own. name is used in positions and
// errors. Braces must balance within the file, as nginx requires of every
// file, included or not.
func Parse(name string, src []byte) ([]*Directive, error) {
	p := &parser{}
	return p.parseFile(name, src, 0)
}

// parser holds the state of one reading: how to open included files (nil
// when includes are not followed) and which files were read, in order.
type parser struct {
	include func(d *Directive, depth int) ([]*Directive, error)
}

func (p *parser) parseFile(name string, src []byte, depth int) ([]*Directive, error) {
	s := newScanner(name, src)
	return p.parseBlock(s, false, depth)
}

func (p *parser) parseBlock(s *scanner, inBlock bool, depth int) ([]*Directive, error) {
	var out []*Directive
	for {
		words, line, kind, err := s.next()
		if err != nil {
			return nil, err
		}
		switch kind {
		case tokEOF:
			if inBlock {
				return nil, s.errorf(`unexpected end of file, expecting "}"`)
			}
			return out, nil
		case tokBlockDone:
			if !inBlock {
				return nil, s.errorf(`unexpected "}"`)
			}
			return out, nil
		}
		d := &Directive{Name: words[0], Args: words[1:], Pos: hostfs.Pos{File: s.file, Line: line}}
		if kind == tokBlockStart {
			d.IsBlock = true
			if d.Name == "include" {
				return nil, hostfs.Errorf(s.file, s.line, "%v", errNotTerminated)
			}
			d.Block, err = p.parseBlock(s, true, depth)
			if err != nil {
				return nil, err
			}
			if d.Block == nil {
				d.Block = []*Directive{}
			}
		}
		if d.Name == "include" && p.include != nil {
			if len(d.Args) != 1 {
				return nil, hostfs.Errorf(s.file, s.line, `invalid number of arguments in "include" directive`)
			}
			inc, err := p.include(d, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, inc...)
			continue
		}
		out = append(out, d)
	}
}

// Walk calls fn for every directive of ds and of their blocks, depth
// first, in configuration order, with the chain of enclosing block
// directives (outermost first). fn returns false to skip a block.
func Walk(ds []*Directive, fn func(d *Directive, parents []*Directive) bool) {
	walk(ds, nil, fn)
}

func walk(ds []*Directive, parents []*Directive, fn func(*Directive, []*Directive) bool) {
	for _, d := range ds {
		if fn(d, parents) && d.IsBlock {
			walk(d.Block, append(parents[:len(parents):len(parents)], d), fn)
		}
	}
}

// Dump writes the directives in nginx's syntax, one per line, each
// preceded by its position: a flat, comparable form of a configuration.
func Dump(ds []*Directive) string {
	var b strings.Builder
	Walk(ds, func(d *Directive, parents []*Directive) bool {
		fmt.Fprintf(&b, "%s: %s%s\n", d.Pos, strings.Repeat("  ", len(parents)), d)
		return true
	})
	return b.String()
}
