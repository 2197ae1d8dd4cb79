package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/mariadbtest"
	"github.com/mailautoconf/mailautoconf/internal/pgtest"
	"github.com/mailautoconf/mailautoconf/internal/slapdtest"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

var update = flag.Bool("update", false, "rewrite testdata/golden files with the current output")

// expected is the part of a corpus set's expected.json (ground truth made by
// the real postconf, doveconf, postmap and MariaDB) that show must agree with.
type expected struct {
	ClientSettings struct {
		Incoming []expectedEndpoint `json:"incoming"`
		Outgoing []expectedEndpoint `json:"outgoing"`
		Hostname string             `json:"hostname"`
	} `json:"client_settings"`
	SQL *struct {
		ExpectedDomains []string `json:"expected_domains"`
		NotListed       []string `json:"not_listed"`
	} `json:"sql"`
	Domains *struct {
		ExpectedDomains []string `json:"expected_domains"`
	} `json:"domains"`
}

type expectedEndpoint struct {
	Protocol string `json:"protocol"`
	Port     int    `json:"port"`
	TLS      string `json:"tls"` // implicit, starttls-required, starttls-optional, none
	Server   string `json:"server"`
}

// shown is the JSON that show --json prints (README.md documents it).
type shown struct {
	Hostname string `json:"hostname"`
	Domains  []struct {
		Name    string `json:"name"`
		AliasOf string `json:"alias_of"`
	} `json:"domains"`
	DomainsListed bool `json:"domains_listed"`
	Endpoints     []struct {
		Protocol string   `json:"protocol"`
		Host     string   `json:"host"`
		Port     int      `json:"port"`
		Security string   `json:"security"`
		Auth     []string `json:"auth"`
		Username string   `json:"username"`
		Server   string   `json:"server"`
		Source   string   `json:"source"`
	} `json:"endpoints"`
	Warnings []string `json:"warnings"`
}

func TestMain(m *testing.M) {
	testtool.Main(m, mariadbtest.CloseShared, pgtest.CloseShared, slapdtest.CloseShared, func() {
		if daemonBinary.dir != "" {
			os.RemoveAll(daemonBinary.dir)
		}
	})
}

var loadCorpusOnce sync.Once

// database returns the test binary's one throwaway MariaDB with every SQL
// corpus set's schema and seed loaded (their database names differ).
func database(t *testing.T, sets []string) *mariadbtest.Server {
	db := mariadbtest.Shared(t)
	loadCorpusOnce.Do(func() {
		for _, set := range sets {
			db.LoadFile(t, filepath.Join(set, "schema.sql"))
			db.LoadFile(t, filepath.Join(set, "seed.sql"))
		}
	})
	return db
}

var loadPgCorpusOnce sync.Once

// pgDatabase returns the test binary's one throwaway PostgreSQL with the
// PostgreSQL corpus set loaded as its README says (the schema into
// template1, the rows into vmail). Only one such set exists: it creates
// the fixed names vmail and vmailadmin.
func pgDatabase(t *testing.T, set string) *pgtest.Server {
	db := pgtest.Shared(t)
	loadPgCorpusOnce.Do(func() {
		db.LoadFile(t, "template1", filepath.Join(set, "pgsql-schema.sql"))
		db.LoadFile(t, "vmail", filepath.Join(set, "pgsql-seed.sql"))
	})
	return db
}

// corpusArgs returns the flags that point show, dns and check at a corpus
// set with the throwaway server its domain tables need: MariaDB for the
// sets with schema.sql (withSQL), PostgreSQL for pgsql-schema.sql, slapd
// for ldap/, and for sqlite/ a copy of the set whose database file is made
// from the set's SQL with the sqlite3 shell.
func corpusArgs(t *testing.T, set string, withSQL []string) []string {
	t.Helper()
	has := func(name string) bool { _, err := os.Stat(filepath.Join(set, name)); return err == nil }
	args := []string{"--root", set}
	if has("sqlite/schema.sql") {
		args[1] = sqliteCopy(t, set)
	}
	if slices.Contains(withSQL, set) {
		args = append(args, "--mysql-socket", database(t, withSQL).Socket())
	}
	if has("pgsql-schema.sql") {
		args = append(args, "--pgsql-host", pgDatabase(t, set).Addr())
	}
	if has("ldap/ldap-seed.ldif") {
		args = append(args, "--ldap-uri", slapdtest.Shared(t, slapdtest.Corpus(set)).URL())
	}
	return args
}

