// Package mysqltable answers questions from the SQL tables that Postfix
// itself queries through mysql_table(5) lookup files: "is example.com a
// hosted domain?" (Lookup, Hosts) and "which domains are hosted?" (List).
//
// Lookup gives exactly Postfix's answer for a key: the same %-expansions and
// SQL quoting of the query, the same suppressed queries, the same
// result_format, domain and expansion_limit rules. List runs a query derived
// from the per-key lookup query (ListingQuery), which Postfix itself never
// needs, and keeps only the names for which Lookup would answer.
//
// The package connects with github.com/go-sql-driver/mysql and nothing
// else; Open does no I/O, and a server that goes away makes the current call
// fail and the next one reconnect.
package mysqltable

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/postfix"
)

// Options tune how a Table reaches its database.
type Options struct {
	// Socket, when set, connects every host of the table through this unix
	// socket instead (a test and inspection aid: the CLI's --mysql-socket).
	Socket string
	// Root reads option_file, the default option files and TLS files.
	// The zero value reads the real file system.
	Root hostfs.Root
	// ConnectTimeout bounds connecting to one host; default 2s.
	ConnectTimeout time.Duration
	// QueryTimeout bounds one query on one host; default 5s.
	QueryTimeout time.Duration
	// ListingTimeout bounds reading a whole listing (EachDomain) from one
	// host, the caller's work on each row included; default 2m. A million
	// domains take about 2 s here.
	ListingTimeout time.Duration
}

// A Table is an opened Postfix MySQL lookup table. Its methods are safe for
// concurrent use.
type Table struct {
	path           string
	tmpl           *templates
	domain         []string // the "domain" restriction list
	root           hostfs.Root
	limit          int
	timeout        time.Duration
	listingTimeout time.Duration
	endpoints      []endpoint
	pools          []*sql.DB // one per endpoint
}

// Open prepares the table t for queries. It validates the hosts and the
// templates and reads option and TLS files, but does not connect.
//
// Hosts are tried unix: sockets first, then the others, each group in the
// order written; a host that fails is skipped for that call. Postfix also
// tries sockets first but picks randomly within each group; every host of a
// table serves the same data, so a fixed order changes no answer and makes
// errors reproducible. "localhost" (also "inet:localhost:3306") means the
// client library's unix socket: the "socket" of the option files Postfix
// makes it read (option_file, or /etc/my.cnf and /etc/mysql/my.cnf when
// option_group is set), or DefaultSocket.
func Open(t *postfix.MySQLTable, opt Options) (*Table, error) {
	if opt.ConnectTimeout <= 0 {
		opt.ConnectTimeout = 2 * time.Second
	}
	if opt.QueryTimeout <= 0 {
		opt.QueryTimeout = 5 * time.Second
	}
	if opt.ListingTimeout <= 0 {
		opt.ListingTimeout = 2 * time.Minute
	}
	fail := func(err error) (*Table, error) { return nil, fmt.Errorf("mysql %s: %w", t.Path, err) }
	if strings.TrimSpace(t.Query) == "" {
		return fail(errors.New("no query (neither query nor table, select_field and where_field are set)"))
	}
	if t.DBName == "" {
		return fail(errors.New("dbname is not set (Postfix refuses the table)"))
	}
	resultFormat := t.ResultFormat
	if resultFormat == "" {
		resultFormat = "%s"
	}
	tmpl, err := parseTemplates(t.Query, resultFormat)
	if err != nil {
		return fail(err)
	}
	tb := &Table{
		path:           t.Path,
		tmpl:           tmpl,
		domain:         splitHosts(t.Domain),
		root:           opt.Root,
		limit:          t.ExpansionLimit,
		timeout:        opt.QueryTimeout,
		listingTimeout: opt.ListingTimeout,
	}
	hosts := splitHosts(t.Hosts)
	if len(hosts) == 0 {
		hosts = []string{"localhost"} // Postfix's default
	}
	local := func() (string, error) { return localSocket(opt.Root, t.OptionFile, t.OptionGroup) }
	var unix, inet []endpoint
	for _, h := range hosts {
		ep := endpoint{host: h, net: "unix", addr: opt.Socket}
		if opt.Socket == "" {
			if ep, err = parseHost(h, local); err != nil {
				return fail(err)
			}
		}
		// Postfix tries unix: sockets first, then TCP; "localhost" is a
		// TCP host for it even though the library then uses a socket.
		if strings.HasPrefix(h, "unix:") {
			unix = append(unix, ep)
		} else {
			inet = append(inet, ep)
		}
	}
	tb.endpoints = append(unix, inet...)
	tlsConfig, err := loadTLS(opt.Root, t)
	if err != nil {
		return fail(err)
	}
	for _, ep := range tb.endpoints {
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.DBName = t.User, t.Password, t.DBName
		cfg.Net, cfg.Addr = ep.net, ep.addr
		cfg.Timeout = opt.ConnectTimeout
		cfg.ReadTimeout = opt.QueryTimeout
		cfg.WriteTimeout = opt.QueryTimeout
		cfg.Logger = nopLogger{}
		if tlsConfig != nil && ep.net == "tcp" {
			c := tlsConfig.Clone()
			c.ServerName, _, _ = strings.Cut(ep.addr, ":")
			cfg.TLS = c
		}
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			tb.Close()
			return fail(fmt.Errorf("host %s: %w", ep.host, err))
		}
		db := sql.OpenDB(conn)
		db.SetMaxOpenConns(4)
		db.SetMaxIdleConns(2)
		db.SetConnMaxIdleTime(time.Minute) // as Postfix closes idle connections
		tb.pools = append(tb.pools, db)
	}
	return tb, nil
}

