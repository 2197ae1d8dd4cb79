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

	"github.com/mailautoconf/mailautoconf/sources/listening"
	"github.com/mailautoconf/mailautoconf/sources/nginx"
)

// probeTimeout bounds one probe of a groupware backend: SOGo on loopback
// answers in milliseconds, and a build must not wait long on a hung one.
const probeTimeout = 2 * time.Second

// findGroupware decides which groupware services the host serves. A
// service is advertised only when every signal agrees: nginx routes its
// path to a backend on this host (Services: the location's file:line),
// for ActiveSync SOGo's bundle is installed, and the backend answers a
// request without credentials there with a status that proves the path
// exists (401 or a success), not 404 or a gateway error. What was looked
// for and not found goes to Groupware.Missing, for show; a host without
// nginx looks for nothing.
func (b *builder) findGroupware(ctx context.Context) {
	opt := b.opt
	conf := opt.Nginx
	if conf == "" {
		conf = nginx.DefaultConf
	}
	b.read(conf)
	cfg, err := nginx.Read(opt.Root, conf)
	switch {
	case errors.Is(err, nginx.ErrNoConfig) && opt.Nginx == "":
		return
	case err != nil:
		b.warn("groupware not advertised: %v", withHint(err))
		b.snap.groupware.Missing = []string{fmt.Sprintf("CalDAV, CardDAV, ActiveSync: the web server's configuration cannot be read: %v", err)}
		return
	}
	for _, f := range cfg.Files {
		b.read(f.Path)
	}
	gw := cfg.FindGroupware()
	v := b.groupwareVhost(gw)
	if v == nil {
		if len(gw.Vhosts) > 0 || len(cfg.Files) > 0 {
			b.snap.groupware.Missing = []string{fmt.Sprintf("CalDAV, CardDAV, ActiveSync: %s has no HTTPS server for %s", conf, b.snap.hostname)}
		}
		return
	}
	port := 443
	if p := tlsPort(v.Server); p != 0 {
		port = p
	}
	probe := opt.Probe
	if probe == nil && opt.Root.Dir() == "/" {
		probe = HTTPProbe
	}
	g := &b.snap.groupware
	vhostAt := v.Pos.String()

	// CalDAV and CardDAV: SOGo serves both under /SOGo/dav/.
	dav := service{
		names: "CalDAV, CardDAV", proxy: v.DAV, path: nginx.PathDAV,
		method: "PROPFIND", vhost: vhostAt, missing: missingFor(v, nginx.PathDAV),
	}
	if ev, why := b.prove(ctx, dav, probe); why != "" {
		g.Missing = append(g.Missing, why)
	} else {
		for _, proto := range []string{ServiceCalDAV, ServiceCardDAV} {
			g.Services = append(g.Services, Service{
				Protocol: proto, Host: b.snap.hostname, Port: port, Path: nginx.PathDAV,
				Source: v.DAV.Location.String(), Evidence: ev,
			})
		}
	}

	// ActiveSync: the location, the bundle, and SOGo answering there.
	eas := service{
		names: "ActiveSync", proxy: v.EAS, path: nginx.PathEAS,
		method: "OPTIONS", vhost: vhostAt, missing: missingFor(v, nginx.PathEAS),
	}
	bundle, bundleWhy := b.findEASBundle()
	switch ev, why := b.prove(ctx, eas, probe); {
	case why != "":
		g.Missing = append(g.Missing, why)
	case bundleWhy != "":
		g.Missing = append(g.Missing, "ActiveSync: "+bundleWhy)
	default:
		ev = append(ev, "SOGo's ActiveSync bundle is installed: "+bundle)
		g.Services = append(g.Services, Service{
			Protocol: ServiceActiveSync, Host: b.snap.hostname, Port: port, Path: nginx.PathEAS,
			Source: v.EAS.Location.String(), Evidence: ev,
		})
	}
}

// A service is one groupware path to prove.
type service struct {
	names   string       // for messages: "CalDAV, CardDAV"
	proxy   *nginx.Proxy // the location proxying path, nil when none does
	path    string       // the request path clients use
	method  string       // the probe's method
	vhost   string       // the server block's file:line
	missing string       // why proxy is nil, from the nginx reader
}