// sqliteCopy copies a corpus set whose domain tables are sqlite: tables
// and makes the database every one of them names (dbpath) from the set's
// sqlite/schema.sql and sqlite/seed.sql.
func sqliteCopy(t *testing.T, set string) string {
	t.Helper()
	sqlite3 := testtool.Need(t, "sqlite3")
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(set)); err != nil {
		t.Fatal(err)
	}
	cfs, _ := filepath.Glob(filepath.Join(root, "etc/postfix/*.cf"))
	made := map[string]bool{}
	for _, cf := range cfs {
		b, err := os.ReadFile(cf)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, "=")
			if !ok || strings.TrimSpace(k) != "dbpath" || made[strings.TrimSpace(v)] {
				continue
			}
			db := filepath.Join(root, strings.TrimSpace(v))
			made[strings.TrimSpace(v)] = true
			if err := os.MkdirAll(filepath.Dir(db), 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"schema.sql", "seed.sql"} {
				cmd := exec.Command(sqlite3, "-bail", db, ".read "+filepath.Join(set, "sqlite", f))
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("sqlite3 %s: %v\n%s", f, err, out)
				}
			}
		}
	}
	if len(made) == 0 {
		t.Fatalf("%s: no lookup file names a dbpath", set)
	}
	return root
}

// TestShowCorpus runs show --json on every corpus set and checks it against
// the set's ground truth and against the reviewed golden file.
func TestShowCorpus(t *testing.T) {
	sets, err := filepath.Glob("../../testdata/corpus/*")
	if err != nil || len(sets) == 0 {
		t.Fatalf("no corpus sets: %v", err)
	}
	var withSQL []string
	for _, set := range sets {
		if _, err := os.Stat(filepath.Join(set, "schema.sql")); err == nil {
			withSQL = append(withSQL, set)
		}
	}
	for _, set := range sets {
		if _, err := os.Stat(filepath.Join(set, "expected.json")); err != nil {
			continue
		}
		name := filepath.Base(set)
		t.Run(name, func(t *testing.T) {
			args := append([]string{"show", "--json"}, corpusArgs(t, set, withSQL)...)
			var stdout, stderr bytes.Buffer
			if err := run(context.Background(), args, &stdout, &stderr); err != nil {
				t.Fatalf("show: %v\n%s", err, stderr.String())
			}
			var got shown
			if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
				t.Fatalf("show --json printed invalid JSON: %v\n%s", err, stdout.String())
			}
			want := readExpected(t, filepath.Join(set, "expected.json"))
			checkAgainstTruth(t, got, want)
			checkGolden(t, filepath.Join("..", "..", "testdata", "golden", name+".show.json"), stdout.Bytes())
		})
	}
}

func readExpected(t *testing.T, path string) expected {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var e expected
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return e
}

