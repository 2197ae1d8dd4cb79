package check

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/dnsrecords"
)

// maxAnswer bounds a discovery answer read: real ones are a few KiB.
const maxAnswer = 1 << 20

// A certError is a handshake refused because the certificate is not valid
// for the name asked, as a client refuses it.
type certError struct {
	certs []*x509.Certificate
	err   error
}

func (e *certError) Error() string { return "certificate: " + e.err.Error() }
func (e *certError) Unwrap() error { return e.err }

// client returns an HTTP client that dials through the run's overrides
// and refuses a certificate the roots do not vouch for.
func (r *run) client() *http.Client {
	tr := &http.Transport{
		DialContext:         r.dialAddr,
		TLSHandshakeTimeout: r.opt.Timeout,
		DisableKeepAlives:   true,
		ForceAttemptHTTP2:   true,
		TLSClientConfig: &tls.Config{
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: true, // VerifyConnection does it, keeping the chain for the message
			VerifyConnection: func(cs tls.ConnectionState) error {
				if err := r.verify(cs.PeerCertificates, cs.ServerName); err != nil {
					return &certError{certs: cs.PeerCertificates, err: err}
				}
				return nil
			},
		},
	}
	// No Client.Timeout: the request's context bounds it, and keeps the
	// cause (a lookup, a dial) in the error.
	return &http.Client{Transport: tr}
}

// An httpsCheck is one discovery URL.
type httpsCheck struct {
	method, url string
	host        string // the name the certificate must cover
	body        []byte
	// optional is true for the domain's own web site: it may refuse the
	// path, as long as it does so at once.
	optional bool
	compare  func(body []byte) error
}

// httpsJobs returns one job per discovery URL of each target.
func (r *run) httpsJobs() []job {
	eps := dnsrecords.Advertised(r.opt.Snapshot)
	var jobs []job
	for _, t := range r.opt.Targets {
		q := "?emailaddress=" + url.QueryEscape(t.Address)
		checks := []httpsCheck{
			{method: "GET", host: "autoconfig." + t.Domain, url: "https://autoconfig." + t.Domain + "/mail/config-v1.1.xml" + q,
				compare: func(b []byte) error { return compareAutoconfig(b, eps) }},
			{method: "GET", host: t.Domain, url: "https://" + t.Domain + "/.well-known/autoconfig/mail/config-v1.1.xml" + q,
				optional: t.Domain != r.plan.Host, compare: func(b []byte) error { return compareAutoconfig(b, eps) }},
			{method: "POST", host: "autodiscover." + t.Domain, url: "https://autodiscover." + t.Domain + "/autodiscover/autodiscover.xml",
				body: poxRequest(t.Address), compare: func(b []byte) error { return comparePOX(b, eps) }},
		}
		for _, c := range checks {
			jobs = append(jobs, job{group: "https", name: c.method + " " + c.url, resolves: r.resolves(c.host, "443"), run: func(ctx context.Context) []Result {
				return r.fetch(ctx, c)
			}})
		}
	}
	return jobs
}

// An answer is what a web server answered to one request.
type answer struct {
	status   int
	body     []byte // at most maxAnswer bytes
	location string // the Location header of a redirect not followed
	header   http.Header
	tls      *tls.ConnectionState
}

// request sends one request (body nil for none) through the run's
// overrides and reads the answer. The host (the URL's) is resolved first,
// unless --connect names where to dial, so that a name that does not
// resolve (or a resolver that does not answer) is told apart from a web
// server that does not answer: that error is a *net.DNSError. A
// certificate the roots do not vouch for for the host is a *certError.
// Redirects are followed only when follow is true.
func (r *run) request(ctx context.Context, method, rawURL string, body []byte, follow bool) (*answer, error) {
	return r.requestWith(ctx, method, rawURL, body, follow, nil)
}

// requestWith is request with more request headers (Depth for PROPFIND).
func (r *run) requestWith(ctx context.Context, method, rawURL string, body []byte, follow bool, header http.Header) (*answer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	host := u.Hostname()
	if r.target(host, port) == net.JoinHostPort(host, port) {
		if _, err := r.lookupHost(ctx, host); err != nil {
			return nil, err
		}
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	}
	req.Header.Set("User-Agent", "mailautoconf-check")
	for k, v := range header {
		req.Header[k] = v
	}
	client := r.client()
	if !follow {
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	a := &answer{status: resp.StatusCode, tls: resp.TLS, location: resp.Header.Get("Location"), header: resp.Header}
	a.body, err = io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return a, fmt.Errorf("reading the answer: %w", err)
	}
	return a, nil
}

