// Package listening tells which TCP ports accept connections on this host,
// from the kernel's socket tables: the tcp and tcp6 files of
// /proc/self/net.
//
// It exists so that a port the configuration names but the running server
// has not opened yet (master.cf edited, no "postfix reload" yet) is not
// advertised to mail clients.
//
// The tables are those of the reading process's network namespace: a
// process in another namespace (a container, PrivateNetwork=) sees its own
// sockets, not the mail servers'. /proc/self/net is read rather than
// /proc/net because systemd's ProcSubset=pid hides /proc/net (a symbolic
// link to self/net at the top of /proc) while /proc/self stays; and
// ProtectProc=invisible hides other processes only. The sock_diag netlink
// interface would filter by state in the kernel, but a unit with
// RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 cannot open AF_NETLINK.
package listening

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// DefaultDir is the directory whose tcp and tcp6 files list the sockets of
// the calling process's network namespace.
const DefaultDir = "/proc/self/net"

// A Table is the set of TCP sockets in the LISTEN state at the time it was
// read. The zero value lists nothing.
type Table struct {
	sockets []netip.AddrPort // local addresses, sorted
	all     []Socket         // with their inodes, as read (Read only)
}

// A Socket is a listening socket: its local address and the inode that
// names it while it exists. A server that restarts listens on a new
// socket, with a new inode, at the same address.
type Socket struct {
	Addr  netip.AddrPort
	Inode uint64
}

// Read reads dir/tcp and dir/tcp6. A missing tcp6 is an empty one (a kernel
// without IPv6); any other error, from either file, is returned.
func Read(dir string) (*Table, error) {
	var all []Socket
	for _, name := range []string{"tcp", "tcp6"} {
		p := filepath.Join(dir, name)
		f, err := os.Open(p)
		if err != nil {
			if name == "tcp6" && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		socks, err := ParseSockets(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s%w", p, err)
		}
		all = append(all, socks...)
	}
	addrs := make([]netip.AddrPort, len(all))
	for i, s := range all {
		addrs[i] = s.Addr
	}
	t := NewTable(addrs)
	t.all = all
	return t, nil
}

// Listeners returns the inodes of the sockets listening on port, on any
// address, sorted: a different list at another time means the server
// listening there was restarted (or another took its place). Only a
// Table from Read knows inodes.
func (t *Table) Listeners(port int) []uint64 {
	if t == nil {
		return nil
	}
	var out []uint64
	for _, s := range t.all {
		if int(s.Addr.Port()) == port {
			out = append(out, s.Inode)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// NewTable returns a Table of the listening sockets given.
func NewTable(sockets []netip.AddrPort) *Table {
	s := slices.Clone(sockets)
	slices.SortFunc(s, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return &Table{sockets: slices.Compact(s)}
}

// Len returns the number of listening sockets.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.sockets)
}

// Sockets returns the listening sockets' local addresses, sorted.
func (t *Table) Sockets() []netip.AddrPort {
	if t == nil {
		return nil
	}
	return slices.Clone(t.sockets)
}

// Bound reports whether some socket listens on port, on any address,
// loopback included.
func (t *Table) Bound(port int) bool {
	return t.find(port, func(netip.Addr) bool { return true })
}

// Reachable reports whether a client on another host can connect to port:
// some socket listens on it on an address other than loopback. A wildcard
// address (0.0.0.0, or :: which with IPV6_V6ONLY off takes IPv4 too)
// counts, and so does a specific address; 127.0.0.0/8, ::1 and their
// IPv4-mapped forms do not.
func (t *Table) Reachable(port int) bool {
	return t.find(port, func(a netip.Addr) bool { return !a.Unmap().IsLoopback() })
}

func (t *Table) find(port int, ok func(netip.Addr) bool) bool {
	if t == nil {
		return false
	}
	for _, s := range t.sockets {
		if int(s.Port()) == port && ok(s.Addr()) {
			return true
		}
	}
	return false
}

// stateListen is TCP_LISTEN in the kernel's st column.
const stateListen = "0A"

// Parse reads one socket table in the format of /proc/net/tcp or
// /proc/net/tcp6 and returns the local addresses of the sockets in the
// LISTEN state. The first line is the header; every other line is
//
//	sl: local_address rem_address st ...
//
// with the address as the hexadecimal 32-bit words of the address as the
// kernel stores them (network order, printed as native integers) and the
// port as a hexadecimal number. An error names the line (":3: ...").
func Parse(r io.Reader) ([]netip.AddrPort, error) {
	socks, err := ParseSockets(r)
	if err != nil {
		return nil, err
	}
	out := make([]netip.AddrPort, len(socks))
	for i, s := range socks {
		out[i] = s.Addr
	}
	return out, nil
}

// ParseSockets is Parse with each socket's inode, the tenth column (0
// when a line lacks it).
func ParseSockets(r io.Reader) ([]Socket, error) {
	var out []Socket
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), 64<<10)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			if !strings.Contains(text, "local_address") {
				return nil, fmt.Errorf(":1: not a socket table header: %.40q", text)
			}
			continue
		}
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		if len(f) < 4 || !strings.HasSuffix(f[0], ":") {
			return nil, fmt.Errorf(":%d: want \"sl: local remote st ...\", got %.60q", line, text)
		}
		if f[3] != stateListen {
			continue
		}
		ap, err := parseAddrPort(f[1])
		if err != nil {
			return nil, fmt.Errorf(":%d: local address %q: %w", line, f[1], err)
		}
		var inode uint64
		if len(f) > 9 {
			if inode, err = strconv.ParseUint(f[9], 10, 64); err != nil {
				return nil, fmt.Errorf(":%d: inode %.24q: not a number", line, f[9])
			}
		}
		out = append(out, Socket{Addr: ap, Inode: inode})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf(":%d: %w", line+1, err)
	}
	return out, nil
}

// parseAddrPort decodes "0100007F:1F90" (127.0.0.1:8080 on a little-endian
// machine) or its 32-hex-digit IPv6 form.
func parseAddrPort(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok || len(p) != 4 {
		return netip.AddrPort{}, errors.New("want ADDRESS:PORT in hexadecimal")
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, errors.New("bad port")
	}
	if len(a) != 8 && len(a) != 32 {
		return netip.AddrPort{}, errors.New("want 8 or 32 hexadecimal digits")
	}
	raw, err := hex.DecodeString(a)
	if err != nil {
		return netip.AddrPort{}, errors.New("bad hexadecimal")
	}
	// Each 32-bit word was printed as the native integer holding the
	// network-order bytes: write it back the same way.
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(addr, uint16(port)), nil
}
