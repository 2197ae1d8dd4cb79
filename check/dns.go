package check

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/mailautoconf/mailautoconf/dnsrecords"
)

// resolverName names the resolver in messages.
func (r *run) resolverName() string {
	if r.opt.Resolver == "" {
		return "the system resolver (/etc/resolv.conf)"
	}
	return "resolver " + ResolverAddr(r.opt.Resolver)
}

// resolverAlive asks the resolver for the host's addresses once. When it
// does not answer at all, every DNS check, and every probe that resolves a
// name first, would say the same, so one result says it instead (Run
// leaves those out); nil means the resolver answers. A resolver that
// answers with an error for the host's own name (SERVFAIL, REFUSED) is no
// more use: the records to check all point there.
func (r *run) resolverAlive(ctx context.Context) *Result {
	ctx, cancel := r.probeContext(ctx)
	defer cancel()
	_, err := r.lookupHost(ctx, r.plan.Host+".")
	var dnsErr *net.DNSError
	if err == nil || errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return nil
	}
	why := err.Error()
	if dnsErr != nil {
		why = dnsErr.Err
	}
	var detail string
	switch {
	case dnsErr != nil && dnsErr.IsTimeout || isTimeout(err) || errors.Is(err, context.DeadlineExceeded):
		detail = fmt.Sprintf("%s is unreachable: no answer within %v", r.resolverName(), r.opt.Timeout)
	case strings.HasPrefix(why, "server answered") || why == "server misbehaving":
		detail = fmt.Sprintf("%s does not resolve the mail host's name %s: %s", r.resolverName(), r.plan.Host, why)
	case strings.Contains(why, "connection refused"):
		detail = fmt.Sprintf("%s is unreachable: connection refused (no DNS server on that port)", r.resolverName())
	default:
		detail = fmt.Sprintf("%s is unreachable: %s", r.resolverName(), why)
	}
	return &Result{Group: "dns", Name: "resolver", Status: Fail, Detail: detail,
		Fix: "make the resolver answer (is it running and reachable?) or name a working one with --resolver, then check again"}
}

// dnsJobs returns a job for the host's addresses and one per owner name
// of each domain's records, plus the MX.
func (r *run) dnsJobs() []job {
	host := r.plan.Host
	jobs := []job{{group: "dns", name: "A/AAAA " + host, run: r.checkHost}}
	for _, d := range r.plan.Domains {
		// One job per owner name and type: an RFC 6764 name has an SRV
		// and a TXT record.
		type rrset struct{ owner, typ string }
		var sets []rrset
		byOwner := map[rrset][]dnsrecords.Record{}
		for _, rec := range d.Records {
			k := rrset{rec.Name, rec.Type}
			if _, ok := byOwner[k]; !ok {
				sets = append(sets, k)
			}
			byOwner[k] = append(byOwner[k], rec)
		}
		for _, set := range sets {
			owner, recs := set.owner, byOwner[set]
			switch set.typ {
			case "CNAME":
				jobs = append(jobs, job{group: "dns", name: "CNAME " + trimDot(owner), run: func(ctx context.Context) []Result {
					return []Result{r.checkCNAME(ctx, recs[0])}
				}})
			case "SRV":
				jobs = append(jobs, job{group: "dns", name: "SRV " + trimDot(owner), run: func(ctx context.Context) []Result {
					return []Result{r.checkSRV(ctx, owner, recs)}
				}})
			case "TXT":
				jobs = append(jobs, job{group: "dns", name: "TXT " + trimDot(owner), run: func(ctx context.Context) []Result {
					return []Result{r.checkTXT(ctx, owner, recs)}
				}})
			}
		}
		jobs = append(jobs, job{group: "dns", name: "MX " + d.Name, run: func(ctx context.Context) []Result {
			return []Result{r.checkMX(ctx, d)}
		}})
	}
	return jobs
}

// checkHost looks up the mail host's addresses.
func (r *run) checkHost(ctx context.Context) []Result {
	ctx, cancel := r.probeContext(ctx)
	defer cancel()
	res := Result{Group: "dns", Name: "A/AAAA " + r.plan.Host}
	addrs, err := r.lookupHost(ctx, r.plan.Host+".")
	if err != nil {
		res.Status, res.Detail = Fail, describe(err, r.opt.Timeout)
		res.Fix = fmt.Sprintf("publish A (and AAAA) records for %s. with this host's public addresses", r.plan.Host)
		return []Result{res}
	}
	res.Status, res.Detail = OK, strings.Join(addrs, ", ")
	return []Result{res}
}

