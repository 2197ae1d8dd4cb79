package sqltable

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mailautoconf/mailautoconf/sources/postfix"
)

// pgsqlDialect is pgsql_table(5) as Postfix 3.7's dict_pgsql runs it on
// libpq, spoken through pgconn, the wire-protocol layer of
// github.com/jackc/pgx/v5 (pure Go), so that a lookup sees what Postfix
// sees:
//
//   - Postfix sets client_encoding to LATIN1 on every connection. Each
//     byte of a (UTF-8) key reaches the server as one Latin-1 character,
//     and values come back as Latin-1 bytes: in a UTF8 database the key
//     "bücher.example" does not match a row 'bücher.example' (it matches
//     'bÃ¼cher.example'), and a value with a character Latin-1 lacks fails
//     the query. Lookup runs on such a session.
//   - Queries go out whole with the simple query protocol, as PQexec sends
//     them, and values come back as the server's text, untouched: a
//     boolean is "t", a timestamp "2024-01-01 00:00:00". When the query
//     holds several statements, only the last one's rows count, as PQexec
//     returns only the last result; an empty query is an error.
//   - Sessions run with standard_conforming_strings on (PostgreSQL's
//     default since 9.1), where quote escapes a key exactly as
//     PQescapeStringConn does: on a server configured with it off, Postfix
//     doubles backslashes and the value reaching the query is the same.
//
// Queries that are not Postfix lookups (listings, alias and column
// queries) run on a UTF8 session instead when the database is neither
// SQL_ASCII nor LATIN1, with the query and the values converted to and from
// Latin-1 as a LATIN1 session would: a value Latin-1 cannot hold (a domain
// no Postfix lookup can match) then reads as NULL instead of failing the
// whole listing.
type pgsqlDialect struct{}

func (pgsqlDialect) name() string { return "pgsql" }

func (pgsqlDialect) syntax() syntax { return syntax{pipesConcat: true} }

// quote escapes s as PQescapeStringConn does on a connection with
// standard_conforming_strings on: a quote is doubled, a backslash is an
// ordinary character.
func (pgsqlDialect) quote(s string) string { return strings.ReplaceAll(s, "'", "''") }

func (pgsqlDialect) columnsQuery(table string) string {
	return "SELECT lower(column_name) FROM information_schema.columns" +
		" WHERE table_schema = current_schema() AND table_name = '" + strings.ReplaceAll(table, "'", "''") + "'"
}

func (pgsqlDialect) explain(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "28P01" || pe.Code == "28000") {
		return fmt.Errorf("access denied: %w", err)
	}
	return err
}

// open: hosts are tried in the order written (Postfix picks them in
// random order; they serve the same data, and a fixed order makes errors
// reproducible). An entry Postfix would fail to connect with (a bad port,
// a host name no resolver takes, a broken URI) fails each query on it, as
// in Postfix, and the next host is tried; see pgsqlConfig.
func (pgsqlDialect) open(t *postfix.SQLTable, opt Options) ([]*endpoint, error) {
	hosts := splitHosts(t.Hosts)
	if len(hosts) == 0 {
		hosts = []string{"localhost"} // Postfix's default
	}
	var out []*endpoint
	for _, h := range hosts {
		cfg, name, err := pgsqlConfig(h, t, opt)
		var c driver.Connector = pgsqlConnector{cfg}
		if err != nil {
			c = failedConnector{err}
		}
		out = append(out, newEndpoint(name, c))
	}
	return out, nil
}

const (
	// pgsqlDefaultUser is the role libpq logs in as when neither the
	// file nor a URI names one: the operating-system user, which for
	// Postfix's daemons (proxymap; smtpd, trivial-rewrite and the others
	// without proxy:) is mail_owner, "postfix" unless changed.
	pgsqlDefaultUser = "postfix"
	// pgsqlDefaultSocketDir is where Debian's libpq looks for the server
	// when no host is given ("unix:", or a URI without one).
	pgsqlDefaultSocketDir = "/var/run/postgresql"
)

