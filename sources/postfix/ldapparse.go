package postfix

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// LDAPTable is a Postfix LDAP lookup table file as ldap_table(5) of
// Postfix 3.7 defines it ("proxy:ldap:/etc/postfix/ldap/virtual_mailbox_domains.cf").
// Every field holds the value Postfix uses: its default when the file does
// not set it, its fallback when Postfix only warns about the value.
type LDAPTable struct {
	Path string // host path of the .cf file

	// ServerHost is server_host as written, split at spaces and commas
	// ("ldap.example.com", "ldap.example.com:1444",
	// "ldaps://ldap.example.com", "ldapi://%2Frun%2Fslapd%2Fldapi");
	// ["localhost"] by default.
	ServerHost []string
	// Servers are the LDAP URLs Postfix hands to libldap, in order: a
	// bare host[:port] becomes "ldap://host:port" (ServerPort when it has
	// no port), a URL stays as written. A URL libldap cannot parse is left
	// out with a warning, as Postfix does.
	Servers    []string
	ServerPort int // server_port, 389

	SearchBase  string // search_base, with its %-expansions unexpanded
	QueryFilter string // query_filter, "(mailacceptinggeneralid=%s)" by default
	// ResultFormat is result_format (or the older result_filter), "%s" by
	// default.
	ResultFormat string

	ResultAttribute         []string // result_attribute, ["maildrop"] by default
	SpecialResultAttribute  []string // DN- or URL-valued, followed recursively
	TerminalResultAttribute []string
	LeafResultAttribute     []string

	Scope string // "sub" (default), "one" or "base"
	// Bind is "yes" (simple bind, the default; also written "simple"),
	// "no" (also "none") or "sasl".
	Bind   string
	BindDN string
	BindPW string
	// Version is the LDAP protocol version, 3 by default in Postfix 3.7;
	// a URL other than ldap:// or start_tls = yes forces 3.
	Version int

	StartTLS       bool
	TLSCACertFile  string
	TLSCACertDir   string
	TLSCert        string
	TLSKey         string
	TLSRequireCert bool

	Timeout int // timeout in seconds, 10 by default

	// Domain is the "domain" restriction list as written; when it is not
	// empty, Postfix never looks up a bare domain name.
	Domain []string

	ExpansionLimit int // expansion_limit, 0 for none
	SizeLimit      int // size_limit, ExpansionLimit by default
	RecursionLimit int // recursion_limit, 1000 by default
	Dereference    int // dereference, 0 (never) to 3 (always)
	ChaseReferrals bool

	// Warnings are the problems Postfix only warns about (an unknown scope,
	// version or dereference value, a server_host URL it skips, an ignored
	// cache setting), each at its line.
	Warnings []error

	// Params holds every "name = value" of the file as written (the last
	// one wins), for display. It includes bind_pw.
	Params map[string]string
	// Pos tells where each parameter in Params was set.
	Pos map[string]hostfs.Pos
}

// LoadLDAPTable reads the ldap_table(5) file at host path p under root
// (the path of an "ldap:/etc/postfix/x.cf" or "proxy:ldap:..." table).
func LoadLDAPTable(root hostfs.Root, p string) (*LDAPTable, error) {
	data, err := readHostFile(root, p)
	if err != nil {
		return nil, fmt.Errorf("read ldap table: %w", err)
	}
	return ParseLDAPTable(p, bytes.NewReader(data))
}

