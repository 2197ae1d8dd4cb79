package check

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/dnsrecords"
)

// propfindBody asks for the current user's principal, as a CalDAV or
// CardDAV client's first request does (RFC 5397).
var propfindBody = []byte(`<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:"><d:prop><d:current-user-principal/><d:resourcetype/></d:prop></d:propfind>
`)

// maxRedirects bounds the redirects a DAV lookup follows (a domain's
// /.well-known/caldav redirects once, to the server's context path).
const maxRedirects = 5

// A gwProbe is one request to a proven groupware service.
type gwProbe struct {
	names  string // "CalDAV, CardDAV"
	method string // PROPFIND or OPTIONS
	svc    discover.Service
	cert   bool // report the certificate of the service's host:port
}

// groupwareJobs returns a job per groupware URL the host proves it serves
// (CalDAV and CardDAV share SOGo's /SOGo/dav/, so one request covers
// both): PROPFIND Depth 0 for DAV, expecting 401 or 207; OPTIONS for
// ActiveSync, expecting 401, or 200 with MS-ASProtocolVersions. Nothing
// for a host without groupware.
func (r *run) groupwareJobs() []job {
	var probes []*gwProbe
	certs := map[string]bool{}
	for _, proto := range []string{discover.ServiceCalDAV, discover.ServiceCardDAV, discover.ServiceActiveSync} {
		svc, ok := r.opt.Snapshot.Service(proto)
		if !ok {
			continue
		}
		method := "PROPFIND"
		if proto == discover.ServiceActiveSync {
			method = "OPTIONS"
		}
		if n := len(probes); n > 0 && probes[n-1].svc.URL() == svc.URL() && probes[n-1].method == method {
			probes[n-1].names += ", " + protocolName(proto)
			continue
		}
		hp := hostPort(svc)
		probes = append(probes, &gwProbe{names: protocolName(proto), method: method, svc: svc, cert: !certs[hp]})
		certs[hp] = true
	}
	var jobs []job
	for _, p := range probes {
		name := fmt.Sprintf("%s %s (%s)", p.method, p.svc.URL(), p.names)
		jobs = append(jobs, job{group: "https", name: name, resolves: r.resolves(p.svc.Host, strconv.Itoa(port(p.svc))),
			run: func(ctx context.Context) []Result { return r.probeGroupware(ctx, name, p) }})
	}
	return jobs
}

// protocolName names a groupware protocol in messages.
func protocolName(proto string) string {
	switch proto {
	case discover.ServiceCalDAV:
		return "CalDAV"
	case discover.ServiceCardDAV:
		return "CardDAV"
	case discover.ServiceActiveSync:
		return "ActiveSync"
	}
	return proto
}

func port(s discover.Service) int {
	if s.Port == 0 {
		return 443
	}
	return s.Port
}

// hostPort returns "host:port" of a service.
func hostPort(s discover.Service) string {
	return net.JoinHostPort(s.Host, strconv.Itoa(port(s)))
}

// davHeader is the header of a DAV client's first request.
func davHeader() http.Header { return http.Header{"Depth": {"0"}} }

// probeGroupware sends one request without credentials to a groupware
// URL and judges the answer as the service's clients would.
func (r *run) probeGroupware(ctx context.Context, name string, p *gwProbe) []Result {
	ctx, cancel := r.probeContext(ctx)
	defer cancel()
	res := Result{Group: "https", Name: name}
	u := p.svc.URL()
	host := p.svc.Host
	var body []byte
	var header http.Header
	if p.method == "PROPFIND" {
		body, header = propfindBody, davHeader()
	}
	ans, err := r.requestWith(ctx, p.method, u, body, false, header)
	var dnsErr *net.DNSError
	var ce *certError
	switch {
	case errors.As(err, &dnsErr):
		msg := describe(err, r.opt.Timeout)
		res.Status, res.Detail, res.Fix = Fail, msg, reachFix(host, msg)
		return []Result{res}
	case errors.As(err, &ce):
		cert := Result{Group: "https", Name: "certificate " + hostPort(p.svc), Status: Fail}
		cert.Detail, cert.Fix = certProblem(ce.err, ce.certs, host, "the certificate the web server presents for "+host, r.now)
		return []Result{cert}
	case err != nil && ans == nil:
		msg := describe(err, r.opt.Timeout)
		res.Status, res.Detail = Fail, msg
		res.Fix = fmt.Sprintf("make %s reach the web server that proxies %s to SOGo (%s)", hostPort(p.svc), p.svc.Path, p.svc.Source)
		return []Result{res}
	}
	var out []Result
	if p.cert && ans.tls != nil {
		out = append(out, r.certResult("https", "certificate "+hostPort(p.svc), host, ans.tls.PeerCertificates, "the certificate the web server presents for "+host))
	}
	res.Status, res.Detail, res.Fix = judgeGroupware(p.method, p.svc, ans)
	return append(out, res)
}

