package sqltable

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/mailautoconf/mailautoconf/sources/lookupkey"
)

// ErrNoListing is wrapped by ListingQuery and EachDomain when no query that lists
// the table's keys can be derived from its lookup query. Per-key Lookup still
// works.
var ErrNoListing = errors.New("cannot derive a listing query")

func noListing(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNoListing, fmt.Sprintf(format, args...))
}

// ListingQuery derives from a per-key lookup query the query that lists
// every key it finds: the key predicate (col = '%s', with an optional table
// qualifier, backquotes, LOWER()/UPPER() on either side, or the sides
// swapped) is removed together with its AND, a WHERE left empty is dropped,
// the LIMIT of each SELECT is dropped, and the key column is selected
// instead of the result:
//
//	SELECT domain FROM domain WHERE domain='%s' AND active = '1'
//	SELECT domain FROM domain WHERE active = '1'
//
// Every SELECT of a UNION is rewritten alike. The result is plain SQL: the
// template's %% are turned into %.
//
// It refuses (with an error wrapping ErrNoListing that says why) a query
// that is keyed by address (%u, %d, %1..%9), uses the key under OR, in LIKE,
// inside a function or subquery it does not understand, more than once in
// one SELECT or not at all, or that aggregates (GROUP BY, COUNT()).
// EachDomain lists many of those through candidates instead (see
// listing_candidates.go).
func ListingQuery(typ, query string) (string, error) {
	d, ok := dialects[typ]
	if !ok {
		return "", fmt.Errorf("%s tables are not SQL tables", typ)
	}
	l, err := deriveListing(query, d.syntax())
	if err != nil {
		return "", err
	}
	return l.sql(false), nil
}

// A listing is a lookup query rewritten to list its keys.
type listing struct {
	syn     syntax
	nodes   []*node
	limited bool // a LIMIT was dropped
}

// sql returns the listing query; withResults selects the lookup's result
// columns and then the key column, so that a caller can apply Postfix's rules
// for NULL and empty results and result_format to each key.
func (l *listing) sql(withResults bool) string {
	var b strings.Builder
	emit(&b, l.nodes, withResults)
	return b.String()
}

func deriveListing(query string, syn syntax) (*listing, error) {
	nodes, err := parseListingQuery(query, syn, checkExpansions)
	if err != nil {
		return nil, err
	}
	if countKeys(nodes) == 0 {
		return nil, noListing("the query does not use the key (%%s): it answers every key alike")
	}
	l := &listing{syn: syn, nodes: nodes}
	if err := l.union(nodes); err != nil {
		return nil, err
	}
	if keyLeft(nodes) {
		return nil, noListing("the key is used outside a WHERE predicate that can be removed")
	}
	return l, nil
}

// parseListingQuery parses a lookup query to derive a listing from:
// check refuses the tokens whose %-expansions the listing cannot handle;
// trailing semicolons are dropped, and several statements refused.
func parseListingQuery(query string, syn syntax, check func(token) error) ([]*node, error) {
	toks, err := tokenize(query, syn)
	if err != nil {
		return nil, noListing("cannot parse the query: %v", err)
	}
	for _, t := range toks {
		if err := check(t); err != nil {
			return nil, err
		}
	}
	for len(toks) > 0 && toks[len(toks)-1].is(";") {
		toks = toks[:len(toks)-1]
	}
	for _, t := range toks {
		if t.is(";") {
			return nil, noListing("several statements")
		}
	}
	nodes, err := parseNodes(toks)
	if err != nil {
		return nil, noListing("cannot parse the query: %v", err)
	}
	return nodes, nil
}

// checkExpansions refuses a token whose %-expansions a listing cannot
// handle.
func checkExpansions(t token) error {
	if t.kind == tWord || t.kind == tPunct {
		return nil
	}
	return scanExpansions(t.text, func() error {
		if !t.key() {
			return noListing("the key is part of %s: only a whole '%%s' can be removed", t.text)
		}
		return nil
	})
}

