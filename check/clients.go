package check

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/smallstep/pkcs7"
	"golang.org/x/net/publicsuffix"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/dnsrecords"
)

// GroupClient is the Group of the per-client results: one per client and
// domain, saying where that client finds its settings, if anywhere.
const GroupClient = "client"

// The clients check follows, by the names their results carry.
const (
	ClientThunderbird = "Thunderbird"
	ClientAndroid     = "Thunderbird for Android"
	ClientOutlook     = "Outlook"
	ClientApple       = "Apple Mail"
	// Thunderbird's calendar and address book lookups, reported only
	// when the host proves it serves CalDAV and CardDAV.
	ClientThunderbirdCalDAV  = "Thunderbird (CalDAV)"
	ClientThunderbirdCardDAV = "Thunderbird (CardDAV)"
)

// A clientWalk follows one client's lookup order for one target and
// returns its result (Status, URL, Told, Detail, Fix; the rest is filled
// in by clientJobs).
type clientWalk struct {
	client string
	walk   func(r *run, ctx context.Context, t Target) Result
	// needs is the groupware protocol (discover.ServiceCalDAV, ...) the
	// host must prove it serves for the walk to be reported; "" for mail.
	needs string
}

// clientWalks are the clients followed, in the order of the table.
//
// The CalDAV and CardDAV walks follow Thunderbird's lookup from the email
// domain: _caldavs._tcp/_carddavs._tcp SRV and TXT path= (RFC 6764), then
// https://<d>/.well-known/caldav|carddav. They are reported only for a
// host that proves it serves the protocol (discover.Snapshot.Service);
// the Apple row says whether the profile carries the CalDAV and CardDAV
// payloads.
var clientWalks = []clientWalk{
	{ClientThunderbird, func(r *run, ctx context.Context, t Target) Result { return r.walkMozilla(ctx, t, false) }, ""},
	{ClientAndroid, func(r *run, ctx context.Context, t Target) Result { return r.walkMozilla(ctx, t, true) }, ""},
	{ClientOutlook, (*run).walkOutlook, ""},
	{ClientApple, (*run).walkApple, ""},
	{ClientThunderbirdCalDAV, func(r *run, ctx context.Context, t Target) Result {
		return r.davWalk(ctx, t, davService(discover.ServiceCalDAV))
	}, discover.ServiceCalDAV},
	{ClientThunderbirdCardDAV, func(r *run, ctx context.Context, t Target) Result {
		return r.davWalk(ctx, t, davService(discover.ServiceCardDAV))
	}, discover.ServiceCardDAV},
}

// walks returns the client walks that apply to the run's host.
func (r *run) walks() []clientWalk {
	var out []clientWalk
	for _, w := range clientWalks {
		if w.needs != "" {
			if _, ok := r.opt.Snapshot.Service(w.needs); !ok {
				continue
			}
		}
		out = append(out, w)
	}
	return out
}

// clientJobs returns one job per client and target.
func (r *run) clientJobs() []job {
	var jobs []job
	walks := r.walks()
	for _, t := range r.opt.Targets {
		for _, w := range walks {
			name := w.client + " " + t.Domain
			jobs = append(jobs, job{group: GroupClient, name: name, client: true, run: func(ctx context.Context) []Result {
				res := w.walk(r, ctx, t)
				res.Group, res.Name, res.Client, res.Domain = GroupClient, name, w.client, t.Domain
				return []Result{res}
			}})
		}
	}
	return jobs
}

// A step is one request a client makes.
type step struct {
	method, url string
	body        []byte
	// read judges a 200 answer as the client would: what it is told, and
	// refused when the client would not use the answer at all.
	read func(body []byte) (told string, refused error)
	// compare says how the answer differs from this host's endpoints.
	compare func(body []byte) error
	// redirect: the step expects a redirect to an https:// URL and
	// continues there with next (Outlook's http:// step).
	redirect bool
	next     func(location string) step
}

// A tried is what came of one step.
type tried struct {
	url   string
	ok    bool   // the client uses the answer
	told  string // what it is told
	wrong error  // the answer differs from this host's endpoints
	why   string // why the client gets nothing here
	fix   string
	found bool // the name resolved and a server answered (whatever it said)
}