// checkAgainstTruth compares what clients are told with expected.json:
// the host name, the hosted domains, and the endpoints as a set (expected.json
// lists them in listener order; show orders them best first).
func checkAgainstTruth(t *testing.T, got shown, want expected) {
	t.Helper()
	if got.Hostname != want.ClientSettings.Hostname {
		t.Errorf("hostname = %q, want %q", got.Hostname, want.ClientSettings.Hostname)
	}

	var wantEPs, gotEPs []string
	for _, e := range append(want.ClientSettings.Incoming, want.ClientSettings.Outgoing...) {
		wantEPs = append(wantEPs, endpointKey(e.Protocol, e.Port, securityOf(e.TLS)))
	}
	for _, e := range got.Endpoints {
		gotEPs = append(gotEPs, endpointKey(e.Protocol, e.Port, e.Security))
		if e.Host != got.Hostname {
			t.Errorf("endpoint %s:%d host = %q, want the host name %q", e.Protocol, e.Port, e.Host, got.Hostname)
		}
		if e.Source == "" || len(e.Auth) == 0 || e.Username == "" {
			t.Errorf("endpoint %s:%d lacks source, auth or username: %+v", e.Protocol, e.Port, e)
		}
	}
	sort.Strings(wantEPs)
	sort.Strings(gotEPs)
	if !slices.Equal(gotEPs, wantEPs) {
		t.Errorf("endpoints = %v, want %v", gotEPs, wantEPs)
	}
	// Best first: implicit TLS before STARTTLS within each protocol.
	for i := 1; i < len(got.Endpoints); i++ {
		a, b := got.Endpoints[i-1], got.Endpoints[i]
		if a.Protocol == b.Protocol && a.Security == "starttls" && b.Security == "tls" {
			t.Errorf("endpoint %s:%d (starttls) comes before %s:%d (tls)", a.Protocol, a.Port, b.Protocol, b.Port)
		}
	}

	var wantDomains []string
	switch {
	case want.SQL != nil:
		wantDomains = want.SQL.ExpectedDomains
	case want.Domains != nil:
		wantDomains = want.Domains.ExpectedDomains
	}
	var gotDomains []string
	for _, d := range got.Domains {
		gotDomains = append(gotDomains, d.Name)
	}
	if !slices.Equal(gotDomains, wantDomains) && !(len(gotDomains) == 0 && len(wantDomains) == 0) {
		t.Errorf("domains = %v, want %v", gotDomains, wantDomains)
	}
	if !got.DomainsListed {
		t.Errorf("domains_listed = false, want true (warnings: %q)", got.Warnings)
	}
}

func endpointKey(protocol string, port int, security string) string {
	return fmt.Sprintf("%s/%s/%d", protocol, security, port)
}

// securityOf maps expected.json's "tls" values onto show's "security".
func securityOf(tls string) string {
	switch tls {
	case "implicit":
		return "tls"
	case "starttls-required", "starttls-optional":
		return "starttls"
	}
	return tls
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (review, then go test -update):\n%s", path, got)
	}
}

// TestShowText checks the human-readable form against its golden file.
func TestShowText(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"show", "--root", "../../testdata/corpus/handmade-static-domains"}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("show: %v\n%s", err, stderr.String())
	}
	checkGolden(t, filepath.Join("..", "..", "testdata", "golden", "handmade-static-domains.show.txt"), stdout.Bytes())
}

func TestShowErrors(t *testing.T) {
	broken := t.TempDir()
	if err := os.MkdirAll(filepath.Join(broken, "etc", "postfix"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(broken, "etc", "postfix", "main.cf"), []byte("myhostname mail.example.org\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		usage bool
		want  string
	}{
		{"no command", nil, true, "no command"},
		{"unknown command", []string{"frob"}, true, `unknown command "frob"`},
		{"unknown flag", []string{"show", "--frob"}, true, "flag provided but not defined"},
		{"stray argument", []string{"show", "extra"}, true, `unexpected argument "extra"`},
		{"missing root", []string{"show", "--root", filepath.Join(broken, "nope")}, false, "no such file or directory"},
		{"syntax error", []string{"show", "--root", broken}, false, "/etc/postfix/main.cf:1: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, &stdout, &stderr)
			var ue usageError
			if err == nil || errors.As(err, &ue) != tt.usage || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q) = %v (usage error: %v), want an error containing %q (usage error: %v)", tt.args, err, errors.As(err, &ue), tt.want, tt.usage)
			}
		})
	}
}

// TestVersion: "version" and "--version" print the release the build
// was linked with.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), []string{arg}, &stdout, &stderr); err != nil || stdout.String() != "mailautoconf "+version+"\n" {
			t.Errorf("%s: %q, %v (stderr %q), want %q", arg, stdout.String(), err, stderr.String(), "mailautoconf "+version+"\n")
		}
	}
}
