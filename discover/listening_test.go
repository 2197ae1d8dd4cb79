package discover

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/listening"
)

// writeSocketTables writes tcp and tcp6 files as the kernel does, listing
// the sockets given ("0.0.0.0:25", "[::]:993") as listening, plus an
// established connection that must not count.
func writeSocketTables(t *testing.T, socks ...string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]*strings.Builder{"tcp": {}, "tcp6": {}}
	files["tcp"].WriteString("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
	files["tcp6"].WriteString("  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
	files["tcp"].WriteString("   0: 020200C0:A952 507100CB:01BB 01 00000000:00000000 02:000004CB 00000000     0        0 13927 2 0000000020ec840e 22 4 1 34 146\n")
	for i, s := range socks {
		ap := netip.MustParseAddrPort(s)
		name, zero := "tcp6", strings.Repeat("0", 32)
		if ap.Addr().Is4() {
			name, zero = "tcp", strings.Repeat("0", 8)
		}
		var hexAddr string
		a := ap.Addr().AsSlice()
		for j := 0; j < len(a); j += 4 {
			hexAddr += fmt.Sprintf("%08X", binary.NativeEndian.Uint32(a[j:]))
		}
		fmt.Fprintf(files[name], "%4d: %s:%04X %s:0000 0A 00000000:00000000 00:00000000 00000000     0        0 %d 1 0000000000000000 100 0 0 10 0\n",
			i+1, hexAddr, ap.Port(), zero, 1000+i)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func endpointPorts(eps []Endpoint) []string {
	var out []string
	for _, e := range eps {
		out = append(out, fmt.Sprintf("%s/%d", e.Protocol, e.Port))
	}
	return out
}

func TestHoldBackUnlistened(t *testing.T) {
	all := []string{"imap/993", "imap/143", "pop3/995", "pop3/110", "smtp/465", "smtp/587"}
	running := []string{"0.0.0.0:25", "[::]:25", "[::]:993", "0.0.0.0:143", "[::]:995", "0.0.0.0:110", "[::]:465", "0.0.0.0:587"}
	without := func(drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(running), func(s string) bool {
			return slices.ContainsFunc(drop, func(d string) bool { return strings.HasSuffix(s, ":"+d) })
		})
	}
	tests := []struct {
		name      string
		sockets   []string // nil: no tables at all
		endpoints []string
		warning   string // a warning that must be there ("" none about listening)
	}{
		{"everything listens", running, all, ""},
		{"submission not reloaded yet", without("587"), slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == "smtp/587" }),
			"Postfix smtp port 587 (/etc/postfix/master.cf:2): nothing listens on it, so it is not advertised until `postfix reload`"},
		{"imaps not reloaded yet", without("993"), all[1:],
			"Dovecot imap port 993 (/etc/dovecot/dovecot.conf:1): nothing listens on it, so it is not advertised until `doveadm reload`"},
		{"loopback only", append(without("465"), "127.0.0.1:465", "[::1]:465"), slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == "smtp/465" }),
			"Postfix smtp port 465 (/etc/postfix/master.cf:5): it listens on loopback only"},
		{"IPv4-mapped loopback only", append(without("465"), "[::ffff:127.0.0.1]:465"), slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == "smtp/465" }),
			"it listens on loopback only"},
		{"a specific address counts", append(without("993"), "192.0.2.10:993"), all, ""},
		{"Dovecot stopped", without("993", "143", "995", "110"), all,
			"none of Dovecot's ports (110, 143, 993, 995) is listening: Dovecot is stopped, or runs in another network namespace"},
		{"Postfix stopped", without("25", "465", "587"), all,
			"none of Postfix's ports (25, 465, 587) is listening: Postfix is stopped"},
		{"another namespace", []string{}, all, "no TCP socket listens in mailautoconf's network namespace"},
		{"unreadable", nil, all, "cannot tell which ports are listening (open "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc := filepath.Join(t.TempDir(), "none")
			if tt.sockets != nil {
				proc = writeSocketTables(t, tt.sockets...)
			}
			s, err := Build(context.Background(), Options{Root: writeRoot(t, baseHost(t)), ProcNet: proc})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got := endpointPorts(s.Endpoints())
			if !slices.Equal(got, tt.endpoints) {
				t.Errorf("endpoints = %v, want %v", got, tt.endpoints)
			}
			var about []string
			for _, w := range s.Warnings() {
				if strings.Contains(w, "listen") {
					about = append(about, w)
				}
			}
			switch {
			case tt.warning == "" && len(about) > 0:
				t.Errorf("warnings about listening: %q, want none", about)
			case tt.warning != "" && !slices.ContainsFunc(about, func(w string) bool { return strings.Contains(w, tt.warning) }):
				t.Errorf("warnings about listening: %q, want one containing %q", about, tt.warning)
			}
			if held := len(all) - len(got); len(s.HeldBack()) != held {
				t.Errorf("HeldBack = %v, want %d endpoints", s.HeldBack(), held)
			}
		})
	}
}

