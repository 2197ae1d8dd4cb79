package check

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
)

var errRefused = syscall.ECONNREFUSED

// newResolver returns the resolver for addr ("" for the system's): Go's
// own, sending every query to addr over UDP, or TCP when an answer is
// truncated.
func newResolver(addr string) *net.Resolver {
	if addr == "" {
		return &net.Resolver{PreferGo: true}
	}
	server := ResolverAddr(addr)
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		},
	}
}

// ResolverAddr adds the DNS port to an address without one.
func ResolverAddr(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(strings.Trim(addr, "[]"), "53")
}

// ParseConnect parses one --connect value, HOST[:PORT]=ADDR[:PORT], into
// m.
func ParseConnect(m map[string]string, v string) error {
	from, to, ok := strings.Cut(v, "=")
	if !ok || from == "" || to == "" {
		return fmt.Errorf("connect %q: want HOST[:PORT]=ADDR[:PORT]", v)
	}
	m[strings.ToLower(strings.TrimSuffix(from, "."))] = to
	return nil
}

// target returns the address to dial for host:port: the Connect override
// for host:port, else for host, else host:port itself.
func (r *run) target(host string, port string) string {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, key := range []string{net.JoinHostPort(host, port), host} {
		to, ok := r.opt.Connect[key]
		if !ok {
			continue
		}
		if _, _, err := net.SplitHostPort(to); err == nil {
			return to
		}
		return net.JoinHostPort(strings.Trim(to, "[]"), port)
	}
	return net.JoinHostPort(host, port)
}

// resolves reports whether reaching host:port needs the resolver: the
// --connect overrides do not name an IP address for it.
func (r *run) resolves(host, port string) bool {
	h, _, err := net.SplitHostPort(r.target(host, port))
	return err != nil || net.ParseIP(h) == nil
}

// dial connects to host:port through the Connect overrides, resolving
// names with the run's resolver (with --resolver, that server alone: see
// lookupHost).
func (r *run) dial(ctx context.Context, host, port string) (net.Conn, error) {
	target := r.target(host, port)
	h, p, err := net.SplitHostPort(target)
	if err != nil || r.opt.Resolver == "" || net.ParseIP(h) != nil {
		d := net.Dialer{Resolver: r.resolver}
		return d.DialContext(ctx, "tcp", target)
	}
	addrs, err := r.lookupHost(ctx, h)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err}
	}
	var d net.Dialer
	var errs []error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(a, p))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// dialAddr is dial for a host:port string, as http.Transport calls it.
func (r *run) dialAddr(ctx context.Context, _, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	return r.dial(ctx, host, port)
}