// checkCNAME checks autoconfig.<d> or autodiscover.<d>: a CNAME to the
// host, or A/AAAA records with an address of the host, will do.
func (r *run) checkCNAME(ctx context.Context, want dnsrecords.Record) Result {
	ctx, cancel := r.probeContext(ctx)
	defer cancel()
	name := trimDot(want.Name)
	res := Result{Group: "dns", Name: "CNAME " + name}
	fix := fmt.Sprintf("publish %q", want.String())
	cname, err := r.resolver.LookupCNAME(ctx, want.Name)
	if err == nil && sameName(cname, want.Target) {
		res.Status, res.Detail = OK, "CNAME "+lowerDot(cname)
		return res
	}
	addrs, aerr := r.lookupHost(ctx, want.Name)
	if aerr != nil {
		if err == nil && !sameName(cname, want.Name) {
			res.Status, res.Detail, res.Fix = Fail, fmt.Sprintf("wrong target: CNAME %s, which does not resolve", lowerDot(cname)), "change it: "+fix
			return res
		}
		res.Status, res.Detail, res.Fix = Fail, "missing: "+describe(aerr, r.opt.Timeout), fix
		return res
	}
	hostAddrs, herr := r.lookupHost(ctx, want.Target)
	shared := slices.ContainsFunc(addrs, func(a string) bool { return slices.Contains(hostAddrs, a) })
	switch {
	case herr == nil && shared && (err != nil || sameName(cname, want.Name)):
		res.Status, res.Detail = OK, fmt.Sprintf("A/AAAA %s, addresses of %s", strings.Join(addrs, ", "), trimDot(want.Target))
	case herr == nil && shared:
		res.Status, res.Detail = OK, fmt.Sprintf("CNAME %s, with addresses of %s", lowerDot(cname), trimDot(want.Target))
	case err == nil && !sameName(cname, want.Name):
		res.Status, res.Detail, res.Fix = Fail, fmt.Sprintf("wrong target: CNAME %s (%s), not %s", lowerDot(cname), strings.Join(addrs, ", "), want.Target), "change it: "+fix
	default:
		res.Status, res.Detail, res.Fix = Fail, fmt.Sprintf("wrong target: %s has addresses %s, none of them %s's", name, strings.Join(addrs, ", "), trimDot(want.Target)), "replace them: "+fix
	}
	return res
}

// checkSRV compares the SRV records of owner with want.
func (r *run) checkSRV(ctx context.Context, owner string, want []dnsrecords.Record) Result {
	ctx, cancel := r.probeContext(ctx)
	defer cancel()
	res := Result{Group: "dns", Name: "SRV " + trimDot(owner)}
	var lines []string
	for _, w := range want {
		lines = append(lines, w.String())
	}
	publish := "publish " + quoteAll(lines)
	_, got, err := r.resolver.LookupSRV(ctx, "", "", owner)
	var dnsErr *net.DNSError
	notFound := errors.As(err, &dnsErr) && dnsErr.IsNotFound
	if err != nil && !notFound {
		res.Status, res.Detail, res.Fix = Fail, describe(err, r.opt.Timeout), "make "+r.resolverName()+" answer, then check again"
		return res
	}
	gotText := make([]string, len(got))
	for i, g := range got {
		gotText[i] = fmt.Sprintf("%d %d %d %s", g.Priority, g.Weight, g.Port, lowerDot(g.Target))
	}
	detail := strings.Join(gotText, ", ")

	if want[0].NotOffered() {
		switch {
		case len(got) == 0:
			res.Status, res.Detail = Warn, "missing (the service is not offered)"
			res.Fix = publish + " so that clients do not guess"
		case len(got) == 1 && got[0].Target == ".":
			res.Status, res.Detail = OK, "not offered: "+detail
		default:
			res.Status, res.Detail = Fail, detail+": advertises a service this host does not offer"
			res.Fix = "replace it: " + publish + " (or enable the service)"
		}
		return res
	}
	if len(got) == 0 {
		res.Status, res.Detail, res.Fix = Fail, "missing", publish
		return res
	}
	matched := make([]bool, len(got))
	var problems []string
	for _, w := range want {
		i := slices.IndexFunc(got, func(g *net.SRV) bool { return sameName(g.Target, w.Target) && int(g.Port) == w.Port })
		if i >= 0 {
			matched[i] = true
			continue
		}
		switch j := slices.IndexFunc(got, func(g *net.SRV) bool { return sameName(g.Target, w.Target) }); {
		case j >= 0:
			matched[j] = true
			problems = append(problems, fmt.Sprintf("wrong port: %d, the server listens on %d", got[j].Port, w.Port))
		case len(got) == 1 && got[0].Target == ".":
			matched[0] = true
			problems = append(problems, "says the service is not offered")
		default:
			problems = append(problems, fmt.Sprintf("wrong target: want %s port %d", w.Target, w.Port))
		}
	}
	for i, g := range got {
		if !matched[i] {
			problems = append(problems, fmt.Sprintf("also names %s port %d", lowerDot(g.Target), g.Port))
		}
	}
	if len(problems) == 0 {
		res.Status, res.Detail = OK, detail
		return res
	}
	res.Status, res.Detail, res.Fix = Fail, detail+": "+strings.Join(problems, "; "), "replace the records: "+publish
	return res
}

