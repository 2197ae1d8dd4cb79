package sqltable

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/postfix"
)

// mysqlDialect is mysql_table(5) through github.com/go-sql-driver/mysql.
type mysqlDialect struct{}

func (mysqlDialect) name() string { return "mysql" }

func (mysqlDialect) syntax() syntax {
	return syntax{backquoteIdent: true, doubleQuoteString: true, mysqlComments: true, backslashEscapes: true}
}

// quote leaves s for the connection that runs the query to escape (see
// mysqlConn): how depends on that connection's sql_mode, as it does for
// Postfix's mysql_real_escape_string.
func (mysqlDialect) quote(s string) string {
	return keyMark + hex.EncodeToString([]byte(s)) + keyMark
}

func (d mysqlDialect) columnsQuery(table string) string {
	return "SELECT LOWER(COLUMN_NAME) FROM information_schema.COLUMNS" +
		" WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '" + d.quote(table) + "'"
}

func (mysqlDialect) explain(err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) && (me.Number == 1045 || me.Number == 1044) {
		return fmt.Errorf("access denied: %w", err)
	}
	return err
}

// open: hosts are tried unix: sockets first, then the others, each group
// in the order written; a host that fails is skipped for that call.
// Postfix also tries sockets first but picks randomly within each group;
// every host of a table serves the same data, so a fixed order changes no
// answer and makes errors reproducible. "localhost" (also
// "inet:localhost:3306") means the client library's unix socket: the
// "socket" of the option files Postfix makes it read (option_file, or
// /etc/my.cnf and /etc/mysql/my.cnf when option_group is set), or
// DefaultSocket.
func (mysqlDialect) open(t *postfix.SQLTable, opt Options) ([]*endpoint, error) {
	hosts := splitHosts(t.Hosts)
	if len(hosts) == 0 {
		hosts = []string{"localhost"} // Postfix's default
	}
	local := func() (string, error) { return localSocket(opt.Root, t.OptionFile, t.OptionGroup) }
	var unix, inet []mysqlHost
	for _, h := range hosts {
		ep := mysqlHost{host: h, net: "unix", addr: opt.Override}
		if opt.Override == "" {
			var err error
			if ep, err = parseHost(h, local); err != nil {
				return nil, err
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
	tlsConfig, err := loadTLS(opt.Root, t)
	if err != nil {
		return nil, err
	}
	var out []*endpoint
	for _, h := range append(unix, inet...) {
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.DBName = t.User, t.Password, t.DBName
		cfg.Net, cfg.Addr = h.net, h.addr
		cfg.Timeout = opt.ConnectTimeout
		cfg.ReadTimeout = opt.QueryTimeout
		cfg.WriteTimeout = opt.QueryTimeout
		cfg.Logger = nopLogger{}
		if tlsConfig != nil && h.net == "tcp" {
			c := tlsConfig.Clone()
			c.ServerName, _, _ = strings.Cut(h.addr, ":")
			cfg.TLS = c
		}
		// SET NAMES utf8mb4 on each connection, as Postfix 3.9 and later
		// do (mysql_table(5) charset, whose default it is; Debian's
		// [client] default-character-set, which Postfix 3.7 reads, says
		// the same). The escaping below is right for it, byte by byte; a
		// server's own default (skip-character-set-client-handshake)
		// could be a multi-byte set such as GBK, where a backslash can
		// end up inside a character.
		if err := cfg.Apply(mysql.Charset(mysqlCharset, "")); err != nil {
			closeAll(out)
			return nil, fmt.Errorf("host %s: %w", h.host, err)
		}
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			closeAll(out)
			return nil, fmt.Errorf("host %s: %w", h.host, err)
		}
		out = append(out, newEndpoint(h.String(), mysqlConnector{conn}))
	}
	return out, nil
}

// mysqlCharset is the connection character set.
const mysqlCharset = "utf8mb4"

// keyMark brackets a key in a query, hex-encoded, until the connection
// that runs the query escapes it. A query template cannot hold a NUL byte
// (Postfix reads it as a C string), and the key between two marks is hex,
// so a mark cannot be confused with anything else.
const keyMark = "\x00"

// A mysqlConnector connects as its driver does, then reads the session's
// sql_mode: the keys in a query are escaped for that connection.
type mysqlConnector struct{ driver.Connector }

func (c mysqlConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	nbe, err := noBackslashEscapes(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("reading sql_mode: %w", err)
	}
	return &mysqlConn{Conn: conn, noBackslashEscapes: nbe}, nil
}

// noBackslashEscapes reports whether the session's sql_mode has
// NO_BACKSLASH_ESCAPES: the server then reads a backslash in a string as
// itself. The server sets SERVER_STATUS_NO_BACKSLASH_ESCAPES in its replies
// for such a session, which mysql_real_escape_string reads; the driver
// keeps that flag to itself, so the mode is asked for once per connection
// (a query cannot change it: statements are sent one at a time).
func noBackslashEscapes(ctx context.Context, conn driver.Conn) (bool, error) {
	q, ok := conn.(driver.QueryerContext)
	if !ok {
		return false, errors.New("driver cannot query")
	}
	rows, err := q.QueryContext(ctx, "SELECT @@SESSION.sql_mode", nil)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	vals := make([]driver.Value, 1)
	if err := rows.Next(vals); err != nil {
		return false, err
	}
	var mode string
	switch v := vals[0].(type) {
	case []byte:
		mode = string(v)
	case string:
		mode = v
	}
	return slices.Contains(strings.Split(strings.ToUpper(mode), ","), "NO_BACKSLASH_ESCAPES"), nil
}

// A mysqlConn escapes the keys quote marked in a query as
// mysql_real_escape_string does on this connection, then runs it.
type mysqlConn struct {
	driver.Conn
	noBackslashEscapes bool
}

// escape replaces each marked key in q by its escaped text.
func (c *mysqlConn) escape(q string) (string, error) {
	if !strings.Contains(q, keyMark) {
		return q, nil
	}
	parts := strings.Split(q, keyMark)
	if len(parts)%2 == 0 {
		return "", errors.New("query holds a NUL byte")
	}
	var b strings.Builder
	for i, p := range parts {
		if i%2 == 0 {
			b.WriteString(p)
			continue
		}
		key, err := hex.DecodeString(p)
		if err != nil {
			return "", errors.New("query holds a NUL byte")
		}
		if c.noBackslashEscapes {
			b.WriteString(quoteMySQLNoBackslash(string(key)))
		} else {
			b.WriteString(quoteMySQL(string(key)))
		}
	}
	return b.String(), nil
}

func (c *mysqlConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	q, err := c.escape(q)
	if err != nil {
		return nil, err
	}
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, q, args)
}

func (c *mysqlConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	q, err := c.escape(q)
	if err != nil {
		return nil, err
	}
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, q, args)
}