// ParseLDAPTable parses an ldap_table(5) file. The syntax is the one of
// mysql_table(5) files: main.cf's, without $name expansion. Values Postfix
// refuses to open the table with (a number or boolean it cannot read, an
// empty server_host, an unknown bind method, version below 2,
// recursion_limit below 1) are each a *hostfs.PosError; values Postfix
// only warns about take its fallback and are listed in Warnings. The
// table read so far is returned with any error.
func ParseLDAPTable(name string, r io.Reader) (*LDAPTable, error) {
	f := readTableFile(name, r)
	t := &LDAPTable{Path: name, Params: f.params, Pos: f.pos}
	bad := f.bad
	warn := func(key, format string, args ...any) {
		t.Warnings = append(t.Warnings, &hostfs.PosError{Pos: f.at(key), Err: fmt.Errorf(format, args...)})
	}
	// str is Postfix's cfg_get_str: the value or the default, at least
	// min bytes long.
	str := func(key, def string, min int) string {
		v, ok := t.Params[key]
		if !ok {
			return def
		}
		if len(v) < min {
			bad(key, "bad string length %d < %d: %s = %s", len(v), min, key, v)
			return def
		}
		return v
	}
	// num is cfg_get_int: a decimal number, at least min when min > 0.
	num := func(key string, def, min int) int {
		v, ok := t.Params[key]
		if !ok {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			bad(key, "bad numerical configuration: %s = %s", key, v)
			return def
		}
		if min > 0 && n < min {
			bad(key, "invalid %s parameter value %d < %d", key, n, min)
			return def
		}
		return n
	}
	// boolean is cfg_get_bool: yes or no, in any letter case.
	boolean := func(key string, def bool) bool {
		v, ok := t.Params[key]
		if !ok {
			return def
		}
		switch strings.ToLower(v) {
		case "yes":
			return true
		case "no":
			return false
		}
		bad(key, "bad boolean configuration: %s = %s", key, v)
		return def
	}

	t.ServerPort = num("server_port", 389, 0)
	t.Version = num("version", 3, 2)
	if t.Version != 2 && t.Version != 3 {
		warn("version", "unknown version %d, using 3", t.Version)
		t.Version = 3
	}
	t.ServerHost = splitAttrs(str("server_host", "localhost", 1))
	for _, h := range t.ServerHost {
		if !IsLDAPURL(h) {
			if strings.Contains(h, ":") {
				t.Servers = append(t.Servers, "ldap://"+h)
			} else {
				t.Servers = append(t.Servers, fmt.Sprintf("ldap://%s:%d", h, t.ServerPort))
			}
			continue
		}
		u, err := ParseLDAPURL(h)
		if err != nil {
			warn("server_host", "skipping server_host URL %s: %v", h, err)
			continue
		}
		if u.Scheme != "ldap" && t.Version != 3 {
			warn("server_host", "URL scheme %s requires protocol version 3", u.Scheme)
			t.Version = 3
		}
		t.Servers = append(t.Servers, h)
	}

	switch scope := str("scope", "sub", 1); strings.ToLower(scope) {
	case "one", "base", "sub":
		t.Scope = strings.ToLower(scope)
	default:
		warn("scope", "unrecognized value %s specified for scope; using sub", scope)
		t.Scope = "sub"
	}
	t.SearchBase = str("search_base", "", 0)
	t.Timeout = num("timeout", 10, 0)
	t.QueryFilter = str("query_filter", "(mailacceptinggeneralid=%s)", 0)
	// An empty result_format is not set (Postfix then reads result_filter).
	if v := t.Params["result_format"]; v != "" {
		t.ResultFormat = v
	} else {
		t.ResultFormat = str("result_filter", "%s", 1)
	}
	t.TerminalResultAttribute = splitAttrs(str("terminal_result_attribute", "", 0))
	t.LeafResultAttribute = splitAttrs(str("leaf_result_attribute", "", 0))
	t.ResultAttribute = splitAttrs(str("result_attribute", "maildrop", 0))
	t.SpecialResultAttribute = splitAttrs(str("special_result_attribute", "", 0))

	switch b := str("bind", "yes", 1); strings.ToLower(b) {
	case "yes", "simple":
		t.Bind = "yes"
	case "no", "none":
		t.Bind = "no"
	case "sasl":
		t.Bind = "sasl"
	default:
		bad("bind", "unsupported parameter value: bind = %s", b)
		t.Bind = "yes"
	}
	t.BindDN = str("bind_dn", "", 0)
	t.BindPW = str("bind_pw", "", 0)

	if boolean("cache", false) {
		warn("cache", "ignoring cache")
	}
	for _, k := range []string{"cache_expiry", "cache_size"} {
		if num(k, -1, 0) >= 0 {
			warn(k, "ignoring %s", k)
		}
	}
	t.RecursionLimit = num("recursion_limit", 1000, 1)
	t.ExpansionLimit = num("expansion_limit", 0, 0)
	t.SizeLimit = num("size_limit", t.ExpansionLimit, 0)
	t.Dereference = num("dereference", 0, 0)
	if t.Dereference < 0 || t.Dereference > 3 {
		warn("dereference", "unrecognized value %d specified for dereference; using 0", t.Dereference)
		t.Dereference = 0
	}
	t.ChaseReferrals = boolean("chase_referrals", false)
	if t.Bind == "sasl" {
		num("sasl_minssf", 0, 0)
	}
	t.StartTLS = boolean("start_tls", false)
	if t.StartTLS && t.Version < 3 {
		warn("start_tls", "start_tls requires protocol version 3")
		t.Version = 3
	}
	t.TLSRequireCert = boolean("tls_require_cert", false)
	t.TLSCACertFile = str("tls_ca_cert_file", "", 0)
	t.TLSCACertDir = str("tls_ca_cert_dir", "", 0)
	t.TLSCert = str("tls_cert", "", 0)
	t.TLSKey = str("tls_key", "", 0)
	num("debuglevel", 0, 0)
	t.Domain = splitList(t.Params["domain"])
	return t, errors.Join(f.errs...)
}

