package sqltable

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
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

// quote escapes s as mysql_real_escape_string does for a connection
// without NO_BACKSLASH_ESCAPES.
func (mysqlDialect) quote(s string) string { return quoteMySQL(s) }

func (mysqlDialect) columnsQuery(table string) string {
	return "SELECT LOWER(COLUMN_NAME) FROM information_schema.COLUMNS" +
		" WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '" + quoteMySQL(table) + "'"
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
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			closeAll(out)
			return nil, fmt.Errorf("host %s: %w", h.host, err)
		}
		out = append(out, newEndpoint(h.String(), conn))
	}
	return out, nil
}

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
