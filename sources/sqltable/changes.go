package sqltable

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// Change checks: a daemon that serves a table's listing asks Changed every
// minute or so whether listing it again could give another answer, and
// lists it again only then. Changed must cost far less than the listing.
//
// For MySQL and PostgreSQL, every query a listing ran (the listing query,
// candidate queries, the alias_domain query and the query that found its
// columns) is kept with a check query: the listing query wrapped so that
// the server returns only the row count and a checksum of every value of
// every row, order-independent (a sum of per-row hashes). Changed runs
// them and compares. The check is taken before its listing runs, so a
// change committed while the listing is read is seen by the next Changed.
// On MySQL the check needs the query's column count (a derived table whose
// columns share a name, as "SELECT domain, domain" does, needs a column
// list), which the query with LIMIT 0 tells once per process. A candidate
// query is checked with the lookup's own select list added, so that a
// change of a result is seen too. MariaDB's information_schema UPDATE_TIME would be cheaper, but
// it is kept in memory only for InnoDB (NULL after a restart or when the
// table leaves the cache), has one-second resolution, and needs the table
// names the query reads; PostgreSQL has no modification time at all.
//
// For SQLite, one connection is held for the Table's life and PRAGMA
// data_version asked on it: it changes when any other connection commits
// to the database file, which is exactly "something may have changed",
// at the cost of reading one page header.
//
// What a check cannot see: a per-key lookup that confirms candidates (a key
// inside an expression, or stored in another case) may read columns or
// tables the candidate query does not select; a change there alone is seen
// only when the table is listed again for another reason. A domain added
// is served before that anyway: a snapshot looks up per request the
// domains its listing lacks.

// A changeCheck is one check query and its answer when the baseline was
// taken.
type changeCheck struct {
	sql   string
	token string
}

// changeState is what a Table's listings read, for Changed.
type changeState struct {
	mu      sync.Mutex
	checks  []changeCheck
	unknown error // non-nil: something was read that no check covers, and why

	held    *sql.Conn // sqlite: the connection data_version is asked on
	version int64
}

// listingColumns remembers the column count of each MySQL listing query
// seen in this process, so that its check can be taken before the next
// listing of the same query (a new Table for each snapshot).
var listingColumns sync.Map // check key → int

// checkQuery wraps query q, whose rows have ncols columns (0: unknown),
// into the query that returns its row count and checksum, "" when the
// dialect cannot without knowing ncols.
func (t *Table) checkQuery(q string, ncols int) string {
	q = strings.TrimRight(strings.TrimSpace(q), "; \t\r\n")
	switch t.dialect.name() {
	case "pgsql":
		// A whole-row reference needs no column names: the row's text
		// form holds every value, NULLs as empty fields. (alias.*) is
		// the row even when the listing has a column of the alias's
		// name, which a bare alias would mean instead.
		return "SELECT count(*), coalesce(sum(('x' || left(md5((mailautoconf_l.*)::text), 15))::bit(60)::bigint), 0) FROM (" + q + "\n) AS mailautoconf_l"
	case "mysql":
		if ncols <= 0 {
			return ""
		}
		cols := make([]string, ncols)
		hashes := make([]string, ncols)
		for i := range cols {
			cols[i] = "c" + strconv.Itoa(i+1)
			// CRC32 of each value, then of the row's list of them: no
			// CONCAT of columns in different character sets.
			hashes[i] = "IFNULL(CRC32(" + cols[i] + "), 'n')"
		}
		return "WITH l (" + strings.Join(cols, ", ") + ") AS (" + q + "\n) SELECT COUNT(*), IFNULL(SUM(CRC32(CONCAT_WS(',', " +
			strings.Join(hashes, ", ") + "))), 0) FROM l"
	}
	return ""
}

// runCheck returns the answer of a check query.
func (t *Table) runCheck(ctx context.Context, q string) (string, error) {
	var token string
	err := t.queryEach(ctx, q, t.listingTimeout, func(vals []sql.RawBytes) { token = checkToken(vals) }, func() { token = "" })
	return token, err
}

// A pendingCheck is the baseline of one listing query, begun before the
// query runs (beginCheck) and kept once it has run (endCheck).
type pendingCheck struct {
	base  string // the query whose rows are checked
	same  bool   // base is the listing query: its column count is the listing's
	sql   string // the check query; "" until known
	token string
	err   error
}