// try performs one step within the probe timeout.
func (r *run) try(ctx context.Context, s step) tried {
	ctx, cancel := r.probeContext(ctx)
	defer cancel()
	return r.tryIn(ctx, s)
}

func (r *run) tryIn(ctx context.Context, s step) tried {
	out := tried{url: s.url}
	u, err := url.Parse(s.url)
	if err != nil {
		out.why = err.Error()
		return out
	}
	host := u.Hostname()
	ans, err := r.request(ctx, s.method, s.url, s.body, !s.redirect)
	var dnsErr *net.DNSError
	var ce *certError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		out.why = describe(err, r.opt.Timeout)
		out.fix = r.nameFix(host)
		return out
	case errors.As(err, &ce):
		out.found = true
		out.why, out.fix = certProblem(ce.err, ce.certs, host, "the certificate the web server presents for "+host, r.now)
		return out
	case err != nil:
		msg := describe(err, r.opt.Timeout)
		if ans != nil {
			msg = err.Error()
		}
		out.why, out.fix = msg, reachFix(host, msg)
		if u.Scheme == "http" && !strings.HasPrefix(msg, "looking up") {
			out.fix = "make " + host + " reach a web server on port 80 that passes " + u.Path + " to mailautoconf"
		}
		return out
	}
	out.found = true
	if s.redirect {
		loc, lerr := url.Parse(ans.location)
		if ans.status < 300 || ans.status > 399 || lerr != nil || loc.Scheme != "https" {
			out.why = fmt.Sprintf("HTTP %d, not a redirect to an https:// URL", ans.status)
			out.fix = "make the web server for " + host + " pass " + u.Path + " to mailautoconf with X-Forwarded-Proto: http (it answers with the redirect)"
			return out
		}
		next := r.tryIn(ctx, s.next(ans.location))
		next.url = s.url + " → " + next.url
		return next
	}
	if ans.status != http.StatusOK {
		out.why = fmt.Sprintf("HTTP %d %s", ans.status, http.StatusText(ans.status))
		if said := firstLine(ans.body); said != "" {
			out.why += " (" + said + ")"
		}
		out.fix = fmt.Sprintf("make the web server for %s pass %s to mailautoconf (serve --listen) with the Host header", host, u.Path)
		return out
	}
	told, refused := s.read(ans.body)
	if refused != nil {
		out.why = refused.Error()
		out.fix = "make " + host + " reach this host's mailautoconf: another server answers there"
		return out
	}
	out.ok, out.told = true, told
	if s.compare != nil {
		out.wrong = s.compare(ans.body)
	}
	if s.next != nil {
		next := r.tryIn(ctx, s.next(told))
		next.url = s.url + " → " + next.url
		return next
	}
	return out
}

