package main

import (
	"fmt"
	"net"
	"strings"

	"github.com/coreos/go-systemd/v22/activation"

	"github.com/mailautoconf/mailautoconf/serve"
)

// Socket names from mailautoconf.socket's FileDescriptorName=.
const (
	socketHTTP  = "http"  // plain HTTP, for the web server in front
	socketHTTPS = "https" // TLS with the mail host's certificates
)

// sockets are the listeners serve answers on.
type sockets struct {
	http, https []net.Listener
	activated   bool // passed by systemd
}

func (s *sockets) all() []net.Listener {
	return append(append([]net.Listener{}, s.http...), s.https...)
}

func (s *sockets) close() {
	for _, l := range s.all() {
		l.Close() // already closed after Shutdown: harmless
	}
}

// activatedSockets returns the sockets systemd passed (socket activation),
// by name: "https" ones serve TLS, every other name (and an unnamed fd) is
// plain HTTP. It also unsets LISTEN_*, so nothing we start inherits them.
// A passed fd that is not a stream socket is skipped.
func activatedSockets() (*sockets, error) {
	named, err := activation.ListenersWithNames()
	if err != nil {
		return nil, fmt.Errorf("socket activation: %w", err)
	}
	s := &sockets{}
	for name, ls := range named {
		for _, l := range ls {
			if l == nil {
				continue
			}
			s.activated = true
			if name == socketHTTPS {
				s.https = append(s.https, l)
			} else {
				s.http = append(s.http, l)
			}
		}
	}
	return s, nil
}

// listenSockets opens the --listen (plain HTTP) and --listen-tls addresses,
// for running without systemd.
func listenSockets(plain, tlsAddrs []string) (*sockets, error) {
	s := &sockets{}
	for _, group := range []struct {
		addrs []string
		out   *[]net.Listener
	}{{plain, &s.http}, {tlsAddrs, &s.https}} {
		for _, addr := range group.addrs {
			l, err := serve.Listen(addr)
			if err != nil {
				s.close()
				return nil, err
			}
			*group.out = append(*group.out, l)
		}
	}
	return s, nil
}

// describe lists the sockets for the log: "http=unix:/run/x.sock https=[::]:443".
func (s *sockets) describe() string {
	var parts []string
	for _, g := range []struct {
		name string
		ls   []net.Listener
	}{{socketHTTP, s.http}, {socketHTTPS, s.https}} {
		for _, l := range g.ls {
			a := l.Addr()
			addr := a.String()
			if a.Network() == "unix" {
				addr = "unix:" + addr
			}
			parts = append(parts, g.name+"="+addr)
		}
	}
	return strings.Join(parts, " ")
}
