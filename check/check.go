package check

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/dnsrecords"
)

// Defaults of Options.
const (
	DefaultTimeout     = 5 * time.Second
	DefaultConcurrency = 16
	// ExpiryMargin is how long a certificate must still be valid: a
	// certificate renewed automatically is renewed well before.
	ExpiryMargin = 14 * 24 * time.Hour
)

// Status is the outcome of one check.
type Status string

const (
	OK   Status = "ok"
	Warn Status = "warn" // works, but something is off
	Fail Status = "FAIL" // a client following the setup would fail
)

// A Result is the outcome of one check.
type Result struct {
	Group  string `json:"group"`  // "domains", "dns", "https" or "mail"
	Name   string `json:"name"`   // what was checked: "SRV _imaps._tcp.example.com"
	Status Status `json:"status"` // "ok", "warn" or "FAIL"
	Detail string `json:"detail"` // what was found
	Fix    string `json:"fix,omitempty"`
	// The per-client results (Group "client") also say which client and
	// domain, the URL the client uses (or the first it tries), and what it
	// is told there.
	Client string `json:"client,omitempty"`
	Domain string `json:"domain,omitempty"`
	URL    string `json:"url,omitempty"`
	Told   string `json:"told,omitempty"`
}

// A Target is a domain to check, with the address to ask the discovery
// URLs about (a made-up one of the domain when only the domain was named).
type Target struct {
	Domain  string // lower-case A-labels
	Address string
}

// Options say what to check and how.
type Options struct {
	Snapshot *discover.Snapshot
	// Targets are the domains to check; none: every listed domain.
	Targets []Target
	// Resolver is the DNS server (host:port, or an IP address for port
	// 53) every name is resolved with; "" uses the system's resolvers.
	Resolver string
	// Roots verify every certificate; nil means the system roots.
	Roots *x509.CertPool
	// Connect maps host:port (or host, for any port) to the address to
	// dial instead, like curl --resolve: "mail.example.com:993" →
	// "127.0.0.1:10993". A value without a port keeps the original port.
	Connect map[string]string
	// Timeout bounds each probe: a lookup, an HTTPS request, one whole
	// IMAP/POP3/SMTP conversation. 0 means DefaultTimeout.
	Timeout time.Duration
	// Total bounds the whole run; 0 means 12 × Timeout.
	Total time.Duration
	// Concurrency is how many probes run at once; 0 means
	// DefaultConcurrency.
	Concurrency int
	// Now is the clock certificates are checked against; nil: time.Now.
	Now func() time.Time
}

// A run is one Run's shared state.
type run struct {
	opt      Options
	plan     *dnsrecords.Plan
	resolver *net.Resolver
	now      time.Time
}

// Run performs every check and returns the results in a fixed order: the
// domain sources' warnings, DNS, then HTTPS (the discovery URLs, then the
// groupware services the host proves it serves), then the mail endpoints, then
// one result per client and domain (Group "client"). It fails only when the snapshot
// cannot give the records to check (no host name).
func Run(ctx context.Context, opt Options) ([]Result, error) {
	r, err := newRun(opt)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.opt.Total)
	defer cancel()
	var jobs []job
	// What keeps domains from being listed comes first: the checks below
	// cover only the domains the snapshot knows.
	for _, w := range r.opt.Snapshot.DomainWarnings() {
		jobs = append(jobs, constant(Result{Group: "domains", Name: "hosted domains", Status: Warn, Detail: w}))
	}
	if _, why := r.opt.Snapshot.ProfileSigning(); why != "" {
		jobs = append(jobs, constant(Result{Group: "https", Name: "Apple profile signature", Status: Warn,
			Detail: "Apple profiles are served unsigned (iOS and macOS show them as not verified): " + why}))
	}
	probes := append(r.httpsJobs(), r.groupwareJobs()...)
	probes = append(probes, r.mailJobs()...)
	probes = append(probes, r.clientJobs()...)
	if dead := r.resolverAlive(ctx); dead != nil {
		// Every DNS check, and every probe of a name, would fail the
		// same way: one result says it, and names what went unchecked.
		before := len(probes)
		probes = slices.DeleteFunc(probes, func(j job) bool { return j.client })
		walks := before - len(probes)
		before = len(probes)
		probes = slices.DeleteFunc(probes, func(j job) bool { return j.resolves })
		dead.Detail += "; not checked: the DNS records"
		if n := before - len(probes); n > 0 {
			dead.Detail += fmt.Sprintf(", and the %d discovery URLs and mail ports whose names it would resolve", n)
		}
		if walks > 0 {
			dead.Detail += fmt.Sprintf(", and the %d per-client lookups", walks)
		}
		jobs = append(jobs, constant(*dead))
	} else {
		jobs = append(jobs, r.dnsJobs()...)
	}
	jobs = append(jobs, probes...)
	return runJobs(ctx, r.opt.Concurrency, jobs), nil
}