// checkTXT checks that owner has each wanted TXT record (the RFC 6764
// path=): other TXT records beside it do no harm, but a second path= is
// one the clients may pick instead.
func (r *run) checkTXT(ctx context.Context, owner string, want []dnsrecords.Record) Result {
	ctx, cancel := r.probeContext(ctx)
	defer cancel()
	res := Result{Group: "dns", Name: "TXT " + trimDot(owner)}
	var lines []string
	for _, w := range want {
		lines = append(lines, w.String())
	}
	publish := "publish " + quoteAll(lines)
	got, err := r.resolver.LookupTXT(ctx, owner)
	var dnsErr *net.DNSError
	if err != nil && !(errors.As(err, &dnsErr) && dnsErr.IsNotFound) {
		res.Status, res.Detail, res.Fix = Fail, describe(err, r.opt.Timeout), "make "+r.resolverName()+" answer, then check again"
		return res
	}
	quoted := make([]string, len(got))
	for i, g := range got {
		quoted[i] = strconv.Quote(g)
	}
	detail := strings.Join(quoted, ", ")
	if len(got) == 0 {
		res.Status, res.Detail, res.Fix = Fail, "missing", publish
		return res
	}
	var problems []string
	for _, w := range want {
		if slices.Contains(got, w.Text) {
			continue
		}
		key, _, _ := strings.Cut(w.Text, "=")
		if i := slices.IndexFunc(got, func(g string) bool { return strings.HasPrefix(g, key+"=") }); i >= 0 {
			problems = append(problems, fmt.Sprintf("wrong %s: %q, want %q", key, got[i], w.Text))
		} else {
			problems = append(problems, fmt.Sprintf("lacks %q", w.Text))
		}
	}
	for _, w := range want {
		key, _, _ := strings.Cut(w.Text, "=")
		if n := len(slices.DeleteFunc(slices.Clone(got), func(g string) bool { return !strings.HasPrefix(g, key+"=") })); n > 1 {
			problems = append(problems, fmt.Sprintf("%d %s= records: clients may take any", n, key))
		}
	}
	if len(problems) == 0 {
		res.Status, res.Detail = OK, detail
		return res
	}
	res.Status, res.Detail, res.Fix = Fail, detail+": "+strings.Join(problems, "; "), "replace the records: "+publish
	return res
}

// checkMX checks that the domain has an MX; where it points is the
// admin's business, but the host is named when it is not it.
func (r *run) checkMX(ctx context.Context, d dnsrecords.Domain) Result {
	ctx, cancel := r.probeContext(ctx)
	defer cancel()
	res := Result{Group: "dns", Name: "MX " + d.Name}
	mxs, err := r.resolver.LookupMX(ctx, d.Name+".")
	var dnsErr *net.DNSError
	if err != nil && !(errors.As(err, &dnsErr) && dnsErr.IsNotFound) {
		res.Status, res.Detail, res.Fix = Fail, describe(err, r.opt.Timeout), "make "+r.resolverName()+" answer, then check again"
		return res
	}
	if len(mxs) == 0 {
		res.Status, res.Detail = Fail, "missing: mail for "+d.Name+" cannot be delivered and Thunderbird's MX fallback finds nothing"
		var lines []string
		for _, s := range d.Suggested {
			lines = append(lines, s.String())
		}
		res.Fix = "publish " + quoteAll(lines) + " (or your filtering front-end as the MX)"
		return res
	}
	var parts []string
	toHost := false
	for _, mx := range mxs {
		parts = append(parts, fmt.Sprintf("%d %s", mx.Pref, lowerDot(mx.Host)))
		toHost = toHost || sameName(mx.Host, r.plan.Host)
	}
	res.Status, res.Detail = OK, strings.Join(parts, ", ")
	if !toHost {
		res.Detail += " (not this host: fine when that host relays the mail here)"
	}
	return res
}

func trimDot(s string) string { return strings.TrimSuffix(s, ".") }

// lowerDot returns a name in lower case with one trailing dot.
func lowerDot(s string) string { return strings.ToLower(trimDot(s)) + "." }

func sameName(a, b string) bool { return strings.EqualFold(trimDot(a), trimDot(b)) }

func quoteAll(lines []string) string {
	q := make([]string, len(lines))
	for i, l := range lines {
		q[i] = fmt.Sprintf("%q", l)
	}
	return strings.Join(q, " and ")
}
