package apache

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/webroute"
)

// The request paths SOGo answers behind its sample Apache configuration.
const (
	PathSOGo = webroute.PathSOGo
	PathDAV  = webroute.PathDAV
	PathEAS  = webroute.PathEAS
)

// A Proxy is a path that httpd hands to a backend: with ProxyPass (at
// server level or in a <Location>), ProxyPassMatch, or a RewriteRule
// with the [P] flag.
type Proxy struct {
	Path string // the request path asked about, e.g. PathDAV
	// Location is the <Location> or <LocationMatch> whose ProxyPass
	// handles Path; for a server-level ProxyPass, ProxyPassMatch or
	// RewriteRule it is that directive's position, like Pos.
	Location hostfs.Pos
	// Directive is "ProxyPass", "ProxyPassMatch" or "RewriteRule";
	// Match what it matches: a path prefix ("/SOGo") or a regular
	// expression, as written.
	Directive string
	Match     string
	Pos       hostfs.Pos // the directive
	Target    string     // the backend URL as written ("http://127.0.0.1:20000/SOGo")
	// Balancer names the <Proxy balancer://...> section Target refers to,
	// at BalancerPos; empty when Target names an address itself.
	Balancer    string
	BalancerPos hostfs.Pos
	// Addrs are the backend addresses, "host:port" (port from the scheme
	// when absent) or "unix:/path"; empty when Target holds what only a
	// request can resolve.
	Addrs []string
	// URI is the path part of Target, which replaces the matched prefix;
	// Backend the path the backend is asked for when a client asks for
	// Path ("/SOGo/dav/", "/SOGo/Microsoft-Server-ActiveSync").
	URI, Backend string
	TLS          bool // Target is https:// (or wss://)
	// Loopback is true when every address is on this host: 127.0.0.0/8,
	// ::1, localhost or a unix socket.
	Loopback bool
}

// A Vhost is a virtual host (or the main server) that serves TLS, and
// the groupware paths it proxies. A nil field means that path is not
// proxied there; Missing tells why, one entry per path starting with it.
type Vhost struct {
	Pos   hostfs.Pos // the <VirtualHost> line; the main file for the main server
	Main  bool       // the main server, outside every <VirtualHost>
	Addrs []string   // the <VirtualHost> addresses as written ("*:443")
	Port  int        // the first address's port, 0 for "*"
	Names []string   // ServerName, then each ServerAlias
	// SSL is true when SSLEngine is on here or, unset here, in the main
	// server.
	SSL bool
	// Default is true for the vhost httpd picks for a request whose Host
	// matches no name on one of its addresses: the first listed there.
	Default bool
	SOGo    *Proxy
	DAV     *Proxy
	EAS     *Proxy
	Missing []string
	Notes   []string
}

// Groupware is where an httpd configuration proxies SOGo.
type Groupware struct {
	Vhosts []*Vhost // every vhost on port 443 or with SSLEngine on, in order
	Notes  []string // what reading the configuration passed over
}

// Default returns the default TLS vhost on port 443, else the first
// default TLS vhost, else nil.
func (g *Groupware) Default() *Vhost {
	var first *Vhost
	for _, v := range g.Vhosts {
		if !v.Default || !v.SSL {
			continue
		}
		if v.Port == 443 {
			return v
		}
		if first == nil {
			first = v
		}
	}
	return first
}

// scope is what the server-level directives of the main server or of
// one virtual host say about routing.
type scope struct {
	d       *Directive // the <VirtualHost>; nil for the main server
	names   []string
	ssl     string // last SSLEngine argument, lower case; "" unset
	aliases []*passRule
	// inheritOff is the last ProxyPassInherit when it is Off.
	inheritOff *Directive
	locations  []*Directive
	rewrite    string // RewriteEngine, lower case
	rwOptions  []string
	rules      []*rewriteRule
	notes      []string
}

// passRule is one ProxyPass or ProxyPassMatch.
type passRule struct {
	d        *Directive
	loc      *Directive // the <Location> it is in, or nil
	match    string     // prefix or regular expression
	re       *regexp.Regexp
	isRegex  bool
	target   string
	reErr    error
	excluded bool // target "!"
}

type rewriteRule struct {
	d     *Directive
	conds []*Directive
}

