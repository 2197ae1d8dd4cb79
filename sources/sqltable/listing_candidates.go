package sqltable

import (
	"context"
	"database/sql"
	"slices"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/lookupkey"
)

// Candidate listings: for a lookup query whose key sits inside an
// expression (ISPConfig's source = '@%s', Mail-in-a-Box's email LIKE
// '%%@%s', CONCAT('@', '%s'), '@' || '%s', col IN ('%s'), a subquery ...),
// no rewriting gives exactly the keys the query answers. Instead a
// candidate listing selects the values the key is compared with, cuts the
// candidate keys out of them in Go, and EachDomain confirms every candidate
// with Postfix's own per-key query (Lookup). Precision comes from that
// confirmation. Recall comes from how the candidates are derived: for every
// key the lookup query answers, some row of a candidate query holds it.
//
// The argument, for one SELECT ... FROM ... WHERE c1 AND c2 AND ... AND cn:
// a key K is answered only if some row satisfies every conjunct ci with K
// substituted. One conjunct "binds" K to a value of the row, v = P+K+S or
// v LIKE P+K+S with literal P and S; the candidate query keeps the
// conjuncts that do not use the key (they hold for that row whatever K is),
// drops the others (which only widens the rows) and selects v. The row
// that answers K is then among its rows, and K is cut out of its v. Values
// are compared case-folded on both sides, so a server that compares case
// insensitively (MySQL's usual collations, SQLite's LIKE) finds nothing a
// candidate lacks; a collation that also ignores accents (MySQL's
// utf8mb4_general_ci: 'é' = 'e') can answer spellings no row holds, which
// no listing can enumerate. A disjunction (OR, IN (a, b)) binds when every
// alternative binds; a subquery (EXISTS, IN, =) binds when its own WHERE
// does, since the outer row needs one of its rows. The parts of a UNION
// are listed one by one. Anything else is refused with ErrNoListing naming
// the construct: keys used only under NOT, with <>, REGEXP or inside a
// function a listing cannot undo (SUBSTRING_INDEX('%s', ...)), LIKE
// patterns that let the key be any substring, an alternative or a UNION
// part that does not use the key (it answers every key), aggregates without
// GROUP BY (they return a row for every key), and queries keyed by address
// (%u, %d, %1..%9).

// A candidateListing lists a superset of the keys a lookup query answers.
type candidateListing struct {
	queries []candidateQuery
}

// A candidateQuery is one listing query; cols[i] tells how the value of
// its i-th column holds candidate keys.
type candidateQuery struct {
	sql  string
	cols []keyPattern
	// check is what its change check sums (changes.go): the candidate
	// query with the lookup's own select list (its results) first, so
	// that a change of a result is seen too; sql when that cannot be.
	check string
}

// A keyPattern says how a value v is compared with the key k by the lookup
// query: v = pre+k+suf, or v LIKE pre+k+suf. The fields hold the
// literals case-folded; for LIKE, lead and trail record a % before pre or
// after suf (never both).
type keyPattern struct {
	pre, suf    string
	like        bool
	lead, trail bool
}

// newKeyPattern returns the pattern of v = pre+k+suf, or of v LIKE
// pre+k+suf when like (pre and suf validated by likeAffixes).
func newKeyPattern(pre, suf string, like bool) keyPattern {
	p := keyPattern{like: like}
	if like {
		p.lead, pre = strings.HasPrefix(pre, "%"), strings.TrimPrefix(pre, "%")
		p.trail, suf = strings.HasSuffix(suf, "%"), strings.TrimSuffix(suf, "%")
	}
	if !p.trail {
		// MySQL's PAD SPACE collations ignore trailing spaces in =;
		// both sides are trimmed alike.
		suf = strings.TrimRight(suf, " ")
	}
	p.pre, p.suf = folded(pre), folded(suf)
	return p
}

// folded returns s case folded as a key is (lookupkey.Fold), also when it
// could not be a key: values are compared with keys case-folded on both
// sides.
func folded(s string) string {
	f, _ := lookupkey.Fold(s)
	return f
}

