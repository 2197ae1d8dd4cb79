// Package sqltable answers questions from the SQL tables that Postfix
// itself queries through mysql_table(5), pgsql_table(5) and sqlite_table(5)
// lookup files: "is example.com a hosted domain?" (Lookup, Hosts) and "which
// domains are hosted?" (EachDomain).
//
// The three table types share Postfix's SQL-table semantics, and so does
// this package: Lookup gives exactly Postfix's answer for a key (the same
// %-expansions, the same suppressed queries, the same result_format,
// domain and expansion_limit rules, from sources/lookupkey, which the LDAP
// tables share), and EachDomain
// runs a query derived from the per-key lookup query (listing.go), which
// Postfix itself never needs, keeping only the names for which Lookup would
// answer. What differs is a dialect: how the server is reached, how the
// key is quoted, and how the query is spelled (mysql.go, pgsql.go,
// sqlite.go).
//
// Every dialect goes through database/sql: github.com/go-sql-driver/mysql,
// github.com/jackc/pgx/v5 and modernc.org/sqlite (pure Go, so builds stay
// CGO_ENABLED=0). Open does no I/O, and a server that goes away makes the
// current call fail and the next one reconnect.
package sqltable

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/lookupkey"
	"github.com/mailautoconf/mailautoconf/sources/postfix"
)

// Options tune how a Table reaches its database.
type Options struct {
	// Override, when set, reaches every host of a mysql or pgsql table
	// there instead, with the user and password the file gives (a test and
	// inspection aid: the CLI's --mysql-socket and --pgsql-host): a unix
	// socket path for mysql; "host:port", a socket directory or a
	// postgresql:// URI for pgsql.
	Override string
	// Root reads option files, TLS files and sqlite databases. The zero
	// value reads the real file system.
	Root hostfs.Root
	// ConnectTimeout bounds connecting to one host; default 2s.
	ConnectTimeout time.Duration
	// QueryTimeout bounds one query on one host; default 5s.
	QueryTimeout time.Duration
	// ListingTimeout bounds reading a whole listing (EachDomain) from one
	// host, the caller's work on each row included; default 2m. A million
	// domains take about 2 s here.
	ListingTimeout time.Duration
	// SMTPUTF8Disabled tells that main.cf sets smtputf8_enable = no (as
	// Mail-in-a-Box does). Postfix then lower-cases only the ASCII letters
	// of a key ("ÄBC" becomes "Äbc", "Straße" stays), where by default it
	// case folds the whole key ("äbc", "strasse").
	SMTPUTF8Disabled bool
}

// A Table is an opened Postfix SQL lookup table. Its methods are safe for
// concurrent use.
type Table struct {
	path           string
	dialect        dialect
	queryTmpl      string // the query template, with its %-expansions
	tmpl           *lookupkey.Templates
	domain         []string // the "domain" restriction list
	root           hostfs.Root
	limit          int
	timeout        time.Duration
	listingTimeout time.Duration
	endpoints      []endpoint // in the order they are tried
	firstOnly      bool       // only the first column of a row is a result (sqlite)
	asciiFold      bool       // keys are folded in ASCII only (smtputf8_enable = no)

	aliasMu    sync.Mutex // guards the alias_domain query, found once (aliasQuery)
	aliasKnown bool
	aliasSQL   string
	aliasErr   error
}

// An endpoint is one database server a table can be queried on.
type endpoint struct {
	name string  // for errors: "127.0.0.1:3306", "unix:/run/mysqld/mysqld.sock"
	db   *sql.DB // connects on first use
}

// errExpansionLimit is wrapped by Lookup when Postfix's lookup fails for
// having more results than expansion_limit: for that key, the table
// answers nothing.
var errExpansionLimit = errors.New("exceed expansion_limit")

// Open prepares the table cf for queries. It validates the hosts and the
// templates and reads option and TLS files, but does not connect. See each
// dialect for the order hosts are tried in.
func Open(cf *postfix.SQLTable, opt Options) (*Table, error) {
	if opt.ConnectTimeout <= 0 {
		opt.ConnectTimeout = 2 * time.Second
	}
	if opt.QueryTimeout <= 0 {
		opt.QueryTimeout = 5 * time.Second
	}
	if opt.ListingTimeout <= 0 {
		opt.ListingTimeout = 2 * time.Minute
	}
	fail := func(err error) (*Table, error) { return nil, fmt.Errorf("%s %s: %w", cf.Type, cf.Path, err) }
	d, ok := dialects[cf.Type]
	if !ok {
		return fail(fmt.Errorf("%s tables are not SQL tables", cf.Type))
	}
	if strings.TrimSpace(cf.Query) == "" {
		return fail(errors.New("no query (neither query nor table, select_field and where_field are set)"))
	}
	if cf.Type != "sqlite" && cf.DBName == "" {
		return fail(errors.New("dbname is not set (Postfix refuses the table)"))
	}
	tmpl, err := lookupkey.Parse(cf.ResultFormat, lookupkey.Search{Param: "query", Format: cf.Query})
	if err != nil {
		return fail(err)
	}
	tb := &Table{
		path:           cf.Path,
		dialect:        d,
		queryTmpl:      cf.Query,
		tmpl:           tmpl,
		domain:         cf.Domain,
		root:           opt.Root,
		limit:          cf.ExpansionLimit,
		timeout:        opt.QueryTimeout,
		listingTimeout: opt.ListingTimeout,
		asciiFold:      opt.SMTPUTF8Disabled,
	}
	if fc, ok := d.(interface{ firstColumnOnly() bool }); ok {
		tb.firstOnly = fc.firstColumnOnly()
	}
	if tb.endpoints, err = d.open(cf, opt); err != nil {
		return fail(err)
	}
	return tb, nil
}