// pgsqlConfig returns the connection settings Postfix's dict_pgsql uses for
// the hosts entry h of table t (sent to opt.Override instead, when set) and
// the name errors give the entry: h as written, without a URI's password.
//
// Postfix reads an entry that starts with "postgresql:" as a libpq
// connection URI (postgresql://user:password@host:port/dbname?param=value),
// which brings its own user, password and database: the file's are then
// not used. Any other entry is "unix:" or "inet:" (both optional) followed
// by a socket directory (starting with '/'; no port) or host[:port], and
// gets the file's user, password and dbname. A missing user is "postfix"
// (see pgsqlDefaultUser), a missing port 5432, a missing host Debian's
// socket directory. No PG* environment variable, service file or password
// file plays a part, as none does for Postfix's daemons; the URI's passfile
// parameter is honoured.
//
// With Override, the entry's user, password and database (and a URI's
// options and application_name) are kept and the rest (where and how to
// connect, TLS included) comes from the override, read like an entry.
//
// A non-nil error is what the connection would fail with; it never quotes
// a password.
func pgsqlConfig(h string, t *postfix.SQLTable, opt Options) (*pgconn.Config, string, error) {
	name := redactURI(h)
	set, err := pgsqlSettings(h)
	if err != nil {
		return nil, name, err
	}
	if !strings.HasPrefix(h, "postgresql:") {
		set["user"], set["password"], set["dbname"] = t.User, t.Password, t.DBName
	}
	if opt.Override != "" {
		name += " (" + redactURI(opt.Override) + ")"
		over, err := pgsqlSettings(opt.Override)
		if err != nil {
			return nil, name, fmt.Errorf("override %s: %w", redactURI(opt.Override), err)
		}
		for k := range set {
			switch k {
			case "user", "password", "dbname", "passfile", "options", "application_name":
			default:
				delete(set, k)
			}
		}
		for k, v := range over {
			if v != "" || (k != "user" && k != "password" && k != "dbname") {
				set[k] = v
			}
		}
	}
	if set["user"] == "" {
		set["user"] = pgsqlDefaultUser
	}
	if set["dbname"] == "" {
		set["dbname"] = set["user"] // libpq's default
	}
	if set["host"] == "" {
		set["host"] = pgsqlDefaultSocketDir
	}
	for _, k := range []string{"passfile", "sslcert", "sslkey", "sslrootcert"} {
		if p := set[k]; strings.HasPrefix(p, "/") {
			if set[k], err = opt.Root.Resolve(p); err != nil {
				return nil, name, fmt.Errorf("%s: %w", k, err)
			}
		}
	}
	cfg, err := pgsqlConnConfig(set, opt.ConnectTimeout)
	return cfg, name, err
}

