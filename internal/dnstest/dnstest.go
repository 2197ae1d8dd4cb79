// Package dnstest serves zone-file text from an authoritative DNS server on
// loopback (UDP and TCP, one port), for tests of code that resolves names
// through a configurable resolver. The zone can be replaced while the
// server runs, to turn a healthy setup into a broken one.
//
// It uses github.com/miekg/dns, the DNS library CoreDNS is built on.
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// A Server answers from the zones it was given last.
type Server struct {
	Addr string // host:port, UDP and TCP

	mu      sync.RWMutex
	records map[string][]dns.RR // by lower-case owner name with the trailing dot
	apexes  []string            // zone apexes, for NXDOMAIN vs. NODATA and the SOA
	soa     map[string]dns.RR
}

// Start serves zone (zone-file text, $ORIGIN allowed) on 127.0.0.1 until
// t ends.
func Start(t testing.TB, zone string) *Server {
	t.Helper()
	s := &Server{}
	s.SetZone(t, zone)
	var udp net.PacketConn
	var tcp net.Listener
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close() // the TCP port is taken: try another
			continue
		}
		udp, tcp = pc, l
		break
	}
	if udp == nil {
		t.Fatal("dnstest: no free UDP+TCP port pair on 127.0.0.1")
	}
	s.Addr = udp.LocalAddr().String()
	servers := []*dns.Server{
		{PacketConn: udp, Handler: s},
		{Listener: tcp, Handler: s},
	}
	for _, srv := range servers {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
	}
	t.Cleanup(func() {
		for _, srv := range servers {
			srv.Shutdown()
		}
	})
	return s
}

// SetZone replaces what the server answers with zone; every SOA in it
// starts a zone of its own.
func (s *Server) SetZone(t testing.TB, zone string) {
	t.Helper()
	records := map[string][]dns.RR{}
	soa := map[string]dns.RR{}
	var apexes []string
	zp := dns.NewZoneParser(strings.NewReader(zone), ".", "test.zone")
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		name := strings.ToLower(rr.Header().Name)
		records[name] = append(records[name], rr)
		if rr.Header().Rrtype == dns.TypeSOA {
			apexes = append(apexes, name)
			soa[name] = rr
		}
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("dnstest: %v\n%s", err, zone)
	}
	s.mu.Lock()
	s.records, s.apexes, s.soa = records, apexes, soa
	s.mu.Unlock()
}

// ServeDNS answers one query: the records of the name and type asked,
// following CNAMEs inside the zones; NXDOMAIN for a name without any
// record (or names below it), NODATA otherwise.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	s.mu.RLock()
	defer s.mu.RUnlock()
	name := strings.ToLower(q.Name)
	for range 8 { // CNAME chain, bounded
		rrs, exists := s.records[name]
		var cname dns.RR
		for _, rr := range rrs {
			switch {
			case rr.Header().Rrtype == q.Qtype || q.Qtype == dns.TypeANY:
				m.Answer = append(m.Answer, rr)
			case rr.Header().Rrtype == dns.TypeCNAME:
				cname = rr
			}
		}
		if cname != nil && q.Qtype != dns.TypeCNAME {
			m.Answer = append(m.Answer, cname)
			name = strings.ToLower(cname.(*dns.CNAME).Target)
			continue
		}
		if len(m.Answer) == 0 {
			if !exists && !s.hasBelow(name) {
				m.Rcode = dns.RcodeNameError
			}
			if apex := s.apexOf(name); apex != "" {
				m.Ns = append(m.Ns, s.soa[apex])
			} else if len(m.Answer) == 0 && !exists {
				m.Rcode = dns.RcodeRefused // not our zone
			}
		}
		break
	}
	w.WriteMsg(m)
}

// hasBelow reports whether some record lives below name (an empty
// non-terminal such as _tcp.example.com).
func (s *Server) hasBelow(name string) bool {
	for n := range s.records {
		if strings.HasSuffix(n, "."+name) {
			return true
		}
	}
	return false
}

// apexOf returns the zone name lies in, or "".
func (s *Server) apexOf(name string) string {
	best := ""
	for _, a := range s.apexes {
		if (name == a || strings.HasSuffix(name, "."+a)) && len(a) > len(best) {
			best = a
		}
	}
	return best
}

// String describes the server for test logs.
func (s *Server) String() string { return fmt.Sprintf("dnstest %s", s.Addr) }
