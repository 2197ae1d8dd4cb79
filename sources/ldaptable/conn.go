package ldaptable

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/postfix"
)

// DefaultLDAPISocket is where libldap looks for ldapi:// without a path
// (Debian's slapd listens there).
const DefaultLDAPISocket = "/var/run/slapd/ldapi"

// A server is one entry of server_host, with the connection to it that the
// table's calls share (a go-ldap connection runs concurrent requests).
type server struct {
	url     string // as written
	network string // "tcp" or "unix"
	addr    string
	host    string // the name TLS checks
	ldaps   bool

	lock chan struct{} // holds a token while conn is read or replaced
	conn *ldap.Conn

	// downUntil is when (in Unix nanoseconds) the server stops counting
	// as down: connecting to it or using its connection failed, and until
	// then it is tried after the others.
	downUntil atomic.Int64
}

// downTime is how long a server that failed is tried only after the
// others, as Postfix's retry_interval does for its SQL tables.
const downTime = time.Minute

func (s *server) markDown() { s.downUntil.Store(time.Now().Add(downTime).UnixNano()) }

// newServer reads an LDAP URL of server_host.
func newServer(raw string) (*server, error) {
	u, err := postfix.ParseLDAPURL(raw)
	if err != nil {
		return nil, fmt.Errorf("server_host %s: %w", raw, err)
	}
	s := &server{url: raw, host: u.Host, lock: make(chan struct{}, 1)}
	switch u.Scheme {
	case "ldapi":
		s.network, s.addr = "unix", u.Host
		if s.addr == "" {
			s.addr = DefaultLDAPISocket
		}
		return s, nil
	case "ldaps":
		s.ldaps = true
	}
	host, port := u.Host, u.Port
	if host == "" {
		host = "localhost"
		s.host = host
	}
	if port == 0 {
		port = 389
		if s.ldaps {
			port = 636
		}
	}
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("server_host %s: bad port %d", raw, port)
	}
	s.network, s.addr = "tcp", net.JoinHostPort(host, strconv.Itoa(port))
	return s, nil
}

// A serverError is a failure of the server itself (unreachable, gone, too
// slow): the call goes on with the next server.
type serverError struct{ err error }

func (e *serverError) Error() string { return e.err.Error() }
func (e *serverError) Unwrap() error { return e.err }

// isNetwork reports whether err from go-ldap means the connection is
// unusable (closed, broken, or silent for the query timeout) rather than
// an answer. The end of a caller's context is not: the connection is
// shared, and the other calls on it go on.
func isNetwork(err error) bool {
	var le *ldap.Error
	if errors.As(err, &le) {
		return le.ResultCode == ldap.ErrorNetwork
	}
	return false
}

// ldapCode returns the LDAP result code of err, or -1.
func ldapCode(err error) int {
	var le *ldap.Error
	if errors.As(err, &le) && le.ResultCode < ldap.ErrorNetwork {
		return int(le.ResultCode)
	}
	return -1
}

