package postfix

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// ErrUnsupported marks a lookup table type whose contents cannot be read
// (yet): pgsql, ldap, sqlite, memcache, regexp, ...
var ErrUnsupported = errors.New("table type not supported yet")

// A Table is one element of a Postfix list parameter such as
// virtual_mailbox_domains: a literal domain name or a "type:name" lookup
// table.
type Table struct {
	// Raw is the element as written after expansion: "example.net",
	// "proxy:mysql:/etc/postfix/x.cf", "hash:/etc/postfix/vmail_domains".
	Raw string
	// Type is "" for a literal domain name, else the table type without
	// "proxy:": "mysql", "hash", "texthash", "lmdb", "inline", "static", ...
	Type string
	// Name is what follows the type: a path, a table name, "{ a, b }" for
	// inline:, or for a literal the domain name.
	Name string
	// Proxy reports a "proxy:" prefix (the lookup goes through proxymap(8)).
	Proxy bool
	// Negated reports a leading "!": the element excludes its matches.
	Negated bool
	// Pos is the main.cf line of the parameter (zero for a default), or for
	// a name read from a "/file/name" element, that file's line.
	Pos hostfs.Pos
}

// IsLiteral reports whether t is a literal domain name rather than a table.
func (t Table) IsLiteral() bool { return t.Type == "" }

// maxListFiles bounds the nesting of "/file/name" elements.
const maxListFiles = 10

// Tables splits the expanded list parameter param (virtual_mailbox_domains,
// virtual_alias_domains, relay_domains, mydestination, ...) into elements as
// Postfix's match lists do: elements are separated by commas and
// whitespace, a "{ ... }" group (as in "inline:{ a, b }") stays whole, and a
// "/file/name" element is replaced by the elements read from that file
// (postconf(5) syntax: comment lines, continuation lines).
func (c *Config) Tables(param string) ([]Table, error) {
	value, pos, err := c.ParamErr(param)
	var out []Table
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	c.listElements(value, pos, 0, &out, &errs)
	return out, errors.Join(errs...)
}

func (c *Config) listElements(value string, pos hostfs.Pos, depth int, out *[]Table, errs *[]error) {
	for _, item := range splitList(value) {
		t := Table{Raw: item, Pos: pos}
		s := item
		if strings.HasPrefix(s, "!") {
			t.Negated = true
			s = strings.TrimLeft(s[1:], " \t")
		}
		if strings.HasPrefix(s, "/") {
			if depth >= maxListFiles {
				*errs = append(*errs, fmt.Errorf("%s: %s: files nested too deep", pos, s))
				continue
			}
			c.listFile(s, depth+1, out, errs)
			continue
		}
		t.Type, t.Name, t.Proxy = splitTableName(s)
		*out = append(*out, t)
	}
}

// listFile adds the elements of a "/file/name" list element.
func (c *Config) listFile(p string, depth int, out *[]Table, errs *[]error) {
	data, err := readHostFile(c.root, p)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("read list file: %w", err))
		return
	}
	lines, err := readLogicalLines(p, bytes.NewReader(data), nil)
	if err != nil {
		*errs = append(*errs, err)
	}
	for _, l := range lines {
		c.listElements(l.text, hostfs.Pos{File: p, Line: l.line}, depth, out, errs)
	}
}

// splitList splits a list value at commas and whitespace outside "{ }".
func splitList(v string) []string {
	var out []string
	for i := 0; i < len(v); {
		if isSpace(v[i]) || v[i] == ',' {
			i++
			continue
		}
		start, depth := i, 0
		for ; i < len(v) && (depth > 0 || !(isSpace(v[i]) || v[i] == ',')); i++ {
			switch v[i] {
			case '{':
				depth++
			case '}':
				if depth > 0 {
					depth--
				}
			}
		}
		out = append(out, v[start:i])
	}
	return out
}

// splitTableName splits "proxy:type:name" or "type:name"; a name without a
// type is a literal ("" type, the name itself).
func splitTableName(s string) (typ, name string, proxy bool) {
	typ, name, ok := strings.Cut(s, ":")
	if !ok || !isTableType(typ) {
		return "", s, false
	}
	if typ == "proxy" {
		if t2, n2, ok := strings.Cut(name, ":"); ok && isTableType(t2) {
			return t2, n2, true
		}
	}
	return typ, name, false
}

// isTableType reports whether s looks like a Postfix table type name.
func isTableType(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// fileTableTypes are the indexed table types built by postmap(1) from a
// text file at the table's path; texthash reads that text file directly.
var fileTableTypes = map[string]bool{"hash": true, "btree": true, "lmdb": true, "cdb": true, "dbm": true, "sdbm": true, "texthash": true}

// TableKeys returns the keys of table t when they can be listed without a
// database: the literal domain itself, the postmap(1) source file of
// hash:/btree:/lmdb:/cdb:/dbm: tables, texthash:, inline: and static:.
// SQL tables (mysql:, pgsql:, sqlite:) are read with LoadSQLTable and ldap:
// tables with LoadLDAPTable, and queried elsewhere; other types give an
// error wrapping ErrUnsupported.
func (c *Config) TableKeys(t Table) ([]TableKey, error) {
	switch {
	case t.Type == "":
		return []TableKey{{Key: strings.ToLower(t.Name), Value: t.Name, Pos: t.Pos}}, nil
	case fileTableTypes[t.Type]:
		return LoadTableSource(c.root, t.Name)
	case t.Type == "inline":
		return parseInline(t)
	case t.Type == "static":
		return nil, fmt.Errorf("%s: static:%s matches every key, there is nothing to list: %w", t.Pos, t.Name, ErrUnsupported)
	case t.Type == "mysql" || t.Type == "pgsql" || t.Type == "sqlite" || t.Type == "ldap":
		return nil, fmt.Errorf("%s: %s:%s is listed by querying the database: %w", t.Pos, t.Type, t.Name, ErrUnsupported)
	}
	return nil, fmt.Errorf("%s: reading %s: tables is not supported yet: %w", t.Pos, t.Type, ErrUnsupported)
}

// parseInline lists the keys of "inline:{ key=value, { key = value }, ... }".
func parseInline(t Table) ([]TableKey, error) {
	body := strings.TrimSpace(t.Name)
	if !strings.HasPrefix(body, "{") || matchBracket(body, 0) != len(body)-1 {
		return nil, fmt.Errorf("%s: inline:%s: want inline:{ key=value, ... }", t.Pos, t.Name)
	}
	var out []TableKey
	for _, item := range splitList(body[1 : len(body)-1]) {
		if strings.HasPrefix(item, "{") && strings.HasSuffix(item, "}") {
			item = strings.TrimSpace(item[1 : len(item)-1])
		}
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("%s: inline: %q: want key=value", t.Pos, item)
		}
		out = append(out, TableKey{Key: strings.ToLower(strings.TrimSpace(k)), Value: strings.TrimSpace(v), Pos: t.Pos})
	}
	return out, nil
}
