package discover

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/mailautoconf/mailautoconf/sources/apache"
	"github.com/mailautoconf/mailautoconf/sources/listening"
	"github.com/mailautoconf/mailautoconf/sources/nginx"
	"github.com/mailautoconf/mailautoconf/sources/webroute"
)

// probeTimeout bounds one probe of a groupware backend: SOGo on loopback
// answers in milliseconds, and a build must not wait long on a hung one.
const probeTimeout = 2 * time.Second

// findGroupware decides which groupware services the host serves. A
// service is advertised only when every signal agrees: the web server
// (nginx, or Apache where nginx is not installed) routes its path to a
// backend on this host (Service.Source: the location's file:line), for
// ActiveSync SOGo's bundle is installed, and the backend answers a
// request without credentials there with a status that proves the path
// exists (401 or a success), not 404 or a gateway error. What was looked
// for and not found goes to Groupware.Missing, for show; a host without a
// web server looks for nothing.
func (b *builder) findGroupware(ctx context.Context) {
	site, err := b.readWebServer()
	switch {
	case err != nil:
		b.warn("groupware not advertised: %v", withHint(err))
		b.snap.groupware.Missing = []string{fmt.Sprintf("CalDAV, CardDAV, ActiveSync: the web server's configuration cannot be read: %v", err)}
		return
	case site == nil:
		return
	case site.at == "":
		b.snap.groupware.Missing = []string{fmt.Sprintf("CalDAV, CardDAV, ActiveSync: %s's %s has no HTTPS server for %s", site.server, site.conf, b.snap.hostname)}
		return
	}
	probe := b.opt.Probe
	if probe == nil && b.opt.Root.Dir() == "/" {
		probe = HTTPProbe
	}
	g := &b.snap.groupware

	// CalDAV and CardDAV: SOGo serves both under /SOGo/dav/.
	dav := service{names: "CalDAV, CardDAV", route: site.dav, path: webroute.PathDAV, method: "PROPFIND", site: site}
	if ev, why := b.prove(ctx, dav, probe); why != "" {
		g.Missing = append(g.Missing, why)
	} else {
		for _, proto := range []string{ServiceCalDAV, ServiceCardDAV} {
			g.Services = append(g.Services, Service{
				Protocol: proto, Host: b.snap.hostname, Port: site.port, Path: webroute.PathDAV,
				Source: site.dav.location, Evidence: ev,
			})
		}
	}

	// ActiveSync: the location, the bundle, and SOGo answering there.
	eas := service{names: "ActiveSync", route: site.eas, path: webroute.PathEAS, method: "OPTIONS", site: site}
	bundle, bundleWhy := b.findEASBundle()
	switch ev, why := b.prove(ctx, eas, probe); {
	case why != "":
		g.Missing = append(g.Missing, why)
	case bundleWhy != "":
		g.Missing = append(g.Missing, "ActiveSync: "+bundleWhy)
	default:
		ev = append(ev, "SOGo's ActiveSync bundle is installed: "+bundle)
		g.Services = append(g.Services, Service{
			Protocol: ServiceActiveSync, Host: b.snap.hostname, Port: site.port, Path: webroute.PathEAS,
			Source: site.eas.location, Evidence: ev,
		})
	}
}

// A webSite is the HTTPS server (nginx's server block, Apache's virtual
// host) that answers for the host name clients are told, and where it
// sends SOGo's paths.
type webSite struct {
	server, conf string // "nginx" or "Apache", and its main file
	at           string // the server block's file:line; "" when there is none
	port         int    // its TLS port
	dav, eas     *route // nil when the path is not proxied
	missing      []string
}

// A route is a path a web server proxies to a backend.
type route struct {
	directive string   // the proxying directive, its target and file:line, for messages
	location  string   // file:line of the location (or directive) that handles the path
	addrs     []string // the backend's addresses; none when only a request can tell
	backend   string   // the path the backend is asked for
	tls       bool
	loopback  bool
}

