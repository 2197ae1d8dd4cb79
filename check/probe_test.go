package check

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/discover"
)

// blackhole returns the address of a UDP socket that reads queries and
// never answers.
func blackhole(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().String()
}

// fakeServer accepts connections on loopback and runs script on each
// (inside TLS when cert is not nil); it returns the address.
func fakeServer(t testing.TB, cert *tls.Certificate, script func(c net.Conn, r *bufio.Reader)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if cert != nil {
					c = tls.Server(c, &tls.Config{Certificates: []tls.Certificate{*cert}})
				}
				script(c, bufio.NewReader(c))
			}()
		}
	}()
	return l.Addr().String()
}

// endpoint returns the snapshot's endpoint of protocol on port.
func endpoint(t testing.TB, snap *discover.Snapshot, protocol string, port int) discover.Endpoint {
	t.Helper()
	for _, e := range snap.Endpoints() {
		if e.Protocol == protocol && e.Port == port {
			return e
		}
	}
	t.Fatalf("no %s endpoint on port %d in %+v", protocol, port, snap.Endpoints())
	return discover.Endpoint{}
}

// TestProbeFaults runs the endpoint probe against scripted servers that
// each get one thing wrong.
func TestProbeFaults(t *testing.T) {
	pki := newPKI(t)
	dir := t.TempDir()
	chain, key, cert := pki.leaf(t, 90*24*time.Hour, allNames...)
	writeRoot(t, dir, chain, key)
	snap, _ := buildSnapshot(t, dir)

	closed := func() string { // a port nothing listens on
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}

	tests := []struct {
		name     string
		protocol string
		port     int
		addr     func() string
		detail   string
		fix      string
	}{
		{"refused", "smtp", 587, closed, "connection refused", "start Postfix (systemctl start postfix) and check that it listens on port 587"},
		{"no STARTTLS", "imap", 143, func() string {
			return fakeServer(t, nil, func(c net.Conn, r *bufio.Reader) {
				c.Write([]byte("* OK ready\r\n"))
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					tag, _, _ := strings.Cut(l, " ")
					c.Write([]byte("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + " OK done\r\n"))
				}
			})
		}, "does not offer STARTTLS", "enable TLS for port 143 in Dovecot"},
		{"plain text on implicit TLS port", "imap", 993, func() string {
			return fakeServer(t, nil, func(c net.Conn, r *bufio.Reader) {
				c.Write([]byte("* OK ready, in plain text\r\n"))
				r.ReadString('\n')
			})
		}, "answers in plain text, not TLS", "make port 993 implicit TLS (ssl = yes in its inet_listener"},
		{"silent STARTTLS port", "pop3", 110, func() string {
			return fakeServer(t, nil, func(c net.Conn, r *bufio.Reader) { r.ReadString('\n') })
		}, "no greeting within 300ms: the port seems to wait for a TLS handshake", "make port 110 a STARTTLS port, or advertise it as implicit TLS"},
		{"no AUTH after TLS", "smtp", 465, func() string {
			return fakeServer(t, &cert, func(c net.Conn, r *bufio.Reader) {
				c.Write([]byte("220 mail.example.test ESMTP\r\n"))
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.HasPrefix(l, "EHLO") {
						c.Write([]byte("250-mail.example.test\r\n250 PIPELINING\r\n"))
					}
				}
			})
		}, "no password mechanism offered after TLS (none)", "set -o smtpd_sasl_auth_enable=yes for this service in master.cf"},
		{"not a POP3 server", "pop3", 995, func() string {
			return fakeServer(t, &cert, func(c net.Conn, r *bufio.Reader) {
				c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
				r.ReadString('\n')
			})
		}, `greeting "SSH-2.0-OpenSSH_9.2", want "+OK"`, "check that Dovecot, not another program, listens on port 995"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := endpoint(t, snap, tt.protocol, tt.port)
			r, err := newRun(Options{Snapshot: snap, Roots: pki.pool, Timeout: 300 * time.Millisecond,
				Connect: map[string]string{testHost + ":" + strconv.Itoa(tt.port): tt.addr()}})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			results := r.probe(context.Background(), e)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("probe took %v", d)
			}
			got := results[len(results)-1]
			if got.Status != Fail || !strings.Contains(got.Detail, tt.detail) || !strings.Contains(got.Fix, tt.fix) {
				t.Errorf("probe(%s) = %+v\nwant FAIL, detail with %q, fix with %q", endpointName(e), got, tt.detail, tt.fix)
			}
		})
	}
}
