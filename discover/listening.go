package discover

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"weak"

	"github.com/mailautoconf/mailautoconf/sources/listening"
)

// holdBackUnlistened leaves out the endpoints whose port no socket a client
// can reach listens on, when the socket tables of this host can be read:
// master.cf or Dovecot's configuration was edited, and the server has not
// been reloaded yet, so advertising the port would send clients to a closed
// one. Each is named in a warning with the reload that applies it.
//
// A port counts as listening when a socket listens on it on an address
// other than loopback: 0.0.0.0, :: (which takes IPv4 too unless
// IPV6_V6ONLY is set; either way it is a listener clients reach) or a
// specific address. A socket on 127.0.0.1 or ::1 only does not count: a
// client elsewhere cannot reach it, and the configuration, which the
// endpoint comes from, says more than loopback (loopback-only listeners
// are never endpoints).
//
// It says so and holds nothing back when it cannot tell: the tables cannot
// be read; no socket listens at all (mailautoconf runs in a network
// namespace of its own); or none of a server's configured ports is bound on
// any address, which is a stopped server or another namespace rather than
// a configuration not yet applied (holding back every port of a server
// that is restarting would leave clients with nothing to set up). Under a
// Root other than the real file system, with no Options.ProcNet, it checks
// nothing and says nothing: a copy of a host's files is not this host.
func (b *builder) holdBackUnlistened(eps []Endpoint) []Endpoint {
	dir := b.opt.ProcNet
	if dir == "" {
		if b.opt.Root.Dir() != "/" {
			return eps
		}
		dir = listening.DefaultDir
	}
	if len(eps) == 0 {
		return eps
	}
	tab, err := listening.Read(dir)
	if err != nil {
		b.warn("cannot tell which ports are listening (%v): endpoints are advertised as configured, even before a reload of Postfix or Dovecot applies them", withHint(err))
		return eps
	}
	if tab.Len() == 0 {
		b.warn("no TCP socket listens in mailautoconf's network namespace (%s/tcp, tcp6): it is not the mail servers' namespace, so endpoints are advertised as configured, even before a reload of Postfix or Dovecot applies them", dir)
		return eps
	}
	b.snap.procNet = dir
	running := map[string]bool{}
	for _, srv := range []string{"postfix", "dovecot"} {
		ports := b.serverPorts(srv)
		running[srv] = slices.ContainsFunc(ports, tab.Bound)
		if !running[srv] && slices.ContainsFunc(eps, func(e Endpoint) bool { return serverOf(e) == srv }) {
			b.warn("none of %s's ports (%s) is listening: %s is stopped, or runs in another network namespace than mailautoconf; its endpoints are advertised as configured",
				serverName[srv], joinPorts(ports), serverName[srv])
		}
	}
	kept := eps[:0:0]
	for _, e := range eps {
		srv := serverOf(e)
		if !running[srv] || tab.Reachable(e.Port) {
			kept = append(kept, e)
			continue
		}
		what := "nothing listens on it"
		if tab.Bound(e.Port) {
			what = "it listens on loopback only"
		}
		b.warn("%s %s port %d (%s): %s, so it is not advertised until %s applies the configuration",
			serverName[srv], e.Protocol, e.Port, e.Source, what, reloadCommand[srv])
		b.snap.held = append(b.snap.held, e)
	}
	return kept
}

var serverName = map[string]string{"postfix": "Postfix", "dovecot": "Dovecot"}

var reloadCommand = map[string]string{
	"postfix": "`postfix reload` (or systemctl reload postfix)",
	"dovecot": "`doveadm reload` (or systemctl reload dovecot)",
}

// serverOf returns "postfix" or "dovecot": the daemon that opens e's port.
func serverOf(e Endpoint) string {
	if strings.HasPrefix(e.Server, "dovecot") {
		return "dovecot"
	}
	return "postfix"
}

// serverPorts returns every TCP port srv's configuration has it listen on,
// advertised or not (port 25, loopback, HAProxy listeners): any of them
// being bound shows the server runs.
func (b *builder) serverPorts(srv string) []int {
	var ports []int
	switch srv {
	case "postfix":
		for _, s := range b.pf.Services() {
			if s.Type == "inet" && s.Port > 0 && !b.pf.Disabled(s) {
				ports = append(ports, s.Port)
			}
		}
	case "dovecot":
		if b.dc == nil {
			return nil
		}
		for _, l := range b.dc.Listeners() {
			if l.Port > 0 && l.ProtocolEnabled {
				ports = append(ports, l.Port)
			}
		}
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

func joinPorts(ports []int) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, ", ")
}