// TestHoldBackUnderRoot: a copy of a host's files is not this host, so
// without ProcNet nothing is checked and nothing said.
func TestHoldBackUnderRoot(t *testing.T) {
	s := mustBuild(t, baseHost(t))
	if got := endpointPorts(s.Endpoints()); len(got) != 6 {
		t.Errorf("endpoints = %v, want all six", got)
	}
	for _, w := range s.Warnings() {
		if strings.Contains(w, "listen") {
			t.Errorf("warning under --root: %q", w)
		}
	}
}

// freePort returns a TCP port nothing listens on (one the kernel just
// gave out and took back).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestHoldBackLive reads this process's real socket tables: Dovecot's
// IMAP port listens (a listener the test opens), its IMAPS port does not
// and is held back; once a listener opens it, WatchListening sees it.
func TestHoldBackLive(t *testing.T) {
	if _, err := os.Stat(filepath.Join(listening.DefaultDir, "tcp")); err != nil {
		testtool.Missing(t, "no socket tables: %v", err)
	}
	imap, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer imap.Close()
	imapPort, imapsPort := imap.Addr().(*net.TCPAddr).Port, freePort(t)
	h := baseHost(t)
	h["/etc/dovecot/dovecot.conf"] = strings.Replace(h["/etc/dovecot/dovecot.conf"], "protocols = imap pop3", "protocols = imap", 1)
	h["/etc/dovecot/dovecot.conf"] += fmt.Sprintf(`service imap-login {
  inet_listener imap {
    port = %d
  }
  inet_listener imaps {
    port = %d
    ssl = yes
  }
}
`, imapPort, imapsPort)
	s, err := Build(context.Background(), Options{Root: writeRoot(t, h), ProcNet: listening.DefaultDir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var imapPorts []int
	for _, e := range s.Endpoints() {
		if e.Protocol == "imap" {
			imapPorts = append(imapPorts, e.Port)
		}
	}
	if !slices.Equal(imapPorts, []int{imapPort}) {
		t.Fatalf("IMAP endpoints on ports %v, want only %d (%d held back)\nwarnings: %q", imapPorts, imapPort, imapsPort, s.Warnings())
	}
	if held := s.HeldBack(); len(held) != 1 || held[0].Port != imapsPort {
		t.Errorf("HeldBack = %v, want the IMAPS endpoint on %d", held, imapsPort)
	}
	want := fmt.Sprintf("Dovecot imap port %d (/etc/dovecot/dovecot.conf:", imapsPort)
	if !slices.ContainsFunc(s.Warnings(), func(w string) bool { return strings.HasPrefix(w, want) && strings.Contains(w, "doveadm reload") }) {
		t.Errorf("warnings %q lack %q ... doveadm reload", s.Warnings(), want)
	}

	// WatchListening tells once the held-back port listens, and not before.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan struct{}, 10)
	go WatchListening(ctx, 20*time.Millisecond, func() *Snapshot { return s }, func() { changed <- struct{}{} })
	select {
	case <-changed:
		t.Fatal("WatchListening told of a change before the port listened")
	case <-time.After(200 * time.Millisecond):
	}
	imaps, err := net.Listen("tcp", fmt.Sprintf(":%d", imapsPort))
	if err != nil {
		t.Fatal(err)
	}
	defer imaps.Close()
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("WatchListening did not tell that the held-back port listens")
	}
	select {
	case <-changed:
		t.Error("WatchListening told twice for the same Snapshot")
	case <-time.After(200 * time.Millisecond):
	}

	// A rebuild now advertises it.
	s2, err := Build(context.Background(), Options{Root: writeRoot(t, h), ProcNet: listening.DefaultDir})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if len(s2.HeldBack()) != 0 || !slices.ContainsFunc(s2.Endpoints(), func(e Endpoint) bool { return e.Port == imapsPort }) {
		t.Errorf("after the port opened: endpoints %v, held back %v", endpointPorts(s2.Endpoints()), s2.HeldBack())
	}
}

// TestWatchListeningForgetsReplaced: once WatchListening has told about a
// Snapshot and that Snapshot is replaced, nothing of WatchListening keeps
// it alive: with a million domains it would be some 200 MB held until the
// next Snapshot is told about (found by the review of issue 11).
func TestWatchListeningForgetsReplaced(t *testing.T) {
	h := baseHost(t)
	root := writeRoot(t, h)
	without587 := []string{"0.0.0.0:25", "[::]:993", "0.0.0.0:143", "[::]:995", "0.0.0.0:110", "[::]:465"}
	proc := writeSocketTables(t, without587...)
	a, err := Build(context.Background(), Options{Root: root, ProcNet: proc})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.HeldBack()) != 1 {
		t.Fatalf("HeldBack = %v, want submission", a.HeldBack())
	}
	var cur atomic.Pointer[Snapshot]
	cur.Store(a)
	wa := weak.Make(a)
	a = nil
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan struct{}, 1)
	go WatchListening(ctx, 5*time.Millisecond, cur.Load, func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	// postfix reload opens 587: WatchListening tells.
	all := writeSocketTables(t, append(without587, "0.0.0.0:587")...)
	for _, name := range []string{"tcp", "tcp6"} {
		b, _ := os.ReadFile(filepath.Join(all, name))
		os.WriteFile(filepath.Join(proc, name), b, 0o644)
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("WatchListening did not tell")
	}
	// The rebuild replaces the Snapshot; the new one holds nothing back,
	// so WatchListening has nothing new to tell about.
	b, err := Build(context.Background(), Options{Root: root, ProcNet: proc})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cur.Store(b)
	time.Sleep(50 * time.Millisecond) // some polls
	for range 5 {
		runtime.GC()
	}
	if wa.Value() != nil {
		t.Error("the replaced Snapshot is still reachable while WatchListening runs")
	}
}

