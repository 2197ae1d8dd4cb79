package dovecot

import (
	"strconv"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// Effective holds the global settings that decide what mail clients are
// told, after includes, variables and defaults.
type Effective struct {
	// Protocols enabled, after "$protocols" expansion and Debian's
	// protocols.d includes ("none" dropped).
	Protocols    []string
	ProtocolsPos hostfs.Pos

	// Listen is the global listen addresses, default "*, ::".
	Listen []string

	// SSL is "no", "yes" or "required".
	SSL    string
	SSLPos hostfs.Pos

	// PlaintextAuthAllowed: 2.3 disable_plaintext_auth = no, 2.4
	// auth_allow_cleartext = yes. Even then ssl = required refuses
	// authentication before TLS.
	PlaintextAuthAllowed bool
	PlaintextPos         hostfs.Pos

	// AuthMechanisms as written (case kept), default "plain".
	AuthMechanisms    []string
	AuthMechanismsPos hostfs.Pos

	// AuthUsernameFormat, default "%Lu" (2.3) or "%{user | lower}" (2.4).
	AuthUsernameFormat    string
	AuthUsernameFormatPos hostfs.Pos

	// CertFile and KeyFile are host paths: 2.3 ssl_cert = </path with the
	// "<" dropped, 2.4 ssl_server_cert_file = /path. Relative "<file" paths
	// are resolved against the directory of the file that names them.
	CertFile, KeyFile string
	CertPos           hostfs.Pos

	// LocalNameCerts are the certificates of local_name (SNI) blocks.
	LocalNameCerts []NamedCert

	// SubmissionRelayHost and SubmissionRelayPort are where Dovecot's
	// submission service relays mail (default port 25).
	SubmissionRelayHost string
	SubmissionRelayPort int

	// Filters are the local, remote, protocol and local_name blocks that
	// set ssl, ssl_*, auth_* or disable_plaintext_auth.
	Filters []Filter
}

// A NamedCert is the certificate of a local_name block.
type NamedCert struct {
	Names             []string // the block's host names
	CertFile, KeyFile string   // host paths
	Pos               hostfs.Pos
}

// A Filter is one connection filter block (blocks with the same filter and
// the same enclosing filters are merged, as Dovecot merges them).
type Filter struct {
	Kind     string            // "remote", "local", "protocol" or "local_name"
	Arg      string            // "10.0.0.0/8", "imap", "mail.example.com"
	Settings map[string]string // every setting the block makes, variables expanded
	Pos      hostfs.Pos        // the first block
	Within   []string          // enclosing filters, outermost first: "local 192.0.2.1"
}

// Effective returns the settings that decide what mail clients are told.
func (c *Config) Effective() Effective {
	e := c.effective
	e.Protocols = append([]string(nil), e.Protocols...)
	e.Listen = append([]string(nil), e.Listen...)
	e.AuthMechanisms = append([]string(nil), e.AuthMechanisms...)
	e.LocalNameCerts = append([]NamedCert(nil), e.LocalNameCerts...)
	e.Filters = append([]Filter(nil), e.Filters...)
	return e
}

func (c *Config) computeEffective() (Effective, []error) {
	var e Effective
	var errs []error
	bad := func(pos hostfs.Pos, format string, args ...any) {
		if pos.IsZero() {
			pos = hostfs.Pos{File: "default"}
		}
		errs = append(errs, hostfs.Errorf(pos.File, pos.Line, format, args...))
	}
	v24 := is24(c.Version())

	v, pos := c.Setting("protocols")
	for _, p := range splitList(v) {
		if p != "none" {
			e.Protocols = append(e.Protocols, p)
		}
	}
	e.ProtocolsPos = pos

	v, _ = c.Setting("listen")
	e.Listen = splitList(v)

	e.SSL, e.SSLPos = c.Setting("ssl")
	switch e.SSL {
	case "no", "yes", "required":
	default:
		bad(e.SSLPos, "ssl: invalid value %q (use no, yes or required)", e.SSL)
	}

	if v24 {
		v, pos = c.Setting("auth_allow_cleartext")
		ok, err := parseBool(v)
		if err != nil {
			bad(pos, "auth_allow_cleartext: %v", err)
		}
		e.PlaintextAuthAllowed, e.PlaintextPos = ok, pos
	} else {
		v, pos = c.Setting("disable_plaintext_auth")
		disabled, err := parseBool(v)
		if err != nil {
			bad(pos, "disable_plaintext_auth: %v", err)
		}
		e.PlaintextAuthAllowed, e.PlaintextPos = !disabled, pos
	}

	v, e.AuthMechanismsPos = c.Setting("auth_mechanisms")
	if v24 {
		e.AuthMechanisms = splitList(v)
	} else {
		e.AuthMechanisms = strings.Fields(v)
	}
	e.AuthUsernameFormat, e.AuthUsernameFormatPos = c.Setting("auth_username_format")

	e.CertFile, e.KeyFile, e.CertPos = c.certIn(c.ev.root, v24)

	for _, f := range c.ev.filters {
		if f.kind == "local_name" {
			cert, key, pos := c.certIn(f, v24)
			if cert != "" || key != "" {
				if pos.IsZero() {
					pos = f.pos
				}
				e.LocalNameCerts = append(e.LocalNameCerts, NamedCert{Names: splitList(f.arg), CertFile: cert, KeyFile: key, Pos: pos})
			}
		}
		if c.changesAuthOrSSL(f) {
			e.Filters = append(e.Filters, c.filterOf(f))
		}
	}

	e.SubmissionRelayHost, _ = c.Setting("submission_relay_host")
	v, pos = c.Setting("submission_relay_port")
	if n, err := strconv.Atoi(v); err == nil && n >= 0 && n <= 65535 {
		e.SubmissionRelayPort = n
	} else {
		bad(pos, "submission_relay_port: invalid port %q", v)
	}
	return e, errs
}

// certIn returns the certificate and key paths set in scope s itself (for
// the top level, with defaults).
func (c *Config) certIn(s *scope, v24 bool) (cert, key string, pos hostfs.Pos) {
	certKeys := []string{"ssl_cert", "ssl_server_cert_file"}
	keyKeys := []string{"ssl_key", "ssl_server_key_file"}
	if v24 {
		certKeys[0], certKeys[1] = certKeys[1], certKeys[0]
		keyKeys[0], keyKeys[1] = keyKeys[1], keyKeys[0]
	}
	pick := func(keys []string) (string, hostfs.Pos) {
		for _, k := range keys {
			if a, ok := c.ev.own(s, k); ok && a.value != "" {
				return filePath(a), a.pos
			}
		}
		return "", hostfs.Pos{}
	}
	cert, pos = pick(certKeys)
	key, _ = pick(keyKeys)
	return cert, key, pos
}

// filePath returns the host path a certificate or key setting names.
func filePath(a assignment) string {
	if a.file != "" {
		return a.file
	}
	if p, ok := strings.CutPrefix(a.value, "<"); ok {
		return hostPath(a.pos.File, strings.TrimSpace(p))
	}
	return a.value
}

func (c *Config) changesAuthOrSSL(s *scope) bool {
	for _, k := range c.ev.ownKeys(s) {
		if k == "ssl" || k == "disable_plaintext_auth" || strings.HasPrefix(k, "ssl_") || strings.HasPrefix(k, "auth_") {
			return true
		}
	}
	return false
}

func (c *Config) filterOf(s *scope) Filter {
	f := Filter{Kind: s.kind, Arg: s.arg, Pos: s.pos, Settings: map[string]string{}}
	for _, k := range c.ev.ownKeys(s) {
		if strings.HasPrefix(k, "@") {
			continue
		}
		a, _ := c.ev.own(s, k)
		f.Settings[k] = c.ev.expandSETDepth(s, a.value, 8)
	}
	for p := s.parent; p != nil && p.kind != ""; p = p.parent {
		f.Within = append([]string{p.kind + " " + p.arg}, f.Within...)
	}
	return f
}
