package postfix

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// LoadMySQLTable reads the mysql_table(5) file at host path p under root
// (the path of a "mysql:/etc/postfix/x.cf" or "proxy:mysql:..." table).
func LoadMySQLTable(root hostfs.Root, p string) (*MySQLTable, error) {
	data, err := readHostFile(root, p)
	if err != nil {
		return nil, fmt.Errorf("read mysql table: %w", err)
	}
	return ParseMySQLTable(p, bytes.NewReader(data))
}

// ParseMySQLTable parses a mysql_table(5) file. The syntax is main.cf's,
// without $name expansion: a '#' that does not start a line is part of the
// value, so passwords may contain '#' and inner spaces. Without "query",
// the query is composed from the legacy table, select_field, where_field
// and additional_conditions as Postfix does. Without "hosts", Hosts is
// ["localhost"], Postfix's fallback. A missing dbname or query is an error
// naming the file; a bad line is a *hostfs.PosError. The table read so far
// is returned with any error.
func ParseMySQLTable(name string, r io.Reader) (*MySQLTable, error) {
	t := &MySQLTable{
		Path:         name,
		ResultFormat: "%s",
		OptionGroup:  "client",
		Params:       map[string]string{},
		Pos:          map[string]hostfs.Pos{},
	}
	settings, _, err := parseSettings(name, r)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, s := range settings {
		t.Params[s.Name] = s.Value
		t.Pos[s.Name] = s.Pos
	}
	bad := func(key, format string, args ...any) {
		errs = append(errs, &hostfs.PosError{Pos: t.Pos[key], Err: fmt.Errorf(format, args...)})
	}
	p := t.Params
	t.Hosts = splitList(p["hosts"])
	if len(t.Hosts) == 0 {
		t.Hosts = []string{"localhost"}
	}
	t.User = p["user"]
	t.Password = p["password"]
	t.DBName = p["dbname"]
	if t.DBName == "" {
		errs = append(errs, &hostfs.PosError{Pos: hostfs.Pos{File: name}, Err: errors.New("missing dbname")})
	}
	if q, ok := p["query"]; ok && q != "" {
		t.Query = q
	} else {
		var missing []string
		for _, k := range []string{"table", "select_field", "where_field"} {
			if p[k] == "" {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			errs = append(errs, &hostfs.PosError{Pos: hostfs.Pos{File: name},
				Err: fmt.Errorf("missing query (or the legacy %s)", strings.Join(missing, ", "))})
		} else {
			t.Query = fmt.Sprintf("SELECT %s FROM %s WHERE %s='%%s' %s",
				p["select_field"], p["table"], p["where_field"], p["additional_conditions"])
			t.Legacy = true
		}
	}
	t.Domain = splitList(p["domain"])
	if v, ok := p["result_format"]; ok {
		t.ResultFormat = v
	}
	if v, ok := p["expansion_limit"]; ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			bad("expansion_limit", "bad expansion_limit %q: want a number >= 0", v)
		} else {
			t.ExpansionLimit = n
		}
	}
	t.OptionFile = p["option_file"]
	if v, ok := p["option_group"]; ok {
		t.OptionGroup = v
	}
	t.TLSCertFile = p["tls_cert_file"]
	t.TLSKeyFile = p["tls_key_file"]
	t.TLSCAFile = p["tls_CAfile"]
	t.TLSCAPath = p["tls_CApath"]
	if v, ok := p["tls_verify_cert"]; ok && v != "" {
		b, err := parseBool(v)
		if err != nil {
			bad("tls_verify_cert", "bad tls_verify_cert %q: want yes or no", v)
		}
		t.TLSVerifyCert = b
	}
	return t, errors.Join(errs...)
}
