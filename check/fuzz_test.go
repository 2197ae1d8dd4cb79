package check

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/discover"
)

// scriptConn is a connection whose reads come from a fixed byte string;
// writes vanish.
type scriptConn struct {
	net.Conn // nil: only the methods below are used
	r        *bytes.Reader
}

func (c *scriptConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *scriptConn) Close() error                { return nil }
func (c *scriptConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (c *scriptConn) RemoteAddr() net.Addr        { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (c *scriptConn) SetDeadline(time.Time) error { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error {
	return nil
}
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzConversation feeds arbitrary server output to the IMAP, POP3 and
// SMTP conversations: they must end (the input runs out) without
// panicking, and a success must name the greeting.
func FuzzConversation(f *testing.F) {
	f.Add([]byte("* OK ready\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\na3 OK\r\n"))
	f.Add([]byte("+OK hi\r\n+OK\r\nSASL PLAIN LOGIN\r\nUSER\r\n.\r\n"))
	f.Add([]byte("220-mail ESMTP\r\n220 more\r\n250-mail\r\n250-AUTH=PLAIN LOGIN\r\n250 AUTH PLAIN\r\n"))
	f.Add([]byte("220\r\n250\r\n"))
	f.Add([]byte("2\r\n"))
	f.Add([]byte("* OK\r\na1 OK\r\n* CAPABILITY STARTTLS\r\na1 OK\r\na2 OK\r\n"))
	f.Add(bytes.Repeat([]byte("x"), 9000))
	r := &run{opt: Options{Timeout: time.Second}}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, proto := range []string{"imap", "pop3", "smtp"} {
			for _, sec := range []discover.Security{discover.SecurityTLS, discover.SecuritySTARTTLS} {
				conn := &scriptConn{r: bytes.NewReader(data)}
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				s := &session{r: r, ctx: ctx, e: discover.Endpoint{Protocol: proto, Host: "mail.example.com", Port: 1, Security: sec},
					conn: conn, br: bufio.NewReader(conn)}
				var summary string
				var err error
				switch proto {
				case "imap":
					summary, _, err = s.imap()
				case "pop3":
					summary, _, err = s.pop3()
				case "smtp":
					summary, _, err = s.smtp()
				}
				cancel()
				if err == nil && summary == "" {
					t.Fatalf("%s %s: success without a greeting on %q", proto, sec, data)
				}
			}
		}
	})
}

// FuzzAnswers feeds arbitrary documents to the answer comparisons.
func FuzzAnswers(f *testing.F) {
	f.Add([]byte(`<clientConfig><emailProvider><incomingServer type="imap"><hostname>mail.example.com</hostname><port>993</port><socketType>SSL</socketType></incomingServer></emailProvider></clientConfig>`))
	f.Add([]byte(`<Autodiscover><Response><Account><Protocol><Type>IMAP</Type><Server>mail.example.com</Server><Port>993</Port></Protocol></Account></Response></Autodiscover>`))
	f.Add([]byte(`<Autodiscover><Response><Error><ErrorCode>500</ErrorCode></Error></Response></Autodiscover>`))
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY a "b">]><clientConfig>&a;</clientConfig>`))
	eps := []discover.Endpoint{{Protocol: "imap", Host: "mail.example.com", Port: 993, Security: discover.SecurityTLS}}
	f.Fuzz(func(t *testing.T, data []byte) {
		compareAutoconfig(data, eps)
		comparePOX(data, eps)
	})
}
