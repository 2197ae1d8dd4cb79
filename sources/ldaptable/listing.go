package ldaptable

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/go-ldap/ldap/v3"

	"github.com/mailautoconf/mailautoconf/sources/lookupkey"
)

// ErrNoListing is wrapped by EachDomain when no listing can be derived from
// the table's query_filter and search_base: the key is used in a way whose
// matches cannot be enumerated (in a substring, ordering or approximate
// match, only under a negation, inside the search base), or the filter
// answers keys the directory does not hold. Per-key Lookup still works.
var ErrNoListing = errors.New("cannot derive a listing from the query_filter")

func noListing(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNoListing, fmt.Sprintf(format, args...))
}

// keyMarker stands for the key while a listing is derived: it passes the
// filter and DN quoting unchanged and never occurs in a real template.
const keyMarker = "\uE000"

// probeKey is a name no directory holds, looked up to see whether a filter
// answers keys it does not store.
const probeKey = "no-such-domain.mailautoconf.invalid"

// A listing is a query_filter rewritten to find every entry a lookup of
// some key could find: each assertion on the key (attr=%s, attr=x%sy,
// attr:rule:=%s) becomes a presence test of its attribute; one under a
// negation becomes false, so that the negation stays true. The values of
// those attributes, with the text around the key stripped, are the
// candidate keys.
type listing struct {
	base    string
	filter  *filter
	attrs   []string // the attributes that hold keys
	affixes []affix  // the text around the key in each assertion
	probe   bool     // the filter may match entries for a key no entry holds
}

type affix struct{ prefix, suffix string }

// deriveListing derives the table's listing. none reports a table that
// hosts no bare domain at all: Postfix never searches it for one (a
// "domain" restriction, or a template that needs the key's domain or
// labels).
func (t *Table) deriveListing() (l *listing, none bool, err error) {
	if len(t.domain) > 0 {
		return nil, true, nil
	}
	if !t.tmpl.Accepts("bare-domain.example") {
		return nil, true, nil
	}
	return deriveListing(t.tmpl)
}

func deriveListing(tmpl *templates) (*listing, bool, error) {
	base, _ := tmpl.Expand(tmpl.base, keyMarker, quoteDN)
	if strings.Contains(base, keyMarker) {
		return nil, false, noListing("the search_base %q depends on the key", tmpl.base)
	}
	text, _ := tmpl.Expand(tmpl.filter, keyMarker, quoteFilter)
	if !strings.Contains(text, keyMarker) {
		return nil, false, noListing("the query_filter %q does not use the key: it answers every key alike", tmpl.filter)
	}
	f, err := parseFilter(text)
	if err != nil {
		return nil, false, noListing("the query_filter %q does not parse: %v", tmpl.filter, err)
	}
	l := &listing{base: base}
	if l.filter, err = l.relax(f, true); err != nil {
		return nil, false, err
	}
	if len(l.attrs) == 0 {
		return nil, false, noListing("the query_filter %q uses the key only under a negation", tmpl.filter)
	}
	l.probe = unknownKey(f) != triFalse
	return l, false, nil
}

// withKey renders f with %s for the key, for messages.
func withKey(f *filter) string {
	return strings.ReplaceAll(f.String(), escapeValue(keyMarker), "%s")
}

func usesKey(f *filter) bool {
	s := f.attr + f.value + f.initial + f.final + f.rule + strings.Join(f.any, "")
	return strings.Contains(s, keyMarker)
}