// beginCheck takes the baseline for a listing query before it runs: the
// answer of the check query over base, or for SQLite the data_version of
// the held connection (once per Table). same tells that base is the
// listing query itself.
func (t *Table) beginCheck(ctx context.Context, conn *sql.Conn, base string, same bool) *pendingCheck {
	p := &pendingCheck{base: base, same: same}
	switch t.dialect.name() {
	case "sqlite":
		p.err = t.holdSQLite(ctx)
		return p
	case "mysql":
		key := "mysql\x00" + base
		n, ok := listingColumns.Load(key)
		if !ok {
			// LIMIT 0 returns the columns without reading a row; a
			// listing query has no LIMIT of its own (they are dropped).
			var ncols int
			err := t.queryEachOn(context.WithValue(ctx, columnsKey{}, &ncols), conn, base+"\nLIMIT 0", t.timeout, func([]sql.RawBytes) {})
			if err != nil || ncols == 0 {
				return p // endCheck tries again with the listing's width
			}
			n = ncols
			listingColumns.Store(key, ncols)
		}
		p.sql = t.checkQuery(base, n.(int))
	default:
		p.sql = t.checkQuery(base, 0)
	}
	if p.sql != "" {
		p.token, p.err = t.runCheckOn(ctx, conn, p.sql)
	}
	return p
}

// runCheckOn returns the answer of a check query on conn.
func (t *Table) runCheckOn(ctx context.Context, conn *sql.Conn, q string) (string, error) {
	var token string
	err := t.queryEachOn(ctx, conn, q, t.listingTimeout, func(vals []sql.RawBytes) { token = checkToken(vals) })
	return token, err
}

func checkToken(vals []sql.RawBytes) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = string(v)
	}
	return strings.Join(parts, " ")
}

// endCheck keeps the baseline of a listing query that ran and returned
// rows of ncols columns; one whose check could not be taken before is
// taken now, when ncols is its width.
func (t *Table) endCheck(ctx context.Context, p *pendingCheck, ncols int) {
	if t.dialect.name() == "sqlite" {
		if p.err != nil {
			t.uncovered(p.err)
		}
		return
	}
	if p.sql == "" && p.err == nil {
		if p.same && ncols > 0 {
			listingColumns.Store(t.dialect.name()+"\x00"+p.base, ncols)
			p.sql = t.checkQuery(p.base, ncols)
		}
		if p.sql == "" {
			p.err = fmt.Errorf("no check query for %s", p.base)
		} else {
			p.token, p.err = t.runCheck(ctx, p.sql)
		}
	}
	if p.err != nil {
		t.uncovered(fmt.Errorf("change check: %w", p.err))
		return
	}
	t.changes.mu.Lock()
	t.changes.checks = append(t.changes.checks, changeCheck{p.sql, p.token})
	t.changes.mu.Unlock()
}

// uncovered records that something was read that no check covers.
func (t *Table) uncovered(err error) {
	t.changes.mu.Lock()
	if t.changes.unknown == nil {
		t.changes.unknown = err
	}
	t.changes.mu.Unlock()
}

// holdSQLite opens the connection data_version is asked on and takes its
// baseline, once.
func (t *Table) holdSQLite(ctx context.Context) error {
	t.changes.mu.Lock()
	defer t.changes.mu.Unlock()
	if t.changes.held != nil {
		return nil
	}
	ep := t.endpoints[0]
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	conn, err := ep.db.Conn(ctx)
	if err != nil {
		return err
	}
	v, err := dataVersion(ctx, conn)
	if err != nil {
		conn.Close()
		return err
	}
	t.changes.held, t.changes.version = conn, v
	return nil
}

func dataVersion(ctx context.Context, conn *sql.Conn) (int64, error) {
	var s string
	if err := conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&s); err != nil {
		return 0, fmt.Errorf("PRAGMA data_version: %w", err)
	}
	return strconv.ParseInt(s, 10, 64)
}

// Changed reports whether listing the table again (EachDomain, then
// AliasTargets) could give another answer than the listings this Table
// ran: the rows one of their queries reads changed since, as far as a
// cheap check can tell (see the comment above changeCheck). A Table that
// listed nothing reports no change; one whose listing could not be
// checked always reports a change. An error (the server is down) comes
// with changed true: only listing again tells what to serve then.
func (t *Table) Changed(ctx context.Context) (bool, error) {
	t.changes.mu.Lock()
	defer t.changes.mu.Unlock()
	if t.changes.unknown != nil {
		return true, nil
	}
	if c := t.changes.held; c != nil {
		qctx, cancel := context.WithTimeout(ctx, t.timeout)
		defer cancel()
		v, err := dataVersion(qctx, c)
		if err != nil {
			return true, fmt.Errorf("%s %s: %w", t.dialect.name(), t.path, t.dialect.explain(err))
		}
		if v != t.changes.version {
			return true, nil
		}
	}
	for _, c := range t.changes.checks {
		token, err := t.runCheck(ctx, c.sql)
		if err != nil {
			return true, err
		}
		if token != c.token {
			return true, nil
		}
	}
	return false, nil
}

// closeChanges releases the connection held for data_version.
func (t *Table) closeChanges() error {
	t.changes.mu.Lock()
	defer t.changes.mu.Unlock()
	if t.changes.held == nil {
		return nil
	}
	err := t.changes.held.Close()
	t.changes.held = nil
	return err
}