// readWebServer reads nginx's configuration, or Apache's where nginx has
// none, and returns the site that answers for the host name; nil when
// neither is installed.
func (b *builder) readWebServer() (*webSite, error) {
	conf := b.opt.Nginx
	if conf == "" {
		conf = nginx.DefaultConf
	}
	b.read(conf)
	cfg, err := nginx.Read(b.opt.Root, conf)
	switch {
	case errors.Is(err, nginx.ErrNoConfig) && b.opt.Nginx == "":
		return b.readApache()
	case err != nil:
		return nil, err
	}
	for _, f := range cfg.Files {
		b.read(f.Path)
	}
	site := &webSite{server: "nginx", conf: conf, port: 443}
	gw := cfg.FindGroupware()
	v := vhostFor(gw.Vhosts, func(v *nginx.Vhost) []string { return v.Names }, b.snap.hostname, gw.Default)
	if v == nil {
		return site, nil
	}
	site.at, site.missing = v.Pos.String(), v.Missing
	if p := tlsPort(v.Server); p != 0 {
		site.port = p
	}
	site.dav, site.eas = nginxRoute(v.DAV, webroute.PathDAV), nginxRoute(v.EAS, webroute.PathEAS)
	return site, nil
}

// vhostFor returns the first of vhosts whose names include host, else
// the web server's default one (nil when it has none): the one a client
// asking for host reaches.
func vhostFor[V comparable](vhosts []V, names func(V) []string, host string, byDefault func() V) V {
	for _, v := range vhosts {
		if slices.Contains(names(v), host) {
			return v
		}
	}
	return byDefault()
}

// nginxRoute returns the route of p (nil for nil), which a client's
// request for path reaches.
func nginxRoute(p *nginx.Proxy, path string) *route {
	if p == nil {
		return nil
	}
	backend := path
	if p.URI != "" {
		// proxy_pass with a URI replaces the location's prefix with it.
		prefix := strings.TrimPrefix(strings.TrimPrefix(p.Match, "^~ "), "= ")
		backend = p.URI + strings.TrimPrefix(path, prefix)
	}
	return &route{
		directive: fmt.Sprintf("nginx proxies %s to %s at %s", path, p.Target, p.Pos),
		location:  p.Location.String(), addrs: p.Addrs, backend: backend, tls: p.TLS, loopback: p.Loopback,
	}
}

// readApache reads Apache httpd's configuration (Debian's or Red Hat's
// layout) and returns the site that answers for the host name; nil when
// Apache is not installed.
func (b *builder) readApache() (*webSite, error) {
	layout, err := apache.Find(b.opt.Root)
	if err != nil {
		for _, l := range apache.Layouts {
			b.read(l.Conf) // installing Apache later matters
		}
		if errors.Is(err, apache.ErrNoConfig) {
			return nil, nil
		}
		return nil, err
	}
	b.read(layout.Conf, layout.Envvars)
	cfg, err := apache.Read(b.opt.Root, layout, apache.Options{})
	if err != nil {
		return nil, err
	}
	for _, f := range cfg.Files {
		b.read(f.Path)
	}
	site := &webSite{server: "Apache", conf: layout.Conf, port: 443}
	gw := cfg.FindGroupware()
	v := vhostFor(gw.Vhosts, func(v *apache.Vhost) []string { return v.Names }, b.snap.hostname, gw.Default)
	if v == nil {
		return site, nil
	}
	site.at, site.missing = v.Pos.String(), v.Missing
	if v.Port != 0 {
		site.port = v.Port
	}
	site.dav, site.eas = apacheRoute(v.DAV), apacheRoute(v.EAS)
	return site, nil
}

// apacheRoute returns the route of p, nil for nil.
func apacheRoute(p *apache.Proxy) *route {
	if p == nil {
		return nil
	}
	return &route{
		directive: fmt.Sprintf("Apache proxies %s to %s (%s) at %s", p.Path, p.Target, p.Directive, p.Pos),
		location:  p.Location.String(), addrs: p.Addrs, backend: p.Backend, tls: p.TLS, loopback: p.Loopback,
	}
}

// A service is one groupware path to prove.
type service struct {
	names  string // for messages: "CalDAV, CardDAV"
	route  *route // nil when the web server does not proxy path
	path   string // the request path clients use
	method string // the probe's method
	site   *webSite
}

