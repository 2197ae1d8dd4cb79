package check

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/dnstest"
)

// TestLookupHostAsksOnlyTheResolver: with --resolver, a name is what that
// server says, never /etc/hosts (Debian's "127.0.1.1 <hostname>" line made
// check report a loopback address as the host's); CNAMEs are followed.
func TestLookupHostAsksOnlyTheResolver(t *testing.T) {
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	srv := dnstest.Start(t, `$ORIGIN example.net.
@ 3600 IN SOA ns.example.net. hostmaster.example.net. 1 3600 600 86400 60
mail 3600 IN A 192.0.2.10
mail 3600 IN AAAA 2001:db8::10
alias 3600 IN CNAME mail.example.net.
`)
	r := &run{opt: Options{Resolver: srv.Addr, Timeout: 2 * time.Second}, resolver: newResolver(srv.Addr)}
	ctx := context.Background()
	got, err := r.lookupHost(ctx, "alias.example.net.")
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"192.0.2.10", "2001:db8::10"}) {
		t.Errorf("lookupHost(alias.example.net.) = %q, %v; want mail's A and AAAA through the CNAME", got, err)
	}
	// Names /etc/hosts knows on every machine, which the server does not
	// serve (it refuses them, as an authoritative server does).
	for _, name := range []string{"localhost", hostname, "localhost.", hostname + "."} {
		got, err := r.lookupHost(ctx, name)
		var de *net.DNSError
		if len(got) > 0 || !errors.As(err, &de) {
			t.Errorf("lookupHost(%s) = %q, %v; want the resolver's answer (none), not /etc/hosts", name, got, err)
		}
	}
	// An unreachable resolver is an error that says so, not "not found".
	dead := &run{opt: Options{Resolver: "127.0.0.1:1", Timeout: time.Second}}
	if _, err := dead.lookupHost(ctx, "mail.example.net."); err == nil || strings.Contains(err.Error(), "no such host") {
		t.Errorf("lookupHost through a dead resolver: %v; want the resolver's failure", err)
	}
}
