package sqltable

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/postfix"
)

// loadCF reads a mysql_table(5) file with the postfix package's parser.
func loadCF(t testing.TB, root hostfs.Root, path string) *postfix.SQLTable {
	t.Helper()
	mt, err := postfix.LoadSQLTable(root, "mysql", path)
	if err != nil {
		t.Fatalf("LoadSQLTable(%s): %v", path, err)
	}
	return mt
}

// parseCF parses the text of a mysql_table(5) file.
func parseCF(t testing.TB, path, text string) *postfix.SQLTable {
	t.Helper()
	mt, err := postfix.ParseSQLTable("mysql", path, strings.NewReader(text))
	if err != nil {
		t.Fatalf("ParseSQLTable(%s): %v", path, err)
	}
	return mt
}

// List returns the domains the table hosts, lower-cased, de-duplicated and
// sorted (EachDomain collected, for comparisons).
func (t *Table) List(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	err := t.EachDomain(ctx, func(d, _ string) { seen[d] = true }, func() { clear(seen) })
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	sort.Strings(out)
	return out, nil
}