// Type returns the table type: "mysql", "pgsql" or "sqlite".
func (t *Table) Type() string { return t.dialect.name() }

// Close closes the table's connections.
func (t *Table) Close() error {
	var errs []error
	for _, ep := range t.endpoints {
		errs = append(errs, ep.db.Close())
	}
	return errors.Join(errs...)
}

// Path returns the host path of the lookup file.
func (t *Table) Path() string { return t.path }

// Endpoints returns, in the order they are tried, the servers the table
// connects to ("127.0.0.1:3306", "unix:/run/mysqld/mysqld.sock",
// "localhost (unix:/run/mysqld/mysqld.sock)").
func (t *Table) Endpoints() []string {
	var out []string
	for _, ep := range t.endpoints {
		out = append(out, ep.name)
	}
	return out
}

// eligible reports whether Postfix queries the table for the (folded) key
// at all: the domain restriction and the templates' needs.
func (t *Table) eligible(key string) (bool, error) {
	ok, err := lookupkey.CheckDomain(t.root, t.domain, key)
	if err != nil {
		return false, fmt.Errorf("%s %s: %w", t.dialect.name(), t.path, err)
	}
	return ok && t.tmpl.Accepts(key), nil
}

// Lookup returns what Postfix's lookup of key in the table returns: every
// non-NULL, non-empty column of every row (for sqlite, the first column
// only), formatted with result_format; nil when the key is not found or its
// query is suppressed. The key is case folded first, as Postfix does (see
// lookupkey.Fold and Options.SMTPUTF8Disabled); a key that is not UTF-8
// or holds a NUL byte is never looked up.
func (t *Table) Lookup(ctx context.Context, key string) ([]string, error) {
	key, ok := t.fold(key)
	if !ok {
		return nil, nil
	}
	ok, err := t.eligible(key)
	if !ok || err != nil {
		return nil, err
	}
	q, ok := t.tmpl.Expand(t.queryTmpl, key, t.dialect.quote)
	if !ok {
		return nil, nil
	}
	rows, err := t.query(context.WithValue(ctx, lookupKey{}, true), q)
	if err != nil {
		return nil, err
	}
	var results []string
	for _, row := range rows {
		if t.firstOnly && len(row) > 1 {
			row = row[:1]
		}
		for _, v := range row {
			if v == nil {
				continue
			}
			if r, ok := t.tmpl.FormatResult(*v, key); ok {
				results = append(results, r)
			}
		}
	}
	if t.limit > 0 && len(results) > t.limit {
		return nil, fmt.Errorf("%s %s: lookup %q: %d results %w %d", t.dialect.name(), t.path, key, len(results), errExpansionLimit, t.limit)
	}
	return results, nil
}

// fold folds a lookup key as Postfix does (see Options.SMTPUTF8Disabled);
// ok is false for a key Postfix never looks up.
func (t *Table) fold(key string) (folded string, ok bool) {
	if t.asciiFold {
		return lookupkey.FoldASCII(key)
	}
	return lookupkey.Fold(key)
}

// lookupKey marks the context of Lookup's query: a dialect must then give
// the values exactly as Postfix gets them, or fail as Postfix's lookup
// does, where for other queries (listings, alias tables) it may leave out
// a value no Postfix lookup could return (pgsql.go).
type lookupKey struct{}

// Hosts reports whether Postfix finds the bare domain in the table, as it
// does for virtual_mailbox_domains: Lookup of the (case-folded) domain gives
// a result.
func (t *Table) Hosts(ctx context.Context, domain string) (bool, error) {
	r, err := t.Lookup(ctx, domain)
	return len(r) > 0, err
}

// query runs q on each endpoint in turn until one answers, and returns all
// rows; a nil element is a NULL. When every endpoint fails the error names
// each one and what failed.
func (t *Table) query(ctx context.Context, q string) ([][]*string, error) {
	var out [][]*string
	err := t.queryEach(ctx, q, t.timeout, func(vals []sql.RawBytes) {
		row := make([]*string, len(vals))
		for i, v := range vals {
			if v != nil {
				s := string(v)
				row[i] = &s
			}
		}
		out = append(out, row)
	}, func() { out = out[:0] })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// queryEach runs q on each endpoint in turn until one answers, within
// timeout on each, calling row for every row it returns. The values passed to row are valid only during
// the call; a NULL (and an empty value, which Postfix skips the same way)
// is nil. Before trying the next endpoint after one failed part-way,
// queryEach calls restart so that the caller can drop the rows it got.
// When every endpoint fails the error names each one and what failed.
func (t *Table) queryEach(ctx context.Context, q string, timeout time.Duration, row func([]sql.RawBytes), restart func()) error {
	var errs []error
	for i, ep := range t.endpoints {
		if i > 0 {
			restart()
		}
		err := t.queryEachOn(ctx, ep.db, q, timeout, row)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s %s (%s): %w", t.dialect.name(), ep.name, t.path, t.dialect.explain(err)))
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

func (t *Table) queryEachOn(ctx context.Context, db *sql.DB, q string, timeout time.Duration, row func([]sql.RawBytes)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	// Scanned into the same RawBytes for every row: a listing of a
	// million domains is streamed, never held whole.
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		row(vals)
	}
	return rows.Err()
}