// newRun fills in opt's defaults and computes the records to check.
func newRun(opt Options) (*run, error) {
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.Total <= 0 {
		opt.Total = 12 * opt.Timeout
	}
	if opt.Concurrency <= 0 {
		opt.Concurrency = DefaultConcurrency
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Targets == nil {
		for _, d := range opt.Snapshot.Domains() {
			opt.Targets = append(opt.Targets, Target{Domain: d.Name})
		}
	}
	opt.Targets = slices.Clone(opt.Targets)
	domains := []string{}
	for i, t := range opt.Targets {
		if t.Address == "" {
			opt.Targets[i].Address = "postmaster@" + t.Domain
		}
		domains = append(domains, t.Domain)
	}
	plan, err := dnsrecords.For(opt.Snapshot, domains)
	if err != nil {
		return nil, err
	}
	return &run{opt: opt, plan: plan, resolver: newResolver(opt.Resolver), now: opt.Now()}, nil
}

// A job is one probe; it returns its results in order.
type job struct {
	group, name string // for the result when the job never ran
	// resolves is true for a probe that resolves a name with the run's
	// resolver before it connects (no --connect address stands in).
	resolves bool
	// client is true for a client's walk, which looks names up (the MX,
	// the SRV record) whatever --connect says.
	client bool
	run    func(ctx context.Context) []Result
}

func constant(res ...Result) job {
	return job{run: func(context.Context) []Result { return res }}
}

// runJobs runs jobs, at most n at once, and returns their results in the
// jobs' order. A job that cannot start before ctx ends is reported as not
// checked.
func runJobs(ctx context.Context, n int, jobs []job) []Result {
	out := make([][]Result, len(jobs))
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i, j := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			out[i] = []Result{{Group: j.group, Name: j.name, Status: Fail,
				Detail: "not checked: the run's time limit was reached", Fix: "run check again with fewer domains or a longer --timeout"}}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = j.run(ctx)
		}()
	}
	wg.Wait()
	var all []Result
	for _, rs := range out {
		all = append(all, rs...)
	}
	return all
}

// probeContext bounds one probe by the timeout.
func (r *run) probeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.opt.Timeout)
}

// Failed reports whether some result is a failure.
func Failed(results []Result) bool {
	for _, res := range results {
		if res.Status == Fail {
			return true
		}
	}
	return false
}

// Count returns how many results have each status.
func Count(results []Result) (ok, warn, fail int) {
	for _, res := range results {
		switch res.Status {
		case OK:
			ok++
		case Warn:
			warn++
		case Fail:
			fail++
		}
	}
	return ok, warn, fail
}

// describe turns a network error into words: timeouts and refusals are
// named as such, since their fixes differ.
func describe(err error, timeout time.Duration) string {
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return fmt.Sprintf("%s does not resolve", dnsErr.Name)
	case errors.As(err, &dnsErr) && dnsErr.Name != "":
		return fmt.Sprintf("looking up %s: %s", dnsErr.Name, describeDNS(dnsErr, timeout))
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return fmt.Sprintf("no answer within %v", timeout)
	case errors.Is(err, errRefused):
		return "connection refused"
	}
	msg := err.Error()
	if strings.Contains(msg, "connection refused") {
		return "connection refused"
	}
	return msg
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// describeDNS says why a lookup failed.
func describeDNS(e *net.DNSError, timeout time.Duration) string {
	if e.IsTimeout {
		return fmt.Sprintf("no answer from the resolver within %v", timeout)
	}
	return e.Err
}