// relax rewrites f; positive is false under an odd number of negations.
func (l *listing) relax(f *filter, positive bool) (*filter, error) {
	switch f.op {
	case opAnd, opOr, opNot:
		g := &filter{op: f.op}
		for _, k := range f.kids {
			rk, err := l.relax(k, positive == (f.op != opNot))
			if err != nil {
				return nil, err
			}
			g.kids = append(g.kids, rk)
		}
		return g, nil
	}
	if !usesKey(f) {
		return f, nil
	}
	if !positive {
		return &filter{op: opOr}, nil // false: the negation around it holds
	}
	switch {
	case f.op == opExt && (f.attr == "" || f.dnAttrs):
		return nil, noListing("the key is used in the extensible match %s", withKey(f))
	case f.op != opEqual && f.op != opExt:
		return nil, noListing("the key is used in %s, not in an equality match", withKey(f))
	case strings.Count(f.value, keyMarker) != 1 || strings.Contains(f.attr+f.rule, keyMarker):
		return nil, noListing("the key is used more than once in %s", withKey(f))
	}
	pre, suf, _ := strings.Cut(f.value, keyMarker)
	if !slices.Contains(l.affixes, affix{pre, suf}) {
		l.affixes = append(l.affixes, affix{pre, suf})
	}
	if !slices.ContainsFunc(l.attrs, func(a string) bool { return strings.EqualFold(a, f.attr) }) {
		l.attrs = append(l.attrs, f.attr)
	}
	return &filter{op: opPresent, attr: f.attr}, nil
}

type tri int

const (
	triFalse tri = iota
	triTrue
	triUnknown
)

// unknownKey evaluates f for a key no entry holds: every assertion on the
// key is false, every other one unknown.
func unknownKey(f *filter) tri {
	switch f.op {
	case opAnd, opOr:
		stop, all := triFalse, triTrue // and: any false stops; all true is true
		if f.op == opOr {
			stop, all = triTrue, triFalse
		}
		res := all
		for _, k := range f.kids {
			switch v := unknownKey(k); v {
			case stop:
				return stop
			case triUnknown:
				res = triUnknown
			}
		}
		return res
	case opNot:
		switch v := unknownKey(f.kids[0]); v {
		case triTrue:
			return triFalse
		case triFalse:
			return triTrue
		}
		return triUnknown
	}
	if usesKey(f) {
		return triFalse
	}
	return triUnknown
}

// candidates returns the keys a value of a key attribute stands for: the
// value without the text around the key in some assertion, folded with
// fold, when that is a domain name.
func (l *listing) candidates(v string, fold func(string) (string, bool), add func(string)) {
	for _, a := range l.affixes {
		if len(v) < len(a.prefix)+len(a.suffix) ||
			!strings.EqualFold(v[:len(a.prefix)], a.prefix) || !strings.EqualFold(v[len(v)-len(a.suffix):], a.suffix) {
			continue
		}
		if k, ok := fold(v[len(a.prefix) : len(v)-len(a.suffix)]); ok && lookupkey.IsDomainName(k) {
			add(k)
		}
	}
}