// scanExpansions calls key for each key expansion (%s, %S) in the text of
// a token, in order, and refuses the expansions no listing can handle:
// the parts of an address (%u, %d, %1..%9) and invalid ones. It stops at
// the first error.
func scanExpansions(text string, key func() error) error {
	for i := 0; i+1 < len(text); i++ {
		if text[i] != '%' {
			continue
		}
		i++
		switch c := text[i]; c {
		case '%':
		case 's', 'S':
			if err := key(); err != nil {
				return err
			}
		case 'u', 'U', 'd', 'D', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			return noListing("the query is keyed by address (%%%c): cannot list domains", c)
		default:
			return noListing("invalid %%%c in the query", c)
		}
	}
	return nil
}

// keyLeft reports whether a key placeholder remains in the output.
func keyLeft(nodes []*node) bool {
	for _, nd := range nodes {
		if nd.del {
			continue
		}
		if nd.isGroup && keyLeft(nd.group) || !nd.isGroup && nd.tok.key() {
			return true
		}
	}
	return false
}

// union rewrites each SELECT of a (possibly parenthesized) UNION.
func (l *listing) union(nodes []*node) error {
	parts, err := splitUnion(nodes)
	if err != nil {
		return err
	}
	for _, p := range parts {
		if len(p) == 0 {
			return noListing("empty SELECT in a UNION")
		}
		switch first := p[0]; {
		case first.isGroup:
			if err := l.union(first.group); err != nil {
				return err
			}
			if countKeys(p[1:]) > 0 {
				return noListing("the key is used after a parenthesized SELECT")
			}
			l.dropLimit(p[1:])
		case first.tok.is("SELECT"):
			if err := l.selectBlock(p); err != nil {
				return err
			}
		default:
			return noListing("not a SELECT query (%s)", first.tok.text)
		}
	}
	return nil
}

// splitUnion splits nodes at each UNION [ALL|DISTINCT] into the parts to
// list one by one; it refuses INTERSECT, EXCEPT and MINUS.
func splitUnion(nodes []*node) ([][]*node, error) {
	var parts [][]*node
	start := 0
	for i := 0; i <= len(nodes); i++ {
		if i < len(nodes) {
			nd := nodes[i]
			if nd.tok.is("INTERSECT") || nd.tok.is("EXCEPT") || nd.tok.is("MINUS") {
				return nil, noListing("%s is not supported", strings.ToUpper(nd.tok.text))
			}
			if !nd.tok.is("UNION") {
				continue
			}
		}
		parts = append(parts, nodes[start:i])
		start = i + 1
		if i+1 < len(nodes) && (nodes[i+1].tok.is("ALL") || nodes[i+1].tok.is("DISTINCT")) {
			start++
			i++
		}
	}
	return parts, nil
}

// dropLimit removes a LIMIT clause (up to the end of nodes or a locking
// clause) from nodes.
func (l *listing) dropLimit(nodes []*node) {
	in := false
	for _, nd := range nodes {
		switch {
		case nd.tok.is("LIMIT"):
			in = true
			l.limited = true
		case nd.tok.is("FOR") || nd.tok.is("LOCK") || nd.tok.is("INTO"):
			in = false
		}
		if in {
			nd.del = true
		}
	}
}

// clauseWords end a WHERE clause.
var clauseWords = []string{"FROM", "WHERE", "GROUP", "HAVING", "WINDOW", "ORDER", "LIMIT", "PROCEDURE", "INTO", "FOR", "LOCK"}

// clauses returns where each clause of a SELECT starts: the index of the
// first of words (upper-cased) after the SELECT itself.
func clauses(nodes []*node, words []string) map[string]int {
	clause := map[string]int{}
	for i, nd := range nodes {
		if i > 0 && isOneOf(nd, words) {
			w := strings.ToUpper(nd.tok.text)
			if _, seen := clause[w]; !seen {
				clause[w] = i
			}
		}
	}
	return clause
}

// clauseEnd returns the end of the clause that starts at start: the index
// of the next of words, or len(nodes).
func clauseEnd(nodes []*node, start int, words []string) int {
	for i := start + 1; i < len(nodes); i++ {
		if isOneOf(nodes[i], words) {
			return i
		}
	}
	return len(nodes)
}

// selectModifiers may follow SELECT before the select list.
var selectModifiers = []string{"ALL", "DISTINCT", "DISTINCTROW", "HIGH_PRIORITY", "STRAIGHT_JOIN"}