// firstLine returns the start of a short text answer, for the reason of
// an error status ("404 not found: ..."); "" for a document.
func firstLine(body []byte) string {
	s := strings.TrimSpace(string(body))
	if s == "" || strings.HasPrefix(s, "<") || strings.HasPrefix(s, "{") {
		return ""
	}
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

// nameFix says how to make a discovery name that does not resolve reach
// this host.
func (r *run) nameFix(host string) string {
	return fmt.Sprintf("publish %q and add %s to the certificate the web server presents", host+". 3600 IN CNAME "+r.plan.Host+".", host)
}

// tryAll performs steps concurrently, as Thunderbird does (the order is
// only the priority), and returns what came of each, in order.
func (r *run) tryAll(ctx context.Context, steps []step) []tried {
	out := make([]tried, len(steps))
	var wg sync.WaitGroup
	for i, s := range steps {
		wg.Go(func() { out[i] = r.try(ctx, s) })
	}
	wg.Wait()
	return out
}

// judge turns the steps' outcomes into a client's result: the first step
// the client uses wins. insecure says which winning URLs work only with
// a warning, and why.
func judge(all []tried, insecure func(url string) string) Result {
	for _, t := range all {
		if !t.ok {
			continue
		}
		res := Result{Status: OK, URL: t.url, Told: t.told, Detail: "uses the first answer it gets, from " + t.url}
		if why := insecure(t.url); why != "" {
			res.Status, res.Detail = Warn, why
		}
		if t.wrong != nil {
			res.Status, res.Detail = Fail, t.url+" answers, but "+t.wrong.Error()
			res.Fix = "make " + hostOf(t.url) + " reach this host's mailautoconf (an old or foreign server answers), and reload it after configuration changes: systemctl reload mailautoconf"
		}
		return res
	}
	res := Result{Status: Fail}
	var whys []string
	for _, t := range all {
		whys = append(whys, shortURL(t.url)+": "+t.why)
	}
	if len(all) > 0 {
		res.URL = all[0].url
	}
	res.Detail = "finds nothing: " + strings.Join(whys, "; ")
	return res
}

// shortURL leaves the query out of a URL (or each URL of a chain): the
// address it carries is the same in every step.
func shortURL(s string) string {
	parts := strings.Split(s, " → ")
	for i, p := range parts {
		p, _, _ = strings.Cut(p, "?")
		parts[i] = p
	}
	return strings.Join(parts, " → ")
}

// hostOf returns the host of a URL, or of the last URL of a chain.
func hostOf(rawURL string) string {
	if i := strings.LastIndex(rawURL, " → "); i >= 0 {
		rawURL = rawURL[i+len(" → "):]
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Hostname()
}

// baseDomain returns the registrable domain of name (public suffix plus
// one label), as Thunderbird's Services.eTLD and Thunderbird for Android's
// OkHttp PublicSuffixDatabase compute it, from the public suffix list
// compiled into golang.org/x/net/publicsuffix (it may lag theirs by a
// release; a name under no listed suffix counts its last label as one).
func baseDomain(name string) string {
	name = strings.ToLower(trimDot(name))
	if b, err := publicsuffix.EffectiveTLDPlusOne(name); err == nil {
		return b
	}
	return name
}

// An mxFallback is where Thunderbird's MX step looks for a domain.
type mxFallback struct {
	mx    string   // the first MX host; "" when there is none
	base  string   // its base domain
	names []string // the domains whose autoconfig.<name> is tried, in order
	why   string   // why there is no MX step
}

// mxStep finds the MX fallback of domain: the first MX only; none when
// its base domain is the domain itself; else autoconfig.<the MX host
// minus its first label> (when that is not the base domain) and
// autoconfig.<base domain>.
func (r *run) mxStep(ctx context.Context, domain string) mxFallback {
	ctx, cancel := r.probeContext(ctx)
	defer cancel()
	mxs, err := r.resolver.LookupMX(ctx, domain+".")
	var dnsErr *net.DNSError
	switch {
	case err != nil && !(errors.As(err, &dnsErr) && dnsErr.IsNotFound):
		return mxFallback{why: "MX lookup: " + describe(err, r.opt.Timeout)}
	case len(mxs) == 0 || mxs[0].Host == ".":
		return mxFallback{why: "no MX, so no MX fallback"}
	}
	f := mxFallback{mx: strings.ToLower(trimDot(mxs[0].Host))}
	f.base = baseDomain(f.mx)
	if f.base == domain {
		f.why = "no MX fallback: the first MX " + f.mx + " is in " + domain + " itself"
		return f
	}
	if _, sub, ok := strings.Cut(f.mx, "."); ok && sub != f.base && strings.HasSuffix(sub, "."+f.base) {
		f.names = append(f.names, sub)
	}
	f.names = append(f.names, f.base)
	return f
}

// walkMozilla follows Thunderbird (desktop 153) or, with android,
// Thunderbird for Android: the ISP URLs over https, then over http
// (sslOnly is false by default), then the MX fallback over https only.
// Thunderbird sends ?emailaddress=; Thunderbird for Android never does.
func (r *run) walkMozilla(ctx context.Context, t Target, android bool) Result {
	eps := dnsrecords.Advertised(r.opt.Snapshot)
	q := "?emailaddress=" + url.QueryEscape(t.Address)
	if android {
		q = ""
	}
	mozilla := func(u string) step {
		return step{method: "GET", url: u,
			read:    func(b []byte) (string, error) { return readAutoconfig(b, t.Address, android) },
			compare: func(b []byte) error { return compareAutoconfig(b, eps) }}
	}
	steps := []step{
		mozilla("https://autoconfig." + t.Domain + "/mail/config-v1.1.xml" + q),
		mozilla("https://" + t.Domain + "/.well-known/autoconfig/mail/config-v1.1.xml" + q),
		mozilla("http://autoconfig." + t.Domain + "/mail/config-v1.1.xml" + q),
		mozilla("http://" + t.Domain + "/.well-known/autoconfig/mail/config-v1.1.xml" + q),
	}
	var all, mxTried []tried
	var mx mxFallback
	var wg sync.WaitGroup
	wg.Go(func() { all = r.tryAll(ctx, steps) })
	wg.Go(func() {
		mx = r.mxStep(ctx, t.Domain)
		var more []step
		for _, n := range mx.names {
			more = append(more, mozilla("https://autoconfig."+n+"/mail/config-v1.1.xml"+q))
		}
		mxTried = r.tryAll(ctx, more)
	})
	wg.Wait()
	all = append(all, mxTried...)
	res := judge(all, func(u string) string {
		if strings.HasPrefix(u, "http://") {
			return "only " + u + " answers, over plain HTTP: anyone on the network path can change the servers it is told"
		}
		return ""
	})
	switch {
	case res.Status != Fail:
	case mx.why != "":
		res.Detail += "; " + mx.why
	case mx.base != baseDomain(r.plan.Host):
		res.Detail += fmt.Sprintf("; the MX fallback follows the first MX %s, outside this host's domain %s", mx.mx, baseDomain(r.plan.Host))
	}
	if res.Status == OK {
		return res
	}
	// The cheapest fix: one name, autoconfig.<MX base domain>, serving
	// every domain whose first MX is under it, when that base domain is
	// the mail host's own (its owner can publish the name); for
	// Thunderbird for Android only when the name's domain is hosted, since
	// it sends no address and the answer follows the Host header.
	own := r.ispFix(all[:len(steps)], t.Domain)
	switch {
	case res.Status == Warn:
		// An ISP answer, even over http://, wins over the MX fallback.
		res.Fix = "serve https://autoconfig." + t.Domain + ": " + own
		return res
	case res.Fix != "": // a wrong answer: it wins too
		return res
	}
	if n := len(mxTried); n > 0 && mx.base == baseDomain(r.plan.Host) && r.mxServes(ctx, mx.names[n-1], android) {
		last := mxTried[n-1]
		if !last.ok {
			shared := "autoconfig." + mx.names[n-1]
			res.Fix = fmt.Sprintf("%s (one name, %s, serves every domain whose first MX is under %s, through Thunderbird's MX fallback); or for %s alone: %s",
				last.fix, shared, mx.base, t.Domain, own)
			return res
		}
	}
	res.Fix = own
	return res
}

// ispFix is the fix for a domain's own autoconfig name: that of its first
// step, unless that step reached a server and the fix is elsewhere.
func (r *run) ispFix(isp []tried, domain string) string {
	if isp[0].fix != "" {
		return isp[0].fix
	}
	return r.nameFix("autoconfig." + domain)
}

// mxServes reports whether mailautoconf answers autoconfig.<name> for a
// client that sends no address: it answers for the domain the Host header
// names, so name must be hosted (or the mail host's own name).
func (r *run) mxServes(ctx context.Context, name string, android bool) bool {
	if !android || name == r.plan.Host {
		return true
	}
	_, ok, err := r.opt.Snapshot.Lookup(ctx, name)
	return ok && err == nil
}

// walkOutlook follows Outlook: autodiscover.json v1.0 (current builds ask
// it first) and the POX URL it names, then POX at
// https://autodiscover.<d>, https://<d>, the http://autodiscover.<d>
// redirect, and the _autodiscover._tcp SRV record.
func (r *run) walkOutlook(ctx context.Context, t Target) Result {
	eps := dnsrecords.Advertised(r.opt.Snapshot)
	pox := func(u string) step {
		return step{method: "POST", url: u, body: poxRequest(t.Address), read: readPOX,
			compare: func(b []byte) error { return comparePOX(b, eps) }}
	}
	jsonURL := "https://autodiscover." + t.Domain + "/autodiscover/autodiscover.json/v1.0/" + url.PathEscape(t.Address) + "?Protocol=AutodiscoverV1"
	steps := []step{
		{method: "GET", url: jsonURL, read: readJSON, next: pox},
		pox("https://autodiscover." + t.Domain + "/autodiscover/autodiscover.xml"),
		pox("https://" + t.Domain + "/autodiscover/autodiscover.xml"),
		{method: "GET", url: "http://autodiscover." + t.Domain + "/autodiscover/autodiscover.xml", redirect: true, next: pox},
	}
	var all []tried
	var srv tried
	var wg sync.WaitGroup
	wg.Go(func() { all = r.tryAll(ctx, steps) })
	wg.Go(func() { srv = r.trySRV(ctx, t.Domain, pox) })
	wg.Wait()
	all = append(all, srv)
	res := judge(all, func(u string) string {
		switch {
		case strings.HasPrefix(u, "http://"):
			return "only through the http://autodiscover." + t.Domain + " redirect, which Outlook asks the user to allow: " + u
		case strings.HasPrefix(u, "SRV "):
			return "only through the SRV record, which Outlook asks the user to allow: " + u
		}
		return ""
	})
	if res.Status == OK {
		return res
	}
	if res.Fix == "" {
		res.Fix = all[1].fix
		if res.Fix == "" {
			res.Fix = r.nameFix("autodiscover." + t.Domain)
		}
		if !srv.ok {
			res.Fix += fmt.Sprintf("; or, with a prompt in Outlook, publish %q (the host's own name, if its web server passes /autodiscover/ to mailautoconf)",
				"_autodiscover._tcp."+t.Domain+". 3600 IN SRV 0 0 443 "+r.plan.Host+".")
		}
	}
	return res
}

// trySRV looks up _autodiscover._tcp.<domain> and POSTs to the target of
// its first record.
func (r *run) trySRV(ctx context.Context, domain string, pox func(string) step) tried {
	owner := "_autodiscover._tcp." + domain
	lctx, cancel := r.probeContext(ctx)
	_, srvs, err := r.resolver.LookupSRV(lctx, "", "", owner+".")
	cancel()
	if err != nil || len(srvs) == 0 || srvs[0].Target == "." {
		why := "no record"
		var dnsErr *net.DNSError
		if err != nil && !(errors.As(err, &dnsErr) && dnsErr.IsNotFound) {
			why = describe(err, r.opt.Timeout)
		}
		return tried{url: "SRV " + owner, why: why, fix: fmt.Sprintf("publish %q", owner+". 3600 IN SRV 0 0 443 "+r.plan.Host+".")}
	}
	target := strings.ToLower(trimDot(srvs[0].Target))
	hostport := target
	if srvs[0].Port != 443 {
		hostport = net.JoinHostPort(target, fmt.Sprint(srvs[0].Port))
	}
	t := r.try(ctx, pox("https://"+hostport+"/autodiscover/autodiscover.xml"))
	t.url = "SRV " + owner + " → " + t.url
	return t
}

// walkApple follows a person setting up Apple Mail: Mail fetches nothing
// itself; the settings page (https://autoconfig.<d>/, or autodiscover.<d>)
// links the profile /mobileconfig?emailaddress=<address>.
func (r *run) walkApple(ctx context.Context, t Target) Result {
	eps := dnsrecords.Advertised(r.opt.Snapshot)
	q := "/mobileconfig?emailaddress=" + url.QueryEscape(t.Address)
	var mu sync.Mutex
	payloads := map[string][]string{} // the profile's payload types, by URL
	profile := func(u string) step {
		return step{method: "GET", url: u,
			read: func(b []byte) (string, error) {
				m, err := parseProfile(b)
				if err != nil {
					return "", err
				}
				mu.Lock()
				payloads[u] = m.payloads
				mu.Unlock()
				return summarizeProfile(m), nil
			},
			compare: func(b []byte) error { return compareProfile(b, eps) }}
	}
	all := r.tryAll(ctx, []step{profile("https://autoconfig." + t.Domain + q), profile("https://autodiscover." + t.Domain + q)})
	res := judge(all, func(string) string { return "" })
	if res.Status == OK {
		res.Detail = "the settings page links the profile " + res.URL
		// A host serving CalDAV and CardDAV: the profile should set up
		// Calendar and Contacts too.
		var lacks []string
		for _, p := range []struct{ proto, payload string }{
			{discover.ServiceCalDAV, PayloadCalDAV}, {discover.ServiceCardDAV, PayloadCardDAV},
		} {
			if _, ok := r.opt.Snapshot.Service(p.proto); ok && !slices.Contains(payloads[res.URL], p.payload) {
				lacks = append(lacks, fmt.Sprintf("%s (%s)", protocolName(p.proto), p.payload))
			}
		}
		if len(lacks) > 0 {
			res.Status = Warn
			noun := " payload"
			if len(lacks) > 1 {
				noun += "s"
			}
			res.Detail += "; it sets up mail only, without the " + strings.Join(lacks, " and ") + noun + " this host could offer"
			res.Fix = "make " + hostOf(res.URL) + " reach this host's current mailautoconf, and reload it after configuration changes (systemctl reload mailautoconf): its profile carries CalDAV and CardDAV accounts for a host that serves them"
		}
	}
	if res.Fix == "" && res.Status == Fail {
		res.Fix = all[0].fix + "; the settings page there links the profile"
	}
	return res
}

// readAutoconfig reads an autoconfig document as Thunderbird (or, with
// android, Thunderbird for Android, which takes the first IMAP server and
// the first SMTP server) would for address, and summarizes what it uses,
// the user name's placeholders filled in as the client fills them.
func readAutoconfig(body []byte, address string, android bool) (string, error) {
	var cc clientConfig
	if err := xml.Unmarshal(body, &cc); err != nil {
		return "", fmt.Errorf("not an autoconfig document: %v", err)
	}
	var in, out []acServer
	for _, p := range cc.Providers {
		in, out = append(in, p.Incoming...), append(out, p.Outgoing...)
	}
	if android {
		in = slices.DeleteFunc(in, func(s acServer) bool { return !strings.EqualFold(s.Type, "imap") })
	}
	out = slices.DeleteFunc(out, func(s acServer) bool { return !strings.EqualFold(s.Type, "smtp") })
	if len(in) == 0 || len(out) == 0 {
		return "", errors.New("the autoconfig document lacks an incoming or an SMTP server")
	}
	local, domain, _ := strings.Cut(address, "@")
	user := strings.NewReplacer("%EMAILADDRESS%", address, "%EMAILLOCALPART%", local, "%EMAILDOMAIN%", domain).Replace(in[0].Username)
	return fmt.Sprintf("%s, %s, user name %s", acSummary(in[0]), acSummary(out[0]), user), nil
}

func acSummary(s acServer) string {
	return fmt.Sprintf("%s %s:%d %s", strings.ToUpper(s.Type), s.Hostname, s.Port, s.SocketType)
}

// readPOX reads an Outlook POX answer: its first incoming and SMTP server.
func readPOX(body []byte) (string, error) {
	var a poxAnswer
	if err := xml.Unmarshal(body, &a); err != nil {
		return "", fmt.Errorf("not an Autodiscover answer: %v", err)
	}
	if e := a.Response.Error; e != nil {
		return "", fmt.Errorf("Autodiscover error %s: %s", e.ErrorCode, e.Message)
	}
	var parts []string
	for _, want := range []string{"incoming", "SMTP"} {
		for _, p := range a.Response.Account.Protocols {
			if (want == "SMTP") == strings.EqualFold(p.Type, "SMTP") {
				enc := p.Encryption
				if enc == "" {
					enc = "SSL " + p.SSL
				}
				parts = append(parts, fmt.Sprintf("%s %s:%d %s", strings.ToUpper(p.Type), p.Server, p.Port, enc))
				break
			}
		}
	}
	if len(parts) < 2 {
		return "", errors.New("the Autodiscover answer lacks an incoming or an SMTP server")
	}
	return strings.Join(parts, ", "), nil
}

// readJSON reads an autodiscover.json answer: the POX URL it names.
func readJSON(body []byte) (string, error) {
	var a struct{ Protocol, Url string }
	if err := json.Unmarshal(body, &a); err != nil {
		return "", fmt.Errorf("not an autodiscover.json answer: %v", err)
	}
	if u, err := url.Parse(a.Url); err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("autodiscover.json names no https:// URL (%q)", a.Url)
	}
	return a.Url, nil
}

// appleMail is the part of a profile's mail payload summarized.
type appleMail struct {
	accountType, inHost, outHost string
	inPort, outPort              int
	inSSL, outSSL                bool
	signed                       bool
	payloads                     []string // every PayloadType, in order
}

// parseProfile reads a profile, signed (CMS) or not, and returns its mail
// payload's servers.
func parseProfile(body []byte) (appleMail, error) {
	var m appleMail
	if p7, err := pkcs7.Parse(body); err == nil {
		body, m.signed = p7.Content, true
	}
	d := xml.NewDecoder(strings.NewReader(string(body)))
	d.Strict = false
	var key string
	found := false
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "key":
			var k string
			if d.DecodeElement(&k, &se) == nil {
				key = k
			}
			continue
		case "true", "false":
			v := se.Name.Local == "true"
			switch key {
			case "IncomingMailServerUseSSL":
				m.inSSL = v
			case "OutgoingMailServerUseSSL":
				m.outSSL = v
			}
		case "string", "integer":
			var v string
			if d.DecodeElement(&v, &se) != nil {
				continue
			}
			var n int
			fmt.Sscan(v, &n)
			switch key {
			case "EmailAccountType":
				m.accountType, found = v, true
			case "IncomingMailServerHostName":
				m.inHost = v
			case "IncomingMailServerPortNumber":
				m.inPort = n
			case "OutgoingMailServerHostName":
				m.outHost = v
			case "OutgoingMailServerPortNumber":
				m.outPort = n
			case "PayloadType":
				m.payloads = append(m.payloads, v)
			}
		}
		key = ""
	}
	if !found || m.inHost == "" || m.outHost == "" {
		return m, errors.New("not a mail configuration profile")
	}
	return m, nil
}