func (c *mysqlConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	q, err := c.escape(q)
	if err != nil {
		return nil, err
	}
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
}

func (c *mysqlConn) Prepare(q string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), q)
}

func (c *mysqlConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

// ResetSession and IsValid let database/sql drop a broken connection, as
// it does the driver's own.
func (c *mysqlConn) ResetSession(ctx context.Context) error {
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}

func (c *mysqlConn) IsValid() bool { return c.Conn.(driver.Validator).IsValid() }

func (c *mysqlConn) Ping(ctx context.Context) error { return c.Conn.(driver.Pinger).Ping(ctx) }

func (c *mysqlConn) CheckNamedValue(nv *driver.NamedValue) error {
	return c.Conn.(driver.NamedValueChecker).CheckNamedValue(nv)
}

// quoteMySQLNoBackslash escapes s as mysql_real_escape_string (MariaDB)
// and mysql_real_escape_string_quote (MySQL, which Postfix uses with ')
// do on a connection with NO_BACKSLASH_ESCAPES: a quote is doubled and
// nothing else changes.
func quoteMySQLNoBackslash(s string) string { return strings.ReplaceAll(s, "'", "''") }

// quoteMySQL escapes s as mysql_real_escape_string does for a connection
// without NO_BACKSLASH_ESCAPES: the result goes between quotes.
func quoteMySQL(s string) string {
	if !strings.ContainsAny(s, "\x00\n\r\\'\"\x1a") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0:
			b.WriteString(`\0`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`\'`)
		case '"':
			b.WriteString(`\"`)
		case 0x1a:
			b.WriteString(`\Z`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

type nopLogger struct{}

func (nopLogger) Print(...any) {}

// loadTLS returns the TLS configuration of the table's tls_* parameters, or
// nil when none is set. Like libmysqlclient, it checks the server's
// certificate chain against tls_CAfile/tls_CApath when given, and its name
// only with tls_verify_cert = yes.
func loadTLS(root hostfs.Root, t *postfix.SQLTable) (*tls.Config, error) {
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