// prove returns the evidence that s is served, or why it is not.
func (b *builder) prove(ctx context.Context, s service, probe ProbeFunc) (evidence []string, why string) {
	p := s.proxy
	if p == nil {
		why := fmt.Sprintf("%s: nginx does not proxy %s in the server at %s", s.names, s.path, s.vhost)
		if s.missing != "" {
			why += " (" + s.missing + ")"
		}
		return nil, why
	}
	route := fmt.Sprintf("nginx proxies %s to %s at %s", s.path, p.Target, p.Pos)
	switch {
	case len(p.Addrs) == 0:
		return nil, fmt.Sprintf("%s: %s, an address only a request can resolve", s.names, route)
	case !p.Loopback:
		return nil, fmt.Sprintf("%s: %s, not on this host, so it cannot be probed here", s.names, route)
	case p.TLS:
		return nil, fmt.Sprintf("%s: %s over TLS, which the probe does not speak", s.names, route)
	case probe == nil:
		return nil, fmt.Sprintf("%s: %s; not probed (the files under --root are not this host)", s.names, route)
	}
	backendPath := s.path
	if p.URI != "" {
		// proxy_pass with a URI replaces the location's prefix with it.
		_, prefix, _ := strings.Cut(strings.TrimPrefix(p.Match, "^~ "), " ")
		if prefix == "" {
			prefix = strings.TrimPrefix(p.Match, "^~ ")
		}
		backendPath = p.URI + strings.TrimPrefix(s.path, strings.TrimPrefix(prefix, "= "))
	}
	addr := p.Addrs[0]
	status, err := b.probeOnce(ctx, probe, addr, s.method, backendPath)
	if b.wasAwaited(addr) {
		// This rebuild comes from the backend's port opening: SOGo
		// listens before its workers are ready and drops connections
		// or answers 5xx meanwhile. Give it startRetry to settle; the
		// old Snapshot serves while this one is built.
		for deadline := time.Now().Add(startRetry); transient(status, err) && time.Now().Before(deadline); {
			select {
			case <-ctx.Done():
				return nil, fmt.Sprintf("%s: %s; not probed: %v", s.names, route, ctx.Err())
			case <-time.After(250 * time.Millisecond):
			}
			status, err = b.probeOnce(ctx, probe, addr, s.method, backendPath)
		}
	}
	answer := fmt.Sprintf("%s %s at %s", s.method, backendPath, addr)
	switch {
	case err != nil:
		b.awaitBackend(addr)
		return nil, fmt.Sprintf("%s: %s, but %s failed: %v", s.names, route, answer, err)
	case status == http.StatusUnauthorized || status >= 200 && status < 300:
		return []string{route, fmt.Sprintf("%s answered %d %s", answer, status, http.StatusText(status))}, ""
	default:
		return nil, fmt.Sprintf("%s: %s, but %s answered %d %s", s.names, route, answer, status, http.StatusText(status))
	}
}

// startRetry is how long a rebuild keeps probing a backend that has just
// started listening (see prove).
const startRetry = 10 * time.Second

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

// wasAwaited reports whether the Snapshot being replaced waited for the
// backend addr to listen (see awaitBackend).
func (b *builder) wasAwaited(addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	return err == nil && b.opt.Previous != nil &&
		slices.ContainsFunc(b.opt.Previous.awaited, func(a awaitedPort) bool { return a.port == int(ap.Port()) })
}

// awaitBackend notes a loopback TCP backend whose probe failed on the
// network (refused, reset, timed out): it is stopped, stopping or still
// starting (SOGo starts after mailautoconf at boot), so WatchListening
// rebuilds once a new socket listens on its port, without waiting for a
// file to change. The sockets listening there now (a server that is
// stopping may still hold its port) are recorded, so that only another
// one counts.
func (b *builder) awaitBackend(addr string) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().IsLoopback() {
		return
	}
	dir := b.opt.ProcNet
	if dir == "" {
		if b.opt.Root.Dir() != "/" {
			return
		}
		dir = listening.DefaultDir
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
	b.snap.awaited = append(b.snap.awaited, awaitedPort{port: port, listeners: tab.Listeners(port)})
}

// An awaitedPort is a backend's port and the inodes of the sockets that
// listened on it when its probe failed.
type awaitedPort struct {
	port      int
	listeners []uint64
}

// missingFor returns what the nginx reader says about path in v.
func missingFor(v *nginx.Vhost, p string) string {
	for _, m := range v.Missing {
		if strings.HasPrefix(m, p+" ") || strings.HasPrefix(m, p+":") {
			return m
		}
	}
	return ""
}

// groupwareVhost returns the HTTPS server that answers for the host
// name clients are told: the one naming it, else the default one.
func (b *builder) groupwareVhost(gw *nginx.Groupware) *nginx.Vhost {
	for _, v := range gw.Vhosts {
		if slices.Contains(v.Names, b.snap.hostname) {
			return v
		}
	}
	return gw.Default()
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