var aggregates = []string{"COUNT", "SUM", "MIN", "MAX", "AVG", "GROUP_CONCAT", "JSON_ARRAYAGG", "JSON_OBJECTAGG", "BIT_AND", "BIT_OR", "BIT_XOR", "STD", "STDDEV", "VARIANCE"}

func isOneOf(nd *node, words []string) bool {
	for _, w := range words {
		if nd.tok.is(w) {
			return true
		}
	}
	return false
}

// selectBlock rewrites one SELECT ... FROM ... WHERE ... statement.
func (l *listing) selectBlock(nodes []*node) error {
	switch n := countKeys(nodes); {
	case n == 0:
		return noListing("a SELECT of the UNION does not use the key: it answers every key alike")
	case n > 1:
		return noListing("the key is used %d times in one SELECT", n)
	}
	clause := clauses(nodes, clauseWords)
	if _, ok := clause["GROUP"]; ok {
		return noListing("GROUP BY is not supported")
	}
	if _, ok := clause["HAVING"]; ok {
		return noListing("HAVING is not supported")
	}
	from, ok := clause["FROM"]
	if !ok {
		return noListing("a SELECT without FROM")
	}
	where, ok := clause["WHERE"]
	if !ok || where < from {
		return noListing("the key is not in a WHERE clause")
	}
	end := clauseEnd(nodes, where, clauseWords)
	cond := nodes[where+1 : end]
	if countKeys(cond) == 0 {
		return noListing("the key is not in the WHERE clause")
	}

	// The select list, after any modifiers.
	lead := nodes[0]
	list := nodes[1:from]
	for len(list) > 0 && (isOneOf(list[0], selectModifiers) || strings.HasPrefix(strings.ToUpper(list[0].tok.text), "SQL_")) {
		lead, list = list[0], list[1:]
	}
	if len(list) == 0 {
		return noListing("empty select list")
	}
	for i, nd := range list {
		if isOneOf(nd, aggregates) && i+1 < len(list) && list[i+1].isGroup {
			return noListing("aggregate %s() in the select list", strings.ToUpper(nd.tok.text))
		}
	}

	col, empty, err := l.removeKeyPredicate(cond)
	if err != nil {
		return err
	}
	if empty {
		nodes[where].del = true
	}
	for _, nd := range list {
		nd.inList = true
	}
	lead.selectK = col
	nodes[from].keyLast = col // after the list: "SELECT *, col" is valid, "SELECT col, *" is not
	l.dropLimit(nodes[end:])
	return nil
}

// removeKeyPredicate removes the conjunct "col = key" from the condition
// nodes, recursing into parenthesized conjunctions, and returns col; empty
// reports that no condition is left.
func (l *listing) removeKeyPredicate(cond []*node) (col string, empty bool, err error) {
	conj, ands, err := l.splitConjuncts(cond)
	if err != nil {
		return "", false, err
	}
	k := -1
	for i, c := range conj {
		if countKeys(c) > 0 {
			k = i
		}
	}
	c := conj[k]
	if len(c) == 1 && c[0].isGroup {
		inner := c[0].group
		if len(inner) > 0 && inner[0].tok.is("SELECT") {
			return "", false, noListing("the key is inside a subquery")
		}
		innerCol, innerEmpty, err := l.removeKeyPredicate(inner)
		if err != nil || !innerEmpty {
			return innerCol, false, err
		}
		col = innerCol
		c[0].del = true // the whole group is gone
	} else {
		if col, err = keyPredicate(c); err != nil {
			return "", false, err
		}
		for _, nd := range c {
			nd.del = true
		}
	}
	switch {
	case len(conj) == 1:
		return col, true, nil
	case k == 0:
		ands[0].del = true
	default:
		ands[k-1].del = true
	}
	return col, false, nil
}

// splitConjuncts splits a condition at its top-level ANDs; it refuses OR.
func (l *listing) splitConjuncts(cond []*node) (conj [][]*node, ands []*node, err error) {
	for _, nd := range cond {
		if nd.tok.is("OR") || nd.tok.is("XOR") || nd.tok.is("||") && !l.syn.pipesConcat {
			return nil, nil, noListing("the key is used in a condition with OR")
		}
	}
	conj, ands = splitAnd(cond)
	for _, c := range conj {
		if len(c) == 0 {
			return nil, nil, noListing("empty condition around AND")
		}
	}
	return conj, ands, nil
}

