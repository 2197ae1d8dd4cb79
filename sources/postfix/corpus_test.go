package postfix

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

const corpusDir = "../../testdata/corpus"

// corpusSet is a corpus set holding a Postfix configuration.
type corpusSet struct {
	name string // set name
	dir  string // set directory (the root)
	conf string // host path of the configuration directory
}

// corpusSets returns every corpus set with an etc/postfix or
// opt/postfix/conf directory.
func corpusSets(t *testing.T) []corpusSet {
	t.Helper()
	entries, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Fatalf("corpus: %v", err)
	}
	var sets []corpusSet
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(corpusDir, e.Name())
		for _, conf := range []string{"/etc/postfix", "/opt/postfix/conf"} {
			if _, err := os.Stat(filepath.Join(dir, conf, "main.cf")); err == nil {
				sets = append(sets, corpusSet{e.Name(), dir, conf})
				break
			}
		}
	}
	if len(sets) == 0 {
		t.Fatalf("no corpus set with a Postfix configuration under %s", corpusDir)
	}
	return sets
}

type expectedPostfix struct {
	Postfix map[string]json.RawMessage `json:"postfix"`
}

type expectedListener struct {
	Service          string            `json:"service"`
	Host             *string           `json:"host"`
	Port             int               `json:"port"`
	Command          string            `json:"command"`
	Overrides        map[string]string `json:"overrides"`
	TLS              string            `json:"tls"`
	SASLAuthEnable   bool              `json:"sasl_auth_enable"`
	TLSAuthOnly      bool              `json:"tls_auth_only"`
	UpstreamProxy    *string           `json:"upstream_proxy_protocol"`
	LoopbackOnly     bool              `json:"loopback_only"`
	ClientSubmission bool              `json:"client_submission"`
}

type expectedSource struct {
	Type           string            `json:"type"`
	Value          string            `json:"value"`
	Proxy          bool              `json:"proxy"`
	Path           string            `json:"path"`
	SourceFileKeys []string          `json:"source_file_keys"`
	Parameters     map[string]string `json:"parameters"`
	HostsList      []string          `json:"hosts_list"`
}

func TestCorpus(t *testing.T) {
	for _, set := range corpusSets(t) {
		t.Run(set.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(set.dir, "expected.json"))
			if errors.Is(err, fs.ErrNotExist) {
				// A set without ground truth of this kind (mailinabox-sqlite
				// holds tables, checked against postmap in sources/sqltable).
				t.Skip("no expected.json")
			}
			if err != nil {
				t.Fatal(err)
			}
			var exp expectedPostfix
			if err := json.Unmarshal(data, &exp); err != nil {
				t.Fatal(err)
			}
			if exp.Postfix == nil {
				t.Skip("expected.json has no postfix object")
			}
			root, err := hostfs.New(set.dir)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Load(root, set.conf)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			for key, raw := range exp.Postfix {
				switch key {
				case "inet_listeners":
					var want []expectedListener
					if err := json.Unmarshal(raw, &want); err != nil {
						t.Fatal(err)
					}
					checkListeners(t, c, want)
				case "virtual_mailbox_domain_sources":
					var want []expectedSource
					if err := json.Unmarshal(raw, &want); err != nil {
						t.Fatal(err)
					}
					checkSources(t, c, want)
				default:
					var want *string
					if err := json.Unmarshal(raw, &want); err != nil {
						t.Logf("expected.json postfix.%s is not a string; not compared", key)
						continue
					}
					w := ""
					if want != nil {
						w = *want
					}
					if got, _ := c.Param(key); got != w {
						t.Errorf("Param(%q) = %q, want %q", key, got, w)
					}
				}
			}
		})
	}
}

func checkListeners(t *testing.T, c *Config, want []expectedListener) {
	t.Helper()
	got := c.Services()
	if len(got) != len(want) {
		var names []string
		for _, s := range got {
			names = append(names, s.Name)
		}
		t.Errorf("Services() = %q, want %d services", names, len(want))
		return
	}
	for i, w := range want {
		s := got[i]
		st := c.Settings(s)
		ov := map[string]string{}
		for _, o := range s.Overrides {
			ov[o.Name] = collapseSpace(o.Value)
		}
		g := expectedListener{
			Service: s.Name, Port: s.Port, Command: s.Command, Overrides: ov,
			TLS: st.TLS.String(), SASLAuthEnable: st.SASL, TLSAuthOnly: st.TLSAuthOnly,
			LoopbackOnly: st.LoopbackOnly, ClientSubmission: st.ClientSubmission,
		}
		if s.Host != "" {
			g.Host = &s.Host
		}
		if st.UpstreamProxy != "" {
			g.UpstreamProxy = &st.UpstreamProxy
		}
		if w.Overrides == nil {
			w.Overrides = map[string]string{}
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("service %s (%s): got\n%s\nwant\n%s\n(reason %q)", s.Name, s.Pos, dump(g), dump(w), st.Reason)
		}
	}
}

func checkSources(t *testing.T, c *Config, want []expectedSource) {
	t.Helper()
	got, err := c.Tables("virtual_mailbox_domains")
	if err != nil {
		t.Errorf("Tables(virtual_mailbox_domains): %v", err)
	}
	if len(got) != len(want) {
		t.Errorf("Tables(virtual_mailbox_domains) = %+v, want %d sources", got, len(want))
		return
	}
	for i, w := range want {
		tb := got[i]
		if w.Type == "literal" {
			if tb.Type != "" || tb.Name != w.Value {
				t.Errorf("source %d = %+v, want literal %q", i, tb, w.Value)
			}
			continue
		}
		if tb.Type != w.Type || tb.Name != w.Path || tb.Proxy != w.Proxy {
			t.Errorf("source %d = %+v, want %s:%s proxy %v", i, tb, w.Type, w.Path, w.Proxy)
			continue
		}
		if w.SourceFileKeys != nil {
			keys, err := c.TableKeys(tb)
			if err != nil {
				t.Errorf("TableKeys(%s): %v", tb.Raw, err)
			}
			var names []string
			for _, k := range keys {
				names = append(names, k.Key)
			}
			slices.Sort(names)
			wk := slices.Clone(w.SourceFileKeys)
			slices.Sort(wk)
			if !slices.Equal(names, wk) {
				t.Errorf("TableKeys(%s) = %q, want %q", tb.Raw, names, wk)
			}
		}
		if w.Parameters != nil && slices.Contains(SQLTableTypes, tb.Type) {
			m, err := LoadSQLTable(c.Root(), tb.Type, tb.Name)
			if err != nil {
				t.Errorf("LoadSQLTable(%s): %v", tb.Name, err)
				continue
			}
			if !reflect.DeepEqual(m.Params, w.Parameters) {
				t.Errorf("LoadSQLTable(%s).Params = %q, want %q", tb.Name, m.Params, w.Parameters)
			}
			if w.HostsList != nil && !slices.Equal(m.Hosts, w.HostsList) {
				t.Errorf("LoadSQLTable(%s).Hosts = %q, want %q", tb.Name, m.Hosts, w.HostsList)
			}
		}
	}
}

func dump(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}
