package listening

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

// FuzzParse feeds arbitrary text to Parse: it must not panic, and what it
// returns, written back as a table, must parse to the same sockets.
// Seeds besides these are in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte(tcpHeader + "\n" + tcpLoopback + "\n" + tcpWildcard + "\n" + tcpEstablished + "\n"))
	f.Add([]byte(tcp6Header + "\n" + tcp6Wildcard + "\n" + tcp6Mapped + "\n"))
	f.Add([]byte(tcpHeader + "\n   0: 0100007F 0 0A\n"))     // no port
	f.Add([]byte(tcpHeader + "\n   0: 0100007F:1:0 0 0A\n")) // port with a colon
	f.Add([]byte("local_address\n0: :: 0A"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		var b bytes.Buffer
		b.WriteString(tcp6Header + "\n")
		for i, s := range got {
			fmt.Fprintf(&b, "%4d: %s 00000000000000000000000000000000:0000 0A 0\n", i, format(s))
		}
		again, err := Parse(&b)
		if err != nil {
			t.Fatalf("Parse of Parse's own result: %v\n%s", err, b.Bytes())
		}
		if !slices.Equal(again, got) {
			t.Fatalf("round trip: %v, then %v", got, again)
		}
	})
}

// format writes a socket's address as the kernel does.
func format(s netip.AddrPort) string {
	a := s.Addr().AsSlice()
	var b []byte
	for i := 0; i < len(a); i += 4 {
		b = fmt.Appendf(b, "%08X", binary.NativeEndian.Uint32(a[i:]))
	}
	return fmt.Sprintf("%s:%04X", b, s.Port())
}