// fetch requests one discovery URL and judges the certificate and the
// answer.
func (r *run) fetch(ctx context.Context, c httpsCheck) []Result {
	ctx, cancel := r.probeContext(ctx)
	defer cancel()
	name := c.method + " " + strings.SplitN(c.url, "?", 2)[0]
	res := Result{Group: "https", Name: name}
	where := "the certificate the web server presents for " + c.host
	ans, err := r.request(ctx, c.method, c.url, c.body, true)
	var dnsErr *net.DNSError
	if err != nil && errors.As(err, &dnsErr) {
		msg := describe(err, r.opt.Timeout)
		if c.optional && dnsErr.IsNotFound {
			res.Status, res.Detail = OK, "not served ("+msg+"): fine, clients use autoconfig."+c.host
			return []Result{res}
		}
		res.Status, res.Detail, res.Fix = Fail, msg, reachFix(c.host, msg)
		return []Result{res}
	}
	if err != nil && ans == nil {
		var ce *certError
		if errors.As(err, &ce) {
			cert := Result{Group: "https", Name: "certificate " + c.host, Status: Fail}
			cert.Detail, cert.Fix = certProblem(ce.err, ce.certs, c.host, where, r.now)
			if c.optional {
				cert.Status = Warn
				cert.Fix += ", or make it refuse the path (clients try autoconfig." + c.host + " first)"
			}
			return []Result{cert}
		}
		msg := describe(err, r.opt.Timeout)
		switch {
		case c.optional && !isTimeout(err) && !errors.Is(err, context.DeadlineExceeded):
			res.Status, res.Detail = OK, "not served ("+msg+"): fine, it fails at once and clients use autoconfig."+c.host
		case c.optional:
			res.Status, res.Detail = Fail, msg+": clients wait here before trying other ways"
			res.Fix = "make the web server of " + c.host + " proxy /.well-known/autoconfig/ to mailautoconf or refuse it at once"
		default:
			res.Status, res.Detail = Fail, msg
			res.Fix = reachFix(c.host, msg)
		}
		return []Result{res}
	}
	var out []Result
	if ans.tls != nil {
		out = append(out, r.certResult("https", "certificate "+c.host, c.host, ans.tls.PeerCertificates, where))
	}
	path := c.url
	if u, perr := url.Parse(c.url); perr == nil {
		path = u.Path
	}
	switch {
	case err != nil:
		res.Status, res.Detail, res.Fix = Fail, "reading the answer: "+describe(errors.Unwrap(err), r.opt.Timeout), reachFix(c.host, "")
	case ans.status != http.StatusOK && c.optional && ans.status < 500:
		res.Status, res.Detail = OK, fmt.Sprintf("not served (HTTP %d): fine, clients use autoconfig.%s", ans.status, c.host)
	case ans.status != http.StatusOK:
		res.Status, res.Detail = Fail, fmt.Sprintf("HTTP %d %s", ans.status, http.StatusText(ans.status))
		res.Fix = fmt.Sprintf("make the web server for %s pass %s to mailautoconf (serve --listen) with the Host header", c.host, path)
	default:
		if err := c.compare(ans.body); err != nil {
			res.Status, res.Detail = Fail, err.Error()
			res.Fix = "make " + c.host + " reach this host's mailautoconf (an old or foreign server answers), and reload it after configuration changes: systemctl reload mailautoconf"
		} else {
			res.Status, res.Detail = OK, "answers with this host's servers"
		}
	}
	return append(out, res)
}

// reachFix says what to change when a discovery name cannot be reached.
func reachFix(host, msg string) string {
	if strings.Contains(msg, "does not resolve") {
		return "publish the DNS record for " + host + " (see mailautoconf dns)"
	}
	if strings.HasPrefix(msg, "looking up") {
		return "make the resolver answer (or name one with --resolver), then check again"
	}
	return "make " + host + " reach a web server on port 443 that passes discovery requests to mailautoconf (or serve --listen-tls)"
}

// endpointKey names an endpoint for comparison.
func endpointKey(protocol, host string, port int, sec discover.Security) string {
	return fmt.Sprintf("%s %s:%d %s", strings.ToLower(protocol), strings.ToLower(trimDot(host)), port, sec)
}