// judgeGroupware says whether a groupware URL's answer to a request
// without credentials shows the service there, and what to change if not.
func judgeGroupware(method string, svc discover.Service, ans *answer) (Status, string, string) {
	status := fmt.Sprintf("HTTP %d %s", ans.status, http.StatusText(ans.status))
	route := fmt.Sprintf("check that the web server proxies %s to SOGo (%s) and reload it", svc.Path, svc.Source)
	switch {
	case ans.status == http.StatusUnauthorized:
		return OK, status + ": asks for a password, as SOGo does", ""
	case method == "PROPFIND" && ans.status == http.StatusMultiStatus:
		return OK, status + ": answers as a DAV server", ""
	case method == "OPTIONS" && ans.status == http.StatusOK:
		v := ans.header.Get("MS-ASProtocolVersions")
		if v == "" {
			return Fail, status + " without an MS-ASProtocolVersions header: not an ActiveSync server", route
		}
		return OK, status + ", ActiveSync versions " + v, ""
	case ans.status >= 300 && ans.status <= 399:
		return Fail, status + " to " + ans.location + ": clients expect the service at " + svc.URL(), route
	case ans.status == http.StatusNotFound:
		return Fail, status + ": nothing is served there", route
	case ans.status == http.StatusBadGateway || ans.status == http.StatusServiceUnavailable || ans.status == http.StatusGatewayTimeout:
		return Fail, status + ": SOGo does not answer behind the web server", "start SOGo (systemctl start sogo); " + route
	}
	return Fail, status + ": not what SOGo answers without a password (401)", route
}

// davWalk follows Thunderbird's lookup of a CalDAV or CardDAV server
// for an email address (Thunderbird 153, calendar and address book
// "find from email address"): the _caldavs._tcp (or _carddavs._tcp) SRV
// record of the email domain with its TXT path= (RFC 6764 §6; without
// one, /.well-known/caldav on the SRV target), then
// https://<domain>/.well-known/caldav. Each URL is asked PROPFIND Depth 0
// without credentials; 401 or 207 there means the client finds the
// server and asks for the password.
func (r *run) davWalk(ctx context.Context, t Target, dav dnsrecords.DAVService) Result {
	svc, _ := r.opt.Snapshot.Service(dav.Protocol)
	wellKnown := "/.well-known/" + dav.Protocol // RFC 6764 §5: caldav, carddav
	var srv, wk tried
	var srvURL string // where the SRV and TXT records lead
	var wg sync.WaitGroup
	wg.Go(func() { srv, srvURL = r.trySRVDAV(ctx, t.Domain, dav, wellKnown) })
	wg.Go(func() {
		ctx, cancel := r.probeContext(ctx)
		defer cancel()
		wk = r.tryDAV(ctx, "https://"+t.Domain+wellKnown)
	})
	wg.Wait()
	principal := svc.PrincipalPath(t.Address)
	for _, tr := range []tried{srv, wk} {
		if !tr.ok {
			continue
		}
		res := Result{Status: OK, URL: tr.url, Told: tr.told + "; " + t.Address + "'s principal is " + principal, Detail: "finds the server at " + tr.url}
		if tr.wrong != nil {
			res.Status, res.Detail = Warn, tr.url+" answers, but "+tr.wrong.Error()
			res.Fix = "make it lead to " + svc.URL() + " (this host's " + dav.What + " server)"
		}
		return res
	}
	publish := r.davRecords(t.Domain, dav)
	res := Result{Status: Fail, URL: srv.url,
		Detail: fmt.Sprintf("finds no %s server: %s: %s; %s: %s", dav.What, srv.url, srv.why, shortURL(wk.url), wk.why)}
	switch {
	case srv.found && sameURL(srvURL, svc.URL()) && srv.fix != "":
		// The records are right: what they lead to is not (the service
		// itself is checked under "https" too).
		res.Fix = srv.fix
	case srv.found:
		res.Fix = "replace the records: " + publish
	default:
		res.Fix = publish + fmt.Sprintf(" (the principal of %s is then found under %s, at %s); or make https://%s%s redirect to %s",
			t.Address, svc.Path, principal, t.Domain, wellKnown, svc.URL())
	}
	return res
}

// davService returns the RFC 6764 service of protocol.
func davService(protocol string) dnsrecords.DAVService {
	for _, d := range dnsrecords.DAVServices {
		if d.Protocol == protocol {
			return d
		}
	}
	panic("check: no RFC 6764 service for " + protocol)
}

// davRecords is the fix that publishes a domain's SRV and TXT records
// for dav, as dnsrecords writes them.
func (r *run) davRecords(domain string, dav dnsrecords.DAVService) string {
	var lines []string
	for _, d := range r.plan.Domains {
		if d.Name != domain {
			continue
		}
		for _, rec := range d.Records {
			if rec.Name == dav.Owner(domain) {
				lines = append(lines, rec.String())
			}
		}
	}
	return "publish " + quoteAll(lines)
}