// pgsqlSettings returns the libpq settings a hosts entry gives itself:
// host and port, or whatever a connection URI sets.
func pgsqlSettings(h string) (map[string]string, error) {
	if strings.HasPrefix(h, "postgresql:") {
		return parsePgsqlURI(h)
	}
	host, _ := strings.CutPrefix(h, "unix:")
	if host == h {
		host, _ = strings.CutPrefix(h, "inet:")
	}
	if host == "" || host[0] == '/' {
		return map[string]string{"host": host, "port": ""}, nil // a socket directory, "" for the default one
	}
	port := ""
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host, port = host[:i], host[i+1:]
	}
	// libpq resolves anything else as a name and fails; refusing it here
	// keeps it (a "postgres://user:password@host" read as host:port) out
	// of resolver errors.
	if host == "" || strings.ContainsFunc(host, func(r rune) bool {
		return !(r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) {
		return nil, errors.New("could not translate the host name to an address")
	}
	if n, err := strconv.Atoi(port); port != "" && (err != nil || n < 1 || n > 65535) {
		return nil, errors.New("invalid port number")
	}
	return map[string]string{"host": host, "port": port}, nil
}

// pgsqlURIParams are the query parameters of a connection URI that libpq
// 15 knows, each with what is done with it: "" passes it on, "-" ignores
// it (a setting of the connection's transport, not of what the lookup
// answers: client_encoding is ignored because Postfix sets LATIN1 after
// connecting anyway), and any other value is why it is refused.
var pgsqlURIParams = map[string]string{
	"host": "", "port": "", "dbname": "", "user": "", "password": "", "passfile": "",
	"options": "", "application_name": "", "fallback_application_name": "",
	"sslmode": "", "sslcert": "", "sslkey": "", "sslpassword": "", "sslrootcert": "", "sslsni": "",
	"channel_binding": "", "krbsrvname": "", "target_session_attrs": "",
	"client_encoding": "-", "connect_timeout": "-", "keepalives": "-", "keepalives_idle": "-",
	"keepalives_interval": "-", "keepalives_count": "-", "tcp_user_timeout": "-", "sslcompression": "-",
	"sslcrl": "-", "sslcrldir": "-", "requirepeer": "-", "ssl_min_protocol_version": "-",
	"ssl_max_protocol_version": "-", "gssencmode": "-", "gsslib": "-", "replication": "-",
	"service":  "connection service files are not read",
	"hostaddr": "hostaddr is not supported: give the address as host",
}

// parsePgsqlURI reads a postgresql:// connection URI as libpq's
// conninfo_uri_parse does: user[:password]@ before the first '/', then
// hosts with optional ports ([...] for IPv6), /dbname and ?params, each
// part percent-decoded. Errors never quote the user information.
func parsePgsqlURI(u string) (map[string]string, error) {
	rest, ok := strings.CutPrefix(u, "postgresql://")
	if !ok {
		// libpq reads the rest as "keyword=value" settings, and
		// "postgresql:..." is no keyword.
		return nil, errors.New("invalid connection string (want postgresql://...)")
	}
	set := map[string]string{}
	store := func(k, v string) error {
		d, err := uriDecode(v)
		if err != nil {
			return fmt.Errorf("URI %s: %w", k, err)
		}
		if d != "" {
			set[k] = d
		}
		return nil
	}
	if i := strings.IndexAny(rest, "@/"); i >= 0 && rest[i] == '@' {
		user, pw, hasPW := strings.Cut(rest[:i], ":")
		if err := store("user", user); err != nil {
			return nil, err
		}
		if hasPW {
			if err := store("password", pw); err != nil {
				return nil, errors.New("URI password: invalid percent-encoding")
			}
		}
		rest = rest[i+1:]
	}
	var hosts, ports []string
	for {
		var host string
		if strings.HasPrefix(rest, "[") {
			end := strings.IndexByte(rest, ']')
			switch {
			case end < 0:
				return nil, errors.New(`URI: no "]" after an IPv6 address`)
			case end == 1:
				return nil, errors.New("URI: empty IPv6 address")
			}
			host, rest = rest[1:end], rest[end+1:]
			if rest != "" && !strings.ContainsRune(":/?,", rune(rest[0])) {
				return nil, errors.New(`URI: unexpected character after "]"`)
			}
		} else {
			end := strings.IndexAny(rest, ":/?,")
			if end < 0 {
				end = len(rest)
			}
			host, rest = rest[:end], rest[end:]
		}
		port := ""
		if strings.HasPrefix(rest, ":") {
			end := strings.IndexAny(rest[1:], "/?,") + 1
			if end == 0 {
				end = len(rest)
			}
			port, rest = rest[1:end], rest[end:]
		}
		hosts, ports = append(hosts, host), append(ports, port)
		if !strings.HasPrefix(rest, ",") {
			break
		}
		rest = rest[1:]
	}
	if err := store("host", strings.Join(hosts, ",")); err != nil {
		return nil, err
	}
	if err := store("port", strings.Join(ports, ",")); err != nil {
		return nil, err
	}
	if strings.HasPrefix(rest, "/") {
		db, params, found := strings.Cut(rest[1:], "?")
		if err := store("dbname", db); err != nil {
			return nil, err
		}
		rest = ""
		if found {
			rest = "?" + params
		}
	}
	if params, ok := strings.CutPrefix(rest, "?"); ok && params != "" {
		for _, p := range strings.Split(params, "&") {
			k, v, ok := strings.Cut(p, "=")
			if !ok || strings.Contains(v, "=") {
				return nil, errors.New("URI: a query parameter is not key=value")
			}
			key, err := uriDecode(k)
			if err != nil {
				return nil, fmt.Errorf("URI query parameter: %w", err)
			}
			if dv, _ := uriDecode(v); key == "ssl" && dv == "true" {
				key, v = "sslmode", "require"
			}
			why, known := pgsqlURIParams[key]
			switch {
			case !known:
				return nil, fmt.Errorf("invalid URI query parameter %q", key)
			case why == "-":
				continue
			case why != "":
				return nil, fmt.Errorf("URI parameter %s: %s", key, why)
			}
			if key == "fallback_application_name" {
				if _, ok := set["application_name"]; ok {
					continue
				}
				key = "application_name"
			}
			if err := store(key, v); err != nil {
				return nil, err
			}
		}
	} else if rest != "" && rest != "?" {
		return nil, errors.New("URI: junk after the host")
	}
	return set, nil
}

// uriDecode percent-decodes s as libpq does: '+' is a plus sign, and %00
// is refused.
func uriDecode(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
			return "", errors.New("invalid percent-encoding")
		}
		c := byte(unhex(s[i+1])<<4 | unhex(s[i+2]))
		if c == 0 {
			return "", errors.New("forbidden %00")
		}
		b = append(b, c)
		i += 2
	}
	return string(b), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// pgsqlNeutral sets, in the connection string pgsqlConnConfig hands to