// splitAnd splits a condition at its top-level ANDs (and &&), leaving the
// AND of a BETWEEN alone; ands are the ANDs between the parts.
func splitAnd(cond []*node) (parts [][]*node, ands []*node) {
	start := 0
	between := false
	for i, nd := range cond {
		switch {
		case nd.tok.is("BETWEEN"):
			between = true
		case nd.tok.is("AND") || nd.tok.is("&&"):
			if between {
				between = false
				continue
			}
			parts = append(parts, cond[start:i])
			ands = append(ands, nd)
			start = i + 1
		}
	}
	return append(parts, cond[start:]), ands
}

// foldFuncs may wrap the key or its column without changing which rows a
// listing finds.
var foldFuncs = []string{"LOWER", "LCASE", "UPPER", "UCASE", "TRIM", "BINARY"}

// keyPredicate returns col for a conjunct "col = key" or "key = col".
func keyPredicate(c []*node) (string, error) {
	text := conjText(c)
	if inSubquery(c) {
		return "", noListing("the key is inside a subquery in %s", text)
	}
	for _, nd := range c {
		for _, w := range []string{"LIKE", "REGEXP", "RLIKE", "SOUNDS"} {
			if nd.tok.is(w) {
				return "", noListing("the key is used with %s in %s", w, text)
			}
		}
		if nd.tok.is("NOT") || nd.tok.is("!") {
			return "", noListing("the key is negated in %s", text)
		}
	}
	if n := len(c); n >= 3 && c[n-2].tok.is("COLLATE") {
		c = c[:n-2]
	}
	op := -1
	for i, nd := range c {
		if nd.tok.is("=") || nd.tok.is("<=>") {
			if op >= 0 {
				return "", noListing("cannot remove %s", text)
			}
			op = i
		}
	}
	if op < 0 {
		return "", noListing("the key is not compared with = in %s", text)
	}
	lhs, rhs := c[:op], c[op+1:]
	if countKeys(lhs) > 0 {
		lhs, rhs = rhs, lhs
	}
	if !isKeyExpr(rhs) {
		if f := funcAroundKey(rhs); f != "" {
			return "", noListing("the key is inside %s(), which a listing cannot undo, in %s", f, text)
		}
		return "", noListing("cannot remove %s", text)
	}
	col, ok := columnExpr(lhs)
	if !ok {
		return "", noListing("the key is not compared with a column in %s", text)
	}
	return col, nil
}

// inSubquery reports whether the key is inside a parenthesized SELECT.
func inSubquery(nodes []*node) bool {
	for _, nd := range nodes {
		if nd.isGroup && countKeys(nd.group) > 0 {
			if len(nd.group) > 0 && nd.group[0].tok.is("SELECT") || inSubquery(nd.group) {
				return true
			}
		}
	}
	return false
}

// isKeyExpr reports whether nodes are the key, possibly inside fold
// functions: '%s', LOWER('%s'), BINARY '%s'.
func isKeyExpr(nodes []*node) bool {
	switch {
	case len(nodes) == 1 && !nodes[0].isGroup:
		return nodes[0].tok.key()
	case len(nodes) == 1 && nodes[0].isGroup:
		return isKeyExpr(nodes[0].group)
	case len(nodes) >= 2 && isOneOf(nodes[0], foldFuncs):
		return isKeyExpr(nodes[1:])
	}
	return false
}

// funcAroundKey returns the name of the function whose arguments hold the
// key, or "".
func funcAroundKey(nodes []*node) string {
	for i, nd := range nodes {
		if nd.isGroup && countKeys(nd.group) > 0 {
			if i > 0 && nodes[i-1].tok.kind == tWord {
				if f := funcAroundKey(nd.group); f != "" && isOneOf(nodes[i-1], foldFuncs) {
					return f
				}
				return strings.ToUpper(nodes[i-1].tok.text)
			}
			return funcAroundKey(nd.group)
		}
	}
	return ""
}

// sqlLiterals are words that are values, not columns.
var sqlLiterals = []string{"NULL", "TRUE", "FALSE", "DEFAULT", "CURRENT_USER", "NOW"}

