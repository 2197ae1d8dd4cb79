// Package webroute holds what the web server readers (sources/nginx,
// sources/apache) share: the request paths SOGo answers behind them, the
// backend addresses their proxy directives name, and how their include
// globs treat hidden files.
package webroute

import (
	"net/netip"
	"path"
	"strconv"
	"strings"
)

// The request paths SOGo answers behind iRedMail's sogo.tmpl and SOGo's
// sample Apache configuration.
const (
	PathSOGo    = "/SOGo/"
	PathDAV     = "/SOGo/dav/"
	PathEAS     = "/Microsoft-Server-ActiveSync"
	PathCalDAV  = "/.well-known/caldav"
	PathCardDAV = "/.well-known/carddav"
)

// WithPort adds the port def to a backend address that has none
// ("127.0.0.1" → "127.0.0.1:def", "[::1]" → "[::1]:def"); a unix socket
// ("unix:/path") is returned as it is.
func WithPort(addr, def string) string {
	if strings.HasPrefix(addr, "unix:") {
		return addr
	}
	if strings.HasPrefix(addr, "[") {
		if strings.Contains(addr, "]:") {
			return addr
		}
		return addr + ":" + def
	}
	if strings.Contains(addr, ":") {
		return addr
	}
	return addr + ":" + def
}

// IsLoopback reports whether the backend address ("host:port" or
// "unix:/path") is on this host: a unix socket, localhost, 127.0.0.0/8
// or ::1.
func IsLoopback(addr string) bool {
	if strings.HasPrefix(addr, "unix:") {
		return true
	}
	host := addr
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		if _, err := strconv.Atoi(addr[i+1:]); err == nil {
			host = addr[:i]
		}
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// GlobVisible drops from a glob's matches those nginx's glob(3) and
// httpd's apr_fnmatch (APR_FNM_PERIOD) would not give: a name starting
// with '.' is matched only by a pattern component starting with '.'.
func GlobVisible(pattern string, matches []string) []string {
	pc := strings.Split(path.Clean(pattern), "/")
	var out []string
next:
	for _, m := range matches {
		mc := strings.Split(m, "/")
		if len(mc) == len(pc) {
			for i := range mc {
				if strings.HasPrefix(mc[i], ".") && !strings.HasPrefix(pc[i], ".") {
					continue next
				}
			}
		}
		out = append(out, m)
	}
	return out
}
