package dnsrecords

import (
	"bytes"
	"context"
	"flag"
	"github.com/mailautoconf/mailautoconf/internal/groupwaretest"
	"github.com/mailautoconf/mailautoconf/internal/zonetest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

var update = flag.Bool("update", false, "rewrite testdata/golden files with the current output")

// sogoGolden is the zone of the SOGo host below, reviewed.
var sogoGolden = filepath.Join("..", "testdata", "golden", "iredmail-sogo.dns.zone")

// sogoSnapshot lays iRedMail's nginx tree with SOGo over a corpus set, as
// discover's tests do, and builds its snapshot with SOGo's real answers
// without credentials (401 on /SOGo/dav/ and on ActiveSync), 404
// elsewhere, unless probe stands in for another answer.
func sogoSnapshot(t *testing.T, probe discover.ProbeFunc) *discover.Snapshot {
	t.Helper()
	snap := groupwaretest.Corpus(t, "../testdata/corpus/handmade-static-domains", probe)
	return snap
}

// TestDAVRecords: a host proven to serve CalDAV and CardDAV gets, for each
// domain, the RFC 6764 SRV and TXT records after the mail ones; one where
// the probe finds nothing (SOGo down) gets exactly the records of a host
// without groupware.
func TestDAVRecords(t *testing.T) {
	snap := sogoSnapshot(t, nil)
	if _, ok := snap.Service(discover.ServiceCalDAV); !ok {
		t.Fatalf("no CalDAV service: groupware %+v", snap.Groupware())
	}
	p, err := For(snap, []string{"example.net"})
	if err != nil {
		t.Fatal(err)
	}
	got := lines(p.Domains[0])
	wantTail := []string{
		"_submission._tcp.example.net. 3600 IN SRV 0 1 587 mail.example.net.",
		"_caldavs._tcp.example.net. 3600 IN SRV 0 1 443 mail.example.net.",
		`_caldavs._tcp.example.net. 3600 IN TXT "path=/SOGo/dav/"`,
		"_carddavs._tcp.example.net. 3600 IN SRV 0 1 443 mail.example.net.",
		`_carddavs._tcp.example.net. 3600 IN TXT "path=/SOGo/dav/"`,
	}
	if len(got) < len(wantTail) || !slices.Equal(got[len(got)-len(wantTail):], wantTail) {
		t.Errorf("records =\n%s\nwant them to end with\n%s", strings.Join(got, "\n"), strings.Join(wantTail, "\n"))
	}
	if !slices.ContainsFunc(p.Notes, func(n string) bool { return strings.Contains(n, "/.well-known/caldav") }) {
		t.Errorf("notes %q say nothing of /.well-known/caldav", p.Notes)
	}

	down := sogoSnapshot(t, func(ctx context.Context, addr, method, path string) (int, error) { return 502, nil })
	if g := down.Groupware(); len(g.Services) != 0 {
		t.Fatalf("SOGo answering 502: services %+v", g.Services)
	}
	pd, err := For(down, []string{"example.net"})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines(pd.Domains[0]) {
		if strings.Contains(l, "dav") {
			t.Errorf("host without proven groupware: record %s", l)
		}
	}
	if len(lines(pd.Domains[0])) != len(got)-4 {
		t.Errorf("host without proven groupware has %d records, want %d", len(lines(pd.Domains[0])), len(got)-4)
	}
}

func TestQuoteTXT(t *testing.T) {
	for in, want := range map[string]string{
		"path=/SOGo/dav/": `"path=/SOGo/dav/"`,
		`a"b\c`:           `"a\"b\\c"`,
		"":                `""`,
	} {
		if got := (Record{Type: "TXT", Text: in}).Data(); got != want {
			t.Errorf("TXT %q: Data() = %s, want %s", in, got, want)
		}
	}
}

// TestDAVZoneGolden writes the SOGo host's zone, compares it with the
// reviewed golden file, and has named-checkzone load each domain's block.
func TestDAVZoneGolden(t *testing.T) {
	snap := sogoSnapshot(t, nil)
	p, err := For(snap, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := p.WriteZone(&b); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(sogoGolden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(sogoGolden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("zone differs from %s (review, then go test -update):\n%s", sogoGolden, b.String())
	}

	bin := testtool.Need(t, "named-checkzone")
	blocks := zonetest.Blocks(b.String())
	if len(blocks) != len(p.Domains) {
		t.Fatalf("%d zone blocks, %d domains", len(blocks), len(p.Domains))
	}
	for _, d := range p.Domains {
		block := blocks[d.Name]
		if !strings.Contains(block, "_caldavs._tcp."+d.Name+".") || !strings.Contains(block, `IN TXT   "path=/SOGo/dav/"`) {
			t.Errorf("%s block lacks the CalDAV records:\n%s", d.Name, block)
		}
		if out, err := zonetest.Check(t, bin, d.Name, p.Host, block); err != nil {
			t.Errorf("named-checkzone %s: %v\n%s", d.Name, err, out)
		}
	}
	// The wrapper really checks: an SRV record without a port is refused.
	bad := "_caldavs._tcp.example.net. 3600 IN SRV 0 1 mail.example.net.\n"
	if _, err := zonetest.Check(t, bin, "example.net", p.Host, bad); err == nil {
		t.Error("named-checkzone accepted an SRV record without a port")
	}
}
