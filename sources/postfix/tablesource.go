package postfix

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// A TableKey is one entry of a lookup table source file.
type TableKey struct {
	Key   string // lower-cased, as postmap(1) stores it
	Value string
	Pos   hostfs.Pos
}

// LoadTableSource reads the postmap(1) source file at host path p: the text
// file from which hash:, btree:, lmdb:, cdb: and dbm: tables are built
// (the table's own path, not p.db), and the file texthash: reads.
func LoadTableSource(root hostfs.Root, p string) ([]TableKey, error) {
	data, err := readHostFile(root, p)
	if err != nil {
		return nil, fmt.Errorf("read table source: %w", err)
	}
	return ParseTableSource(p, bytes.NewReader(data))
}

// ParseTableSource parses postmap(1) input: "key whitespace value" logical
// lines, with postconf(5) comment and continuation rules and "quoted keys"
// (with \" and \\) for keys with whitespace. Keys are lower-cased as postmap
// does without -f. A bad line is reported as a *hostfs.PosError and
// skipped, as postmap does; the other entries are still returned. When a key
// is repeated, every occurrence is returned (postmap keeps the first).
func ParseTableSource(name string, r io.Reader) ([]TableKey, error) {
	var errs []error
	lines, err := readLogicalLines(name, r, func(line int, text string) {
		errs = append(errs, hostfs.Errorf(name, line, "logical line must not start with whitespace: %q", clip(text)))
	})
	if err != nil {
		errs = append(errs, err)
	}
	var out []TableKey
	for _, l := range lines {
		key, value, msg := splitKeyValue(l.text)
		if msg != "" {
			errs = append(errs, &hostfs.PosError{Pos: hostfs.Pos{File: name, Line: l.line}, Err: errors.New(msg)})
			continue
		}
		out = append(out, TableKey{Key: strings.ToLower(key), Value: value, Pos: hostfs.Pos{File: name, Line: l.line}})
	}
	return out, errors.Join(errs...)
}

// splitKeyValue splits a postmap(1) input line; msg is "" on success.
func splitKeyValue(s string) (key, value, msg string) {
	var rest string
	if strings.HasPrefix(s, `"`) {
		var b strings.Builder
		i := 1
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
				i++
			}
			b.WriteByte(s[i])
		}
		if i >= len(s) {
			return "", "", fmt.Sprintf("unbalanced '\"' in %q", clip(s))
		}
		key, rest = b.String(), s[i+1:]
		if rest != "" && !isSpace(rest[0]) {
			return "", "", fmt.Sprintf("expected whitespace after quoted key in %q", clip(s))
		}
	} else {
		i := 0
		for i < len(s) && !isSpace(s[i]) {
			i++
		}
		key, rest = s[:i], s[i:]
	}
	value = strings.Trim(rest, " \t\r\n\v\f")
	if value == "" {
		return "", "", fmt.Sprintf("expected format: key whitespace value: %q", clip(s))
	}
	return key, value, ""
}
