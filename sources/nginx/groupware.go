package nginx

import (
	"fmt"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/webroute"
)

// The request paths SOGo answers behind iRedMail's sogo.tmpl.
const (
	PathSOGo    = webroute.PathSOGo
	PathDAV     = webroute.PathDAV
	PathEAS     = webroute.PathEAS
	PathCalDAV  = webroute.PathCalDAV
	PathCardDAV = webroute.PathCardDAV
)

// A Proxy is a path that a location hands to a backend with proxy_pass.
type Proxy struct {
	Path     string     // the request path asked about, e.g. PathDAV
	Location hostfs.Pos // the location block that handles it
	Match    string     // that location's arguments, e.g. "^~ /SOGo/"
	Pos      hostfs.Pos // the proxy_pass directive
	Target   string     // proxy_pass's argument as written
	// Upstream names the upstream block Target refers to, at UpstreamPos;
	// empty when Target names an address itself.
	Upstream    string
	UpstreamPos hostfs.Pos
	// Addrs are the backend addresses: "host:port" (port filled in from
	// the scheme when absent) or "unix:/path". Empty when Target holds a
	// variable, which only a request can resolve.
	Addrs []string
	// URI is the path part of Target ("/SOGo/Microsoft-Server-ActiveSync"),
	// which replaces the matched location prefix; "" for none.
	URI string
	TLS bool // Target is https://
	// Loopback is true when every address is on this host: 127.0.0.0/8,
	// ::1, localhost or a unix socket.
	Loopback bool
}

// A WellKnown is what a /.well-known/caldav or carddav request gets.
type WellKnown struct {
	Path   string
	Status int        // a redirect status (301, 302, ...), or 0 when proxied
	Target string     // the redirect's target, $host and the like kept as text
	Pos    hostfs.Pos // the rewrite or return
	Proxy  *Proxy     // set when the path is proxied instead
}

// A Vhost is an HTTPS server block and the groupware paths it serves.
// A nil field means that path is not served there; Missing tells why.
type Vhost struct {
	*Server
	// Default is true for the server nginx picks for a request whose Host
	// matches no server_name on one of its TLS addresses: the one with
	// default_server, or else the first listed there.
	Default bool
	SOGo    *Proxy // PathSOGo, SOGo's web interface
	DAV     *Proxy // PathDAV, CalDAV and CardDAV
	EAS     *Proxy // PathEAS, Exchange ActiveSync
	CalDAV  *WellKnown
	CardDAV *WellKnown
	// Missing says, per path not served, what the path ends in instead,
	// with positions; Notes lists what the reading passed over.
	Missing []string
	Notes   []string
}

// Groupware is where an nginx configuration proxies SOGo.
type Groupware struct {
	Vhosts []*Vhost // every server with a TLS listen, in order
}

// Default returns the default HTTPS vhost on port 443, else the first
// default HTTPS vhost, else nil.
func (g *Groupware) Default() *Vhost {
	var first *Vhost
	for _, v := range g.Vhosts {
		if !v.Default {
			continue
		}
		for _, l := range v.Listens {
			if l.SSL && l.Port == 443 {
				return v
			}
		}
		if first == nil {
			first = v
		}
	}
	return first
}

// FindGroupware looks in every HTTPS server for SOGo's paths: which
// location handles PathSOGo, PathDAV and PathEAS and whether it proxies
// them, and what PathCalDAV and PathCardDAV answer.
func (c *Config) FindGroupware() *Groupware {
	upstreams := c.upstreams()
	servers := c.Servers()
	defaults := make(map[string]*Server) // address:port -> default server
	for _, s := range servers {
		for _, l := range s.Listens {
			if cur, ok := defaults[l.key()]; !ok || (l.Default && !isDefaultOn(cur, l.key())) {
				defaults[l.key()] = s
			}
		}
	}
	g := &Groupware{}
	for _, s := range servers {
		if !s.HTTPS() {
			continue
		}
		v := &Vhost{Server: s}
		for _, l := range s.Listens {
			if l.SSL && defaults[l.key()] == s {
				v.Default = true
			}
		}
		v.SOGo = v.proxy(PathSOGo, upstreams)
		v.DAV = v.proxy(PathDAV, upstreams)
		v.EAS = v.proxy(PathEAS, upstreams)
		v.CalDAV = v.wellKnown(PathCalDAV, upstreams)
		v.CardDAV = v.wellKnown(PathCardDAV, upstreams)
		g.Vhosts = append(g.Vhosts, v)
	}
	return g
}

