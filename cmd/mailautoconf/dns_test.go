package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/mailautoconf/mailautoconf/internal/zonetest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

// corpusSets returns every corpus set and those that need the database.
func corpusSets(t *testing.T) (sets, withSQL []string) {
	t.Helper()
	sets, err := filepath.Glob("../../testdata/corpus/*")
	if err != nil {
		t.Fatal(err)
	}
	sets = slices.DeleteFunc(sets, func(s string) bool {
		fi, err := os.Stat(s)
		return err != nil || !fi.IsDir()
	})
	if len(sets) == 0 {
		t.Fatal("no corpus sets")
	}
	for _, set := range sets {
		if _, err := os.Stat(filepath.Join(set, "schema.sql")); err == nil {
			withSQL = append(withSQL, set)
		}
	}
	return sets, withSQL
}

// runDNSCommand runs mailautoconf dns on a corpus set.
func runDNSCommand(t *testing.T, set string, withSQL []string, extra ...string) []byte {
	t.Helper()
	args := append(append([]string{"dns"}, corpusArgs(t, set, withSQL)...), extra...)
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// TestDNSZonesAccepted runs dns on every corpus set and has
// named-checkzone load each domain's records; the zone text must match
// the JSON form and the reviewed golden file.
func TestDNSZonesAccepted(t *testing.T) {
	bin := testtool.Need(t, "named-checkzone")
	sets, withSQL := corpusSets(t)
	for _, set := range sets {
		name := filepath.Base(set)
		t.Run(name, func(t *testing.T) {
			zone := runDNSCommand(t, set, withSQL)
			checkGolden(t, filepath.Join("..", "..", "testdata", "golden", name+".dns.zone"), zone)
			var plan struct {
				Host    string `json:"host"`
				Domains []struct {
					Name    string `json:"name"`
					Records []struct {
						Name   string `json:"name"`
						Type   string `json:"type"`
						Target string `json:"target"`
					} `json:"records"`
				} `json:"domains"`
			}
			if err := json.Unmarshal(runDNSCommand(t, set, withSQL, "--format", "json"), &plan); err != nil {
				t.Fatalf("dns --format json: %v", err)
			}
			blocks := zonetest.Blocks(string(zone))
			if len(blocks) != len(plan.Domains) {
				t.Errorf("zone has %d domain blocks, JSON %d domains", len(blocks), len(plan.Domains))
			}
			for _, d := range plan.Domains {
				block, ok := blocks[d.Name]
				if !ok {
					t.Errorf("zone output lacks a block for %s", d.Name)
					continue
				}
				for _, r := range d.Records {
					if !strings.Contains(block, r.Name) || !strings.Contains(block, " IN "+r.Type) {
						t.Errorf("%s block lacks the JSON record %s %s", d.Name, r.Name, r.Type)
					}
				}
				if out, err := zonetest.Check(t, bin, d.Name, plan.Host, block); err != nil {
					t.Errorf("named-checkzone %s: %v\n%s", d.Name, err, out)
				}
			}
			t.Logf("%d domains checked", len(plan.Domains))
		})
	}

	// The wrapper really checks: an SRV record aimed at the CNAME
	// autoconfig.<d> is refused.
	t.Run("control", func(t *testing.T) {
		block := "autoconfig.example.com. 3600 IN CNAME mail.example.com.\n" +
			"_imaps._tcp.example.com. 3600 IN SRV 0 1 993 autoconfig.example.com.\n"
		if out, err := zonetest.Check(t, bin, "example.com", "mail.example.com", block); err == nil {
			t.Errorf("named-checkzone accepted an SRV record whose target is a CNAME:\n%s", out)
		}
	})
}

func TestDNSNamedDomains(t *testing.T) {
	set := "../../testdata/corpus/handmade-static-domains"
	out := runDNSCommand(t, set, nil, "example.net", "alice@Example.biz")
	blocks := zonetest.Blocks(string(out))
	if len(blocks) != 2 || blocks["example.net"] == "" || blocks["example.biz"] == "" {
		t.Errorf("dns example.net alice@Example.biz: blocks for %v, want example.net and example.biz", keys(blocks))
	}

	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"dns", "--root", set, "example.net", "unhosted.example", "not_a domain"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "not hosted here") || !strings.Contains(err.Error(), "unhosted.example") ||
		!strings.Contains(err.Error(), `"not_a domain" is not a domain name`) {
		t.Errorf("dns with an unhosted domain: error %v, want it to name unhosted.example and the bad name", err)
	}
	if stdout.Len() > 0 {
		t.Errorf("dns with an unhosted domain printed records:\n%s", stdout.String())
	}

	err = run(context.Background(), []string{"dns", "--root", set, "--format", "yaml"}, &stdout, &stderr)
	var ue usageError
	if !errors.As(err, &ue) {
		t.Errorf("dns --format yaml: error %v, want a usage error", err)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestDNSWarnsAboutDomainTables: dns covers the domains the snapshot
// lists, and says on stderr which domain table kept others out, naming the
// table type and main.cf's line; check reports the same as a warning.
func TestDNSWarnsAboutDomainTables(t *testing.T) {
	root := t.TempDir()
	staticHost(t, root)
	mainCF := filepath.Join(root, "etc/postfix/main.cf")
	b, err := os.ReadFile(mainCF)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, mainCF, strings.Replace(string(b), "example.com, example.net", "example.com, socketmap:unix:/run/x.sock:domains", 1))
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"dns", "--root", root}, &stdout, &stderr); err != nil {
		t.Fatalf("dns: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "dns: warning: virtual_mailbox_domains: socketmap:unix:/run/x.sock:domains (/etc/postfix/main.cf:") ||
		!strings.Contains(stderr.String(), "supported: ") {
		t.Errorf("dns stderr = %q, want a warning naming the socketmap table, main.cf's line and the supported types", stderr.String())
	}
	if !strings.Contains(stdout.String(), "example.com") {
		t.Errorf("dns stdout lacks example.com:\n%s", stdout.String())
	}
	stdout.Reset()
	stderr.Reset()
	run(context.Background(), []string{"check", "--root", root, "--resolver", "127.0.0.1:1", "--timeout", "1s", "example.com"}, &stdout, &stderr)
	if !strings.Contains(stdout.String(), "warn  domains  hosted domains: virtual_mailbox_domains: socketmap:") {
		t.Errorf("check output lacks the domain table warning:\n%s", stdout.String())
	}
}