// EachDomain calls fn for every domain a lookup of the bare domain name
// (as Postfix makes for virtual_mailbox_domains) answers: target is the
// first value of that lookup, folded, when it is not the domain itself
// (an iRedMail alias domain answers with its target domain), else "".
//
// The candidates are the values of the attributes the filter compares the
// key with, read with one (paged) search of the listing filter (see
// ErrNoListing); each candidate that is a domain name is then looked up
// exactly as Lookup does, a few at a time, so that only what Postfix
// would answer is listed: case, access controls, every other condition of
// the filter and result_format are the server's and Postfix's to decide.
// A candidate whose lookup fails for what the directory holds (too many
// results for expansion_limit, say) is left out, as Postfix fails that
// lookup; any other failure ends EachDomain with an error, before fn is
// called at all. A table with a "domain" restriction, or whose templates
// need the key's domain part (%d, %D, %1..%9), hosts no bare domain: fn is
// never called. restart is never called: fn sees each domain once, sorted,
// after every lookup succeeded.
func (t *Table) EachDomain(ctx context.Context, fn func(domain, target string), restart func()) error {
	l, none, err := t.deriveListing()
	if err != nil {
		return fmt.Errorf("ldap %s: %w", t.path, err)
	}
	if none {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, t.listingTimeout)
	defer cancel()

	seen := map[string]bool{}
	var csn string
	var dig digest
	err = t.do(ctx, func(c *ldap.Conn) error {
		clear(seen)
		// The baselines of Changed (changes.go): contextCSN before the
		// search, the digest of the search itself.
		csn = t.contextCSN(ctx, c, l.base)
		entries, err := t.searchPaged(ctx, c, l.base, l.filter, append(slices.Clone(l.attrs), changeAttrs...))
		if code := ldapCode(err); code == ldap.LDAPResultSizeLimitExceeded {
			return describe(fmt.Sprintf("listing stopped by the server's size limit after %d entries "+
				"(let bind_dn read more: slapd.conf \"sizelimit unlimited\", as iRedMail sets, or \"limits dn.exact=%s size=unlimited\")",
				len(entries), strconv.Quote(t.bindDN)), err)
		} else if code >= 0 {
			return describe("listing", err)
		} else if err != nil {
			return err
		}
		dig = digestOf(entries)
		for _, e := range entries {
			for _, a := range e.Attributes {
				if isChangeAttr(a.Name) {
					continue
				}
				for _, v := range a.ByteValues {
					l.candidates(cString(v), t.fold, func(k string) { seen[k] = true })
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if l.probe {
		r, err := t.Lookup(ctx, probeKey)
		var de *dataError
		switch {
		case err != nil && !errors.As(err, &de):
			return err
		case len(r) > 0 || err != nil:
			return fmt.Errorf("ldap %s: %w", t.path, noListing("the query_filter %q finds entries for keys the directory does not hold (%s answers %q)", t.tmpl.filter, probeKey, strings.Join(r, ",")))
		}
	}
	names := make([]string, 0, len(seen))
	for k := range seen {
		names = append(names, k)
	}
	slices.Sort(names)
	targets, found, err := t.confirm(ctx, names)
	if err != nil {
		return err
	}
	t.changes.mu.Lock()
	t.changes.listed, t.changes.l, t.changes.csn, t.changes.digest = true, l, csn, dig
	t.changes.mu.Unlock()
	for i, name := range names {
		if found[i] {
			fn(name, targets[i])
		}
	}
	return nil
}

// confirmWorkers is how many candidate lookups run at once.
const confirmWorkers = 4

// confirm looks up each name; found[i] reports an answer, targets[i] its
// first value folded, when that is not the name.
func (t *Table) confirm(ctx context.Context, names []string) (targets []string, found []bool, err error) {
	targets, found = make([]string, len(names)), make([]bool, len(names))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		next     = make(chan int)
	)
	for range confirmWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r, err := t.Lookup(ctx, names[i])
				var de *dataError
				switch {
				case errors.As(err, &de):
				case err != nil:
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
				case len(r) > 0:
					found[i] = true
					if tg, ok := t.fold(r[0]); ok && tg != names[i] {
						targets[i] = tg
					}
				}
			}
		}()
	}
	for i := range names {
		select {
		case next <- i:
			continue
		case <-ctx.Done():
		}
		break
	}
	close(next)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = fmt.Errorf("ldap %s: listing: %w", t.path, context.Cause(ctx))
	}
	return targets, found, firstErr
}

// searchPaged runs the listing search with the paged results control
// (RFC 2696), so a server's per-request size limit does not cut it short.
func (t *Table) searchPaged(ctx context.Context, c *ldap.Conn, base string, f *filter, attrs []string) ([]*ldap.Entry, error) {
	req := ldap.NewSearchRequest(base, t.scope, t.deref, 0, 0, false, f.String(), attrs, nil)
	type result struct {
		r   *ldap.SearchResult
		err error
	}
	ch := make(chan result, 1)
	go func() {
		r, err := c.SearchWithPaging(req, 500)
		ch <- result{r, err}
	}()
	select {
	case res := <-ch:
		var entries []*ldap.Entry
		if res.r != nil {
			entries = res.r.Entries
		}
		return entries, res.err
	case <-ctx.Done():
		return nil, fmt.Errorf("listing timed out: %w", ctx.Err())
	}
}
