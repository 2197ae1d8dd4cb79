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
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
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
	// ConnectTimeout bounds connecting to one host; default 2s. While
	// other hosts remain to be tried, a connection gets no more than its
	// share of the caller's deadline.
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
	connectTimeout time.Duration
	timeout        time.Duration
	listingTimeout time.Duration
	endpoints      []*endpoint // in the order written (see order)
	firstOnly      bool        // only the first column of a row is a result (sqlite)
	asciiFold      bool        // keys are folded in ASCII only (smtputf8_enable = no)

	aliasMu    sync.Mutex // guards the alias_domain query, found once (aliasQuery)
	aliasKnown bool
	aliasSQL   string
	aliasErr   error

	changes changeState // what the listings read, for Changed (changes.go)
}

// An endpoint is one database server a table can be queried on.
type endpoint struct {
	name string  // for errors: "127.0.0.1:3306", "unix:/run/mysqld/mysqld.sock"
	db   *sql.DB // connects on first use, through a hostConnector

	// downUntil is when (in Unix nanoseconds) the host stops counting as
	// down: a connection to it failed, and until then it is tried after
	// the others.
	downUntil atomic.Int64
}

// downTime is how long a host whose connection failed is tried only after
// the others, as Postfix's SQL clients do for retry_interval (60s by
// default).
const downTime = time.Minute

// newEndpoint returns the endpoint for the host that c connects to, with a
// pool sized as Postfix's proxymap would use it: a few connections,
// closed after a minute idle.
func newEndpoint(name string, c driver.Connector) *endpoint {
	ep := &endpoint{name: name}
	ep.db = sql.OpenDB(hostConnector{c, ep})
	ep.db.SetMaxOpenConns(4)
	ep.db.SetMaxIdleConns(2)
	ep.db.SetConnMaxIdleTime(time.Minute)
	return ep
}

// closeAll closes the pools of eps (an Open that failed half-way).
func closeAll(eps []*endpoint) {
	for _, ep := range eps {
		ep.db.Close()
	}
}

// A connectLimit, in the context of a query, bounds connecting to the
// host the query runs on (queryEach sets it).
type connectLimit struct {
	deadline time.Time
	// caller is the caller's context: a connection cut short because it
	// ended says nothing about the host.
	caller context.Context
}

type connectLimitKey struct{}

// A hostConnector connects to an endpoint's host within the connectLimit
// of the query that needs the connection, and marks the host down when
// connecting fails, up again when it succeeds.
type hostConnector struct {
	driver.Connector
	ep *endpoint
}

func (c hostConnector) Connect(ctx context.Context) (driver.Conn, error) {
	caller := ctx
	if l, ok := ctx.Value(connectLimitKey{}).(*connectLimit); ok {
		caller = l.caller
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, l.deadline)
		defer cancel()
	}
	conn, err := c.Connector.Connect(ctx)
	switch {
	case err == nil:
		c.ep.downUntil.Store(0)
	case caller.Err() == nil:
		c.ep.downUntil.Store(time.Now().Add(downTime).UnixNano())
	}
	return conn, err
}

// Close closes the connector when it holds resources of its own.
func (c hostConnector) Close() error {
	if cl, ok := c.Connector.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// order returns the endpoints in the order a query tries them: the hosts
// not marked down in the order written, then those marked down.
func (t *Table) order() []*endpoint {
	now := time.Now().UnixNano()
	up := make([]*endpoint, 0, len(t.endpoints))
	var down []*endpoint
	for _, ep := range t.endpoints {
		if ep.downUntil.Load() > now {
			down = append(down, ep)
		} else {
			up = append(up, ep)
		}
	}
	return append(up, down...)
}

// errExpansionLimit is wrapped by Lookup when Postfix's lookup fails for
// having more results than expansion_limit: for that key, the table
// answers nothing.
var errExpansionLimit = errors.New("exceed expansion_limit")

// Open prepares the table cf for queries. It validates the hosts and the
// templates and reads option and TLS files, but does not connect. See each
// dialect for the order hosts are tried in; a host that could not be
// connected to is tried after the others for a minute.
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
		connectTimeout: opt.ConnectTimeout,
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
	errs := []error{t.closeChanges()}
	for _, ep := range t.endpoints {
		errs = append(errs, ep.db.Close())
	}
	return errors.Join(errs...)
}

