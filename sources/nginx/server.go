package nginx

import (
	"strconv"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// A Listen is one address a server listens on (a listen directive).
type Listen struct {
	// Addr is the address without the port: "" for every address
	// ("listen 443" or "*:443"), "127.0.0.1", "[::]", or "unix:/path".
	Addr string
	Port int // 0 for a unix socket
	// SSL is the ssl parameter (or a server-wide "ssl on;"), Default the
	// default_server parameter (or its old name, default).
	SSL, Default bool
	Pos          hostfs.Pos
}

// A Server is one server block of the http context.
type Server struct {
	Pos     hostfs.Pos
	Names   []string // server_name arguments, in order
	Listens []Listen
	block   []*Directive
}

// HTTPS reports whether the server listens with TLS anywhere.
func (s *Server) HTTPS() bool {
	for _, l := range s.Listens {
		if l.SSL {
			return true
		}
	}
	return false
}

// Servers returns the server blocks of the http context, in order.
func (c *Config) Servers() []*Server {
	var out []*Server
	for _, h := range c.Directives {
		if h.Name != "http" || !h.IsBlock {
			continue
		}
		for _, d := range h.Block {
			if d.Name == "server" && d.IsBlock {
				out = append(out, newServer(d))
			}
		}
	}
	return out
}

func newServer(d *Directive) *Server {
	s := &Server{Pos: d.Pos, block: d.Block}
	sslOn := false
	for _, c := range d.Block {
		switch c.Name {
		case "server_name":
			s.Names = append(s.Names, c.Args...)
		case "listen":
			if len(c.Args) > 0 {
				s.Listens = append(s.Listens, parseListen(c))
			}
		case "ssl":
			sslOn = len(c.Args) == 1 && c.Args[0] == "on"
		}
	}
	if len(s.Listens) == 0 {
		// nginx's default when a server has no listen (as root: *:80).
		s.Listens = []Listen{{Port: 80, Pos: d.Pos}}
	}
	if sslOn {
		for i := range s.Listens {
			s.Listens[i].SSL = true
		}
	}
	return s
}

// parseListen reads "listen address[:port] [params]" and "listen port".
func parseListen(d *Directive) Listen {
	l := Listen{Pos: d.Pos}
	a := d.Args[0]
	switch {
	case strings.HasPrefix(a, "unix:"):
		l.Addr = a
	case strings.HasPrefix(a, "["):
		host, port, ok := strings.Cut(a[1:], "]")
		l.Addr, l.Port = "["+host+"]", 80
		if ok && strings.HasPrefix(port, ":") {
			l.Port, _ = strconv.Atoi(port[1:])
		}
	default:
		if n, err := strconv.Atoi(a); err == nil {
			l.Port = n
			break
		}
		host, port, ok := strings.Cut(a, ":")
		l.Addr, l.Port = host, 80
		if ok {
			l.Port, _ = strconv.Atoi(port)
		}
		if l.Addr == "*" {
			l.Addr = ""
		}
	}
	for _, p := range d.Args[1:] {
		switch p {
		case "ssl":
			l.SSL = true
		case "default_server", "default":
			l.Default = true
		}
	}
	return l
}

// key is the address:port a listen binds, as nginx groups servers by it.
func (l Listen) key() string { return l.Addr + ":" + strconv.Itoa(l.Port) }
