package check

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// lookupHost returns the addresses of host. With a --resolver it asks
// that server only, for A and AAAA records: Go's resolver would answer
// from /etc/hosts first, and Debian's "127.0.1.1 <hostname>" line is not
// what the world sees. Without one it uses the system's resolution, as a
// client on this machine would. Errors are *net.DNSError, as
// net.Resolver's are.
func (r *run) lookupHost(ctx context.Context, host string) ([]string, error) {
	if r.opt.Resolver == "" {
		return r.resolver.LookupHost(ctx, host)
	}
	name := dns.Fqdn(host)
	server := ResolverAddr(r.opt.Resolver)
	var addrs []string
	var errs []error
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		got, err := exchangeAddrs(ctx, server, name, qtype)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		addrs = append(addrs, got...)
	}
	if len(addrs) > 0 {
		return addrs, nil
	}
	for _, err := range errs {
		var de *net.DNSError
		if errors.As(err, &de) && !de.IsNotFound {
			return nil, err // the server failed: that says more than "no records"
		}
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, Server: server, IsNotFound: true}
}

// exchangeAddrs asks server for name's records of qtype (over TCP when
// the UDP answer is truncated) and returns the addresses in the answer,
// following the CNAMEs a recursive server puts before them.
func exchangeAddrs(ctx context.Context, server, name string, qtype uint16) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	in, _, err := new(dns.Client).ExchangeContext(ctx, m, server)
	if err == nil && in.Truncated {
		in, _, err = (&dns.Client{Net: "tcp"}).ExchangeContext(ctx, m, server)
	}
	if err != nil {
		var ne net.Error
		return nil, &net.DNSError{Err: err.Error(), Name: name, Server: server,
			IsTimeout: errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)}
	}
	switch in.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, &net.DNSError{Err: "no such host", Name: name, Server: server, IsNotFound: true}
	default:
		return nil, &net.DNSError{Err: "server answered " + dns.RcodeToString[in.Rcode], Name: name, Server: server}
	}
	want := []string{strings.ToLower(name)}
	var addrs []string
	for _, rr := range in.Answer {
		owner := strings.ToLower(rr.Header().Name)
		if !slices.Contains(want, owner) {
			continue
		}
		switch rr := rr.(type) {
		case *dns.CNAME:
			want = append(want, strings.ToLower(rr.Target))
		case *dns.A:
			addrs = append(addrs, rr.A.String())
		case *dns.AAAA:
			addrs = append(addrs, rr.AAAA.String())
		}
	}
	return addrs, nil
}