// splitAttrs splits a list at spaces, tabs, line breaks and commas, as
// Postfix's argv_split(value, CHARS_COMMA_SP) does.
func splitAttrs(v string) []string {
	f := strings.FieldsFunc(v, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\r' || r == '\n'
	})
	if len(f) == 0 {
		return nil
	}
	return f
}

// An LDAPURL is an RFC 4516 LDAP URL as OpenLDAP's ldap_url_parse reads
// it, percent-decoded.
type LDAPURL struct {
	Scheme string // "ldap", "ldaps" or "ldapi", lower-cased
	Host   string // without brackets; for ldapi, the socket path ("" for the default)
	Port   int    // 0 when none is given
	DN     string
	Attrs  []string // nil when none are given
	// Scope is "base", "one", "sub", "children", or "" when not given
	// (a search then uses base).
	Scope  string
	Filter string // "" when not given
	Exts   []string
}

// IsLDAPURL reports whether libldap takes s for an LDAP URL: after an
// optional "<" and "URL:", it starts with ldap://, ldaps:// or ldapi://
// in any letter case.
func IsLDAPURL(s string) bool {
	_, _, _, ok := urlPrefix(s)
	return ok
}

func urlPrefix(s string) (rest, scheme string, enclosed, ok bool) {
	if strings.HasPrefix(s, "<") {
		enclosed = true
		s = s[1:]
	}
	if len(s) >= 4 && strings.EqualFold(s[:4], "URL:") {
		s = s[4:]
	}
	for _, sch := range []string{"ldap", "ldaps", "ldapi"} {
		p := sch + "://"
		if len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) {
			return s[len(p):], sch, enclosed, true
		}
	}
	return s, "", enclosed, false
}