// prove returns the evidence that s is served, or why it is not.
func (b *builder) prove(ctx context.Context, s service, probe ProbeFunc) (evidence []string, why string) {
	r := s.route
	if r == nil {
		msg := fmt.Sprintf("%s: %s does not proxy %s in the server at %s", s.names, s.site.server, s.path, s.site.at)
		if m := missingFor(s.site.missing, s.path); m != "" {
			msg += " (" + m + ")"
		}
		return nil, msg
	}
	via := r.directive
	switch {
	case len(r.addrs) == 0:
		return nil, fmt.Sprintf("%s: %s, an address only a request can resolve", s.names, via)
	case !r.loopback:
		return nil, fmt.Sprintf("%s: %s, not on this host, so it cannot be probed here", s.names, via)
	case r.tls:
		return nil, fmt.Sprintf("%s: %s over TLS, which the probe does not speak", s.names, via)
	case probe == nil:
		return nil, fmt.Sprintf("%s: %s; not probed (the files under --root are not this host)", s.names, via)
	}
	addr, backendPath := r.addrs[0], r.backend
	status, err := b.probeOnce(ctx, probe, addr, s.method, backendPath)
	if transient(status, err) && b.awaitedListening(addr) {
		// The Snapshot being replaced awaited this backend and a socket
		// listens on its port now: SOGo listens before its workers are
		// ready and drops connections or answers 5xx meanwhile. Give it
		// startRetry to settle; the old Snapshot serves while this one
		// is built. (A stopped backend, nothing listening, costs no
		// wait.)
		for deadline := time.Now().Add(startRetry); transient(status, err) && time.Now().Before(deadline); {
			select {
			case <-ctx.Done():
				return nil, fmt.Sprintf("%s: %s; not probed: %v", s.names, via, ctx.Err())
			case <-time.After(250 * time.Millisecond):
			}
			status, err = b.probeOnce(ctx, probe, addr, s.method, backendPath)
		}
	}
	answer := fmt.Sprintf("%s %s at %s", s.method, backendPath, addr)
	switch {
	case err != nil:
		b.awaitBackend(addr)
		return nil, fmt.Sprintf("%s: %s, but %s failed: %v", s.names, via, answer, err)
	case status == http.StatusUnauthorized || status >= 200 && status < 300:
		if ap, err := netip.ParseAddrPort(addr); err == nil && b.socketTables() != "" && !slices.Contains(b.snap.backends, int(ap.Port())) {
			b.snap.backends = append(b.snap.backends, int(ap.Port()))
			if b.snap.procNet == "" {
				b.snap.procNet = b.socketTables()
			}
		}
		return []string{via, fmt.Sprintf("%s answered %d %s", answer, status, http.StatusText(status))}, ""
	default:
		if transient(status, nil) {
			b.awaitBackend(addr)
		}
		return nil, fmt.Sprintf("%s: %s, but %s answered %d %s", s.names, via, answer, status, http.StatusText(status))
	}
}

// startRetry is how long a rebuild keeps probing a backend that has just
// started listening (see prove).
var startRetry = 10 * time.Second

func (b *builder) probeOnce(ctx context.Context, probe ProbeFunc, addr, method, path string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	return probe(ctx, addr, method, path)
}

// transient reports whether a probe's outcome may change within seconds
// by itself: a network error, or a gateway's or overloaded server's 5xx.
func transient(status int, err error) bool {
	return err != nil || status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// previousAwait returns how the Snapshot being replaced awaited the
// backend addr (see awaitBackend), if it did.
func (b *builder) previousAwait(addr string) (awaitedPort, bool) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || b.opt.Previous == nil {
		return awaitedPort{}, false
	}
	i := slices.IndexFunc(b.opt.Previous.awaited, func(a awaitedPort) bool { return a.port == int(ap.Port()) })
	if i < 0 {
		return awaitedPort{}, false
	}
	return b.opt.Previous.awaited[i], true
}

// awaitedListening reports whether the Snapshot being replaced awaited
// the backend addr and a socket listens on its port now.
func (b *builder) awaitedListening(addr string) bool {
	prev, ok := b.previousAwait(addr)
	if !ok || b.opt.Previous.procNet == "" {
		return false
	}
	tab, err := listening.Read(b.opt.Previous.procNet)
	return err == nil && len(tab.Listeners(prev.port)) > 0
}