func lower(d *Directive, i int) string {
	if i < len(d.Args) {
		return strings.ToLower(d.Args[i])
	}
	return ""
}

// collect reads the server-level directives ds into a scope.
func collect(ds []*Directive, d *Directive) *scope {
	s := &scope{d: d}
	var conds []*Directive
	for _, x := range ds {
		switch {
		case x.IsBlock && (x.Is("Location") || x.Is("LocationMatch")):
			s.locations = append(s.locations, x)
		case x.IsBlock:
			if !x.Is("VirtualHost") && hasProxying(x.Block) {
				s.notes = append(s.notes, fmt.Sprintf("%s: proxying inside <%s> is not followed", x.Pos, x.Name))
			}
		case x.Is("ServerName") && len(x.Args) > 0:
			s.names = append([]string{hostName(x.Args[0])}, s.names...)
		case x.Is("ServerAlias"):
			for _, a := range x.Args {
				s.names = append(s.names, strings.ToLower(a))
			}
		case x.Is("SSLEngine"):
			s.ssl = lower(x, 0)
		case x.Is("ProxyPassInherit"):
			s.inheritOff = nil
			if lower(x, 0) == "off" {
				s.inheritOff = x
			}
		case x.Is("ProxyPass") || x.Is("ProxyPassMatch"):
			if len(x.Args) >= 2 {
				s.aliases = append(s.aliases, newPassRule(x, nil, x.Args[0], x.Args[1], x.Is("ProxyPassMatch")))
			}
		case x.Is("RewriteEngine"):
			s.rewrite = lower(x, 0)
		case x.Is("RewriteOptions"):
			for i := range x.Args {
				s.rwOptions = append(s.rwOptions, lower(x, i))
			}
		case x.Is("RewriteCond"):
			conds = append(conds, x)
		case x.Is("RewriteRule"):
			s.rules = append(s.rules, &rewriteRule{d: x, conds: conds})
			conds = nil
		}
	}
	return s
}

