package mysqltable

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrNoAliasTable is wrapped by AliasTargets when the table's database has
// no alias_domain table with alias_domain and target_domain columns.
var ErrNoAliasTable = errors.New("no alias_domain table")

// AliasTargets returns the active alias domains of the table's database and
// the domain each one stands for, lower-cased: the rows of the alias_domain
// table that iRedMail and PostfixAdmin both keep (columns alias_domain and
// target_domain), restricted to active = 1 when that column exists. Rows
// whose names are not domain names are left out. Whether an alias (or its
// target) is hosted is for Lookup or List to say: iRedMail keeps active
// aliases of disabled domains.
func (t *Table) AliasTargets(ctx context.Context) (map[string]string, error) {
	cols, err := t.query(ctx, "SELECT COLUMN_NAME FROM information_schema.COLUMNS"+
		" WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'alias_domain'")
	if err != nil {
		return nil, err
	}
	has := map[string]bool{}
	for _, r := range cols {
		if len(r) > 0 && r[0] != nil {
			has[strings.ToLower(*r[0])] = true
		}
	}
	if !has["alias_domain"] || !has["target_domain"] {
		return nil, fmt.Errorf("mysql %s: %w", t.path, ErrNoAliasTable)
	}
	q := "SELECT alias_domain, target_domain FROM alias_domain"
	if has["active"] {
		q += " WHERE active = 1"
	}
	rows, err := t.query(ctx, q)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range rows {
		if len(r) < 2 || r[0] == nil || r[1] == nil {
			continue
		}
		alias := strings.ToLower(strings.TrimRight(*r[0], " "))
		target := strings.ToLower(strings.TrimRight(*r[1], " "))
		if IsDomainName(alias) && IsDomainName(target) {
			out[alias] = target
		}
	}
	return out, nil
}
