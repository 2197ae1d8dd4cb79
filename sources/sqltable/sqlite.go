package sqltable

import (
	"bytes"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/mailautoconf/mailautoconf/sources/postfix"
)

// sqliteDialect is sqlite_table(5) through modernc.org/sqlite, SQLite's C
// code translated to Go: it keeps builds CGO_ENABLED=0, at the price of a
// larger binary.
//
// Postfix's dict_sqlite differs from its MySQL and PostgreSQL clients in
// ways that change answers, and the connections made here behave as it
// does (see sqliteConn): only the first statement of a query runs, only the
// first column of each row is a result (firstColumnOnly), and values are
// the text sqlite3_column_text gives (a REAL 1.0 is "1.0", a value ends at
// its first NUL byte).
type sqliteDialect struct{}

func (sqliteDialect) name() string { return "sqlite" }

func (sqliteDialect) syntax() syntax { return syntax{backquoteIdent: true, pipesConcat: true} }

// quote escapes s as sqlite3_mprintf's %q does, which Postfix uses: a
// quote is doubled.
func (sqliteDialect) quote(s string) string { return strings.ReplaceAll(s, "'", "''") }

// firstColumnOnly: dict_sqlite formats sqlite3_column_text(stmt, 0) of
// each row and ignores the other columns.
func (sqliteDialect) firstColumnOnly() bool { return true }

func (sqliteDialect) columnsQuery(table string) string {
	return "SELECT lower(name) FROM pragma_table_info('" + strings.ReplaceAll(table, "'", "''") + "')"
}

// explain names what an SQLite error code means for a reader of the mail
// server's database.
func (sqliteDialect) explain(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_CANTOPEN:
		return fmt.Errorf("cannot open the database file (gone, or not readable by this user): %w", err)
	case sqlite3.SQLITE_NOTADB:
		return fmt.Errorf("not an SQLite database: %w", err)
	case sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH:
		return fmt.Errorf("access denied: %w", err)
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return fmt.Errorf("database locked by a writer for longer than the query timeout: %w", err)
	case sqlite3.SQLITE_CORRUPT:
		return fmt.Errorf("database file damaged: %w", err)
	}
	return err
}

// sqliteMagic begins every SQLite 3 database file.
const sqliteMagic = "SQLite format 3\x00"

// open opens dbpath (a host path, read under Options.Root, symbolic links
// resolved inside it) read-only, waiting up to nine tenths of
// Options.QueryTimeout for a writer's lock. Postfix's sqlite3_open would
// create a missing file, but a reader of the mail server's tables must
// never write them, so a missing file is an error here; so are a
// directory, an unreadable file and a file that is not an SQLite 3
// database (an empty file is an empty database, as for SQLite).
func (sqliteDialect) open(t *postfix.SQLTable, opt Options) ([]*endpoint, error) {
	if !strings.HasPrefix(t.DBPath, "/") {
		return nil, fmt.Errorf("dbpath %q: want an absolute path", t.DBPath)
	}
	p, err := opt.Root.Resolve(t.DBPath)
	if err != nil {
		return nil, fmt.Errorf("dbpath %s: %w", t.DBPath, unwrapFSError(err))
	}
	if err := checkDBFile(p); err != nil {
		return nil, fmt.Errorf("dbpath %s: %w", t.DBPath, err)
	}
	// SQLite's own wait for a lock ends a little before the query's
	// timeout, so that the error says "locked".
	busy := opt.QueryTimeout.Milliseconds() * 9 / 10
	dsn := (&url.URL{Scheme: "file", Path: p, RawQuery: "mode=ro&_pragma=busy_timeout(" +
		strconv.FormatInt(busy, 10) + ")"}).String()
	conn, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("dbpath %s: %w", t.DBPath, err)
	}
	return []*endpoint{newEndpoint(t.DBPath, sqliteConnector{conn})}, nil
}

// checkDBFile reports why the file p cannot be a readable SQLite database.
func checkDBFile(p string) error {
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return errors.New("no such file (Postfix would create an empty database there and find nothing)")
	}
	if err != nil {
		return unwrapFSError(err)
	}
	if !fi.Mode().IsRegular() { // before opening: a FIFO would block
		return fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	f, err := os.Open(p)
	if err != nil {
		return unwrapFSError(err)
	}
	defer f.Close()
	var magic [len(sqliteMagic)]byte
	n, err := io.ReadFull(f, magic[:])
	switch {
	case n == 0 && (err == nil || errors.Is(err, io.EOF)):
		return nil // an empty database
	case err != nil && !errors.Is(err, io.ErrUnexpectedEOF):
		return unwrapFSError(err)
	case string(magic[:n]) != sqliteMagic:
		return errors.New("not an SQLite 3 database (its first bytes are not \"SQLite format 3\")")
	}
	return nil
}