// hostName returns the host of a ServerName ("https://Mail.x:443").
func hostName(s string) string {
	if _, rest, ok := strings.Cut(s, "://"); ok {
		s = rest
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 && !strings.HasSuffix(s, "]") {
		s = s[:i]
	}
	return strings.ToLower(s)
}

func hasProxying(ds []*Directive) bool {
	found := false
	Walk(ds, func(d *Directive) bool {
		if d.Is("ProxyPass") || d.Is("ProxyPassMatch") || d.Is("RewriteRule") {
			found = true
		}
		return !found
	})
	return found
}

func newPassRule(d, loc *Directive, match, target string, isRegex bool) *passRule {
	p := &passRule{d: d, loc: loc, match: match, target: target, isRegex: isRegex, excluded: target == "!"}
	if isRegex {
		p.re, p.reErr = regexp.Compile(match)
	}
	return p
}

// locationRule returns the ProxyPass of a <Location> or <LocationMatch>
// section (the last one in it), or nil.
func locationRule(loc *Directive) *passRule {
	var rule *passRule
	isRegex := loc.Is("LocationMatch")
	args := loc.Args
	if len(args) == 2 && args[0] == "~" {
		isRegex, args = true, args[1:]
	}
	if len(args) != 1 {
		return nil
	}
	for _, d := range loc.Block {
		if d.Is("ProxyPass") && len(d.Args) >= 1 {
			rule = newPassRule(d, loc, args[0], d.Args[0], isRegex)
		}
	}
	return rule
}

// match reports whether the rule's path matches p, and the length of the
// matched prefix or the regular expression's submatches.
func (r *passRule) matchPath(p string) (ok bool, n int, sub []string) {
	if r.isRegex {
		if r.re == nil {
			return false, 0, nil
		}
		sub = r.re.FindStringSubmatch(p)
		return sub != nil, 0, sub
	}
	if r.loc != nil && strings.ContainsAny(r.match, "*?[") {
		return false, 0, nil
	}
	return prefixMatch(r.match, p)
}

// prefixMatch is a ProxyPass or <Location> path matching whole path
// segments: "/SOGo" matches "/SOGo" and "/SOGo/dav/", not "/SOGoX".
func prefixMatch(prefix, p string) (bool, int, []string) {
	if !strings.HasPrefix(p, prefix) {
		return false, 0, nil
	}
	if strings.HasSuffix(prefix, "/") || len(p) == len(prefix) || p[len(prefix)] == '/' {
		return true, len(prefix), nil
	}
	return false, 0, nil
}

// FindGroupware looks in every TLS virtual host (and the main server
// when it serves TLS) for where PathSOGo, PathDAV and PathEAS are
// proxied, as httpd's translate_name phase would decide: mod_rewrite's
// rules first, then the ProxyPass of the <Location> sections matching the
// path, then the server's ProxyPass and ProxyPassMatch list (the main
// server's first, unless ProxyPassInherit Off), first match winning.
func (c *Config) FindGroupware() *Groupware {
	g := &Groupware{Notes: append([]string(nil), c.Notes...)}
	main, vhosts := c.scopes()
	g.Notes = append(g.Notes, main.notes...)
	balancers := c.balancers()
	for _, sv := range vhosts {
		v, s := sv.v, sv.s
		hasPort443 := false
		for _, a := range v.Addrs {
			hasPort443 = hasPort443 || addrPort(a) == 443
		}
		if !v.SSL && !hasPort443 {
			continue
		}
		c.route(v, main, s, balancers)
		g.Vhosts = append(g.Vhosts, v)
	}
	if main.ssl == "on" {
		v := &Vhost{Pos: hostfs.Pos{File: c.Layout.Conf}, Main: true, Names: main.names, SSL: true, Default: len(vhosts) == 0}
		c.route(v, nil, main, balancers)
		g.Vhosts = append(g.Vhosts, v)
	}
	return g
}

// VirtualHosts returns every <VirtualHost> in order, with its addresses,
// names, SSL and Default set (the groupware fields left empty): the list
// "apache2 -S" prints.
func (c *Config) VirtualHosts() []*Vhost {
	_, vs := c.scopes()
	out := make([]*Vhost, len(vs))
	for i, sv := range vs {
		out[i] = sv.v
	}
	return out
}

type scopedVhost struct {
	v *Vhost
	s *scope
}

// scopes splits the configuration into the main server and its virtual
// hosts.
func (c *Config) scopes() (*scope, []scopedVhost) {
	var top, vhosts []*Directive
	for _, d := range c.Directives {
		if d.IsBlock && d.Is("VirtualHost") {
			vhosts = append(vhosts, d)
			continue
		}
		top = append(top, d)
	}
	main := collect(top, nil)
	first := map[string]*Directive{}
	for _, d := range vhosts {
		for _, a := range d.Args {
			k := addrKey(a)
			if _, ok := first[k]; !ok {
				first[k] = d
			}
		}
	}
	var out []scopedVhost
	for _, d := range vhosts {
		s := collect(d.Block, d)
		v := &Vhost{Pos: d.Pos, Addrs: d.Args, Names: s.names, Notes: s.notes}
		if len(d.Args) > 0 {
			v.Port = addrPort(d.Args[0])
		}
		ssl := s.ssl
		if ssl == "" {
			ssl = main.ssl
		}
		v.SSL = ssl == "on" || ssl == "optional"
		for _, a := range d.Args {
			if first[addrKey(a)] == d {
				v.Default = true
			}
		}
		out = append(out, scopedVhost{v, s})
	}
	return main, out
}

// addrKey normalizes a <VirtualHost> address for grouping.
func addrKey(a string) string {
	a = strings.ToLower(a)
	if strings.HasPrefix(a, "_default_") {
		a = "*" + strings.TrimPrefix(a, "_default_")
	}
	if !strings.Contains(strings.TrimPrefix(a, "["), ":") || strings.HasSuffix(a, "]") {
		a += ":*"
	}
	return a
}

// addrPort returns the port of a <VirtualHost> address, 0 for none or "*".
func addrPort(a string) int {
	i := strings.LastIndexByte(a, ':')
	if i < 0 || strings.HasSuffix(a, "]") {
		return 0
	}
	n, _ := strconv.Atoi(a[i+1:])
	return n
}

// route fills v's proxies for the paths asked about.
func (c *Config) route(v *Vhost, main, s *scope, balancers map[string]*Directive) {
	if !v.SSL {
		for _, p := range []string{PathSOGo, PathDAV, PathEAS} {
			v.Missing = append(v.Missing, fmt.Sprintf("%s: the virtual host at %s listens on port 443 without SSLEngine on", p, v.Pos))
		}
		return
	}
	v.SOGo = c.routePath(v, PathSOGo, main, s, balancers)
	v.DAV = c.routePath(v, PathDAV, main, s, balancers)
	v.EAS = c.routePath(v, PathEAS, main, s, balancers)
}

func (c *Config) hasModule(name string) bool {
	for _, m := range c.Modules {
		if m.Name == name {
			return true
		}
	}
	return false
}

// routePath decides how the vhost of scope s handles path p, or returns
// nil with the reason added to v.Missing.
func (c *Config) routePath(v *Vhost, p string, main, s *scope, balancers map[string]*Directive) *Proxy {
	miss := func(format string, args ...any) *Proxy {
		v.Missing = append(v.Missing, p+": "+fmt.Sprintf(format, args...))
		return nil
	}
	// mod_rewrite runs first; a vhost inherits the main server's rules
	// only with RewriteOptions Inherit or InheritBefore.
	if c.hasModule("rewrite_module") && s.rewrite == "on" {
		rules := s.rules
		if main != nil {
			for _, o := range s.rwOptions {
				switch o {
				case "inherit":
					rules = append(append([]*rewriteRule(nil), s.rules...), main.rules...)
				case "inheritbefore":
					rules = append(append([]*rewriteRule(nil), main.rules...), s.rules...)
				}
			}
		}
		for _, r := range rules {
			px, done, why := c.rewrite(r, p, balancers)
			if why != "" {
				return miss("%s", why)
			}
			if px != nil {
				return c.check(v, px, miss)
			}
			if done {
				break
			}
		}
	}
	// The <Location> sections matching p, the main server's first; the
	// last with a ProxyPass decides.
	var locs []*Directive
	if main != nil {
		locs = append(locs, main.locations...)
	}
	locs = append(locs, s.locations...)
	var locRule *passRule
	for _, l := range locs {
		if r := locationRule(l); r != nil {
			if r.reErr != nil {
				return miss("<%s %s> at %s: %v", l.Name, r.match, l.Pos, r.reErr)
			}
			if ok, _, _ := r.matchPath(p); ok {
				locRule = r
			}
		} else if strings.ContainsAny(strings.Join(l.Args, " "), "*?[") && hasProxying(l.Block) {
			v.Notes = append(v.Notes, fmt.Sprintf("%s: <%s %s> with a wildcard is not followed", l.Pos, l.Name, strings.Join(l.Args, " ")))
		}
	}
	if locRule != nil {
		return c.pass(v, locRule, p, balancers, miss)
	}
	aliases := s.aliases
	var inheritOff *Directive // a ProxyPassInherit Off, in s or the main server
	if main != nil {
		inheritOff = s.inheritOff
		if inheritOff == nil {
			inheritOff = main.inheritOff
		}
		aliases = append(append([]*passRule(nil), main.aliases...), s.aliases...)
	}
	for _, r := range aliases {
		if r.reErr != nil {
			return miss("ProxyPassMatch %s at %s: %v", r.match, r.d.Pos, r.reErr)
		}
		if ok, _, _ := r.matchPath(p); ok {
			if inheritOff != nil && s.d != nil && !slices.Contains(s.aliases, r) {
				// Documented to stop the inheritance, but httpd 2.4.71
				// still applies the main server's rules: undecided.
				return miss("%s %s at %s is the main server's, and ProxyPassInherit Off at %s may or may not keep it from this virtual host (httpd 2.4.71 applies it)", r.d.Name, r.match, r.d.Pos, inheritOff.Pos)
			}
			return c.pass(v, r, p, balancers, miss)
		}
	}
	where := "virtual host at " + v.Pos.String()
	if v.Main {
		where = "main server"
	}
	return miss("no ProxyPass, ProxyPassMatch or RewriteRule [P] of the %s matches", where)
}

// pass turns a matching ProxyPass rule into a Proxy.
func (c *Config) pass(v *Vhost, r *passRule, p string, balancers map[string]*Directive, miss func(string, ...any) *Proxy) *Proxy {
	if r.excluded {
		return miss("excluded by %s %s ! at %s", r.d.Name, r.match, r.d.Pos)
	}
	px := &Proxy{Path: p, Location: r.d.Pos, Directive: "ProxyPass", Match: r.match, Pos: r.d.Pos, Target: r.target}
	if r.loc != nil {
		px.Location = r.loc.Pos
	}
	if r.d.Is("ProxyPassMatch") {
		px.Directive = "ProxyPassMatch"
	}
	_, n, sub := r.matchPath(p)
	target := r.target
	if r.isRegex {
		if strings.Contains(target, "$") {
			target = expandRefs(target, sub)
		} else {
			// No back-reference: the request's path is appended.
			target = strings.TrimSuffix(target, "/") + p
		}
		px.Backend = c.fill(px, target, balancers)
		return c.check(v, px, miss)
	}
	if c.fill(px, target, balancers) != "" {
		px.Backend = px.URI + p[n:]
		if !strings.HasPrefix(px.Backend, "/") {
			px.Backend = "/" + px.Backend
		}
	}
	return c.check(v, px, miss)
}

// expandRefs replaces $0..$9 with submatches.
func expandRefs(s string, sub []string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '$' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
			if k := int(s[i+1] - '0'); k < len(sub) {
				b.WriteString(sub[k])
			}
			i++
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// fill sets px's TLS, Addrs, URI and Loopback from the URL u (Target with
// back-references replaced) and returns u's path, or "" when u holds
// what only a request resolves.
func (c *Config) fill(px *Proxy, u string, balancers map[string]*Directive) string {
	sock := ""
	if rest, ok := strings.CutPrefix(u, "unix:"); ok {
		// unix:/path/to.sock|http://localhost/uri
		s, after, ok := strings.Cut(rest, "|")
		if !ok {
			return ""
		}
		sock, u = "unix:"+s, after
	}
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok || strings.ContainsAny(u, "$%") {
		return ""
	}
	scheme = strings.ToLower(scheme)
	px.TLS = scheme == "https" || scheme == "wss"
	host, uri := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		host, uri = rest[:i], rest[i:]
	}
	px.URI = uri
	switch {
	case sock != "":
		px.Addrs = []string{sock}
	case scheme == "balancer":
		b, ok := balancers[strings.ToLower(host)]
		if !ok {
			return ""
		}
		px.Balancer, px.BalancerPos = "balancer://"+host, b.Pos
		for _, d := range b.Block {
			if d.Is("BalancerMember") && len(d.Args) > 0 {
				m := &Proxy{}
				c.fill(m, d.Args[0], nil)
				px.Addrs = append(px.Addrs, m.Addrs...)
				px.TLS = px.TLS || m.TLS
				if m.URI != "" && m.URI != "/" {
					return "" // a member's path is put before the request's
				}
			}
		}
	default:
		def := "80"
		if px.TLS {
			def = "443"
		}
		px.Addrs = []string{webroute.WithPort(host, def)}
	}
	px.Loopback = len(px.Addrs) > 0
	for _, a := range px.Addrs {
		if !webroute.IsLoopback(a) {
			px.Loopback = false
		}
	}
	if uri == "" {
		uri = "/"
	}
	return uri
}

// check adds the modules the proxy needs; a Proxy httpd cannot serve is
// reported missing instead.
func (c *Config) check(v *Vhost, px *Proxy, miss func(string, ...any) *Proxy) *Proxy {
	what := fmt.Sprintf("%s %s at %s", px.Directive, px.Target, px.Pos)
	if !c.hasModule("proxy_module") {
		return miss("%s, but mod_proxy is not loaded (LoadModule proxy_module)", what)
	}
	scheme, _, _ := strings.Cut(strings.ToLower(px.Target), "://")
	if _, after, ok := strings.Cut(scheme, "|"); ok {
		scheme = after
	}
	switch {
	case strings.HasPrefix(scheme, "unix:") || scheme == "http" || scheme == "https" || px.Balancer != "":
		if !c.hasModule("proxy_http_module") {
			return miss("%s, but mod_proxy_http is not loaded (LoadModule proxy_http_module)", what)
		}
		if px.Balancer != "" && !c.hasModule("proxy_balancer_module") {
			return miss("%s, but mod_proxy_balancer is not loaded", what)
		}
	}
	if len(px.Addrs) == 0 {
		v.Notes = append(v.Notes, fmt.Sprintf("%s: %s, whose backend only a request resolves", px.Path, what))
	}
	return px
}

var (
	rwFlags = regexp.MustCompile(`^\[(.*)\]$`)
)

// rewrite applies one server-context RewriteRule to p: a proxy when the
// rule proxies p ([P]), done when it ends rewriting without touching p,
// or why its outcome cannot be told from the configuration alone.
func (c *Config) rewrite(r *rewriteRule, p string, balancers map[string]*Directive) (px *Proxy, done bool, why string) {
	d := r.d
	if len(d.Args) < 2 {
		return nil, false, ""
	}
	pat := d.Args[0]
	neg := strings.HasPrefix(pat, "!")
	pat = strings.TrimPrefix(pat, "!")
	var flags []string
	if len(d.Args) > 2 {
		if m := rwFlags.FindStringSubmatch(d.Args[2]); m != nil {
			for _, f := range strings.Split(m[1], ",") {
				flags = append(flags, strings.ToLower(strings.TrimSpace(f)))
			}
		}
	}
	nocase := hasFlag(flags, "nc", "nocase")
	if nocase {
		pat = "(?i)" + pat
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return nil, false, fmt.Sprintf("RewriteRule at %s: pattern %s: %v", d.Pos, d.Args[0], err)
	}
	sub := re.FindStringSubmatch(p)
	if (sub != nil) == neg {
		return nil, false, ""
	}
	if len(r.conds) > 0 {
		return nil, false, fmt.Sprintf("RewriteRule %s at %s matches, under RewriteCond at %s, which only a request decides", d.Args[0], d.Pos, r.conds[0].Pos)
	}
	subst := d.Args[1]
	switch {
	case hasFlag(flags, "p", "proxy"):
		if strings.Contains(subst, "%") {
			return nil, false, fmt.Sprintf("RewriteRule %s at %s proxies to %s, which only a request resolves", d.Args[0], d.Pos, subst)
		}
		u := expandRefs(subst, sub)
		px := &Proxy{Path: p, Location: d.Pos, Directive: "RewriteRule", Match: d.Args[0], Pos: d.Pos, Target: subst}
		if b := c.fill(px, u, balancers); b != "" {
			px.Backend = b
			if i := strings.IndexByte(b, '?'); i >= 0 {
				px.Backend = b[:i]
			}
		}
		return px, true, ""
	case hasFlag(flags, "f", "forbidden"):
		return nil, false, fmt.Sprintf("answered 403 by RewriteRule at %s", d.Pos)
	case hasFlag(flags, "g", "gone"):
		return nil, false, fmt.Sprintf("answered 410 by RewriteRule at %s", d.Pos)
	case hasFlag(flags, "r", "redirect") || hasFlagPrefix(flags, "r=", "redirect="):
		return nil, false, fmt.Sprintf("redirected to %s by RewriteRule at %s", subst, d.Pos)
	case hasFlag(flags, "c", "chain", "n", "next") || hasFlagPrefix(flags, "s=", "skip=", "n="):
		return nil, false, fmt.Sprintf("RewriteRule at %s matches with flags %s, which are not followed", d.Pos, d.Args[2])
	}
	if subst == "-" || expandRefs(subst, sub) == p && hasFlag(flags, "pt", "passthrough") {
		return nil, hasFlag(flags, "l", "last", "end"), ""
	}
	return nil, false, fmt.Sprintf("rewritten to %s by RewriteRule at %s", subst, d.Pos)
}

func hasFlag(flags []string, names ...string) bool {
	for _, f := range flags {
		for _, n := range names {
			if f == n {
				return true
			}
		}
	}
	return false
}

func hasFlagPrefix(flags []string, prefixes ...string) bool {
	for _, f := range flags {
		for _, n := range prefixes {
			if strings.HasPrefix(f, n) {
				return true
			}
		}
	}
	return false
}

// balancers returns the <Proxy balancer://name> sections by lower-case
// name.
func (c *Config) balancers() map[string]*Directive {
	m := map[string]*Directive{}
	Walk(c.Directives, func(d *Directive) bool {
		if d.IsBlock && d.Is("Proxy") && len(d.Args) == 1 {
			if name, ok := strings.CutPrefix(strings.ToLower(d.Args[0]), "balancer://"); ok {
				m[strings.TrimSuffix(name, "/")] = d
			}
		}
		return true
	})
	return m
}