// pgconn.ParseConfig, every setting ParseConfig would otherwise take from a
// PG* environment variable or a file in the home directory, to libpq's
// built-in default (sslmode prefer: TLS when the server offers it,
// unverified; plaintext otherwise).
const pgsqlNeutral = "sslmode=prefer sslcert='' sslkey='' sslrootcert='' sslpassword='' sslsni=1" +
	" sslcertmode=allow sslnegotiation=postgres passfile='' target_session_attrs=any" +
	" min_protocol_version=3.0 max_protocol_version=3.0 channel_binding=prefer require_auth=''" +
	" connect_timeout=0 application_name='' options='' password=''"

// pgsqlConnConfig turns libpq settings into a pgconn configuration.
func pgsqlConnConfig(set map[string]string, timeout time.Duration) (*pgconn.Config, error) {
	var b strings.Builder
	b.WriteString(pgsqlNeutral)
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.WriteString(" " + k + "=" + pgValue(set[k]))
	}
	cfg, err := pgconn.ParseConfig(b.String())
	if err != nil {
		// ParseConfigError quotes the connection string (redacted, best
		// effort); what it wraps names the setting.
		msg := "invalid connection settings"
		if os.Getenv("PGSERVICE") != "" {
			msg += " (PGSERVICE is set in the environment: unset it; Postfix's daemons run without it)"
		}
		if inner := errors.Unwrap(err); inner != nil {
			return nil, fmt.Errorf("%s: %w", msg, inner)
		}
		return nil, errors.New(msg)
	}
	// What libpq sends at startup for Postfix (nothing from the
	// environment), and the session settings Postfix sets right after.
	cfg.RuntimeParams = map[string]string{"client_encoding": "LATIN1", "standard_conforming_strings": "on"}
	for _, k := range []string{"application_name", "options"} {
		if v := set[k]; v != "" {
			cfg.RuntimeParams[k] = v
		}
	}
	cfg.ConnectTimeout = timeout
	return cfg, nil
}