// do runs op with a connection to each server in turn (see order), until
// one does not fail as a server. A connection found broken is replaced
// and op retried once on that server, as Postfix reconnects when its
// cached connection went away. Connecting to a server takes at most the
// connect timeout, and while other servers remain, at most an equal share
// of what is left of ctx's deadline, so that one server that never
// answers leaves time for the others.
func (t *Table) do(ctx context.Context, op func(c *ldap.Conn) error) error {
	if t.closed.Load() {
		return fmt.Errorf("ldap %s: table closed", t.path)
	}
	var errs []error
	order := t.order()
	for i, s := range order {
		limit := t.connectTimeout
		if dl, ok := ctx.Deadline(); ok && i < len(order)-1 {
			limit = min(limit, time.Until(dl)/time.Duration(len(order)-i))
		}
		err := t.doOn(ctx, s, limit, op)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("ldap %s (%s): %w", t.path, s.url, err))
		var se *serverError
		if !errors.As(err, &se) || ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// doOn runs op on server s, connecting within limit when needed.
func (t *Table) doOn(ctx context.Context, s *server, limit time.Duration, op func(c *ldap.Conn) error) error {
	for attempt := 0; ; attempt++ {
		c, fresh, err := t.conn(ctx, s, limit)
		if err != nil {
			return err
		}
		err = op(c)
		if err == nil || !isNetwork(err) {
			return err
		}
		s.drop(c)
		if fresh || attempt > 0 || ctx.Err() != nil {
			if ctx.Err() == nil {
				s.markDown()
			}
			return &serverError{err}
		}
	}
}

// order returns the servers in the order a call tries them: those not
// marked down in the order server_host lists them, then those marked
// down.
func (t *Table) order() []*server {
	now := time.Now().UnixNano()
	up := make([]*server, 0, len(t.servers))
	var down []*server
	for _, s := range t.servers {
		if s.downUntil.Load() > now {
			down = append(down, s)
		} else {
			up = append(up, s)
		}
	}
	return append(up, down...)
}

// conn returns the server's shared connection, connecting first (within
// limit, waiting for another call's connection attempt included) when
// there is none or it was closed; fresh reports a new connection.
func (t *Table) conn(ctx context.Context, s *server, limit time.Duration) (c *ldap.Conn, fresh bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	select {
	case s.lock <- struct{}{}:
	case <-cctx.Done():
		if ctx.Err() != nil {
			return nil, false, fmt.Errorf("connect: %w", ctx.Err())
		}
		return nil, false, &serverError{errors.New("unreachable: another call's connection attempt did not end in time")}
	}
	defer func() { <-s.lock }()
	if s.conn != nil && !s.conn.IsClosing() {
		return s.conn, false, nil
	}
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
	c, err = t.connect(cctx, s)
	if err != nil {
		var se *serverError
		if errors.As(err, &se) && ctx.Err() == nil {
			s.markDown()
		}
		return nil, false, err
	}
	s.downUntil.Store(0)
	if t.closed.Load() {
		c.Close()
		return nil, false, errors.New("table closed")
	}
	s.conn = c
	return c, true, nil
}

// drop closes c if it is still the server's connection.
func (s *server) drop(c *ldap.Conn) {
	s.lock <- struct{}{}
	defer func() { <-s.lock }()
	if s.conn == c {
		s.conn = nil
	}
	c.Close()
}

func (s *server) close() {
	s.lock <- struct{}{}
	defer func() { <-s.lock }()
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// connect opens a connection as Postfix's dict_ldap_connect does: connect
// (TLS first for ldaps://), STARTTLS when start_tls = yes, then a simple
// bind with the table's protocol version unless bind = no. STARTTLS and
// the bind are sent here, before go-ldap takes the connection over,
// because go-ldap always binds as LDAPv3 and Postfix sends the version the
// table asks for (slapd refuses a version 2 bind by default).
func (t *Table) connect(ctx context.Context, s *server) (*ldap.Conn, error) {
	if t.timeout == 0 {
		return nil, &serverError{errors.New("unreachable: timed out (timeout = 0)")}
	}
	limit := t.connectTimeout
	if t.timeout > 0 && t.timeout < limit {
		limit = t.timeout
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	d := net.Dialer{Timeout: limit}
	nc, err := d.DialContext(ctx, s.network, s.addr)
	if err != nil {
		return nil, &serverError{fmt.Errorf("unreachable: %w", unwrapOp(err))}
	}
	ok := false
	defer func() {
		if !ok {
			nc.Close()
		}
	}()
	deadline, _ := ctx.Deadline()
	nc.SetDeadline(deadline)
	isTLS := false
	if s.ldaps || t.startTLS {
		cfg, err := t.tlsConfig()
		if err != nil {
			return nil, err
		}
		cfg = cfg.Clone()
		cfg.ServerName = s.host
		if t.tlsFiles.require {
			cfg.VerifyConnection = verifyPeer(cfg.RootCAs, tlsName(s.host))
		}
		if t.startTLS && !s.ldaps {
			if err := t.exchange(nc, 1, startTLSRequest(), "STARTTLS"); err != nil {
				return nil, err
			}
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			err = fmt.Errorf("TLS handshake: %w", err)
			if s.ldaps {
				return nil, &serverError{err}
			}
			return nil, err
		}
		nc, isTLS = tc, true
	}
	if t.bind == "yes" {
		if err := t.exchange(nc, 2, bindRequest(t.version, t.bindDN, t.bindPW), "bind as "+strconv.Quote(t.bindDN)); err != nil {
			return nil, err
		}
	}
	nc.SetDeadline(time.Time{})
	c := ldap.NewConn(nc, isTLS)
	c.Start()
	c.SetTimeout(t.queryTimeout)
	ok = true
	return c, nil
}

// unwrapOp drops the *net.OpError address noise but keeps its message.
func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return fmt.Errorf("%s %s: %w", oe.Op, oe.Addr, oe.Err)
	}
	return err
}

func startTLSRequest() *ber.Packet {
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationExtendedRequest, nil, "Start TLS")
	req.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, "1.3.6.1.4.1.1466.20037", "Request Name"))
	return req
}

func bindRequest(version int, dn, password string) *ber.Packet {
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationBindRequest, nil, "Bind Request")
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, version, "Version"))
	req.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, dn, "User Name"))
	req.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, password, "Password"))
	return req
}

// exchange sends one request on a connection go-ldap does not own yet and
// checks the result code of its response. The error never holds the
// request (which may carry the password), only what the server answered.
func (t *Table) exchange(nc net.Conn, id int64, op *ber.Packet, what string) error {
	env := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Request")
	env.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "MessageID"))
	env.AppendChild(op)
	if _, err := nc.Write(env.Bytes()); err != nil {
		return &serverError{fmt.Errorf("%s: %w", what, err)}
	}
	for {
		resp, err := ber.ReadPacket(nc)
		if err != nil {
			return &serverError{fmt.Errorf("%s: no answer: %w", what, err)}
		}
		if len(resp.Children) < 2 {
			return &serverError{fmt.Errorf("%s: malformed answer", what)}
		}
		msgID, _ := resp.Children[0].Value.(int64)
		if msgID == 0 {
			return &serverError{fmt.Errorf("%s: the server closed the connection (%v)", what, ldap.GetLDAPError(resp))}
		}
		if msgID != id {
			continue
		}
		if err := ldap.GetLDAPError(resp); err != nil {
			return describe(what, err)
		}
		return nil
	}
}

