package listening

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

// The header lines and sockets below were read from /proc/self/net/tcp and
// tcp6 of a Linux 6.18 x86-64 host while a Python process listened on
// [::]:38433, [::1]:37317, 127.0.0.1:42745 and [::ffff:127.0.0.1]:40841,
// next to an sshd-like wildcard listener on port 2024 and some
// established and TIME_WAIT connections. Trailing blanks are the kernel's.
const (
	tcpHeader  = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     "
	tcp6Header = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"

	tcpLoopback    = "   0: 0100007F:A6F9 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21272 1 000000002be9e310 100 0 0 10 0                     "
	tcpWildcard    = "   1: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1131 1 0000000054facd9f 100 0 0 10 0                      "
	tcpTimeWait    = "   2: 020200C0:80B2 507100CB:0050 06 00000000:00000000 03:0000000D 00000000     0        0 0 3 000000002094a25b                                      "
	tcpEstablished = "   6: 020200C0:A952 507100CB:01BB 01 00000000:00000000 02:000004CB 00000000     0        0 13927 2 0000000020ec840e 22 4 1 34 146                    "
	tcp6Loopback   = "   0: 00000000000000000000000001000000:91C5 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21271 1 0000000064147fdc 100 0 0 10 0"
	tcp6Wildcard   = "   1: 00000000000000000000000000000000:9621 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21270 1 0000000040c3d079 100 0 0 10 0"
	tcp6Mapped     = "   2: 0000000000000000FFFF00000100007F:9F89 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21273 1 00000000f330da0d 100 0 0 10 0"
)

func littleEndian(t *testing.T) {
	t.Helper()
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the captured lines are a little-endian machine's")
	}
}

func TestParse(t *testing.T) {
	littleEndian(t)
	ap := netip.MustParseAddrPort
	tests := []struct {
		name  string
		lines []string
		want  []netip.AddrPort
	}{
		{"tcp", []string{tcpHeader, tcpLoopback, tcpWildcard, tcpTimeWait, tcpEstablished},
			[]netip.AddrPort{ap("127.0.0.1:42745"), ap("0.0.0.0:2024")}},
		{"tcp6", []string{tcp6Header, tcp6Loopback, tcp6Wildcard, tcp6Mapped},
			[]netip.AddrPort{ap("[::1]:37317"), ap("[::]:38433"), ap("[::ffff:127.0.0.1]:40841")}},
		{"no listener", []string{tcpHeader, tcpTimeWait, tcpEstablished}, nil},
		{"header only", []string{tcpHeader}, nil},
		{"empty", nil, nil},
		{"blank line", []string{tcpHeader, "", tcpWildcard}, []netip.AddrPort{ap("0.0.0.0:2024")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(strings.Join(tt.lines, "\n")))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Parse = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  string
	}{
		{"no header", []string{tcpWildcard}, ":1: not a socket table header"},
		{"short line", []string{tcpHeader, "   0: 00000000:07E8 0A"}, `:2: want "sl: local remote st ...`},
		{"no colon after sl", []string{tcpHeader, "   0 00000000:07E8 00000000:0000 0A"}, ":2: want"},
		{"odd address", []string{tcpHeader, "   0: 0000000:07E8 00000000:0000 0A"}, ":2: local address \"0000000:07E8\": want 8 or 32"},
		{"bad hex", []string{tcpHeader, "   0: 0000000G:07E8 00000000:0000 0A"}, ":2: local address \"0000000G:07E8\": bad hexadecimal"},
		{"bad port", []string{tcpHeader, tcpWildcard, "   1: 00000000:07X8 00000000:0000 0A"}, ":3: local address \"00000000:07X8\": bad port"},
		{"no port", []string{tcpHeader, "   0: 00000000 00000000:0000 0A"}, "want ADDRESS:PORT"},
		{"long line", []string{tcpHeader, tcpWildcard, strings.Repeat("0", 70000)}, ":3: bufio.Scanner: token too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(strings.Join(tt.lines, "\n")))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse = %v, %v; want error containing %q", got, err, tt.want)
			}
		})
	}
}