// each calls fn with every candidate key the value holds under the
// pattern: the parts k of the case-folded value for which the lookup's
// comparison could hold. fn may see strings that are not domain names.
func (p keyPattern) each(value string, fn func(key string)) {
	if !p.trail {
		value = strings.TrimRight(value, " ")
	}
	v := folded(value)
	if len(v) < len(p.pre)+len(p.suf) {
		return
	}
	switch {
	case p.lead: // v LIKE '%pre' + k + 'suf': k starts after any pre
		if !strings.HasSuffix(v, p.suf) {
			return
		}
		end := len(v) - len(p.suf)
		for i := 0; i+len(p.pre) <= end; i++ {
			if strings.HasPrefix(v[i:], p.pre) {
				fn(v[i+len(p.pre) : end])
			}
		}
	case p.trail: // v LIKE 'pre' + k + 'suf%': k ends before any suf
		if !strings.HasPrefix(v, p.pre) {
			return
		}
		for j := len(p.pre); j+len(p.suf) <= len(v); j++ {
			if strings.HasPrefix(v[j:], p.suf) {
				fn(v[len(p.pre):j])
			}
		}
	default:
		if strings.HasPrefix(v, p.pre) && strings.HasSuffix(v, p.suf) {
			fn(v[len(p.pre) : len(v)-len(p.suf)])
		}
	}
}

// eachCandidate runs the candidate queries of cl, collects the distinct
// candidate domains (memory grows with the domains, not the rows), and
// passes on those Lookup answers, with their targets.
func (t *Table) eachCandidate(ctx context.Context, cl *candidateListing, fn func(domain, target string)) error {
	keys := map[string]bool{}
	for _, q := range cl.queries {
		row := func(vals []sql.RawBytes) {
			for i, v := range vals {
				if v == nil || i >= len(q.cols) {
					continue
				}
				q.cols[i].each(string(v), func(k string) {
					if keys[k] || !lookupkey.IsDomainName(k) {
						return
					}
					if ok, _ := t.eligible(k); ok {
						keys[k] = true
					}
				})
			}
		}
		// A host that fails part-way leaves candidates of the same data:
		// harmless, since every one is confirmed; nothing was passed on.
		if err := t.queryEachChecked(ctx, q.sql, q.check, t.listingTimeout, row, func() {}); err != nil {
			return err
		}
	}
	return t.confirm(ctx, keys, fn)
}

// Binding ranks: when several conjuncts bind the key, the one expected to
// give the fewest candidates is used.
const (
	rankExact    = iota // col = '%s'
	rankAffix           // col = '@%s', CONCAT('@', '%s')
	rankLike            // col LIKE '%%@%s'
	rankList            // '%s' IN (a, b), a disjunction
	rankSubquery        // EXISTS (SELECT ... WHERE x = '%s')
)

// A gen is an expression of the current SELECT whose values hold
// candidates under a pattern.
type gen struct {
	expr []*node
	pat  keyPattern
}

// A binding is what one conjunct tells about the keys a SELECT answers.
type binding struct {
	gens []gen            // values of this SELECT's expressions
	subs []candidateQuery // listings of subqueries
	rank int
}

// A deriver derives candidate listings in one dialect.
type deriver struct{ syn syntax }

// deriveCandidates derives the candidate listing of a lookup query, or an
// error wrapping ErrNoListing that names what stands in the way.
func deriveCandidates(query string, syn syntax) (*candidateListing, error) {
	nodes, err := parseListingQuery(query, syn, checkCandidateExpansions)
	if err != nil {
		return nil, err
	}
	if keyRefs(nodes) == 0 {
		return nil, noListing("the query does not use the key (%%s): it answers every key alike")
	}
	d := deriver{syn: syn}
	qs, err := d.union(nodes, false)
	if err != nil {
		return nil, err
	}
	return &candidateListing{queries: qs}, nil
}

// checkCandidateExpansions refuses a token whose %-expansions no listing
// can handle: address parts, or the key twice in one string or in an
// identifier.
func checkCandidateExpansions(t token) error {
	if t.kind == tWord || t.kind == tPunct {
		return nil
	}
	keys := 0
	if err := scanExpansions(t.text, func() error { keys++; return nil }); err != nil {
		return err
	}
	switch {
	case keys > 0 && t.kind == tIdent:
		return noListing("the key is part of the identifier %s", t.text)
	case keys > 1:
		return noListing("the key is used %d times in %s", keys, t.text)
	}
	return nil
}

