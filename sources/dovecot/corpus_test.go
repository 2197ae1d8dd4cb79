package dovecot

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

const corpusDir = "../../testdata/corpus"

// corpusSets returns the corpus sets that hold a Dovecot configuration.
func corpusSets(t *testing.T) []string {
	t.Helper()
	sets, err := filepath.Glob(filepath.Join(corpusDir, "*", "etc", "dovecot", "dovecot.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(sets) == 0 {
		t.Fatalf("no corpus sets under %s", corpusDir)
	}
	for i, s := range sets {
		sets[i] = filepath.Dir(filepath.Dir(filepath.Dir(s)))
	}
	return sets
}

func loadSet(t *testing.T, dir string) *Config {
	t.Helper()
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(root, "/etc/dovecot/dovecot.conf")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

type expectedDovecot struct {
	Protocols            []string `json:"protocols"`
	Listen               string   `json:"listen"`
	SSL                  string   `json:"ssl"`
	DisablePlaintextAuth bool     `json:"disable_plaintext_auth"`
	AuthMechanisms       []string `json:"auth_mechanisms"`
	SSLCert              string   `json:"ssl_cert"`
	Listeners            []struct {
		Service         string `json:"service"`
		Protocol        string `json:"protocol"`
		Name            string `json:"name"`
		Port            int    `json:"port"`
		SSL             bool   `json:"ssl"`
		Address         string `json:"address"`
		HAProxy         bool   `json:"haproxy"`
		ProtocolEnabled bool   `json:"protocol_enabled"`
		LoopbackOnly    bool   `json:"loopback_only"`
		TLS             string `json:"tls"`
	} `json:"listeners"`
	Filters []json.RawMessage `json:"filters_overriding_auth_or_ssl"`
}

// TestCorpusExpected compares every corpus set with its expected.json.
func TestCorpusExpected(t *testing.T) {
	for _, dir := range corpusSets(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Dovecot expectedDovecot `json:"dovecot"`
			}
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			want := doc.Dovecot
			c := loadSet(t, dir)
			eff := c.Effective()
			if !equalLists(eff.Protocols, want.Protocols) {
				t.Errorf("Protocols = %q, want %q", eff.Protocols, want.Protocols)
			}
			if !equalLists(eff.Listen, splitList(want.Listen)) {
				t.Errorf("Listen = %q, want %q", eff.Listen, want.Listen)
			}
			if eff.SSL != want.SSL {
				t.Errorf("SSL = %q, want %q", eff.SSL, want.SSL)
			}
			if eff.PlaintextAuthAllowed == want.DisablePlaintextAuth {
				t.Errorf("PlaintextAuthAllowed = %v, want disable_plaintext_auth %v", eff.PlaintextAuthAllowed, want.DisablePlaintextAuth)
			}
			if !equalLists(eff.AuthMechanisms, want.AuthMechanisms) {
				t.Errorf("AuthMechanisms = %q, want %q", eff.AuthMechanisms, want.AuthMechanisms)
			}
			if got, _ := c.Setting("ssl_cert"); got != want.SSLCert {
				t.Errorf(`Setting("ssl_cert") = %q, want %q`, got, want.SSLCert)
			}
			if eff.CertFile != strings.TrimPrefix(want.SSLCert, "<") {
				t.Errorf("CertFile = %q, want %q", eff.CertFile, want.SSLCert)
			}
			if len(eff.Filters) != len(want.Filters) {
				t.Errorf("Filters = %+v, want %d", eff.Filters, len(want.Filters))
			}
			got := c.Listeners()
			if len(got) != len(want.Listeners) {
				t.Fatalf("Listeners() has %d, want %d: %+v", len(got), len(want.Listeners), got)
			}
			for i, w := range want.Listeners {
				g := got[i]
				if g.Service != w.Service || g.Protocol != w.Protocol || g.Name != w.Name || g.Port != w.Port ||
					g.SSL != w.SSL || !equalLists(g.Address, splitList(w.Address)) || g.HAProxy != w.HAProxy ||
					g.ProtocolEnabled != w.ProtocolEnabled || g.LoopbackOnly != w.LoopbackOnly || g.TLS != w.TLS {
					t.Errorf("Listeners()[%d] = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

// TestCorpusTruth compares every corpus set with the recorded output of the
// real doveconf -a and doveconf -f protocol=... (truth/).
func TestCorpusTruth(t *testing.T) {
	for _, dir := range corpusSets(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, "truth", "doveconf-a.txt"))
			if err != nil {
				t.Skip(err)
			}
			c := loadSet(t, dir)
			compareWithDoveconf(t, c, parseDoveconf(string(raw)))
			for _, proto := range []string{"imap", "pop3", "submission"} {
				raw, err := os.ReadFile(filepath.Join(dir, "truth", "doveconf-keys-"+proto+".txt"))
				if err != nil {
					continue
				}
				compareProtocolKeys(t, c, proto, parseDoveconf(string(raw)).global)
			}
		})
	}
}

// compareProtocolKeys checks ProtocolSetting against doveconf -f
// protocol=... key output.
func compareProtocolKeys(t *testing.T, c *Config, proto string, keys map[string]string) {
	t.Helper()
	for _, k := range []string{"protocols", "listen", "ssl", "disable_plaintext_auth", "auth_mechanisms", "ssl_cert", "ssl_key"} {
		want, ok := keys[k]
		if !ok {
			continue
		}
		got, _ := c.ProtocolSetting(proto, k)
		if strings.Join(splitList(got), " ") != strings.Join(splitList(want), " ") {
			t.Errorf("ProtocolSetting(%q, %q) = %q, doveconf says %q", proto, k, got, want)
		}
	}
}