// trySRVDAV follows the SRV and TXT records of dav on domain; it returns
// what came of it and the URL the records lead to ("" for none).
func (r *run) trySRVDAV(ctx context.Context, domain string, dav dnsrecords.DAVService, wellKnown string) (tried, string) {
	owner := dav.Owner(domain)
	name := "SRV " + trimDot(owner)
	ctx, cancel := r.probeContext(ctx)
	defer cancel()
	_, srvs, err := r.resolver.LookupSRV(ctx, "", "", owner)
	if err != nil || len(srvs) == 0 || srvs[0].Target == "." {
		why := "no record"
		var dnsErr *net.DNSError
		if err != nil && !(errors.As(err, &dnsErr) && dnsErr.IsNotFound) {
			why = describe(err, r.opt.Timeout)
		} else if len(srvs) > 0 {
			why = "the record says the service is not offered"
		}
		return tried{url: name, why: why}, ""
	}
	path, how := wellKnown, "no TXT path=, so "+wellKnown
	txts, terr := r.resolver.LookupTXT(ctx, owner)
	if terr == nil {
		for _, txt := range txts {
			if p, ok := strings.CutPrefix(txt, "path="); ok && strings.HasPrefix(p, "/") {
				path, how = p, "TXT path="+p
				break
			}
		}
	}
	target := strings.ToLower(trimDot(srvs[0].Target))
	hostport := target
	if srvs[0].Port != 443 {
		hostport = net.JoinHostPort(target, strconv.Itoa(int(srvs[0].Port)))
	}
	u := "https://" + hostport + path
	t := r.tryDAV(ctx, u)
	t.url = name + " (" + how + ") → " + t.url
	t.found = true
	return t, u
}

// tryDAV asks rawURL PROPFIND Depth 0 without credentials, following
// redirects with the same method (as Thunderbird does), and says whether
// a DAV server answers there.
func (r *run) tryDAV(ctx context.Context, rawURL string) tried {
	out := tried{url: rawURL}
	cur := rawURL
	for hop := 0; ; hop++ {
		u, err := url.Parse(cur)
		if err != nil {
			out.why = err.Error()
			return out
		}
		host := u.Hostname()
		ans, err := r.requestWith(ctx, "PROPFIND", cur, propfindBody, false, davHeader())
		var dnsErr *net.DNSError
		var ce *certError
		switch {
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			out.why = describe(err, r.opt.Timeout)
			return out
		case errors.As(err, &ce):
			out.found = true
			out.why, out.fix = certProblem(ce.err, ce.certs, host, "the certificate the web server presents for "+host, r.now)
			return out
		case err != nil && ans == nil:
			out.why = describe(err, r.opt.Timeout)
			out.fix = reachFix(host, out.why)
			return out
		}
		out.found = true
		if ans.status >= 300 && ans.status <= 399 && ans.location != "" && hop < maxRedirects {
			next, err := u.Parse(ans.location)
			if err != nil {
				out.why = fmt.Sprintf("HTTP %d to a bad Location %q", ans.status, ans.location)
				return out
			}
			cur = next.String()
			out.url += " → " + cur
			continue
		}
		switch ans.status {
		case http.StatusUnauthorized, http.StatusMultiStatus:
			out.ok = true
			out.told = fmt.Sprintf("%s (HTTP %d: it asks for the password)", cur, ans.status)
			if ans.status == http.StatusMultiStatus {
				out.told = fmt.Sprintf("%s (HTTP 207: a DAV server answers)", cur)
			}
			if svcURL := r.davURL(); svcURL != "" && !sameURL(cur, svcURL) && !strings.HasPrefix(cur, svcURL) {
				out.wrong = fmt.Errorf("it leads to %s, not this host's %s", cur, svcURL)
			}
		default:
			out.why = fmt.Sprintf("HTTP %d %s", ans.status, http.StatusText(ans.status))
			out.fix = fmt.Sprintf("make %s lead to a DAV server (it answers HTTP %d)", cur, ans.status)
		}
		return out
	}
}

// davURL is the URL of this host's CalDAV (or CardDAV) service.
func (r *run) davURL() string {
	for _, p := range []string{discover.ServiceCalDAV, discover.ServiceCardDAV} {
		if s, ok := r.opt.Snapshot.Service(p); ok {
			return s.URL()
		}
	}
	return ""
}

// sameURL compares URLs without regard to the host's case or a default
// port.
func sameURL(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	norm := func(u *url.URL) string {
		h := strings.ToLower(u.Hostname())
		if p := u.Port(); p != "" && p != "443" {
			h += ":" + p
		}
		return u.Scheme + "://" + h + u.Path
	}
	return norm(ua) == norm(ub)
}
