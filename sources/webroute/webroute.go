// Package webroute holds what the web server readers (sources/nginx,
// sources/apache) share: the request paths SOGo answers behind them, and
// the backend addresses their proxy directives name.
package webroute

import (
	"net/netip"
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