// pgValue quotes a libpq keyword/value setting.
func pgValue(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// redactURI names a hosts entry without the password it may hold: the
// user information before an '@' is cut to the user name
// ("postgresql://vmail:pw@db" reads "postgresql://vmail@db"), a port
// that is no number is hidden ("postgresql://vmail:pw/db" reads
// "postgresql://vmail:…/db"), and query parameters naming a password are
// left out. Any entry is read so, not
// only the URIs Postfix takes for one: a misspelled "postgresql:vmail:pw@db"
// or "postgres://vmail:pw@db" is a URI to whoever wrote it.
func redactURI(u string) string {
	// The scheme, if any, and the slashes after it stay as written.
	head := ""
	if i := strings.IndexByte(u, ':'); i > 0 && isScheme(u[:i]) {
		j := i + 1
		for j < len(u) && u[j] == '/' {
			j++
		}
		head, u = u[:j], u[j:]
	}
	rest := u
	// libpq ends the user information at the first '@' before a '/'; a
	// malformed URI may have more: keep only the user name before the
	// first ':' and whatever follows the last '@'.
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		user := rest[:at]
		if i := strings.IndexAny(user, ":@/?"); i >= 0 {
			user = user[:i]
		}
		rest = user + "@" + rest[at+1:]
	} else if head != "" {
		// Without an '@', a "user:password" reads as host:port: a port
		// that is not a number is hidden.
		end := strings.IndexAny(rest, "/?")
		if end < 0 {
			end = len(rest)
		}
		hosts := strings.Split(rest[:end], ",")
		for i, h := range hosts {
			j := strings.LastIndexByte(h, ':')
			if j >= 0 && j > strings.LastIndexByte(h, ']') && strings.Trim(h[j+1:], "0123456789") != "" {
				hosts[i] = h[:j+1] + "…"
			}
		}
		rest = strings.Join(hosts, ",") + rest[end:]
	}
	if base, query, ok := strings.Cut(rest, "?"); ok {
		var keep []string
		for _, p := range strings.Split(query, "&") {
			k, _, _ := strings.Cut(p, "=")
			if dk, err := uriDecode(k); err != nil || strings.Contains(strings.ToLower(dk), "password") {
				continue
			}
			keep = append(keep, p)
		}
		rest = base
		if len(keep) > 0 {
			rest += "?" + strings.Join(keep, "&")
		}
	}
	return head + rest
}

// isScheme reports whether s is a URI scheme (RFC 3986: a letter, then
// letters, digits, '+', '-' and '.').
func isScheme(s string) bool {
	for i, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// The rest of this file is a small database/sql driver over pgconn that
// runs queries as PQexec does, which pgx's own database/sql driver does
// not: it requires client_encoding UTF8 for the simple protocol, converts
// booleans, timestamps and numbers to Go values (and back to other text),
// and reads only the first statement's result.

// pgsqlHold is how many rows of one statement's result a query holds before
// passing them on, to learn whether another statement's result follows and
// replaces them (as PQexec's last result does). A longer result is
// streamed; a statement after it is then an error.
const pgsqlHold = 1000

// pgsqlConnector connects sessions as Postfix's dict_pgsql has them.
type pgsqlConnector struct{ cfg *pgconn.Config }

func (c pgsqlConnector) Connect(ctx context.Context) (driver.Conn, error) {
	pc, err := pgconn.ConnectConfig(ctx, c.cfg)
	if err != nil {
		return nil, connectError(c.cfg, err)
	}
	return &pgsqlConn{pc: pc, used: time.Now()}, nil
}

// connectError words a failed connection on one line: what each attempt
// failed with, leaving out the TLS attempt sslmode=prefer makes first when
// the server refuses TLS (libpq does not report it either), and repeats.
// It wraps err, so a refused password is still a *pgconn.PgError.
func connectError(cfg *pgconn.Config, err error) error {
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) {
		return err
	}
	attempts := []error{errors.Unwrap(ce)}
	if j, ok := attempts[0].(interface{ Unwrap() []error }); ok {
		attempts = j.Unwrap()
	}
	var msgs []string
	for _, a := range attempts {
		if m := a.Error(); !slices.Contains(msgs, m) && !(len(attempts) > 1 && strings.HasSuffix(m, "server refused TLS connection")) {
			msgs = append(msgs, m)
		}
	}
	return &wrappedError{fmt.Sprintf("connect as %s to database %s: %s", cfg.User, cfg.Database, strings.Join(msgs, "; ")), err}
}

// wrappedError is an error with its own wording.
type wrappedError struct {
	msg string
	err error
}