// awaitBackend notes a loopback TCP backend whose probe failed on the
// network (refused, reset, timed out) or with a gateway's 5xx: it is
// stopped, stopping or still starting (SOGo starts after mailautoconf at
// boot, and listens before its workers are ready), so WatchListening
// rebuilds once a new socket listens on its port, without waiting for a
// file to change. The sockets listening there now (a server that is
// stopping may still hold its port) are recorded, so that only another
// one counts; while the same sockets listen, WatchListening also retries
// a few times, later each time (awaitedPort.tries, retryAwaited), for a
// backend that was still starting.
func (b *builder) awaitBackend(addr string) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().IsLoopback() {
		return
	}
	dir := b.socketTables()
	if dir == "" {
		return
	}
	port := int(ap.Port())
	if slices.ContainsFunc(b.snap.awaited, func(a awaitedPort) bool { return a.port == port }) {
		return
	}
	tab, err := listening.Read(dir)
	if err != nil {
		return // then nothing can be watched; the next rebuild tells
	}
	if b.snap.procNet == "" {
		b.snap.procNet = dir
	}
	a := awaitedPort{port: port, listeners: tab.Listeners(port)}
	if prev, ok := b.previousAwait(addr); ok && len(a.listeners) > 0 && slices.Equal(prev.listeners, a.listeners) {
		a.tries = prev.tries + 1
	}
	b.snap.awaited = append(b.snap.awaited, a)
}

// socketTables returns the directory of the socket tables to watch
// backends in: Options.ProcNet, else this host's unless Root is another
// one's files ("").
func (b *builder) socketTables() string {
	switch {
	case b.opt.ProcNet != "":
		return b.opt.ProcNet
	case b.opt.Root.Dir() == "/":
		return listening.DefaultDir
	}
	return ""
}

// An awaitedPort is a backend's port and the inodes of the sockets that
// listened on it when its probe failed; tries counts the rebuilds that
// found the same sockets failing.
type awaitedPort struct {
	port      int
	listeners []uint64
	tries     int
}

// retryAwaited is how long after a Snapshot is built WatchListening
// rebuilds for a backend whose same sockets still listen, by
// awaitedPort.tries: a SOGo still starting answers within these; one
// that fails for good costs three rebuilds, then waits for a new socket.
var retryAwaited = []time.Duration{10 * time.Second, 30 * time.Second, 90 * time.Second}

// missingFor returns what the web server's reader says about path.
func missingFor(missing []string, p string) string {
	for _, m := range missing {
		if strings.HasPrefix(m, p+" ") || strings.HasPrefix(m, p+":") {
			return m
		}
	}
	return ""
}

// tlsPort returns the port of s's first TLS listen, 0 for none.
func tlsPort(s *nginx.Server) int {
	for _, l := range s.Listens {
		if l.SSL && l.Port != 0 {
			return l.Port
		}
	}
	return 0
}

// findEASBundle looks for SOGo's ActiveSync bundle (package
// sogo-activesync) and returns its path, or why it was not found.
func (b *builder) findEASBundle() (found, why string) {
	dirs := b.opt.SOGoLibDirs
	if dirs == nil {
		dirs = DefaultSOGoLibDirs
	}
	var looked []string
	for _, dir := range dirs {
		exe := path.Join(dir, "ActiveSync.SOGo", "ActiveSync")
		b.read(exe)
		looked = append(looked, exe)
		if fi, err := b.opt.Root.Stat(exe); err == nil && fi.Mode().IsRegular() {
			return path.Join(dir, "ActiveSync.SOGo"), ""
		}
	}
	return "", "SOGo's ActiveSync bundle is not installed (package sogo-activesync; looked for " + strings.Join(looked, ", ") + ")"
}

// HTTPProbe is the ProbeFunc of a real host (Build's default there): one HTTP/1.1 request
// without credentials, no redirects followed.
func HTTPProbe(ctx context.Context, addr, method, target string) (int, error) {
	network, address := "tcp", addr
	host := addr
	if sock, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, address, host = "unix", sock, "localhost"
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, address)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+host+target, nil)
	if err != nil {
		return 0, err
	}
	if method == "PROPFIND" {
		req.Header.Set("Depth", "0")
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