// ParseLDAPURL parses an LDAP URL the way libldap does:
// scheme://hostport/dn?attributes?scope?filter?extensions, every part
// optional and percent-decoded, with an optional enclosing "<...>" and
// "URL:" prefix. The port is not checked against 65535, as libldap does not.
func ParseLDAPURL(s string) (*LDAPURL, error) {
	rest, scheme, enclosed, ok := urlPrefix(s)
	if !ok {
		return nil, fmt.Errorf("not an LDAP URL")
	}
	if enclosed {
		if !strings.HasSuffix(rest, ">") {
			return nil, fmt.Errorf("missing closing '>'")
		}
		rest = rest[:len(rest)-1]
	}
	u := &LDAPURL{Scheme: scheme}
	hostport, path, hasPath := strings.Cut(rest, "/")
	if !hasPath {
		// libldap's "Novell kludge": ldap://host?... without a slash.
		if h, _, found := strings.Cut(hostport, "?"); found {
			hostport = h
		}
	}
	if scheme == "ldapi" {
		u.Host = unhexURL(hostport)
	} else {
		host := hostport
		var port string
		hasPort := false
		if strings.HasPrefix(host, "[") {
			i := strings.IndexByte(host, ']')
			if i < 0 {
				return nil, fmt.Errorf("bad URL: missing ']'")
			}
			after := host[i+1:]
			host = host[1:i]
			if after != "" {
				if after[0] != ':' {
					return nil, fmt.Errorf("bad URL: junk after ']'")
				}
				port, hasPort = after[1:], true
			}
		} else if i := strings.IndexByte(host, ':'); i >= 0 {
			host, port, hasPort = host[:i], host[i+1:], true
		}
		if hasPort {
			n, ok := strtol(unhexURL(port))
			if !ok {
				return nil, fmt.Errorf("bad URL: bad port %q", port)
			}
			u.Port = n
		}
		u.Host = unhexURL(host)
	}
	if !hasPath {
		return u, nil
	}
	parts := strings.Split(path, "?")
	if len(parts) > 5 {
		return nil, fmt.Errorf("bad URL: too many '?'")
	}
	u.DN = unhexURL(parts[0])
	if len(parts) > 1 && parts[1] != "" {
		u.Attrs = []string{}
		for _, a := range strings.Split(unhexURL(parts[1]), ",") {
			if a != "" {
				u.Attrs = append(u.Attrs, a)
			}
		}
	}
	if len(parts) > 2 && parts[2] != "" {
		switch sc := strings.ToLower(unhexURL(parts[2])); sc {
		case "base":
			u.Scope = "base"
		case "one", "onelevel":
			u.Scope = "one"
		case "sub", "subtree":
			u.Scope = "sub"
		case "subord", "subordinate", "children":
			u.Scope = "children"
		default:
			return nil, fmt.Errorf("bad scope %q", parts[2])
		}
	}
	if len(parts) > 3 && parts[3] != "" {
		f := unhexURL(parts[3])
		if f == "" || strings.IndexByte(f, 0) == 0 {
			return nil, fmt.Errorf("bad filter")
		}
		u.Filter = f
	}
	if len(parts) > 4 {
		for _, e := range strings.Split(parts[4], ",") {
			if e != "" {
				u.Exts = append(u.Exts, unhexURL(e))
			}
		}
		if len(u.Exts) == 0 {
			return nil, fmt.Errorf("bad extensions")
		}
	}
	return u, nil
}

// unhexURL decodes %XX escapes as libldap's ldap_pvt_hex_unescape does,
// leniently: a '%' at the end is dropped, and a non-hex digit gives
// whatever value libldap computes for it.
func unhexURL(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	unhex := func(c byte) byte {
		switch {
		case c >= '0' && c <= '9':
			return c - '0'
		case c >= 'A' && c <= 'Z':
			return c - 'A' + 10
		}
		return c - 'a' + 10
	}
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+1 >= len(s) {
			break
		}
		v := unhex(s[i+1]) << 4
		if i+2 >= len(s) {
			break
		}
		b = append(b, v+unhex(s[i+2]))
		i += 2
	}
	return string(b)
}

// strtol reads a whole string as C's strtol(s, &end, 10) with *end == 0
// required: leading white space, an optional sign, decimal digits.
func strtol(s string) (int, bool) {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	t := strings.TrimPrefix(strings.TrimPrefix(s, "+"), "-")
	if len(t) < len(s)-1 || t == "" || strings.Trim(t, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 32)
	return int(n), err == nil
}