func (e *wrappedError) Error() string { return e.msg }

func (e *wrappedError) Unwrap() error { return e.err }

func (pgsqlConnector) Driver() driver.Driver { return pgsqlDriver{} }

// failedConnector fails every connection with the error of an unusable
// hosts entry.
type failedConnector struct{ err error }

func (c failedConnector) Connect(context.Context) (driver.Conn, error) { return nil, c.err }

func (failedConnector) Driver() driver.Driver { return pgsqlDriver{} }

type pgsqlDriver struct{}

func (pgsqlDriver) Open(string) (driver.Conn, error) {
	return nil, errors.New("pgsql: connect through a connector")
}

// pgsqlConn is one session. database/sql never uses it from two goroutines
// at once.
type pgsqlConn struct {
	pc     *pgconn.PgConn
	used   time.Time // when the last query ended
	reused bool      // a query ran before the current one
}

var errPgsqlUnsupported = errors.New("pgsql: not supported")

func (c *pgsqlConn) Prepare(string) (driver.Stmt, error) { return nil, errPgsqlUnsupported }

func (c *pgsqlConn) Begin() (driver.Tx, error) { return nil, errPgsqlUnsupported }

func (c *pgsqlConn) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.pc.Close(ctx)
}

// IsValid lets database/sql drop a session the server or a timeout closed.
func (c *pgsqlConn) IsValid() bool { return !c.pc.IsClosed() }

// ResetSession runs before a pooled session is reused: one idle for more
// than a second is pinged first, so that one the server closed meanwhile
// (a restart) is replaced rather than failing the query.
func (c *pgsqlConn) ResetSession(ctx context.Context) error {
	if c.pc.IsClosed() || c.pc.TxStatus() != 'I' {
		return driver.ErrBadConn
	}
	if time.Since(c.used) > time.Second {
		if err := c.pc.Ping(ctx); err != nil {
			return driver.ErrBadConn
		}
	}
	return nil
}

func (c *pgsqlConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if len(args) > 0 {
		return nil, errPgsqlUnsupported
	}
	rows, err := c.query(ctx, query, ctx.Value(lookupKey{}) != nil)
	reused := c.reused
	c.used, c.reused = time.Now(), true
	if err != nil && reused && ctx.Err() == nil && c.pc.IsClosed() {
		// The server ended this pooled session (a restart) before
		// anything was read: database/sql retries on another.
		return nil, driver.ErrBadConn
	}
	return rows, err
}

// latin1Safe reports whether a LATIN1 session can read every value of a
// database with this encoding.
func latin1Safe(serverEncoding string) bool {
	return serverEncoding == "SQL_ASCII" || serverEncoding == "LATIN1"
}

func (c *pgsqlConn) query(ctx context.Context, q string, lookup bool) (driver.Rows, error) {
	enc := "LATIN1"
	if !lookup && !latin1Safe(c.pc.ParameterStatus("server_encoding")) {
		enc = "UTF8"
	}
	if c.pc.ParameterStatus("client_encoding") != enc {
		if err := c.pc.Exec(ctx, "SET client_encoding TO '"+enc+"'").Close(); err != nil {
			return nil, fmt.Errorf("set client_encoding to %s: %w", enc, err)
		}
	}
	r := &pgsqlRows{c: c, toLatin1: enc == "UTF8"}
	if r.toLatin1 {
		q = latin1ToUTF8(q)
	}
	r.mrr = c.pc.Exec(ctx, q)
	var last *pgsqlRows // the last complete result
	for r.mrr.NextResult() {
		rr := r.mrr.ResultReader()
		cur := &pgsqlRows{cols: make([]string, 0, len(rr.FieldDescriptions()))}
		for _, fd := range rr.FieldDescriptions() {
			cur.cols = append(cur.cols, fd.Name)
		}
		for rr.NextRow() {
			row := make([][]byte, len(rr.Values()))
			for i, v := range rr.Values() {
				row[i] = r.value(v, true)
			}
			cur.held = append(cur.held, row)
			if len(cur.held) == pgsqlHold {
				r.rr, r.cols, r.held = rr, cur.cols, cur.held
				return r, nil
			}
		}
		tag, err := rr.Close()
		if err != nil {
			r.mrr.Close()
			return nil, err
		}
		if tag.String() == "" && len(cur.cols) == 0 {
			cur.cols = nil // PGRES_EMPTY_QUERY
		}
		last = cur
	}
	if err := r.mrr.Close(); err != nil {
		return nil, err
	}
	r.mrr = nil
	if last == nil || last.cols == nil {
		return nil, errors.New("empty query (Postfix fails the lookup)")
	}
	r.cols, r.held = last.cols, last.held
	return r, nil
}