type nopLogger struct{}

func (nopLogger) Print(...any) {}

// loadTLS returns the TLS configuration of the table's tls_* parameters, or
// nil when none is set. Like libmysqlclient, it checks the server's
// certificate chain against tls_CAfile/tls_CApath when given, and its name
// only with tls_verify_cert = yes.
func loadTLS(root hostfs.Root, t *postfix.MySQLTable) (*tls.Config, error) {
	if t.TLSCertFile == "" && t.TLSKeyFile == "" && t.TLSCAFile == "" && t.TLSCAPath == "" && !t.TLSVerifyCert {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.TLSCertFile != "" {
		certPEM, err := root.ReadFile(t.TLSCertFile)
		if err != nil {
			return nil, fmt.Errorf("tls_cert_file: %w", err)
		}
		keyFile := t.TLSKeyFile
		if keyFile == "" {
			keyFile = t.TLSCertFile
		}
		keyPEM, err := root.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("tls_key_file: %w", err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("tls_cert_file %s: %w", t.TLSCertFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	var pool *x509.CertPool
	if t.TLSCAFile != "" || t.TLSCAPath != "" {
		pool = x509.NewCertPool()
		files := []string{t.TLSCAFile}
		if t.TLSCAFile == "" {
			files, _ = root.Glob(strings.TrimSuffix(t.TLSCAPath, "/") + "/*")
		}
		for _, f := range files {
			b, err := root.ReadFile(f)
			if err != nil {
				if t.TLSCAFile != "" {
					return nil, fmt.Errorf("tls_CAfile: %w", err)
				}
				continue
			}
			pool.AppendCertsFromPEM(b)
		}
	}
	c.RootCAs = pool
	if !t.TLSVerifyCert {
		// Check the chain (when a CA is given) but not the name.
		c.InsecureSkipVerify = true
		c.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if pool == nil {
				return nil
			}
			certs := make([]*x509.Certificate, len(raw))
			for i, r := range raw {
				cert, err := x509.ParseCertificate(r)
				if err != nil {
					return err
				}
				certs[i] = cert
			}
			if len(certs) == 0 {
				return errors.New("server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, cert := range certs[1:] {
				inter.AddCert(cert)
			}
			_, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter})
			return err
		}
	}
	return c, nil
}

// Close closes the table's connections.
func (t *Table) Close() error {
	var errs []error
	for _, db := range t.pools {
		errs = append(errs, db.Close())
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
		out = append(out, ep.String())
	}
	return out
}

// eligible reports whether Postfix queries the table for the (folded) key
// at all: the domain restriction and the templates' needs.
func (t *Table) eligible(key string) (bool, error) {
	if key == "" || strings.IndexByte(key, 0) >= 0 || !validUTF8(key) {
		return false, nil
	}
	if len(t.domain) > 0 {
		user, domain, ok := splitAddr(key)
		if !ok || user == "" {
			return false, nil
		}
		if match, err := t.matchDomain(domain); !match || err != nil {
			return false, err
		}
	}
	_, _, _, ok := t.tmpl.keyParts(key)
	return ok, nil
}

// Lookup returns what Postfix's lookup of key in the table returns: every
// non-NULL, non-empty column of every row, formatted with result_format; nil
// when the key is not found or its query is suppressed. The key is case
// folded first, as Postfix does (see foldKey).
func (t *Table) Lookup(ctx context.Context, key string) ([]string, error) {
	key = foldKey(key)
	ok, err := t.eligible(key)
	if !ok || err != nil {
		return nil, err
	}
	q, ok := t.tmpl.expandQuery(key, quoteSQL)
	if !ok {
		return nil, nil
	}
	rows, err := t.query(ctx, q)
	if err != nil {
		return nil, err
	}
	var results []string
	for _, row := range rows {
		for _, v := range row {
			if v == nil {
				continue
			}
			if r, ok := t.tmpl.formatResult(*v, key); ok {
				results = append(results, r)
			}
		}
	}
	if t.limit > 0 && len(results) > t.limit {
		return nil, fmt.Errorf("mysql %s: lookup %q: %d results exceed expansion_limit %d", t.path, key, len(results), t.limit)
	}
	return results, nil
}

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
		err := t.queryEachOn(ctx, t.pools[i], q, timeout, row)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("mysql %s (%s): %w", ep, t.path, err))
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