func isDefaultOn(s *Server, key string) bool {
	for _, l := range s.Listens {
		if l.key() == key && l.Default {
			return true
		}
	}
	return false
}

// proxy routes path and returns the proxy that serves it, or nil with
// the reason added to Missing.
func (v *Vhost) proxy(path string, ups map[string]*Directive) *Proxy {
	r := v.Route(path)
	v.Notes = append(v.Notes, r.Notes...)
	switch {
	case r.Status != 0:
		v.Missing = append(v.Missing, fmt.Sprintf("%s: answered %d %s by %s", path, r.Status, r.Target, r.Pos))
		return nil
	case r.Location == nil:
		v.Missing = append(v.Missing, fmt.Sprintf("%s: no location of the server at %s matches", path, v.Pos))
		return nil
	}
	p := proxyOf(path, r.Location, ups)
	if p == nil {
		v.Missing = append(v.Missing, fmt.Sprintf("%s: location %s at %s has no proxy_pass", path, strings.Join(r.Location.Args, " "), r.Location.Pos))
	}
	return p
}

// wellKnown routes path and returns its redirect or proxy, or nil.
func (v *Vhost) wellKnown(path string, ups map[string]*Directive) *WellKnown {
	r := v.Route(path)
	v.Notes = append(v.Notes, r.Notes...)
	if r.Status != 0 {
		if isRedirect(r.Status) {
			return &WellKnown{Path: path, Status: r.Status, Target: r.Target, Pos: r.Pos}
		}
		v.Missing = append(v.Missing, fmt.Sprintf("%s: answered %d by %s", path, r.Status, r.Pos))
		return nil
	}
	if r.Location != nil {
		if p := proxyOf(path, r.Location, ups); p != nil {
			return &WellKnown{Path: path, Proxy: p, Pos: p.Pos}
		}
		v.Missing = append(v.Missing, fmt.Sprintf("%s: location %s at %s neither redirects nor proxies", path, strings.Join(r.Location.Args, " "), r.Location.Pos))
		return nil
	}
	v.Missing = append(v.Missing, fmt.Sprintf("%s: no location of the server at %s matches", path, v.Pos))
	return nil
}

// proxyOf reads the proxy_pass of location loc, or returns nil.
func proxyOf(path string, loc *Directive, ups map[string]*Directive) *Proxy {
	var pp *Directive
	for _, d := range loc.Block {
		if d.Name == "proxy_pass" && len(d.Args) == 1 {
			pp = d
		}
	}
	if pp == nil {
		return nil
	}
	p := &Proxy{Path: path, Location: loc.Pos, Match: strings.Join(loc.Args, " "), Pos: pp.Pos, Target: pp.Args[0]}
	scheme, rest, ok := strings.Cut(p.Target, "://")
	if !ok {
		return p
	}
	p.TLS = scheme == "https"
	defPort := "80"
	if p.TLS {
		defPort = "443"
	}
	if strings.Contains(p.Target, "$") {
		return p // resolved per request
	}
	if strings.HasPrefix(rest, "unix:") {
		// http://unix:/path/to.sock:/uri
		sock, uri := rest, ""
		if i := strings.IndexByte(rest[len("unix:"):], ':'); i >= 0 {
			sock, uri = rest[:len("unix:")+i], rest[len("unix:")+i+1:]
		}
		p.Addrs, p.URI, p.Loopback = []string{sock}, uri, true
		return p
	}
	host, uri := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		host, uri = rest[:i], rest[i:]
	}
	p.URI = uri
	if u, ok := ups[strings.ToLower(host)]; ok {
		p.Upstream, p.UpstreamPos = u.Args[0], u.Pos
		for _, d := range u.Block {
			if d.Name == "server" && len(d.Args) > 0 {
				p.Addrs = append(p.Addrs, webroute.WithPort(d.Args[0], "80"))
			}
		}
	} else {
		p.Addrs = []string{webroute.WithPort(host, defPort)}
	}
	p.Loopback = len(p.Addrs) > 0
	for _, a := range p.Addrs {
		if !webroute.IsLoopback(a) {
			p.Loopback = false
		}
	}
	return p
}

// upstreams returns the http context's upstream blocks by lower-case name.
func (c *Config) upstreams() map[string]*Directive {
	m := make(map[string]*Directive)
	for _, h := range c.Directives {
		if h.Name != "http" {
			continue
		}
		for _, d := range h.Block {
			if d.Name == "upstream" && d.IsBlock && len(d.Args) == 1 {
				m[strings.ToLower(d.Args[0])] = d
			}
		}
	}
	return m
}