// hasKey reports whether a token holds the key placeholder, alone or
// inside a string.
func hasKey(t token) bool {
	switch t.kind {
	case tPercent:
		return t.key()
	case tString:
		_, _, ok := splitKeyString(t.text)
		return ok
	}
	return false
}

// keyRefs counts the tokens of nodes, groups included, that hold the key.
func keyRefs(nodes []*node) int {
	n := 0
	for _, nd := range nodes {
		if nd.isGroup {
			n += keyRefs(nd.group)
		} else if hasKey(nd.tok) {
			n++
		}
	}
	return n
}

// splitKeyString splits the body of a quoted template string at its key
// placeholder, turning the template's %% into %; ok is false when the
// string holds no key.
func splitKeyString(text string) (pre, suf string, ok bool) {
	body := text[1 : len(text)-1]
	var b [2]strings.Builder
	part := 0
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c == '%' && i+1 < len(body) {
			switch body[i+1] {
			case '%':
				b[part].WriteByte('%')
				i++
				continue
			case 's', 'S':
				if part == 0 {
					part = 1
					i++
					continue
				}
			}
		}
		b[part].WriteByte(c)
	}
	return b[0].String(), b[1].String(), part == 1
}

func isSelect(nodes []*node) bool { return len(nodes) > 0 && nodes[0].tok.is("SELECT") }

// union lists each SELECT of a (possibly parenthesized) UNION; nested
// tells that nodes are a subquery.
func (d deriver) union(nodes []*node, nested bool) ([]candidateQuery, error) {
	parts, err := splitUnion(nodes)
	if err != nil {
		return nil, err
	}
	var out []candidateQuery
	for _, p := range parts {
		if len(p) == 0 {
			return nil, noListing("empty SELECT in a UNION")
		}
		var qs []candidateQuery
		switch first := p[0]; {
		case first.isGroup:
			if keyRefs(p[1:]) > 0 {
				return nil, noListing("the key is used after a parenthesized SELECT")
			}
			qs, err = d.union(first.group, nested)
		case first.tok.is("SELECT"):
			qs, err = d.selectBlock(p, nested)
		default:
			return nil, noListing("not a SELECT query (%s)", first.tok.text)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, qs...)
	}
	return out, nil
}

// candidateClauseWords end a WHERE clause (clauseWords and PostgreSQL's
// OFFSET and FETCH).
var candidateClauseWords = append([]string{"OFFSET", "FETCH"}, clauseWords...)

