package postfix

import (
	"net/netip"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// TLS is how an SMTP service offers TLS to a client.
type TLS int

const (
	TLSNone     TLS = iota // no TLS
	TLSOptional            // STARTTLS offered (security level may)
	TLSRequired            // STARTTLS required before mail (security level encrypt)
	TLSImplicit            // TLS from the first byte (smtpd_tls_wrappermode)
)

func (t TLS) String() string {
	switch t {
	case TLSNone:
		return "none"
	case TLSOptional:
		return "starttls-optional"
	case TLSRequired:
		return "starttls-required"
	case TLSImplicit:
		return "implicit"
	}
	return "unknown"
}

// Settings are the effective client-facing settings of an inet service.
type Settings struct {
	TLS    TLS
	TLSPos hostfs.Pos // where the deciding parameter was set (zero: default)

	SASL    bool       // smtpd_sasl_auth_enable
	SASLPos hostfs.Pos // where it was set

	TLSAuthOnly bool // smtpd_tls_auth_only

	// UpstreamProxy is smtpd_upstream_proxy_protocol (for postscreen,
	// postscreen_upstream_proxy_protocol), "" when none.
	UpstreamProxy string

	// LoopbackOnly reports that the service listens on loopback addresses
	// only: its host field, or inet_interfaces when it has none.
	LoopbackOnly bool

	// ClientSubmission reports that mail clients may submit mail here: the
	// command is smtpd, SASL is on, the port is not 25, it is not bound to
	// loopback, there is no upstream proxy protocol, TLS is possible, and
	// either the port is 587 or 465 or the service turns SASL or wrappermode
	// on with its own -o.
	ClientSubmission bool
	// Reason says briefly why ClientSubmission is false.
	Reason string
}

// Settings returns the effective settings of service s.
func (c *Config) Settings(s Service) Settings {
	var st Settings
	boolParam := func(name string) (bool, hostfs.Pos) {
		v, pos := c.ServiceParam(s, name)
		b, _ := parseBool(v)
		return b, pos
	}
	st.TLS, st.TLSPos = c.serviceTLS(s)
	st.SASL, st.SASLPos = boolParam("smtpd_sasl_auth_enable")
	st.TLSAuthOnly, _ = boolParam("smtpd_tls_auth_only")
	if s.Command == "postscreen" {
		st.UpstreamProxy, _ = c.ServiceParam(s, "postscreen_upstream_proxy_protocol")
	} else {
		st.UpstreamProxy, _ = c.ServiceParam(s, "smtpd_upstream_proxy_protocol")
	}
	if s.Host != "" {
		st.LoopbackOnly = isLoopbackHost(s.Host)
	} else {
		v, _ := c.Param("inet_interfaces")
		st.LoopbackOnly = loopbackInterfaces(v)
	}
	st.Reason = c.submissionVeto(s, st)
	st.ClientSubmission = st.Reason == ""
	return st
}

// serviceTLS decides the TLS mode of s from smtpd_tls_wrappermode, then
// smtpd_tls_security_level, then the legacy smtpd_enforce_tls and
// smtpd_use_tls. postscreen reads its own postscreen_* equivalents, whose
// defaults are the smtpd ones.
func (c *Config) serviceTLS(s Service) (TLS, hostfs.Pos) {
	prefix := "smtpd_"
	if s.Command == "postscreen" {
		prefix = "postscreen_"
	} else {
		v, pos := c.ServiceParam(s, "smtpd_tls_wrappermode")
		if b, _ := parseBool(v); b {
			return TLSImplicit, pos
		}
	}
	level, pos := c.ServiceParam(s, prefix+"tls_security_level")
	switch strings.ToLower(level) {
	case "encrypt":
		return TLSRequired, pos
	case "may":
		return TLSOptional, pos
	case "":
	default: // "none", or a level smtpd does not accept
		return TLSNone, pos
	}
	v, pos := c.ServiceParam(s, prefix+"enforce_tls")
	if b, _ := parseBool(v); b {
		return TLSRequired, pos
	}
	v, pos = c.ServiceParam(s, prefix+"use_tls")
	if b, _ := parseBool(v); b {
		return TLSOptional, pos
	}
	return TLSNone, pos
}

// submissionVeto returns why s is not a client submission service, or "".
func (c *Config) submissionVeto(s Service, st Settings) string {
	switch {
	case s.Command == "postscreen":
		return "command is postscreen"
	case s.Command != "smtpd":
		return "command is " + s.Command
	case s.Port == 25:
		return "port 25"
	case !st.SASL:
		return "SASL off"
	case st.LoopbackOnly:
		return "bound to loopback"
	case st.UpstreamProxy != "":
		return "behind proxy protocol"
	case st.TLS == TLSNone:
		return "no TLS"
	case s.Port == 587 || s.Port == 465:
		return ""
	}
	for _, name := range []string{"smtpd_sasl_auth_enable", "smtpd_tls_wrappermode"} {
		if _, ok := s.Override(name); !ok {
			continue
		}
		v, _ := c.ServiceParam(s, name)
		if b, _ := parseBool(v); b {
			return ""
		}
	}
	return "SASL only inherited from main.cf"
}

// loopbackInterfaces reports whether an inet_interfaces value names loopback
// addresses only.
func loopbackInterfaces(v string) bool {
	fields := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	if len(fields) == 0 {
		return false
	}
	for _, f := range fields {
		switch strings.ToLower(f) {
		case "loopback-only":
			continue
		case "all":
			return false
		}
		if !isLoopbackHost(f) {
			return false
		}
	}
	return true
}

// isLoopbackHost reports whether host (an address, "[address]", or a name)
// is a loopback address: 127.0.0.0/8, ::1, or localhost.
func isLoopbackHost(host string) bool {
	h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap().IsLoopback()
	}
	switch strings.ToLower(strings.TrimSuffix(h, ".")) {
	case "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback":
		return true
	}
	return false
}

// Disabled reports whether master_service_disable turns service s off: the
// list holds service types ("inet") and "name/type" pairs, "!pattern"
// excludes, and the first match decides. Settings does not look at it (the
// corpus rule does not); a caller that lists endpoints should.
func (c *Config) Disabled(s Service) bool {
	v, _ := c.Param("master_service_disable")
	for _, p := range splitList(v) {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		if strings.EqualFold(p, s.Type) || strings.EqualFold(p, s.Name+"/"+s.Type) {
			return !neg
		}
	}
	return false
}