// columnExpr returns the text of a column reference ("domain",
// "alias_domain.alias_domain", "`d`.`name`"), unwrapping fold functions.
func columnExpr(nodes []*node) (string, bool) {
	if len(nodes) >= 2 && isOneOf(nodes[0], foldFuncs) {
		return columnExpr(nodes[1:])
	}
	if len(nodes) == 1 && nodes[0].isGroup {
		return columnExpr(nodes[0].group)
	}
	var b strings.Builder
	for i, nd := range nodes {
		if nd.isGroup {
			return "", false
		}
		t := nd.tok
		if i%2 == 1 {
			if !t.is(".") {
				return "", false
			}
			b.WriteString(".")
			continue
		}
		switch {
		case t.kind == tIdent:
		case t.kind == tWord && t.text[0] != '@' && (t.text[0] < '0' || t.text[0] > '9') && !isOneOf(nd, sqlLiterals):
		default:
			return "", false
		}
		b.WriteString(t.text)
	}
	if len(nodes) == 0 || len(nodes)%2 == 0 {
		return "", false
	}
	return b.String(), true
}

// conjText renders a conjunct for error messages.
func conjText(c []*node) string {
	var b strings.Builder
	emit(&b, c, true)
	return strings.TrimSpace(b.String())
}

// EachDomain calls fn with each domain the table hosts: the lower-cased
// keys of the listing query for which Postfix's lookup of the bare domain
// would return a result (so rows whose results are all NULL or empty, or
// skipped by result_format, are left out), and target, the first result
// of that lookup case-folded when it differs from the domain (a table that
// answers an alias domain with the domain it stands for), else "". Names
// that are not DNS domain names with at least two labels are dropped (see
// lookupkey.IsDomainName): PostfixAdmin keeps a pseudo-domain "ALL" in its domain
// table. A table with a "domain" restriction, or whose query is suppressed
// for a bare domain (%d, %1..%9), hosts nothing, since Postfix never looks
// up a bare domain in it.
//
// When the key sits inside an expression (source = '@%s', email LIKE
// '%%@%s', CONCAT('@', '%s'), a subquery: see listing_candidates.go), no
// query lists exactly the keys; EachDomain then lists candidates from the
// values the key is compared with and passes on those a per-key Lookup
// answers, so fn sees each domain once, after the listing. The error
// wraps ErrNoListing, naming the construct, when not even candidates can
// be derived.
//
// A row whose key is not exactly the key Postfix would send (stored in
// mixed case, or with trailing spaces) is confirmed with a per-key Lookup
// after the listing: whether 'Shop.Example.NET' answers the key
// "shop.example.net" depends on the server's comparison (MySQL's usual
// collations: yes; PostgreSQL's and SQLite's =: no), and Lookup asks the
// server itself.
//
// The rows are streamed: a listing of a million domains is never held in
// memory here. So fn may see a domain more than once (a UNION, several
// rows for one key), in the database's order, and when a database host
// fails part-way and the next one is tried, restart is called first and
// the listing begins again. When EachDomain returns an error, fn may have
// seen part of the listing.
//
// ListingTimeout bounds the whole call: the listing, the lookups that
// confirm candidates, and fn's work.
func (t *Table) EachDomain(ctx context.Context, fn func(domain, target string), restart func()) error {
	lctx, cancel := context.WithTimeout(ctx, t.listingTimeout)
	defer cancel()
	err := t.eachDomain(lctx, fn, restart)
	if err != nil && lctx.Err() != nil && ctx.Err() == nil {
		return fmt.Errorf("%s %s: listing not done within the listing timeout (%s): %w", t.dialect.name(), t.path, t.listingTimeout, err)
	}
	return err
}