// HeldBack returns the endpoints the configuration names but Endpoints
// leaves out because nothing listens on their ports yet.
func (s *Snapshot) HeldBack() []Endpoint { return slices.Clone(s.held) }

// ListeningPoll is how often WatchListening reads the socket tables while
// an endpoint is held back, so a port opened by a reload is advertised
// within that much. A read costs the kernel a walk of its whole TCP hash
// table, however few sockets there are: 5 ms on a 2-core VM
// (BenchmarkRead in sources/listening), some 0.2% of a core at this pace,
// and only while something is held back.
const ListeningPoll = 3 * time.Second

// An awaited groupware backend is polled at ListeningPoll for awaitFor
// polls (3 minutes), then every awaitSlow polls (30 s): a SOGo that does
// not come back costs some 0.02 % of a core, not 0.2 %.
const (
	awaitFor  = 60
	awaitSlow = 10
)

// WatchListening calls changed, from its own goroutine, when a port the
// current Snapshot holds back starts listening, so that a rebuild
// advertises it; it returns when ctx ends. It reads the socket tables only
// while current() holds an endpoint back or awaits a backend, every poll,
// and calls changed once per Snapshot. Every rebuild checks the tables
// anyway (a changed file, SIGHUP, the periodic refresh); this catches the
// reload of a server that changes which ports listen without any file
// changing, and a groupware backend (SOGo) that failed the probe when the
// Snapshot was built listening on a new socket: started, or restarted.
func WatchListening(ctx context.Context, poll time.Duration, current func() *Snapshot, changed func()) {
	t := time.NewTicker(poll)
	defer t.Stop()
	// The Snapshot changed was called for, held weakly: a replaced one
	// (a million domains are some 40 MB of domain table) must be freed
	// at once, not when the next one is told about.
	// A backend may stay away for good (SOGo removed, its location kept):
	// after awaitFor of polls, an awaited port alone is polled every
	// awaitSlow polls. watched is the Snapshot polls counts for.
	var told, watched weak.Pointer[Snapshot]
	polls := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := current()
		if s == nil || len(s.held)+len(s.awaited) == 0 || told.Value() == s {
			continue
		}
		if watched.Value() != s {
			watched, polls = weak.Make(s), 0
		}
		polls++
		if len(s.held) == 0 && polls > awaitFor && polls%awaitSlow != 0 {
			continue
		}
		tab, err := listening.Read(s.procNet)
		if err != nil {
			continue // the next rebuild says why
		}
		if slices.ContainsFunc(s.held, func(e Endpoint) bool { return tab.Reachable(e.Port) }) ||
			slices.ContainsFunc(s.awaited, func(a awaitedPort) bool {
				now := tab.Listeners(a.port)
				if len(now) > 0 && !slices.Equal(now, a.listeners) {
					return true // started, or restarted
				}
				// The same sockets: a backend still starting at the
				// build gets a few later tries.
				return len(now) > 0 && a.tries < len(retryAwaited) && time.Since(s.builtAt) >= retryAwaited[a.tries]
			}) {
			told = weak.Make(s)
			changed()
		}
	}
}

// A portState is whether a port the Snapshot's answers depend on listened
// when it was built.
type portState struct {
	port             int
	bound, reachable bool
}

// recordPorts notes, when the socket tables were read for this Snapshot,
// how each port it advertises, holds back or probed a backend at was
// listening, for SocketsChanged.
func (b *builder) recordPorts() {
	s := b.snap
	if s.procNet == "" {
		return
	}
	tab, err := listening.Read(s.procNet)
	if err != nil {
		return
	}
	var ports []int
	for _, e := range s.endpoints {
		ports = append(ports, e.Port)
	}
	for _, e := range s.held {
		ports = append(ports, e.Port)
	}
	ports = append(ports, s.backends...)
	slices.Sort(ports)
	for _, p := range slices.Compact(ports) {
		s.ports = append(s.ports, portState{port: p, bound: tab.Bound(p), reachable: tab.Reachable(p)})
	}
}

// SocketsChanged reports whether a port the Snapshot advertises, holds
// back, or found a groupware backend at listens otherwise now than when
// it was built (a server stopped or started without any file changing),
// and which: only a rebuild tells what that changes. One read of the
// socket tables (some 5 ms); false when they were not read for the
// Snapshot (under --root) or cannot be read now.
func (s *Snapshot) SocketsChanged() (changed bool, port int) {
	if len(s.ports) == 0 {
		return false, 0
	}
	tab, err := listening.Read(s.procNet)
	if err != nil {
		return false, 0
	}
	for _, p := range s.ports {
		if tab.Bound(p.port) != p.bound || tab.Reachable(p.port) != p.reachable {
			return true, p.port
		}
	}
	return false, 0
}