// describe turns an LDAP error into a message that says what it means,
// with the code.
func describe(what string, err error) error {
	var le *ldap.Error
	if !errors.As(err, &le) {
		return fmt.Errorf("%s: %w", what, err)
	}
	diag := ""
	if le.Err != nil && le.Err.Error() != "" {
		diag = ": " + le.Err.Error()
	}
	name := ldap.LDAPResultCodeMap[le.ResultCode]
	if le.ResultCode == ldap.LDAPResultInvalidCredentials {
		return fmt.Errorf("%s: access denied (LDAP result 49, %s): wrong bind_dn or bind_pw%w", what, name, errSilent{le})
	}
	return fmt.Errorf("%s: LDAP result %d (%s)%s%w", what, le.ResultCode, name, diag, errSilent{le})
}

// errSilent wraps an error for errors.As without adding to the message.
type errSilent struct{ err error }

func (e errSilent) Error() string { return "" }
func (e errSilent) Unwrap() error { return e.err }

// tlsConfig loads the table's TLS settings once, when a connection first
// needs them: libldap reads the files only when it starts TLS.
func (t *Table) tlsConfig() (*tls.Config, error) {
	t.tlsOnce.Do(func() { t.tls, t.tlsErr = loadTLS(t.root, t.tlsFiles) })
	return t.tls, t.tlsErr
}

// tlsFiles are the tls_* settings of a table.
type tlsFiles struct {
	caFile, caDir, cert, key string
	require                  bool
}

// loadTLS builds the TLS client configuration of libldap's settings:
// tls_require_cert = no (the default) checks nothing, as
// LDAP_OPT_X_TLS_NEVER; yes checks the chain against tls_ca_cert_file and
// the files of tls_ca_cert_dir (the system roots when neither is set),
// and the server's name (see verifyPeer).
func loadTLS(root hostfs.Root, f tlsFiles) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}
	if f.cert != "" || f.key != "" {
		certPEM, err := root.ReadFile(f.cert)
		if err != nil {
			return nil, fmt.Errorf("tls_cert: %w", err)
		}
		keyPEM, err := root.ReadFile(f.key)
		if err != nil {
			return nil, fmt.Errorf("tls_key: %w", err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("tls_cert %s, tls_key %s: %w", f.cert, f.key, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	if !f.require || f.caFile == "" && f.caDir == "" {
		return c, nil // no checks, or the system roots
	}
	pool := x509.NewCertPool()
	if f.caFile != "" {
		b, err := root.ReadFile(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("tls_ca_cert_file: %w", err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("tls_ca_cert_file %s: no PEM certificate", f.caFile)
		}
	}
	if f.caDir != "" {
		files, _ := root.Glob(strings.TrimSuffix(f.caDir, "/") + "/*")
		for _, p := range files {
			if b, err := root.ReadFile(p); err == nil {
				pool.AppendCertsFromPEM(b)
			}
		}
	}
	c.RootCAs = pool
	return c, nil
}

// verifyPeer checks a server's certificate as libldap does with
// tls_require_cert = yes: a chain to roots (nil: the system's), and name
// among the certificate's DNS names (a "*." wildcard standing for one
// label) or IP addresses, or its common name.
func verifyPeer(roots *x509.CertPool, name string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the server sent no certificate")
		}
		leaf := cs.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return err
		}
		if ip := net.ParseIP(name); ip != nil {
			for _, a := range leaf.IPAddresses {
				if a.Equal(ip) {
					return nil
				}
			}
		} else {
			for _, d := range leaf.DNSNames {
				if hostMatch(d, name) {
					return nil
				}
			}
		}
		if hostMatch(leaf.Subject.CommonName, name) {
			return nil
		}
		return fmt.Errorf("hostname (%s) does not match the certificate", name)
	}
}

func hostMatch(pattern, name string) bool {
	if strings.EqualFold(pattern, name) {
		return true
	}
	rest, ok := strings.CutPrefix(pattern, "*.")
	_, nameRest, dot := strings.Cut(name, ".")
	return ok && dot && strings.EqualFold(rest, nameRest)
}

// tlsName is the name libldap checks the certificate of server host
// against: the host of the URL, except that for localhost it is this
// machine's own name.
func tlsName(host string) string {
	if host != "" && !strings.EqualFold(host, "localhost") {
		return host
	}
	h, err := os.Hostname()
	if err != nil {
		return "localhost"
	}
	if c, err := net.LookupCNAME(h); err == nil && c != "" {
		return strings.TrimSuffix(c, ".")
	}
	return h
}