// TestSocketsChanged: the refresh's cheap look at the socket tables sees
// Dovecot stop (its IMAPS port closes) and start again, and nothing when
// nothing changed.
func TestSocketsChanged(t *testing.T) {
	root := writeRoot(t, baseHost(t))
	running := []string{"0.0.0.0:25", "[::]:993", "0.0.0.0:143", "[::]:995", "0.0.0.0:110", "[::]:465", "0.0.0.0:587"}
	proc := writeSocketTables(t, running...)
	s, err := Build(context.Background(), Options{Root: root, ProcNet: proc})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if changed, p := s.SocketsChanged(); changed {
		t.Fatalf("SocketsChanged with nothing changed: port %d", p)
	}
	replace := func(socks ...string) {
		dir := writeSocketTables(t, socks...)
		for _, name := range []string{"tcp", "tcp6"} {
			b, _ := os.ReadFile(filepath.Join(dir, name))
			os.WriteFile(filepath.Join(proc, name), b, 0o644)
		}
	}
	replace(slices.DeleteFunc(slices.Clone(running), func(s string) bool { return s == "[::]:993" })...)
	if changed, p := s.SocketsChanged(); !changed || p != 993 {
		t.Errorf("SocketsChanged with 993 closed = %v, %d", changed, p)
	}
	replace(running...)
	if changed, _ := s.SocketsChanged(); changed {
		t.Error("SocketsChanged once 993 listens again")
	}
	if under, err := Build(context.Background(), Options{Root: root}); err == nil {
		defer under.Close()
		if changed, _ := under.SocketsChanged(); changed || len(under.ports) != 0 {
			t.Error("a Snapshot of files under --root looks at this host's sockets")
		}
	}
}