func (t *Table) eachDomain(ctx context.Context, fn func(domain, target string), restart func()) error {
	// A bare domain is never looked up in a table with a domain
	// restriction, nor in one whose query needs %d, %u of a non-empty
	// local part or %1..%9 (Postfix suppresses the query): such a table
	// hosts no domain, and there is nothing to derive.
	if ok, _ := t.eligible("bare-domain.example"); !ok {
		return nil
	}
	query := bareDomainQuery(t.queryTmpl)
	l, err := deriveListing(query, t.dialect.syntax())
	if err != nil {
		// The key sits inside an expression: list candidates and
		// confirm each (listing_candidates.go).
		cl, cerr := deriveCandidates(query, t.dialect.syntax())
		if cerr != nil {
			return fmt.Errorf("%s %s: %w", t.dialect.name(), t.path, cerr)
		}
		return t.eachCandidate(ctx, cl, fn)
	}
	// With an expansion_limit Postfix fails a lookup with more results
	// than the limit, so results are counted per key before any key is
	// passed on; without one (the usual case) a key is passed on at its
	// first row with a result.
	var count map[string]int
	var targets map[string]string
	if t.limit > 0 && !l.limited {
		count, targets = map[string]int{}, map[string]string{}
	}
	confirm := map[string]bool{}
	row := func(vals []sql.RawBytes) {
		if len(vals) == 0 || vals[len(vals)-1] == nil {
			return
		}
		raw := vals[len(vals)-1]
		key, ok := t.fold(strings.TrimRight(string(raw), " "))
		if !ok || !lookupkey.IsDomainName(key) {
			return
		}
		if ok, err := t.eligible(key); !ok || err != nil {
			return
		}
		if key != string(raw) {
			confirm[key] = true
			return
		}
		n, target := 0, ""
		results := vals[:len(vals)-1]
		if t.firstOnly && len(results) > 1 {
			results = results[:1]
		}
		for _, v := range results {
			if v == nil {
				continue
			}
			if r, ok := t.tmpl.FormatResult(string(v), key); ok {
				if n == 0 {
					target = targetOf(r, key)
				}
				n++
				if count == nil {
					break
				}
			}
		}
		switch {
		case n == 0:
		case count == nil:
			fn(key, target)
		default:
			if count[key] == 0 {
				targets[key] = target
			}
			count[key] += n
		}
	}
	reset := func() {
		clear(count)
		clear(targets)
		clear(confirm)
		restart()
	}
	if err := t.queryEachChecked(ctx, l.sql(true), "", t.listingTimeout, row, reset); err != nil {
		return err
	}
	for k, n := range count {
		if n <= t.limit {
			fn(k, targets[k])
		}
	}
	return t.confirm(ctx, confirm, fn)
}

// confirmWorkers bounds the per-key lookups EachDomain runs at once to
// confirm candidates.
const confirmWorkers = 4

// confirm looks up each candidate key, a few at a time, and calls fn (from
// this goroutine) for those Lookup answers. It fails on the first lookup
// that fails.
func (t *Table) confirm(ctx context.Context, keys map[string]bool, fn func(domain, target string)) error {
	if len(keys) == 0 {
		return nil
	}
	type answer struct {
		key    string
		result []string
		err    error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan string)
	answers := make(chan answer)
	var wg sync.WaitGroup
	for range min(confirmWorkers, len(keys)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				r, err := t.Lookup(ctx, k)
				answers <- answer{k, r, err}
			}
		}()
	}
	go func() {
		defer close(work)
		for k := range keys {
			select {
			case work <- k:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(answers) }()
	var firstErr error
	for a := range answers {
		switch {
		case firstErr != nil, errors.Is(a.err, errExpansionLimit):
		case a.err != nil:
			firstErr = a.err
			cancel()
		case len(a.result) > 0:
			fn(a.key, targetOf(a.result[0], a.key))
		}
	}
	return firstErr
}

// targetOf returns a lookup result of key case-folded, or "" when it is
// the key itself.
func targetOf(result, key string) string {
	r := folded(strings.TrimSpace(result))
	if r == key {
		return ""
	}
	return r
}

// bareDomainQuery returns the query template as Postfix expands it for a
// bare domain: %u and %U then stand for the whole key, as %s does (a key
// without '@' is all local part), so a table keyed by '%u' lists as one
// keyed by '%s'. Other expansions are left alone.
func bareDomainQuery(q string) string {
	if !strings.Contains(q, "%u") && !strings.Contains(q, "%U") {
		return q
	}
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		b.WriteByte(q[i])
		if q[i] == '%' && i+1 < len(q) {
			i++
			switch c := q[i]; c {
			case 'u', 'U':
				b.WriteByte('s')
			default:
				b.WriteByte(c)
			}
		}
	}
	return b.String()
}
