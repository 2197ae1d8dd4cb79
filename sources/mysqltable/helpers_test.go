package mysqltable

import (
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/postfix"
)

// loadCF reads a mysql_table(5) file with the postfix package's parser.
func loadCF(t testing.TB, root hostfs.Root, path string) *postfix.MySQLTable {
	t.Helper()
	mt, err := postfix.LoadMySQLTable(root, path)
	if err != nil {
		t.Fatalf("LoadMySQLTable(%s): %v", path, err)
	}
	return mt
}

// parseCF parses the text of a mysql_table(5) file.
func parseCF(t testing.TB, path, text string) *postfix.MySQLTable {
	t.Helper()
	mt, err := postfix.ParseMySQLTable(path, strings.NewReader(text))
	if err != nil {
		t.Fatalf("ParseMySQLTable(%s): %v", path, err)
	}
	return mt
}