// pgsqlRows passes on the rows held by query, then those of the result
// still streaming.
type pgsqlRows struct {
	c        *pgsqlConn
	mrr      *pgconn.MultiResultReader // nil once read to the end
	rr       *pgconn.ResultReader      // the result streaming after held, or nil
	cols     []string
	held     [][][]byte
	toLatin1 bool // values arrive as UTF-8 and go on as Latin-1 (NULL when impossible)
}

// value returns a value of the session as a LATIN1 session has it; keep
// copies it, since the reader reuses its buffer for the next row.
func (r *pgsqlRows) value(v []byte, keep bool) []byte {
	switch {
	case v == nil:
		return nil
	case r.toLatin1:
		l, ok := utf8ToLatin1(v)
		if !ok {
			return nil
		}
		if keep && len(l) == len(v) { // ASCII: l is v
			return slices.Clone(l)
		}
		return l
	case keep:
		return append([]byte{}, v...)
	}
	return v
}

func (r *pgsqlRows) Columns() []string { return r.cols }

func (r *pgsqlRows) Close() error {
	var err error
	if r.rr != nil {
		_, err = r.rr.Close()
		r.rr = nil
	}
	if r.mrr != nil {
		if e := r.mrr.Close(); err == nil {
			err = e
		}
		r.mrr = nil
	}
	r.c.used = time.Now()
	return err
}

func (r *pgsqlRows) Next(dest []driver.Value) error {
	set := func(row [][]byte) {
		for i := range dest {
			dest[i] = nil
			if i < len(row) && row[i] != nil {
				dest[i] = row[i]
			}
		}
	}
	if len(r.held) > 0 {
		set(r.held[0])
		r.held[0] = nil
		r.held = r.held[1:]
		return nil
	}
	if r.rr == nil {
		return io.EOF
	}
	if r.rr.NextRow() {
		vals := r.rr.Values()
		row := make([][]byte, len(vals))
		for i, v := range vals {
			row[i] = r.value(v, false)
		}
		set(row)
		return nil
	}
	_, err := r.rr.Close()
	r.rr = nil
	if err != nil {
		return err
	}
	if r.mrr.NextResult() {
		return fmt.Errorf("the query has several statements and a result before the last has more than %d rows (Postfix uses only the last)", pgsqlHold)
	}
	err = r.mrr.Close()
	r.mrr = nil
	if err != nil {
		return err
	}
	return io.EOF
}

// latin1ToUTF8 returns what a LATIN1 session makes of the bytes of s: each
// byte is the character of that code point.
func latin1ToUTF8(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := make([]byte, 0, len(s)+n)
	for i := 0; i < len(s); i++ {
		b = utf8.AppendRune(b, rune(s[i]))
	}
	return string(b)
}

// utf8ToLatin1 returns the Latin-1 bytes of the UTF-8 text v (v itself
// when it is ASCII), or ok false when a character has no Latin-1 byte.
func utf8ToLatin1(v []byte) ([]byte, bool) {
	ascii := true
	for _, c := range v {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return v, true
	}
	out := make([]byte, 0, len(v))
	for len(v) > 0 {
		r, n := utf8.DecodeRune(v)
		if r > 0xff || (r == utf8.RuneError && n <= 1) {
			return nil, false
		}
		out = append(out, byte(r))
		v = v[n:]
	}
	return out, true
}