func TestReachable(t *testing.T) {
	ap := netip.MustParseAddrPort
	tab := NewTable([]netip.AddrPort{
		ap("0.0.0.0:25"),
		ap("[::]:993"), // with IPV6_V6ONLY off this takes IPv4 too
		ap("192.0.2.7:587"),
		ap("127.0.0.1:10025"),
		ap("[::1]:4190"),
		ap("[::ffff:127.0.0.1]:8470"),
		ap("[2001:db8::1]:465"),
	})
	tests := []struct {
		port             int
		bound, reachable bool
	}{
		{25, true, true},
		{993, true, true},
		{587, true, true},
		{465, true, true},
		{10025, true, false},
		{4190, true, false},
		{8470, true, false},
		{143, false, false},
	}
	for _, tt := range tests {
		if got := tab.Bound(tt.port); got != tt.bound {
			t.Errorf("Bound(%d) = %v, want %v", tt.port, got, tt.bound)
		}
		if got := tab.Reachable(tt.port); got != tt.reachable {
			t.Errorf("Reachable(%d) = %v, want %v", tt.port, got, tt.reachable)
		}
	}
	var none *Table
	if none.Reachable(25) || none.Bound(25) || none.Len() != 0 {
		t.Errorf("nil Table lists something")
	}
}

func TestReadFiles(t *testing.T) {
	littleEndian(t)
	dir := t.TempDir()
	write := func(name string, lines ...string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Without tcp6 (a kernel without IPv6) the table is tcp's.
	write("tcp", tcpHeader, tcpWildcard, tcpEstablished)
	tab, err := Read(dir)
	if err != nil {
		t.Fatalf("Read without tcp6: %v", err)
	}
	if got, want := tab.Sockets(), []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:2024")}; !slices.Equal(got, want) {
		t.Errorf("Read without tcp6 = %v, want %v", got, want)
	}
	write("tcp6", tcp6Header, tcp6Wildcard)
	if tab, err = Read(dir); err != nil || tab.Len() != 2 || !tab.Reachable(38433) {
		t.Errorf("Read = %v, %v; want 2 sockets with 38433 reachable", tab.Sockets(), err)
	}
	// An error names the file and line.
	write("tcp6", tcp6Header, "   0: 00:0000 00:0 0A")
	if _, err := Read(dir); err == nil || !strings.HasPrefix(err.Error(), filepath.Join(dir, "tcp6")+":2: ") {
		t.Errorf("Read of a bad tcp6 = %v, want an error at %s:2", err, filepath.Join(dir, "tcp6"))
	}
	// A missing tcp is an error: nothing can be said.
	if _, err := Read(t.TempDir()); err == nil {
		t.Errorf("Read of an empty directory succeeded")
	}
}

// TestReadLive opens listeners on free ports and finds them in this
// process's own tables, then no longer finds them once closed.
func TestReadLive(t *testing.T) {
	if _, err := os.Stat(filepath.Join(DefaultDir, "tcp")); err != nil {
		testtool.Missing(t, "no socket table: %v", err)
	}
	type listener struct {
		network, addr string
		reachable     bool
	}
	var ls []listener
	ls = append(ls, listener{"tcp4", "127.0.0.1:0", false}, listener{"tcp4", "0.0.0.0:0", true})
	if l, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		l.Close()
		ls = append(ls, listener{"tcp6", "[::1]:0", false}, listener{"tcp", "[::]:0", true})
	}
	for _, tt := range ls {
		l, err := net.Listen(tt.network, tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		tab, err := Read(DefaultDir)
		if err != nil {
			l.Close()
			t.Fatalf("Read(%s): %v", DefaultDir, err)
		}
		if !tab.Bound(port) || tab.Reachable(port) != tt.reachable {
			t.Errorf("listening on %s: Bound(%d) = %v, Reachable = %v; want true, %v", l.Addr(), port, tab.Bound(port), tab.Reachable(port), tt.reachable)
		}
		l.Close()
		if tab, err = Read(DefaultDir); err != nil || tab.Bound(port) {
			t.Errorf("after closing %s: Bound(%d) = %v (%v), want false", l.Addr(), port, tab.Bound(port), err)
		}
	}
}

// BenchmarkRead measures one look at this process's socket tables, what
// discover.WatchListening costs per poll while an endpoint is held back.
func BenchmarkRead(b *testing.B) {
	if _, err := os.Stat(filepath.Join(DefaultDir, "tcp")); err != nil {
		testtool.Missing(b, "no socket table: %v", err)
	}
	for b.Loop() {
		if _, err := Read(DefaultDir); err != nil {
			b.Fatal(err)
		}
	}
}