// readProfile summarizes a profile's servers.
func readProfile(body []byte) (string, error) {
	m, err := parseProfile(body)
	if err != nil {
		return "", err
	}
	return summarizeProfile(m), nil
}

// summarizeProfile says what a profile sets up: the mail servers, the
// CalDAV and CardDAV accounts if any, and whether it is signed.
func summarizeProfile(m appleMail) string {
	tls := func(b bool) string {
		if b {
			return "SSL"
		}
		return "no SSL"
	}
	kind := "IMAP"
	if m.accountType == "EmailTypePOP" {
		kind = "POP3"
	}
	sig := "unsigned"
	if m.signed {
		sig = "signed"
	}
	dav := ""
	for _, p := range []struct{ payload, what string }{{PayloadCalDAV, "CalDAV"}, {PayloadCardDAV, "CardDAV"}} {
		if slices.Contains(m.payloads, p.payload) {
			dav += ", " + p.what + " account"
		}
	}
	return fmt.Sprintf("%s %s:%d %s, SMTP %s:%d %s%s, %s", kind, m.inHost, m.inPort, tls(m.inSSL), m.outHost, m.outPort, tls(m.outSSL), dav, sig)
}

// The payload types of a profile's CalDAV and CardDAV accounts.
const (
	PayloadCalDAV  = "com.apple.caldav.account"
	PayloadCardDAV = "com.apple.carddav.account"
)

// compareProfile checks that a profile names advertised servers.
func compareProfile(body []byte, eps []discover.Endpoint) error {
	m, err := parseProfile(body)
	if err != nil {
		return err
	}
	proto := "imap"
	if m.accountType == "EmailTypePOP" {
		proto = "pop3"
	}
	var missing []string
	for _, s := range []struct {
		proto, host string
		port        int
	}{{proto, m.inHost, m.inPort}, {"smtp", m.outHost, m.outPort}} {
		if !slices.ContainsFunc(eps, func(e discover.Endpoint) bool {
			return e.Protocol == s.proto && sameName(e.Host, s.host) && e.Port == s.port
		}) {
			missing = append(missing, fmt.Sprintf("%s %s:%d", s.proto, s.host, s.port))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the profile names %s, which this host's configuration does not", strings.Join(missing, ", "))
	}
	return nil
}
