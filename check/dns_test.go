package check

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/dnstest"
)

// TestDNSZones serves a good zone and broken ones from a DNS server on
// loopback and checks that each fault is named with the right fix.
func TestDNSZones(t *testing.T) {
	pki := newPKI(t)
	dir := t.TempDir()
	chain, key, _ := pki.leaf(t, 90*24*time.Hour, allNames...)
	writeRoot(t, dir, chain, key)
	snap, _ := buildSnapshot(t, dir)
	good := goodZone(t, snap)
	srv := dnstest.Start(t, good)

	const imaps = "_imaps._tcp.example.test. 3600 IN SRV 0 1 993 mail.example.test."
	tests := []struct {
		name   string
		zone   string
		result string // the result that must carry the fault ("" = all ok)
		status Status
		detail string // substrings of Detail and Fix
		fix    string
	}{
		{name: "healthy", zone: good},
		{"missing SRV", without(good, "_imaps._tcp"), "SRV _imaps._tcp.example.test", Fail,
			"missing", `publish "` + imaps + `"`},
		{"wrong port", strings.Replace(good, "0 1 993 mail", "0 1 994 mail", 1), "SRV _imaps._tcp.example.test", Fail,
			"wrong port: 994, the server listens on 993", `replace the records: publish "` + imaps + `"`},
		{"wrong SRV target", strings.Replace(good, "0 1 993 mail.example.test.", "0 1 993 imap.example.net.", 1), "SRV _imaps._tcp.example.test", Fail,
			"wrong target: want mail.example.test. port 993", "replace the records"},
		{"stale extra SRV", good + "_imaps._tcp.example.test. 3600 IN SRV 5 1 993 old.example.test.\n", "SRV _imaps._tcp.example.test", Fail,
			"also names old.example.test. port 993", "replace the records"},
		{"service said not offered", strings.Replace(good, "30 1 110 mail.example.test.", "0 0 0 .", 1), "SRV _pop3._tcp.example.test", Fail,
			"says the service is not offered", "_pop3._tcp.example.test. 3600 IN SRV 30 1 110 mail.example.test."},
		{"wrong CNAME target", strings.Replace(good, "CNAME mail.example.test.", "CNAME web.example.test.", 1) + "web.example.test. 60 IN A 192.0.2.80\n",
			"CNAME autoconfig.example.test", Fail,
			"wrong target: CNAME web.example.test. (192.0.2.80), not mail.example.test.", `change it: publish "autoconfig.example.test. 3600 IN CNAME mail.example.test."`},
		{"missing CNAME", without(good, "autodiscover.example.test. 3600 IN CNAME"), "CNAME autodiscover.example.test", Fail,
			"missing", `publish "autodiscover.example.test. 3600 IN CNAME mail.example.test."`},
		{"no MX", without(good, " MX "), "MX example.test", Fail,
			"missing", `publish "example.test. 3600 IN MX 10 mail.example.test."`},
		{"no host address", without(good, "mail.example.test. 60 IN A"), "A/AAAA mail.example.test", Fail,
			"does not resolve", "publish A (and AAAA) records for mail.example.test."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.SetZone(t, tt.zone)
			r, err := newRun(Options{Snapshot: snap, Resolver: srv.Addr, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			results := runJobs(context.Background(), 8, r.dnsJobs())
			if tt.result == "" {
				if _, warn, fail := Count(results); warn+fail > 0 {
					t.Fatalf("healthy zone: %d warnings, %d failures:\n%s", warn, fail, dump(results))
				}
				return
			}
			got := find(t, results, tt.result)
			if got.Status != tt.status || !strings.Contains(got.Detail, tt.detail) || !strings.Contains(got.Fix, tt.fix) {
				t.Errorf("%s = %+v, want status %s, detail with %q, fix with %q", tt.result, got, tt.status, tt.detail, tt.fix)
			}
			// Only the broken name fails (a missing host address breaks
			// the CNAMEs too).
			for _, r := range results {
				if r.Status != OK && r.Name != tt.result && !strings.HasPrefix(r.Name, "CNAME") {
					t.Errorf("unexpected %s: %+v", r.Status, r)
				}
			}
		})
	}
}

// closedPort returns a loopback UDP address nothing listens on: a port
// the kernel gave out and took back. A query to it is refused at once
// (ICMP port unreachable).
func closedPort(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// TestDeadResolver checks that a resolver that does not answer (it drops
// queries, or nothing listens on its port) is one failure that says so,
// within the timeout: not one "missing" per record, nor one failing probe
// per discovery URL or mail port. A probe whose name --connect maps to an
// address still runs.
func TestDeadResolver(t *testing.T) {
	pki := newPKI(t)
	dir := t.TempDir()
	chain, key, _ := pki.leaf(t, 90*24*time.Hour, allNames...)
	writeRoot(t, dir, chain, key)
	snap, _ := buildSnapshot(t, dir)
	closed := closedPort(t)

	tests := []struct {
		name     string
		resolver string
		connect  map[string]string
		detail   string
		others   []string // the results besides "resolver"
	}{
		{"drops queries", blackhole(t), nil, "is unreachable: no answer within 300ms; not checked: the DNS records, and the 9 discovery URLs and mail ports whose names it would resolve", nil},
		{"port closed", closed, nil, "resolver " + closed + " is unreachable: connection refused (no DNS server on that port); not checked: the DNS records, and the 9", nil},
		{"IMAPS by address", closed, map[string]string{testHost + ":993": closed}, "and the 8 discovery URLs", []string{"IMAP mail.example.test:993 (implicit TLS)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			results, err := Run(context.Background(), Options{Snapshot: snap, Resolver: tt.resolver, Connect: tt.connect, Timeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Run with a dead resolver took %v", d)
			}
			t.Logf("%v\n%s", time.Since(start), dump(results))
			got := find(t, results, "resolver")
			if got.Status != Fail || !strings.Contains(got.Detail, tt.detail) || !strings.Contains(got.Fix, "--resolver") {
				t.Errorf("resolver = %+v, want FAIL, detail with %q, a --resolver hint", got, tt.detail)
			}
			var others []string
			for _, r := range results {
				if r.Name != "resolver" {
					others = append(others, r.Name)
				}
			}
			if !slices.Equal(others, tt.others) {
				t.Errorf("results besides the resolver: %q, want %q", others, tt.others)
			}
			if !Failed(results) {
				t.Error("Failed = false, want true")
			}
		})
	}
}