// Path returns the host path of the lookup file.
func (t *Table) Path() string { return t.path }

// Endpoints returns, in the order they are tried while none is down (see
// Open), the servers the table connects to ("127.0.0.1:3306", "unix:/run/mysqld/mysqld.sock",
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
	return t.queryRows(ctx, q, false)
}

// queryRows is query, through queryEachChecked when checked.
func (t *Table) queryRows(ctx context.Context, q string, checked bool) ([][]*string, error) {
	each := t.queryEach
	if checked {
		each = func(ctx context.Context, q string, timeout time.Duration, row func([]sql.RawBytes), restart func()) error {
			return t.queryEachChecked(ctx, q, "", timeout, row, restart)
		}
	}
	var out [][]*string
	err := each(ctx, q, t.timeout, func(vals []sql.RawBytes) {
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

// queryEach runs q on each endpoint in turn (see order) until one
// answers, within timeout on each, calling row for every row it returns.
// The values passed to row are valid only during the call; a NULL (and an
// empty value, which Postfix skips the same way) is nil. Before trying the
// next endpoint after one failed part-way, queryEach calls restart so that
// the caller can drop the rows it got. When every endpoint fails the
// error names each one and what failed.
//
// Connecting to a host takes at most ConnectTimeout, and while other
// hosts remain, at most an equal share of what is left of ctx's deadline,
// so that one host that never answers leaves time for the others.
func (t *Table) queryEach(ctx context.Context, q string, timeout time.Duration, row func([]sql.RawBytes), restart func()) error {
	return t.queryEachWith(ctx, q, timeout, row, restart, nil)
}

// queryEachWith is queryEach; when before is not nil, q runs on one
// connection to each endpoint, which before is called with first.
func (t *Table) queryEachWith(ctx context.Context, q string, timeout time.Duration, row func([]sql.RawBytes), restart func(),
	before func(ctx context.Context, conn *sql.Conn)) error {
	var errs []error
	order := t.order()
	for i, ep := range order {
		if i > 0 {
			restart()
		}
		limit := t.connectTimeout
		if dl, ok := ctx.Deadline(); ok && i < len(order)-1 {
			limit = min(limit, time.Until(dl)/time.Duration(len(order)-i))
		}
		qctx := context.WithValue(ctx, connectLimitKey{}, &connectLimit{deadline: time.Now().Add(limit), caller: ctx})
		var err error
		if before == nil {
			err = t.queryEachOn(qctx, ep.db, q, timeout, row)
		} else {
			var conn *sql.Conn
			if conn, err = ep.db.Conn(qctx); err == nil {
				before(qctx, conn)
				err = t.queryEachOn(qctx, conn, q, timeout, row)
				conn.Close()
			}
		}
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

// columnsKey, in the context of a query, receives its column count.
type columnsKey struct{}

// queryEachChecked is queryEach for a query a listing reads: it takes the
// baseline of its change check (see Changed), over the rows of check ("":
// of q itself).
func (t *Table) queryEachChecked(ctx context.Context, q, check string, timeout time.Duration, row func([]sql.RawBytes), restart func()) error {
	if check == "" {
		check = q
	}
	var p *pendingCheck
	var ncols int
	err := t.queryEachWith(context.WithValue(ctx, columnsKey{}, &ncols), q, timeout, row, restart, func(ctx context.Context, conn *sql.Conn) {
		p = t.beginCheck(context.WithValue(ctx, columnsKey{}, (*int)(nil)), conn, check, check == q) // ncols is the listing's
	})
	if err != nil {
		return err
	}
	t.endCheck(ctx, p, ncols)
	return nil
}

// A querier is a pool (*sql.DB) or one of its connections (*sql.Conn).
type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func (t *Table) queryEachOn(ctx context.Context, db querier, q string, timeout time.Duration, row func([]sql.RawBytes)) error {
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
	if n, ok := ctx.Value(columnsKey{}).(*int); ok && n != nil {
		*n = len(cols)
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
