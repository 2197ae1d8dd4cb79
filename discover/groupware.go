package discover

import (
	"context"
	"slices"
	"strconv"
)

// Groupware protocols a Service may speak.
const (
	ServiceCalDAV     = "caldav"
	ServiceCardDAV    = "carddav"
	ServiceActiveSync = "activesync"
)

// A Service is a groupware service (calendars, contacts, Exchange
// ActiveSync) that the host proves it serves: the web server routes its
// path to a backend, the backend answers there, and for ActiveSync its
// bundle is installed. Only a proven Service is advertised.
type Service struct {
	Protocol string `json:"protocol"` // ServiceCalDAV, ServiceCardDAV or ServiceActiveSync
	Host     string `json:"host"`     // the HTTPS host name clients use
	Port     int    `json:"port"`     // the HTTPS port, 443 unless the web server says otherwise
	// Path is the URL path: for CalDAV and CardDAV the root under which
	// each user's principal lives ("/SOGo/dav/": the principal of
	// a@example.org is "/SOGo/dav/a@example.org/"); for ActiveSync the
	// endpoint itself ("/Microsoft-Server-ActiveSync").
	Path string `json:"path"`
	// Source is the file:line of the web server's location that routes
	// Path to the backend.
	Source string `json:"source"`
	// Evidence lists every signal that proved the service, one sentence
	// each, with file:line or the probe's answer.
	Evidence []string `json:"evidence"`
}

// URL returns the service's URL: https://Host[:Port]Path.
func (s Service) URL() string {
	host := s.Host
	if s.Port != 0 && s.Port != 443 {
		host += ":" + strconv.Itoa(s.Port)
	}
	return "https://" + host + s.Path
}

// PrincipalPath returns the CalDAV or CardDAV principal URL path of the
// user who logs in with address: Path + address + "/".
func (s Service) PrincipalPath(address string) string {
	return s.Path + address + "/"
}

// Groupware is what the host was found to serve besides mail.
type Groupware struct {
	// Services are the proven services, in the order CalDAV, CardDAV,
	// ActiveSync, each at most once.
	Services []Service `json:"services,omitempty"`
	// Missing says, one sentence each, which services were looked for
	// and not advertised, and which signal was missing or disagreed.
	Missing []string `json:"missing,omitempty"`
}

// Groupware returns the groupware services found on the host.
func (s *Snapshot) Groupware() Groupware {
	return Groupware{Services: slices.Clone(s.groupware.Services), Missing: slices.Clone(s.groupware.Missing)}
}

// Service returns the proven service speaking protocol (ServiceCalDAV,
// ServiceCardDAV or ServiceActiveSync), if any.
func (s *Snapshot) Service(protocol string) (Service, bool) {
	for _, svc := range s.groupware.Services {
		if svc.Protocol == protocol {
			return svc, true
		}
	}
	return Service{}, false
}

// orNil returns g, or nil when it found nothing and looked for nothing.
func (g Groupware) orNil() *Groupware {
	if len(g.Services) == 0 && len(g.Missing) == 0 {
		return nil
	}
	return &g
}

// orZero returns *g, or the zero Groupware for nil.
func (g *Groupware) orZero() Groupware {
	if g == nil {
		return Groupware{}
	}
	return *g
}

// A ProbeFunc sends one HTTP request without credentials to a groupware
// backend: addr is "host:port" or "unix:/path", method and path what a
// client would send through the web server (path as the backend sees it).
// It returns the response's status code.
type ProbeFunc func(ctx context.Context, addr, method, path string) (status int, err error)

// DefaultSOGoLibDirs are where SOGo's packages install its bundles
// (Debian and Ubuntu, then EL's lib64).
var DefaultSOGoLibDirs = []string{"/usr/lib/GNUstep/SOGo", "/usr/lib64/GNUstep/SOGo"}