// unwrapFSError drops the *fs.PathError around err, whose path names the
// file under the root rather than the host path.
func unwrapFSError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// sqliteConnector hands out connections that answer as Postfix's dict_sqlite
// reads them.
type sqliteConnector struct{ driver.Connector }

func (c sqliteConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return sqliteConn{conn}, nil
}

// sqliteConn is a modernc.org/sqlite connection whose queries run as
// dict_sqlite runs them: sqlite3_prepare_v2 compiles only the first
// statement and Postfix ignores the rest, and each value is the text of
// sqlite3_column_text read as a C string.
type sqliteConn struct{ driver.Conn }

// errEmptyStatement: sqlite3_prepare_v2 of a query whose first statement
// is empty gives no statement, and Postfix's lookup fails.
var errEmptyStatement = errors.New("the query's first statement is empty")

func (c sqliteConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	qc, ok := c.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	first, ok := firstStatement(q)
	if !ok {
		return nil, errEmptyStatement
	}
	rows, err := qc.QueryContext(ctx, first, args)
	if err != nil {
		return nil, err
	}
	return textRows{rows}, nil
}

func (c sqliteConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c sqliteConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// firstStatement returns q up to and including its first ';' outside
// strings, quoted identifiers and comments, as SQLite's tokenizer reads it;
// ok is false when that statement holds nothing but white space and
// comments.
func firstStatement(q string) (stmt string, ok bool) {
	for i := 0; i < len(q); i++ {
		switch c := q[i]; c {
		case '\'', '"', '`':
			j := i + 1
			for ; j < len(q); j++ {
				if q[j] == c {
					if j+1 < len(q) && q[j+1] == c {
						j++
						continue
					}
					break
				}
			}
			i, ok = j, true
		case '[':
			j := strings.IndexByte(q[i:], ']')
			if j < 0 {
				return q, true
			}
			i, ok = i+j, true
		case '-':
			if strings.HasPrefix(q[i:], "--") {
				j := strings.IndexByte(q[i:], '\n')
				if j < 0 {
					return q, ok
				}
				i += j
				continue
			}
			ok = true
		case '/':
			if strings.HasPrefix(q[i:], "/*") {
				j := strings.Index(q[i+2:], "*/")
				if j < 0 {
					return q, ok
				}
				i += 2 + j + 1
				continue
			}
			ok = true
		case ';':
			return q[:i+1], ok
		case ' ', '\t', '\n', '\f', '\r':
		default:
			ok = true
		}
	}
	return q, ok
}

// textRows gives each value as the text Postfix gets from
// sqlite3_column_text: a REAL rendered as SQLite renders it, and a text or
// BLOB up to its first NUL byte (Postfix reads a C string). INTEGER values
// need nothing: database/sql writes them as SQLite does.
type textRows struct{ driver.Rows }

func (r textRows) Next(dest []driver.Value) error {
	if err := r.Rows.Next(dest); err != nil {
		return err
	}
	for i, v := range dest {
		switch v := v.(type) {
		case float64:
			dest[i] = sqliteReal(v)
		case string:
			if j := strings.IndexByte(v, 0); j >= 0 {
				dest[i] = v[:j]
			}
		case []byte:
			if j := bytes.IndexByte(v, 0); j >= 0 {
				dest[i] = v[:j]
			}
		}
	}
	return nil
}

// sqliteReal renders f as SQLite 3.40 (Debian 12's, which Postfix uses)
// renders a REAL as text, with printf's "%!.15g": 15 significant digits,
// trailing zeros dropped but one kept after the point ("1.0", "1.0e+20",
// "0.333333333333333"), an exponent of at least two digits, "Inf" and
// "-Inf". -0.0 is "0.0", and NaN, which SQLite stores as NULL, never
// arrives.
func sqliteReal(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case f == 0:
		return "0.0"
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	// d.dddddddddddddde±XX: 15 significant digits, correctly rounded.
	e := strconv.FormatFloat(f, 'e', 14, 64)
	mant, expText, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expText)
	digits := strings.TrimRight(strings.Replace(mant, ".", "", 1), "0")
	if exp < -4 || exp > 14 {
		frac := digits[1:]
		if frac == "" {
			frac = "0"
		}
		es := "+"
		if exp < 0 {
			es, exp = "-", -exp
		}
		return fmt.Sprintf("%s%c.%se%s%02d", sign, digits[0], frac, es, exp)
	}
	var whole, frac string
	if exp >= 0 {
		for len(digits) < exp+1 {
			digits += "0"
		}
		whole, frac = digits[:exp+1], digits[exp+1:]
	} else {
		whole, frac = "0", strings.Repeat("0", -exp-1)+digits
	}
	if frac == "" {
		frac = "0"
	}
	return sign + whole + "." + frac
}
