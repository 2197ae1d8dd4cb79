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

// SQLTable is a Postfix SQL lookup table file, as mysql_table(5),
// pgsql_table(5) and sqlite_table(5) define it
// ("proxy:mysql:/etc/postfix/mysql/virtual_mailbox_domains.cf"). The three
// share the query, its legacy form and the result rules; they differ in how
// the database is reached.
type SQLTable struct {
	Type string // "mysql", "pgsql" or "sqlite"
	Path string // host path of the .cf file

	// Hosts as written, in order (mysql, pgsql): "localhost",
	// "127.0.0.1:3306", "inet:db.example.com:5432",
	// "unix:/run/mysqld/mysqld.sock", "postgresql://..." (pgsql).
	Hosts    []string
	User     string
	Password string
	DBName   string
	// DBPath is the database file of a sqlite table.
	DBPath string

	// Query is the lookup query with its %-expansions unexpanded. When the
	// file uses the legacy form (table, select_field, where_field,
	// additional_conditions; for pgsql also select_function), Query is the
	// query Postfix composes from it:
	// "SELECT select_field FROM table WHERE where_field='%s' additional_conditions".
	Query string
	// Legacy reports that Query was composed from the legacy fields.
	Legacy bool

	// Domain is the "domain" restriction list as written; when it is not
	// empty, Postfix never queries a bare domain name.
	Domain []string

	ResultFormat   string // result_format, "%s" by default
	ExpansionLimit int    // expansion_limit, 0 for none

	// MySQL only.
	OptionFile    string // option_file
	OptionGroup   string // option_group, "client" by default
	TLSCertFile   string
	TLSKeyFile    string
	TLSCAFile     string
	TLSCAPath     string
	TLSVerifyCert bool

	// Params holds every "name = value" of the file as written (the last
	// one wins), for display. It includes the password.
	Params map[string]string
	// Pos tells where each parameter in Params was set.
	Pos map[string]hostfs.Pos
}

// SQLTableTypes are the table types whose files ParseSQLTable reads.
var SQLTableTypes = []string{"mysql", "pgsql", "sqlite"}

// LoadSQLTable reads the lookup file of a typ table ("mysql", "pgsql",
// "sqlite") at host path p under root: the name of a "mysql:/etc/postfix/x.cf"
// or "proxy:pgsql:..." table.
func LoadSQLTable(root hostfs.Root, typ, p string) (*SQLTable, error) {
	data, err := readHostFile(root, p)
	if err != nil {
		return nil, fmt.Errorf("read %s table: %w", typ, err)
	}
	return ParseSQLTable(typ, p, bytes.NewReader(data))
}

// ParseSQLTable parses the lookup file of a typ table. The syntax is
// main.cf's, without $name expansion: a '#' that does not start a line is
// part of the value, so passwords may contain '#' and inner spaces. Without
// "query", the query is composed from the legacy fields as Postfix does. A
// missing dbname (mysql, pgsql), dbpath (sqlite) or query is an error naming
// the file; a bad line is a *hostfs.PosError. The table read so far is
// returned with any error.
func ParseSQLTable(typ, name string, r io.Reader) (*SQLTable, error) {
	f := readTableFile(name, r)
	t := &SQLTable{
		Type:         typ,
		Path:         name,
		ResultFormat: "%s",
		Params:       f.params,
		Pos:          f.pos,
	}
	missing := func(msg string) {
		f.errs = append(f.errs, &hostfs.PosError{Pos: hostfs.Pos{File: name}, Err: errors.New(msg)})
	}
	p := t.Params
	switch typ {
	case "mysql", "pgsql":
		t.Hosts = splitList(p["hosts"])
		if len(t.Hosts) == 0 {
			t.Hosts = []string{"localhost"}
		}
		t.User = p["user"]
		t.Password = p["password"]
		t.DBName = p["dbname"]
		if t.DBName == "" {
			missing("missing dbname")
		}
	case "sqlite":
		t.DBPath = p["dbpath"]
		if t.DBPath == "" {
			missing("missing dbpath")
		}
	default:
		return t, fmt.Errorf("%s: %s is not an SQL table type", name, typ)
	}
	switch {
	case p["query"] != "":
		t.Query = p["query"]
	case typ == "pgsql" && p["select_function"] != "":
		t.Query = fmt.Sprintf("SELECT %s('%%s')", p["select_function"])
		t.Legacy = true
	default:
		var lack []string
		for _, k := range []string{"table", "select_field", "where_field"} {
			if p[k] == "" {
				lack = append(lack, k)
			}
		}
		if len(lack) > 0 {
			missing(fmt.Sprintf("missing query (or the legacy %s)", strings.Join(lack, ", ")))
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
			f.bad("expansion_limit", "bad expansion_limit %q: want a number >= 0", v)
		} else {
			t.ExpansionLimit = n
		}
	}
	if typ != "mysql" {
		return t, errors.Join(f.errs...)
	}
	t.OptionGroup = "client"
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
			f.bad("tls_verify_cert", "bad tls_verify_cert %q: want yes or no", v)
		}
		t.TLSVerifyCert = b
	}
	return t, errors.Join(f.errs...)
}

// A tableFile is a lookup table file being parsed: mysql_table(5),
// pgsql_table(5), sqlite_table(5) and ldap_table(5) files share main.cf's
// syntax, without $name expansion.
type tableFile struct {
	name   string
	params map[string]string     // every "name = value"; the last one wins
	pos    map[string]hostfs.Pos // where each of params was set
	errs   []error               // syntax errors, then bad values
}

// readTableFile reads the settings of the table file name from r.
func readTableFile(name string, r io.Reader) *tableFile {
	f := &tableFile{name: name, params: map[string]string{}, pos: map[string]hostfs.Pos{}}
	settings, _, err := parseSettings(name, r)
	if err != nil {
		f.errs = append(f.errs, err)
	}
	for _, s := range settings {
		f.params[s.Name] = s.Value
		f.pos[s.Name] = s.Pos
	}
	return f
}

// at returns where key was set, or the file when it was not.
func (f *tableFile) at(key string) hostfs.Pos {
	if p, ok := f.pos[key]; ok {
		return p
	}
	return hostfs.Pos{File: f.name}
}

// bad records an error about the value of key, at its line.
func (f *tableFile) bad(key, format string, args ...any) {
	f.errs = append(f.errs, &hostfs.PosError{Pos: f.at(key), Err: fmt.Errorf(format, args...)})
}