// selectBlock lists one SELECT ... FROM ... WHERE ...: the select list is
// replaced by the binding expressions, the WHERE clause keeps the
// conjuncts without the key, and what follows it (GROUP BY, HAVING,
// ORDER BY, LIMIT: none of which can add a row) is dropped.
func (d deriver) selectBlock(nodes []*node, nested bool) ([]candidateQuery, error) {
	clause := clauses(nodes, candidateClauseWords)
	from, ok := clause["FROM"]
	if !ok {
		return nil, noListing("a SELECT without FROM")
	}
	fromEnd := clauseEnd(nodes, from, candidateClauseWords)
	if keyRefs(nodes[from:fromEnd]) > 0 {
		return nil, noListing("the key is used in the FROM clause (a join condition or a derived table)")
	}
	where, ok := clause["WHERE"]
	if !ok || where != fromEnd || keyRefs(nodes[where:]) == 0 {
		if keyRefs(nodes[:from]) > 0 && keyRefs(nodes[from:]) == 0 {
			return nil, noListing("the key is only in the select list: the query answers every key alike")
		}
		if keyRefs(nodes[from:]) == 0 {
			return nil, noListing("a SELECT of the UNION does not use the key: it answers every key alike")
		}
		return nil, noListing("the key is not in a WHERE clause")
	}
	if _, grouped := clause["GROUP"]; !grouped {
		list := nodes[1:from]
		for i, nd := range list {
			if isOneOf(nd, aggregates) && i+1 < len(list) && list[i+1].isGroup {
				return nil, noListing("aggregate %s() without GROUP BY: the query returns a row for every key", strings.ToUpper(nd.tok.text))
			}
		}
	}
	end := clauseEnd(nodes, where, candidateClauseWords)
	cond := nodes[where+1 : end]
	if keyRefs(cond) == 0 {
		return nil, noListing("the key is not in the WHERE clause")
	}
	var sc scope
	if nested {
		sc = newScope(nodes[from+1 : where])
	}
	b, keep, err := d.conjunction(cond, sc)
	if err != nil {
		return nil, err
	}
	var out []candidateQuery
	if len(b.gens) > 0 {
		q := candidateQuery{}
		var exprs, conds []string
		for _, g := range b.gens {
			exprs = append(exprs, nodesText(g.expr))
			q.cols = append(q.cols, g.pat)
		}
		for _, c := range keep {
			if _, outer := sc.outerRef(c); !outer {
				conds = append(conds, nodesText(c))
			}
		}
		rest := " " + nodesText(nodes[from:where])
		if len(conds) > 0 {
			rest += " WHERE " + strings.Join(conds, " AND ")
		}
		q.sql = "SELECT " + strings.Join(exprs, ", ") + rest
		q.check = q.sql
		if list := nodes[1:from]; keyRefs(list) == 0 && len(list) > 0 {
			q.check = "SELECT " + nodesText(list) + ", " + strings.Join(exprs, ", ") + rest
		}
		out = append(out, q)
	}
	return append(out, b.subs...), nil
}

// nodesText renders nodes as SQL (template %% as %).
func nodesText(nodes []*node) string {
	var b strings.Builder
	emit(&b, nodes, true)
	return strings.TrimSpace(b.String())
}

// conjunction binds the key in a condition and returns the conjuncts that
// do not use the key, to keep. With several conjuncts that bind, the
// best-ranked is used; the others are dropped.
func (d deriver) conjunction(cond []*node, sc scope) (binding, [][]*node, error) {
	disj, err := d.splitOr(cond)
	if err != nil {
		return binding{}, nil, err
	}
	if len(disj) > 1 {
		b, err := d.disjunction(disj, cond, sc)
		return b, nil, err
	}
	conj, err := d.flattenAnd(cond)
	if err != nil {
		return binding{}, nil, err
	}
	var keep [][]*node
	var best *binding
	var firstErr error
	for _, c := range conj {
		if keyRefs(c) == 0 {
			keep = append(keep, c)
			continue
		}
		b, err := d.bind(c, sc)
		switch {
		case err != nil:
			if firstErr == nil {
				firstErr = err
			}
		case best == nil || b.rank < best.rank:
			best = &b
		}
	}
	if best == nil {
		return binding{}, nil, firstErr
	}
	return *best, keep, nil
}

// disjunction binds the key in "a OR b ...": every alternative must bind
// it, or a row satisfying one without the key would answer every key.
func (d deriver) disjunction(disj [][]*node, cond []*node, sc scope) (binding, error) {
	var out binding
	for _, alt := range disj {
		if keyRefs(alt) == 0 {
			hint := ""
			if !d.syn.pipesConcat && slices.ContainsFunc(cond, func(nd *node) bool { return nd.tok.is("||") }) {
				hint = " (|| is OR in MySQL: use CONCAT())"
			}
			return binding{}, noListing("in %s the alternative %s does not use the key: it answers every key%s", nodesText(cond), nodesText(alt), hint)
		}
		b, _, err := d.conjunction(alt, sc)
		if err != nil {
			return binding{}, err
		}
		out.gens = append(out.gens, b.gens...)
		out.subs = append(out.subs, b.subs...)
	}
	out.rank = rankList
	return out, nil
}

