package sqltable

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/lookupkey"
)

// ErrNoAliasTable is wrapped by AliasTargets and AliasTarget when the
// table's database has no alias_domain table with alias_domain and
// target_domain columns.
var ErrNoAliasTable = errors.New("no alias_domain table")

// aliasQuery returns the query of the alias_domain table that iRedMail and
// PostfixAdmin both keep (columns alias_domain and target_domain),
// restricted to active = '1' when that column exists (a quoted '1' also
// reads as true where active is a boolean, as in PostfixAdmin's PostgreSQL
// schema), or an error wrapping ErrNoAliasTable. The answer is kept for the
// Table's life (a snapshot's), so that a per-request AliasTarget costs one
// query; a failure to find out is not kept.
func (t *Table) aliasQuery(ctx context.Context) (string, error) {
	t.aliasMu.Lock()
	defer t.aliasMu.Unlock()
	if t.aliasKnown {
		return t.aliasSQL, t.aliasErr
	}
	q, err := t.findAliasQuery(ctx)
	if err == nil || errors.Is(err, ErrNoAliasTable) {
		t.aliasKnown, t.aliasSQL, t.aliasErr = true, q, err
	}
	return q, err
}

func (t *Table) findAliasQuery(ctx context.Context) (string, error) {
	// Checked: an alias_domain table created later is a change too.
	cols, err := t.queryRows(ctx, t.dialect.columnsQuery("alias_domain"), true)
	if err != nil {
		return "", err
	}
	has := map[string]bool{}
	for _, r := range cols {
		if len(r) > 0 && r[0] != nil {
			has[strings.ToLower(*r[0])] = true
		}
	}
	if !has["alias_domain"] || !has["target_domain"] {
		return "", fmt.Errorf("%s %s: %w", t.dialect.name(), t.path, ErrNoAliasTable)
	}
	q := "SELECT alias_domain, target_domain FROM alias_domain WHERE 1 = 1"
	if has["active"] {
		q += " AND active = '1'"
	}
	return q, nil
}

// AliasTargets returns the active alias domains of the table's database and
// the domain each one stands for, lower-cased: the rows of the alias_domain
// table that iRedMail and PostfixAdmin both keep. Rows whose names are not
// domain names are left out. Whether an alias (or its target) is hosted is
// for Lookup or EachDomain to say: iRedMail keeps active aliases of
// disabled domains.
func (t *Table) AliasTargets(ctx context.Context) (map[string]string, error) {
	q, err := t.aliasQuery(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := t.queryRows(ctx, q, true)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range rows {
		if alias, target, ok := aliasRow(r); ok {
			out[alias] = target
		}
	}
	return out, nil
}

// AliasTarget returns the domain the alias domain alias stands for in the
// alias_domain table, or "" when it has no active row there: AliasTargets
// for one domain, for a domain found by a per-request lookup.
func (t *Table) AliasTarget(ctx context.Context, alias string) (string, error) {
	q, err := t.aliasQuery(ctx)
	if err != nil {
		return "", err
	}
	// lower(): AliasTargets lower-cases what it reads, and PostgreSQL's
	// and SQLite's = compare case-sensitively.
	rows, err := t.query(ctx, q+" AND lower(alias_domain) = '"+t.dialect.quote(strings.ToLower(alias))+"'")
	if err != nil {
		return "", err
	}
	for _, r := range rows {
		if a, target, ok := aliasRow(r); ok && a == strings.ToLower(alias) {
			return target, nil
		}
	}
	return "", nil
}

func aliasRow(r []*string) (alias, target string, ok bool) {
	if len(r) < 2 || r[0] == nil || r[1] == nil {
		return "", "", false
	}
	alias = strings.ToLower(strings.TrimRight(*r[0], " "))
	target = strings.ToLower(strings.TrimRight(*r[1], " "))
	return alias, target, lookupkey.IsDomainName(alias) && lookupkey.IsDomainName(target)
}
