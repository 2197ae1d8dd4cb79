package dovecot

import (
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// A Listener is one inet_listener of a login service, with Dovecot's
// defaults filled in.
type Listener struct {
	Service  string   // "imap-login", "pop3-login", "submission-login", "managesieve-login"
	Protocol string   // "imap", "pop3", "submission", "sieve"
	Name     string   // "imap", "imaps", "pop3", "pop3s", "submission", "submissions", "sieve"; "" when unnamed
	Address  []string // its address, or the global listen when it has none
	Port     int      // 0 disables the listener
	SSL      bool     // implicit TLS
	HAProxy  bool

	ProtocolEnabled bool   // Protocol is in protocols
	LoopbackOnly    bool   // every address is loopback (127.x, ::1, localhost)
	TLS             string // "implicit", "starttls-required", "starttls-optional" or "none"

	Pos hostfs.Pos // where its port was set, else its block; zero for a default
}

// Listeners returns the inet_listeners of the login services, the defaults
// doveconf -a shows merged with the service blocks, sorted by service and
// then listener name as doveconf -a prints them.
func (c *Config) Listeners() []Listener {
	out := make([]Listener, len(c.listeners))
	for i, l := range c.listeners {
		l.Address = append([]string(nil), l.Address...)
		out[i] = l
	}
	return out
}

func (c *Config) computeListeners() ([]Listener, []error) {
	var errs []error
	eff := c.effective
	var ls []Listener
	for _, d := range defaultListeners(c.Version()) {
		ls = append(ls, Listener{Service: d.service, Protocol: loginServices[d.service], Name: d.name, Port: d.port, SSL: d.ssl})
	}
	services := make([]string, 0, len(c.ev.services))
	for name := range c.ev.services {
		if loginServices[name] != "" {
			services = append(services, name)
		}
	}
	sort.Strings(services)
	for _, svc := range services {
		for _, lb := range c.ev.services[svc].listeners {
			i := -1
			if lb.name != "" {
				i = slices.IndexFunc(ls, func(l Listener) bool { return l.Service == svc && l.Name == lb.name })
			}
			if i < 0 {
				ls = append(ls, Listener{Service: svc, Protocol: loginServices[svc], Name: lb.name})
				i = len(ls) - 1
			}
			l := &ls[i]
			l.Pos = lb.pos
			if a, ok := lb.vals["port"]; ok {
				n, err := strconv.Atoi(a.value)
				if err != nil || n < 0 || n > 65535 {
					errs = append(errs, hostfs.Errorf(a.pos.File, a.pos.Line, "service %s inet_listener %s: invalid port %q", svc, lb.name, a.value))
				}
				l.Port, l.Pos = n, a.pos
			}
			for key, dst := range map[string]*bool{"ssl": &l.SSL, "haproxy": &l.HAProxy} {
				if a, ok := lb.vals[key]; ok {
					b, err := parseBool(a.value)
					if err != nil {
						errs = append(errs, hostfs.Errorf(a.pos.File, a.pos.Line, "service %s inet_listener %s: %s: %v", svc, lb.name, key, err))
					}
					*dst = b
				}
			}
			for _, key := range []string{"address", "listen"} {
				if a, ok := lb.vals[key]; ok {
					l.Address = splitList(a.value)
				}
			}
		}
	}
	for i := range ls {
		l := &ls[i]
		if len(l.Address) == 0 {
			if svc := c.ev.services[l.Service]; svc != nil && svc.listen != nil {
				l.Address = splitList(svc.listen.value) // 2.4: the service's listen
			} else {
				l.Address = append([]string(nil), eff.Listen...)
			}
		}
		l.ProtocolEnabled = slices.Contains(eff.Protocols, l.Protocol)
		l.LoopbackOnly = len(l.Address) > 0 && !slices.ContainsFunc(l.Address, func(a string) bool { return !isLoopback(a) })
		ssl, _ := c.ProtocolSetting(l.Protocol, "ssl") // a protocol block may change ssl
		l.TLS = tlsMode(l.SSL, ssl)
	}
	sort.SliceStable(ls, func(i, j int) bool {
		if ls[i].Service != ls[j].Service {
			return ls[i].Service < ls[j].Service
		}
		return ls[i].Name < ls[j].Name
	})
	return ls, errs
}

// tlsMode names what a client meets on a listener.
func tlsMode(implicit bool, ssl string) string {
	switch {
	case implicit:
		return "implicit"
	case ssl == "required":
		return "starttls-required"
	case ssl == "no":
		return "none"
	}
	return "starttls-optional"
}

// isLoopback reports whether a listen address is a loopback address.
func isLoopback(a string) bool {
	a = strings.TrimSuffix(strings.TrimPrefix(a, "["), "]")
	if strings.EqualFold(a, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(a)
	return err == nil && ip.IsLoopback()
}