// splitOr splits a condition at its top-level ORs (and ||, which is OR in
// MySQL). It refuses XOR and CASE, whose ANDs and ORs it cannot place.
func (d deriver) splitOr(cond []*node) ([][]*node, error) {
	var parts [][]*node
	start := 0
	for i, nd := range cond {
		switch {
		case nd.tok.is("XOR"):
			return nil, noListing("XOR in %s", nodesText(cond))
		case nd.tok.is("CASE"):
			return nil, noListing("CASE in the condition %s", nodesText(cond))
		case nd.tok.is("OR") || nd.tok.is("||") && !d.syn.pipesConcat:
			parts = append(parts, cond[start:i])
			start = i + 1
		}
	}
	parts = append(parts, cond[start:])
	for _, p := range parts {
		if len(p) == 0 {
			return nil, noListing("empty condition around OR in %s", nodesText(cond))
		}
	}
	return parts, nil
}

// flattenAnd splits a condition without top-level OR into its conjuncts,
// also those of parenthesized conjunctions.
func (d deriver) flattenAnd(cond []*node) ([][]*node, error) {
	var out [][]*node
	parts, _ := splitAnd(cond)
	for _, p := range parts {
		if len(p) == 0 {
			return nil, noListing("empty condition around AND in %s", nodesText(cond))
		}
		if len(p) == 1 && p[0].isGroup && !isSelect(p[0].group) && len(p[0].group) > 0 {
			if alts, err := d.splitOr(p[0].group); err == nil && len(alts) == 1 {
				inner, err := d.flattenAnd(p[0].group)
				if err != nil {
					return nil, err
				}
				out = append(out, inner...)
				continue
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// comparisons that do not bind the key to a value a listing can cut out.
var otherComparisons = []string{"<>", "!=", "<", ">", "<=", ">=", "REGEXP", "RLIKE", "GLOB", "MATCH", "SIMILAR", "~", "IS", "BETWEEN", "SOUNDS"}

// bind binds the key in one conjunct that uses it.
func (d deriver) bind(c []*node, sc scope) (binding, error) {
	text := nodesText(c)
	if len(c) == 1 && c[0].isGroup {
		if isSelect(c[0].group) {
			return binding{}, noListing("the key is in a subquery used as a condition: %s", text)
		}
		b, _, err := d.conjunction(c[0].group, sc)
		return b, err
	}
	if c[0].tok.is("EXISTS") && len(c) == 2 && c[1].isGroup && isSelect(c[1].group) {
		return d.subquery(c[1].group)
	}
	op := -1
	for i, nd := range c {
		switch {
		case nd.tok.is("NOT") || nd.tok.is("!"):
			return binding{}, noListing("the key is negated in %s", text)
		case nd.tok.is("=") || nd.tok.is("==") || nd.tok.is("<=>") || nd.tok.is("LIKE") || nd.tok.is("ILIKE") || nd.tok.is("IN"):
			if op >= 0 {
				return binding{}, noListing("cannot use %s: more than one comparison", text)
			}
			op = i
		case isOneOf(nd, otherComparisons):
			return binding{}, noListing("the key is compared with %s in %s", strings.ToUpper(nd.tok.text), text)
		case nd.tok.is("ESCAPE"):
			return binding{}, noListing("LIKE ... ESCAPE in %s", text)
		}
	}
	if op < 0 {
		if f := funcWithKey(c); f != "" {
			return binding{}, noListing("the key is inside %s(), which a listing cannot undo, in %s", f, text)
		}
		return binding{}, noListing("the key is not compared with a value in %s", text)
	}
	lhs, rhs := c[:op], c[op+1:]
	if len(lhs) == 0 || len(rhs) == 0 {
		return binding{}, noListing("cannot parse %s", text)
	}
	switch {
	case c[op].tok.is("IN"):
		return d.bindIn(lhs, rhs, text, sc)
	case c[op].tok.is("LIKE") || c[op].tok.is("ILIKE"):
		if keyRefs(lhs) > 0 {
			return binding{}, noListing("the key is matched against the LIKE patterns stored in %s: %s", nodesText(rhs), text)
		}
		pre, suf, err := d.keyAffixes(rhs, text)
		if err != nil {
			return binding{}, err
		}
		if err := likeAffixes(pre, suf, text); err != nil {
			return binding{}, err
		}
		return bindExpr(lhs, newKeyPattern(pre, suf, true), rankLike, text, sc)
	}
	for _, side := range [][]*node{lhs, rhs} {
		if len(side) == 1 && side[0].isGroup && isSelect(side[0].group) && keyRefs(side) > 0 {
			return d.subquery(side[0].group)
		}
	}
	if keyRefs(lhs) > 0 {
		lhs, rhs = rhs, lhs
	}
	if keyRefs(lhs) > 0 {
		return binding{}, noListing("the key is on both sides of %s", text)
	}
	pre, suf, err := d.keyAffixes(rhs, text)
	if err != nil {
		return binding{}, err
	}
	rank := rankAffix
	if pre == "" && suf == "" {
		rank = rankExact
	}
	return bindExpr(lhs, newKeyPattern(pre, suf, false), rank, text, sc)
}

// bindExpr binds the key to the values of expression e.
func bindExpr(e []*node, p keyPattern, rank int, text string, sc scope) (binding, error) {
	if q, outer := sc.outerRef(e); outer {
		return binding{}, noListing("%s refers to %s of the outer query, in %s", nodesText(e), q, text)
	}
	return binding{gens: []gen{{expr: e, pat: p}}, rank: rank}, nil
}

// bindIn binds the key in "x IN (...)".
func (d deriver) bindIn(lhs, rhs []*node, text string, sc scope) (binding, error) {
	if len(rhs) != 1 || !rhs[0].isGroup {
		return binding{}, noListing("cannot parse %s", text)
	}
	g := rhs[0].group
	if isSelect(g) {
		if keyRefs(g) > 0 {
			return d.subquery(g)
		}
		return binding{}, noListing("the key is compared with the rows of a subquery in %s", text)
	}
	items := splitTop(g, ",")
	var out binding
	if keyRefs(lhs) > 0 {
		// '%s' IN (a, b): the key is one of the values.
		pre, suf, err := d.keyAffixes(lhs, text)
		if err != nil {
			return binding{}, err
		}
		for _, it := range items {
			if len(it) == 0 || keyRefs(it) > 0 {
				return binding{}, noListing("cannot use %s", text)
			}
			b, err := bindExpr(it, newKeyPattern(pre, suf, false), rankList, text, sc)
			if err != nil {
				return binding{}, err
			}
			out.gens = append(out.gens, b.gens...)
		}
		out.rank = rankList
		if len(items) == 1 {
			out.rank = rankAffix
		}
		return out, nil
	}
	// x IN ('%s', ...): every item must hold the key.
	out.rank = rankList
	for _, it := range items {
		if keyRefs(it) == 0 {
			return binding{}, noListing("the IN list of %s holds %s besides the key: a row with that value answers every key", text, nodesText(it))
		}
		pre, suf, err := d.keyAffixes(it, text)
		if err != nil {
			return binding{}, err
		}
		b, err := bindExpr(lhs, newKeyPattern(pre, suf, false), rankAffix, text, sc)
		if err != nil {
			return binding{}, err
		}
		out.gens = append(out.gens, b.gens...)
		if len(items) == 1 && pre == "" && suf == "" {
			out.rank = rankExact
		} else if len(items) == 1 {
			out.rank = rankAffix
		}
	}
	return out, nil
}

// subquery binds the key through a subquery that uses it (EXISTS, IN, =):
// the outer row needs one of its rows.
func (d deriver) subquery(g []*node) (binding, error) {
	qs, err := d.union(g, true)
	if err != nil {
		return binding{}, err
	}
	return binding{subs: qs, rank: rankSubquery}, nil
}

// splitTop splits nodes at the top-level punctuation sep.
func splitTop(nodes []*node, sep string) [][]*node {
	var out [][]*node
	start := 0
	for i, nd := range nodes {
		if !nd.isGroup && nd.tok.is(sep) {
			out = append(out, nodes[start:i])
			start = i + 1
		}
	}
	return append(out, nodes[start:])
}

// keyAffixes returns the literals around the key in an expression whose
// value is pre + key + suf: the key in a string ('@%s'), CONCAT('@', '%s'),
// '@' || '%s' (PostgreSQL, SQLite), inside LOWER(), UPPER(), TRIM(),
// BINARY, COLLATE or a ::text cast.
func (d deriver) keyAffixes(nodes []*node, text string) (pre, suf string, err error) {
	if n := len(nodes); n >= 3 && nodes[n-2].tok.is("COLLATE") {
		nodes = nodes[:n-2]
	}
	if n := len(nodes); n >= 4 && nodes[n-3].tok.is(":") && nodes[n-2].tok.is(":") {
		nodes = nodes[:n-3]
	}
	switch {
	case len(nodes) == 1 && !nodes[0].isGroup:
		t := nodes[0].tok
		switch {
		case t.kind == tPercent && t.key():
			return "", "", nil
		case t.kind == tString && hasKey(t):
			return d.stringAffixes(t, text)
		}
	case len(nodes) == 1 && nodes[0].isGroup && !isSelect(nodes[0].group):
		return d.keyAffixes(nodes[0].group, text)
	}
	if d.syn.pipesConcat {
		if parts := splitTop(nodes, "||"); len(parts) > 1 {
			return d.concatAffixes(parts, text)
		}
	}
	if len(nodes) == 2 && nodes[1].isGroup && nodes[0].tok.kind == tWord {
		switch f := strings.ToUpper(nodes[0].tok.text); f {
		case "LOWER", "LCASE", "UPPER", "UCASE":
			return d.keyAffixes(nodes[1].group, text)
		case "TRIM":
			pre, suf, err := d.keyAffixes(nodes[1].group, text)
			return strings.TrimLeft(pre, " "), strings.TrimRight(suf, " "), err
		case "CONCAT":
			return d.concatAffixes(splitTop(nodes[1].group, ","), text)
		case "CAST", "CONVERT": // CAST('%s' AS CHAR), CONVERT('%s' USING utf8mb4), CONVERT('%s', CHAR)
			g := nodes[1].group
			for i, nd := range g {
				if i > 0 && (nd.tok.is("AS") || nd.tok.is("USING") || nd.tok.is(",")) {
					return d.keyAffixes(g[:i], text)
				}
			}
		}
	}
	if len(nodes) >= 2 && nodes[0].tok.is("BINARY") {
		return d.keyAffixes(nodes[1:], text)
	}
	if f := funcWithKey(nodes); f != "" {
		return "", "", noListing("the key is inside %s(), which a listing cannot undo, in %s", f, text)
	}
	return "", "", noListing("cannot find the key's value in %s", text)
}

// stringAffixes returns the literals around the key in a string token
// ('@%s'), without the quote doubling. A backslash (an escape in MySQL) is
// refused.
func (d deriver) stringAffixes(t token, text string) (string, string, error) {
	pre, suf, _ := splitKeyString(t.text)
	q := t.text[:1]
	parts := [2]string{pre, suf}
	for i, p := range parts {
		if d.syn.backslashEscapes && strings.Contains(p, `\`) {
			return "", "", noListing("a backslash escape next to the key in %s", text)
		}
		parts[i] = strings.ReplaceAll(p, q+q, q)
	}
	return parts[0], parts[1], nil
}

// concatAffixes returns the literals around the key in a concatenation of
// parts: exactly one holds the key, the others are constant strings.
func (d deriver) concatAffixes(parts [][]*node, text string) (pre, suf string, err error) {
	k := -1
	for i, p := range parts {
		if keyRefs(p) > 0 {
			if k >= 0 {
				return "", "", noListing("the key is concatenated twice in %s", text)
			}
			k = i
		}
	}
	if k < 0 {
		return "", "", noListing("cannot find the key's value in %s", text)
	}
	var before, after strings.Builder
	for i, p := range parts {
		if i == k {
			continue
		}
		s, ok := d.constString(p)
		if !ok {
			return "", "", noListing("%s is concatenated with the key in %s: only constant strings can be cut off", nodesText(p), text)
		}
		if i < k {
			before.WriteString(s)
		} else {
			after.WriteString(s)
		}
	}
	kpre, ksuf, err := d.keyAffixes(parts[k], text)
	if err != nil {
		return "", "", err
	}
	return before.String() + kpre, ksuf + after.String(), nil
}

// constString returns the value of a constant string literal, possibly
// parenthesized.
func (d deriver) constString(nodes []*node) (string, bool) {
	if len(nodes) == 1 && nodes[0].isGroup {
		return d.constString(nodes[0].group)
	}
	if len(nodes) != 1 || nodes[0].tok.kind != tString {
		return "", false
	}
	t := nodes[0].tok.text
	q := t[:1]
	body := strings.ReplaceAll(t[1:len(t)-1], "%%", "%")
	if d.syn.backslashEscapes && strings.Contains(body, `\`) {
		return "", false
	}
	return strings.ReplaceAll(body, q+q, q), true
}

// likeAffixes checks that the LIKE pattern pre+key+suf bounds where the key
// can sit in a value: literals around it, with at most a leading % before
// a non-empty literal or a trailing % after one.
func likeAffixes(pre, suf, text string) error {
	lead, lit1 := strings.HasPrefix(pre, "%"), strings.TrimPrefix(pre, "%")
	trail, lit2 := strings.HasSuffix(suf, "%"), strings.TrimSuffix(suf, "%")
	switch {
	case strings.ContainsAny(lit1, `%_\`) || strings.ContainsAny(lit2, `%_\`):
		return noListing("the LIKE pattern of %s has a wildcard or escape next to the key", text)
	case lead && trail:
		return noListing("the LIKE pattern of %s lets the key sit anywhere inside the value", text)
	case lead && lit1 == "":
		return noListing("the LIKE pattern of %s lets the key be any ending of the value", text)
	case trail && lit2 == "":
		return noListing("the LIKE pattern of %s lets the key be any beginning of the value", text)
	}
	return nil
}

// A scope is the set of names (tables, aliases) a subquery's FROM clause
// brings in, lower-cased; nil is the outermost query, where every name is
// its own.
type scope map[string]bool

// fromKeywords are the words of a FROM clause that are not names.
var fromKeywords = []string{"JOIN", "INNER", "LEFT", "RIGHT", "OUTER", "CROSS", "NATURAL", "FULL", "STRAIGHT_JOIN",
	"ON", "USING", "AS", "AND", "OR", "NOT", "USE", "FORCE", "IGNORE", "INDEX", "KEY", "LATERAL", "ONLY"}

func newScope(from []*node) scope {
	sc := scope{}
	for _, nd := range from {
		if !nd.isGroup && (nd.tok.kind == tWord || nd.tok.kind == tIdent) && !isOneOf(nd, fromKeywords) {
			sc[identName(nd.tok)] = true
		}
	}
	return sc
}

// identName returns an identifier's name, unquoted and lower-cased.
func identName(t token) string {
	s := t.text
	if t.kind == tIdent && len(s) >= 2 {
		s = strings.ReplaceAll(s[1:len(s)-1], s[:1]+s[:1], s[:1])
	}
	return strings.ToLower(s)
}

// outerRef returns the first qualifier in nodes (q of q.col) that the
// scope does not bring in: a reference to an outer query. A subquery's
// unqualified column that only an outer table has cannot be told apart;
// the candidate query then fails with the server's error.
func (sc scope) outerRef(nodes []*node) (string, bool) {
	if sc == nil {
		return "", false
	}
	for i, nd := range nodes {
		if nd.isGroup {
			if q, ok := sc.outerRef(nd.group); ok {
				return q, true
			}
			continue
		}
		if !nd.tok.is(".") || i == 0 || nodes[i-1].isGroup {
			continue
		}
		q := nodes[i-1].tok
		if q.kind == tWord && (q.text[0] < '0' || q.text[0] > '9') || q.kind == tIdent {
			if !sc[identName(q)] {
				return q.text, true
			}
		}
	}
	return "", false
}

// funcWithKey returns the name of the innermost function whose arguments
// hold the key, or "".
func funcWithKey(nodes []*node) string {
	for i, nd := range nodes {
		if !nd.isGroup || keyRefs(nd.group) == 0 {
			continue
		}
		if f := funcWithKey(nd.group); f != "" {
			return f
		}
		if i > 0 && nodes[i-1].tok.kind == tWord && !nodes[i-1].isGroup {
			return strings.ToUpper(nodes[i-1].tok.text)
		}
	}
	return ""
}