// compareSets explains how the servers an answer lists differ from want.
func compareSets(what string, got, want []string) error {
	var missing, extra []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			extra = append(extra, g)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return nil
	}
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, "lacks "+strings.Join(missing, ", "))
	}
	if len(extra) > 0 {
		parts = append(parts, "lists "+strings.Join(extra, ", ")+" which this host's configuration does not")
	}
	return fmt.Errorf("the %s %s", what, strings.Join(parts, "; "))
}

// clientConfig is the part of a Mozilla autoconfig document compared.
type clientConfig struct {
	XMLName   xml.Name `xml:"clientConfig"`
	Providers []struct {
		Incoming []acServer `xml:"incomingServer"`
		Outgoing []acServer `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

type acServer struct {
	Type       string `xml:"type,attr"`
	Hostname   string `xml:"hostname"`
	Port       int    `xml:"port"`
	SocketType string `xml:"socketType"`
	Username   string `xml:"username"`
}

// compareAutoconfig checks that an autoconfig document lists exactly the
// advertised endpoints.
func compareAutoconfig(body []byte, eps []discover.Endpoint) error {
	var cc clientConfig
	if err := xml.Unmarshal(body, &cc); err != nil {
		return fmt.Errorf("not an autoconfig document: %v", err)
	}
	if len(cc.Providers) == 0 {
		return errors.New("not an autoconfig document: no emailProvider")
	}
	var got, want []string
	for _, p := range cc.Providers {
		for _, s := range append(slices.Clone(p.Incoming), p.Outgoing...) {
			sec := discover.SecurityNone
			switch strings.ToUpper(s.SocketType) {
			case "SSL":
				sec = discover.SecurityTLS
			case "STARTTLS":
				sec = discover.SecuritySTARTTLS
			}
			got = append(got, endpointKey(s.Type, s.Hostname, s.Port, sec))
		}
	}
	for _, e := range eps {
		want = append(want, endpointKey(e.Protocol, e.Host, e.Port, e.Security))
	}
	return compareSets("answer", got, want)
}

// poxRequest is an Outlook POX request for address.
func poxRequest(address string) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>`)
	xml.EscapeText(&b, []byte(address))
	b.WriteString(`</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>
`)
	return b.Bytes()
}

// poxAnswer is the part of a POX response compared.
type poxAnswer struct {
	Response struct {
		Error *struct {
			ErrorCode string `xml:"ErrorCode"`
			Message   string `xml:"Message"`
		} `xml:"Error"`
		Account struct {
			Protocols []struct {
				Type       string `xml:"Type"`
				Server     string `xml:"Server"`
				Port       int    `xml:"Port"`
				SSL        string `xml:"SSL"`
				Encryption string `xml:"Encryption"`
			} `xml:"Protocol"`
		} `xml:"Account"`
	} `xml:"Response"`
}

// comparePOX checks that an Outlook POX answer lists the best endpoint of
// each protocol.
func comparePOX(body []byte, eps []discover.Endpoint) error {
	var a poxAnswer
	if err := xml.Unmarshal(body, &a); err != nil {
		return fmt.Errorf("not an Autodiscover answer: %v", err)
	}
	if e := a.Response.Error; e != nil {
		return fmt.Errorf("Autodiscover error %s: %s", e.ErrorCode, e.Message)
	}
	var got, want []string
	for _, p := range a.Response.Account.Protocols {
		sec := discover.SecurityTLS // SSL defaults to on
		switch {
		case strings.EqualFold(p.Encryption, "TLS"):
			sec = discover.SecuritySTARTTLS
		case strings.EqualFold(p.Encryption, "SSL"):
		case strings.EqualFold(p.Encryption, "None"), strings.EqualFold(p.SSL, "off"):
			sec = discover.SecurityNone
		}
		got = append(got, endpointKey(p.Type, p.Server, p.Port, sec))
	}
	for _, proto := range []string{"imap", "pop3", "smtp"} {
		if i := slices.IndexFunc(eps, func(e discover.Endpoint) bool { return e.Protocol == proto }); i >= 0 {
			e := eps[i]
			want = append(want, endpointKey(e.Protocol, e.Host, e.Port, e.Security))
		}
	}
	return compareSets("answer", got, want)
}
