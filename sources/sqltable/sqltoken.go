package sqltable

import (
	"errors"
	"fmt"
	"strings"
)

// Token kinds of a query template.
type tokKind int

const (
	tWord    tokKind = iota // identifier, keyword, number, @variable
	tIdent                  // `quoted identifier`
	tString                 // 'string', or "string" in MySQL's default sql_mode
	tPercent                // a %-expansion outside strings: "%s", "%%"
	tPunct                  // operator or punctuation: ( ) , . = <> ...
)

// A token is one lexical element of a query template. Comments are dropped.
type token struct {
	kind  tokKind
	text  string // as written, quotes included
	space bool   // white space or a comment came before it
}

// key reports whether the token is the key placeholder: '%s', "%s" or a
// bare %s (or %S, the same in a query).
func (t token) key() bool {
	switch t.kind {
	case tPercent:
		return t.text == "%s" || t.text == "%S"
	case tString:
		in := t.text[1 : len(t.text)-1]
		return in == "%s" || in == "%S"
	}
	return false
}

// is reports whether the token is the keyword or punctuation w (case
// insensitive).
func (t token) is(w string) bool {
	return (t.kind == tWord || t.kind == tPunct) && strings.EqualFold(t.text, w)
}

var errExecutableComment = errors.New("executable comment /*!...*/")

// tokenize splits a query template into tokens, spelled as syn says.
func tokenize(q string, syn syntax) ([]token, error) {
	var toks []token
	space := false
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			space = true
			i++
			continue
		case c == '#' && syn.mysqlComments || (c == '-' && strings.HasPrefix(q[i:], "--") && (i+2 == len(q) || isSpace(q[i+2]) || !syn.mysqlComments)):
			for i < len(q) && q[i] != '\n' {
				i++
			}
			space = true
			continue
		case c == '/' && strings.HasPrefix(q[i:], "/*"):
			if syn.mysqlComments && (strings.HasPrefix(q[i:], "/*!") || strings.HasPrefix(q[i:], "/*M!")) {
				return nil, errExecutableComment
			}
			end := strings.Index(q[i+2:], "*/")
			if end < 0 {
				return nil, errors.New("unterminated comment")
			}
			i += 2 + end + 2
			space = true
			continue
		}
		start := i
		kind := tPunct
		switch {
		case c == '\'' || c == '"' || c == '`' && syn.backquoteIdent:
			kind = tString
			if c == '`' || c == '"' && !syn.doubleQuoteString {
				kind = tIdent
			}
			i++
			for {
				if i >= len(q) {
					return nil, fmt.Errorf("unterminated %c", c)
				}
				if q[i] == '\\' && kind == tString && syn.backslashEscapes {
					i += 2
					continue
				}
				if q[i] == c {
					if i+1 < len(q) && q[i+1] == c { // doubled quote
						i += 2
						continue
					}
					i++
					break
				}
				i++
			}
		case c == '%':
			kind = tPercent
			if i+1 >= len(q) {
				return nil, errors.New("lone % at end")
			}
			i += 2
		case isWordByte(c):
			kind = tWord
			for i < len(q) && isWordByte(q[i]) {
				i++
			}
		default:
			i++
			for _, op := range []string{"<=>", "<>", "!=", "<=", ">=", "||", "&&", ":=", "<<", ">>"} {
				if strings.HasPrefix(q[start:], op) {
					i = start + len(op)
					break
				}
			}
		}
		toks = append(toks, token{kind: kind, text: q[start:i], space: space})
		space = false
	}
	return toks, nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c == '@' || c >= 0x80 ||
		'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// A node is a token or a parenthesized group of nodes.
type node struct {
	tok         token
	group       []*node // non-nil for a group (possibly empty: see isGroup)
	isGroup     bool
	open, close token // the parentheses of a group

	del     bool   // left out of the output
	inList  bool   // part of a select list: output only with results
	selectK string // on a SELECT keyword: the key column to select
	keyLast string // on a FROM keyword: the key column to select last, with results
}

// maxNesting bounds parenthesis nesting, which no real query comes near.
const maxNesting = 64

// parseNodes nests tokens by parentheses.
func parseNodes(toks []token) ([]*node, error) {
	var stack [][]*node
	var opens []token
	cur := []*node{}
	for _, t := range toks {
		switch {
		case t.is("("):
			if len(stack) >= maxNesting {
				return nil, fmt.Errorf("parentheses nested more than %d deep", maxNesting)
			}
			stack = append(stack, cur)
			opens = append(opens, t)
			cur = []*node{}
		case t.is(")"):
			if len(stack) == 0 {
				return nil, errors.New("unbalanced ')'")
			}
			g := &node{isGroup: true, group: cur, open: opens[len(opens)-1], close: t}
			cur = append(stack[len(stack)-1], g)
			stack, opens = stack[:len(stack)-1], opens[:len(opens)-1]
		default:
			cur = append(cur, &node{tok: t})
		}
	}
	if len(stack) > 0 {
		return nil, errors.New("unbalanced '('")
	}
	return cur, nil
}

// countKeys counts key placeholders in nodes, groups included.
func countKeys(nodes []*node) int {
	n := 0
	for _, nd := range nodes {
		if nd.isGroup {
			n += countKeys(nd.group)
		} else if nd.tok.key() {
			n++
		}
	}
	return n
}

// emit writes nodes as SQL: template %% become %, and select lists are
// written only when withResults.
func emit(b *strings.Builder, nodes []*node, withResults bool) {
	for _, nd := range nodes {
		if nd.del || nd.inList && !withResults {
			continue
		}
		if nd.isGroup {
			writeTok(b, nd.open)
			emit(b, nd.group, withResults)
			writeTok(b, nd.close)
			continue
		}
		if nd.keyLast != "" && withResults {
			b.WriteString(", " + nd.keyLast)
		}
		writeTok(b, nd.tok)
		if nd.selectK != "" && !withResults {
			b.WriteString(" " + nd.selectK)
		}
	}
}

func writeTok(b *strings.Builder, t token) {
	s := b.String()
	if t.space && s != "" && !strings.HasSuffix(s, "(") && !strings.HasSuffix(s, " ") {
		b.WriteByte(' ')
	} else if !t.space && s != "" && t.kind == tWord && isWordByte(s[len(s)-1]) {
		b.WriteByte(' ') // two words that were separated by a removed token
	}
	b.WriteString(strings.ReplaceAll(t.text, "%%", "%"))
}
