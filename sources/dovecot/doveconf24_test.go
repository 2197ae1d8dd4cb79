package dovecot

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

// keys24 are the global settings compared with Dovecot 2.4's doveconf.
var keys24 = []string{"protocols", "listen", "ssl", "auth_allow_cleartext", "auth_mechanisms", "auth_username_format"}

// doveconf24 returns the command that runs Dovecot 2.4's doveconf: the
// wrapper scripts/dovecot24.sh prints, named by MAILAUTOCONF_DOVECONF24
// (.ci/run sets it).
func doveconf24(t *testing.T) string {
	t.Helper()
	p := os.Getenv("MAILAUTOCONF_DOVECONF24")
	if p == "" {
		testtool.Missing(t, "MAILAUTOCONF_DOVECONF24 not set; run: export MAILAUTOCONF_DOVECONF24=$(bash scripts/dovecot24.sh)")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("MAILAUTOCONF_DOVECONF24: %v", err)
	}
	return p
}

// runDoveconf24On runs the 2.4 doveconf once per query (name → arguments
// after -c /etc/dovecot/dovecot.conf) on a set mounted as the host's
// configuration (mountSetScript). It fails the test when doveconf reports an
// error: it then prints only the settings written, not the defaults.
func runDoveconf24On(t *testing.T, doveconf, set string, queries map[string][]string) map[string]string {
	t.Helper()
	unshare := needTool(t, "unshare")
	set, err := filepath.Abs(set)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var sh strings.Builder
	sh.WriteString(mountSetScript(t, set))
	names := make([]string, 0, len(queries))
	for name := range queries {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, name := range names {
		fmt.Fprintf(&sh, "%s -c /etc/dovecot/dovecot.conf", shellQuote(doveconf))
		for _, a := range queries[name] {
			sh.WriteString(" " + shellQuote(a))
		}
		fmt.Fprintf(&sh, " >%s/%d.out 2>%s/%d.err || echo $? >%s/%d.rc\n", out, i, out, i, out, i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "-m", "--propagation", "private", "sh", "-c", sh.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if strings.Contains(stderr.String(), "Operation not permitted") || strings.Contains(stderr.String(), "unknown filesystem type") {
			testtool.Missing(t, "private mount namespace: %v: %s", err, stderr.String())
		}
		t.Fatalf("doveconf 2.4 in namespace: %v\n%s", err, stderr.String())
	}
	res := map[string]string{}
	for i, name := range names {
		o, _ := os.ReadFile(filepath.Join(out, fmt.Sprintf("%d.out", i)))
		e, _ := os.ReadFile(filepath.Join(out, fmt.Sprintf("%d.err", i)))
		rc, _ := os.ReadFile(filepath.Join(out, fmt.Sprintf("%d.rc", i)))
		if len(rc) > 0 || bytes.Contains(e, []byte("Error:")) || bytes.Contains(e, []byte("Fatal:")) {
			t.Fatalf("doveconf %s (exit %s): %s", strings.Join(queries[name], " "), strings.TrimSpace(string(rc)), e)
		}
		res[name] = string(o)
	}
	return res
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// conf24 is Dovecot 2.4 doveconf output read back.
type conf24 struct {
	global     map[string]string            // boolean lists joined by spaces, named filters as prefix_key
	services   map[string]*service24        // "service NAME { }" blocks
	localNames map[string]map[string]string // "local_name NAME { }" blocks, flattened as global is
}

type service24 struct {
	vals      map[string]string
	listeners map[string]map[string]string // inet_listener name → its settings
}

// parseDoveconf24 reads doveconf 2.4's output: "key = value" lines and
// "name [arg] {" ... "}" sections, boolean lists ("protocols {" "imap =
// yes" "}") and named filters ("ssl_server {" "cert_file = ..." "}").
func parseDoveconf24(text string) conf24 {
	c := conf24{global: map[string]string{}, services: map[string]*service24{}, localNames: map[string]map[string]string{}}
	type sect struct{ kind, arg string }
	var stack []sect
	for _, line := range strings.Split(text, "\n") {
		s := strings.TrimSpace(line)
		switch {
		case s == "" || strings.HasPrefix(s, "#"):
		case s == "}":
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case strings.HasSuffix(s, "{"):
			kind, arg, _ := strings.Cut(strings.TrimSpace(strings.TrimSuffix(s, "{")), " ")
			arg = strings.Trim(strings.TrimSpace(arg), `"`)
			stack = append(stack, sect{kind, arg})
			switch {
			case len(stack) == 1 && kind == "service":
				c.services[arg] = &service24{vals: map[string]string{}, listeners: map[string]map[string]string{}}
			case len(stack) == 1 && kind == "local_name":
				c.localNames[arg] = map[string]string{}
			case len(stack) == 2 && stack[0].kind == "service" && kind == "inet_listener":
				c.services[stack[0].arg].listeners[arg] = map[string]string{}
			}
		default:
			k, v, _ := strings.Cut(s, " = ")
			k = strings.TrimSuffix(k, " =")
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			into := func(m map[string]string, sub []sect) {
				switch {
				case len(sub) == 0:
					m[k] = v
				case len(sub) == 1 && sub[0].arg == "" && boolLists[sub[0].kind]:
					if on, err := parseBool(v); err == nil && on {
						m[sub[0].kind] = strings.TrimSpace(m[sub[0].kind] + " " + k)
					} else if _, ok := m[sub[0].kind]; !ok {
						m[sub[0].kind] = ""
					}
				case len(sub) == 1 && sub[0].arg == "" && namedFilters[sub[0].kind] != "":
					m[namedFilters[sub[0].kind]+strings.TrimPrefix(k, namedFilters[sub[0].kind])] = v
				}
			}
			switch {
			case len(stack) >= 1 && stack[0].kind == "service":
				svc := c.services[stack[0].arg]
				if len(stack) == 1 {
					svc.vals[k] = v
				} else if len(stack) == 2 && stack[1].kind == "inet_listener" {
					svc.listeners[stack[1].arg][k] = v
				}
			case len(stack) >= 1 && stack[0].kind == "local_name":
				into(c.localNames[stack[0].arg], stack[1:])
			default:
				into(c.global, stack)
			}
		}
	}
	return c
}

// TestDoveconf24Differential runs Debian 13's doveconf (Dovecot 2.4, fetched
// by scripts/dovecot24.sh) on every 2.4 fixture and compares its answers
// with ours: the global settings, per protocol, the ssl_server certificate,
// the local_name (SNI) certificates and every inet_listener of the login
// services.
func TestDoveconf24Differential(t *testing.T) {
	doveconf := doveconf24(t)
	testtool.NeedRoot(t, "the doveconf 2.4 differential test uses mount namespaces")
	sets, _ := filepath.Glob(filepath.Join("testdata", "dovecot24-*"))
	if len(sets) == 0 {
		t.Fatal("no testdata/dovecot24-* fixtures")
	}
	protocols := []string{"imap", "pop3", "submission", "sieve"}
	for _, dir := range sets {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			c := loadSet(t, dir)
			eff := c.Effective()
			queries := map[string][]string{
				"global":     keys24,
				"ssl_server": {"ssl_server"},
				"service":    {"service"},
				"n":          {"-n"},
			}
			for _, p := range protocols {
				queries["protocol "+p] = append([]string{"-f", "protocol=" + p}, keys24...)
			}
			for _, nc := range eff.LocalNameCerts {
				for _, n := range nc.Names {
					queries["local_name "+n] = []string{"-f", "local_name=" + n, "ssl_server"}
				}
			}
			out := runDoveconf24On(t, doveconf, dir, queries)
			global := parseDoveconf24(out["global"]).global
			if len(global) != len(keys24) {
				t.Fatalf("doveconf %s printed %d of them; is its output format unknown?\n%s", strings.Join(keys24, " "), len(global), out["global"])
			}
			compareGlobal24(t, c, eff, global)
			for _, p := range protocols {
				for k, want := range parseDoveconf24(out["protocol "+p]).global {
					got, _ := c.ProtocolSetting(p, k)
					if strings.Join(splitList(got), " ") != strings.Join(splitList(want), " ") {
						t.Errorf("ProtocolSetting(%q, %q) = %q, doveconf -f protocol=%s says %q", p, k, got, p, want)
					}
				}
			}
			ssl := parseDoveconf24(out["ssl_server"]).global
			if eff.CertFile != ssl["ssl_server_cert_file"] || eff.KeyFile != ssl["ssl_server_key_file"] {
				t.Errorf("CertFile, KeyFile = %q, %q, doveconf says %q, %q", eff.CertFile, eff.KeyFile, ssl["ssl_server_cert_file"], ssl["ssl_server_key_file"])
			}
			if got, _ := c.Setting("ssl_server_cert_file"); got != ssl["ssl_server_cert_file"] {
				t.Errorf("Setting(ssl_server_cert_file) = %q, doveconf says %q", got, ssl["ssl_server_cert_file"])
			}
			compareLocalNames24(t, eff, parseDoveconf24(out["n"]), out)
			services := parseDoveconf24(out["service"]).services
			compareListeners24(t, c, global["listen"], services)
			t.Logf("doveconf 2.4: %d services, %d of our listeners, %d local_name certificates compared", len(services), len(c.Listeners()), len(eff.LocalNameCerts))
		})
	}
}

func compareGlobal24(t *testing.T, c *Config, eff Effective, global map[string]string) {
	t.Helper()
	for _, k := range keys24 {
		got, _ := c.Setting(k)
		if strings.Join(splitList(got), " ") != strings.Join(splitList(global[k]), " ") {
			t.Errorf("Setting(%q) = %q, doveconf says %q", k, got, global[k])
		}
	}
	if !equalLists(eff.Protocols, splitList(global["protocols"])) {
		t.Errorf("Effective().Protocols = %q, doveconf says %q", eff.Protocols, global["protocols"])
	}
	if !equalLists(eff.Listen, splitList(global["listen"])) {
		t.Errorf("Effective().Listen = %q, doveconf says %q", eff.Listen, global["listen"])
	}
	if !equalLists(eff.AuthMechanisms, splitList(global["auth_mechanisms"])) {
		t.Errorf("Effective().AuthMechanisms = %q, doveconf says %q", eff.AuthMechanisms, global["auth_mechanisms"])
	}
	if eff.SSL != global["ssl"] {
		t.Errorf("Effective().SSL = %q, doveconf says %q", eff.SSL, global["ssl"])
	}
	if got := yesNo(eff.PlaintextAuthAllowed); got != global["auth_allow_cleartext"] {
		t.Errorf("Effective().PlaintextAuthAllowed = %s, doveconf says auth_allow_cleartext = %s", got, global["auth_allow_cleartext"])
	}
	if eff.AuthUsernameFormat != global["auth_username_format"] {
		t.Errorf("Effective().AuthUsernameFormat = %q, doveconf says %q", eff.AuthUsernameFormat, global["auth_username_format"])
	}
}

// compareLocalNames24 checks LocalNameCerts against the local_name blocks of
// doveconf -n and the ssl_server doveconf -f local_name=NAME prints.
func compareLocalNames24(t *testing.T, eff Effective, n conf24, out map[string]string) {
	t.Helper()
	ours := map[string]bool{}
	for _, nc := range eff.LocalNameCerts {
		for _, name := range nc.Names {
			ours[name] = true
			ssl := parseDoveconf24(out["local_name "+name]).global
			if nc.CertFile != ssl["ssl_server_cert_file"] || nc.KeyFile != ssl["ssl_server_key_file"] {
				t.Errorf("local_name %s: CertFile, KeyFile = %q, %q, doveconf says %q, %q", name, nc.CertFile, nc.KeyFile, ssl["ssl_server_cert_file"], ssl["ssl_server_key_file"])
			}
		}
	}
	for arg, vals := range n.localNames {
		if vals["ssl_server_cert_file"] == "" && vals["ssl_server_key_file"] == "" {
			continue
		}
		for _, name := range splitList(arg) {
			if !ours[name] {
				t.Errorf("doveconf -n has a certificate for local_name %s, LocalNameCerts has none", name)
			}
		}
	}
}

// compareListeners24 checks Listeners against doveconf's service blocks:
// what a listener does not print is its default (port 0, ssl and haproxy no,
// listen from the service, else the global listen).
func compareListeners24(t *testing.T, c *Config, listen string, services map[string]*service24) {
	t.Helper()
	ours := c.Listeners()
	seen := map[string]bool{}
	for _, l := range ours {
		key := l.Service + "/" + l.Name
		seen[key] = true
		svc := services[l.Service]
		if svc == nil {
			t.Errorf("listener %s: doveconf has no service %s", key, l.Service)
			continue
		}
		d, ok := svc.listeners[l.Name]
		if !ok {
			t.Errorf("listener %s: doveconf has none", key)
			continue
		}
		addr := listen
		if v, ok := svc.vals["listen"]; ok {
			addr = v
		}
		if v, ok := d["listen"]; ok {
			addr = v
		}
		if !equalLists(l.Address, splitList(addr)) {
			t.Errorf("listener %s address = %q, doveconf says %q", key, l.Address, addr)
		}
		if got, want := itoa(l.Port), orDefault(d["port"], "0"); got != want {
			t.Errorf("listener %s port = %s, doveconf says %s", key, got, want)
		}
		if got, want := yesNo(l.SSL), orDefault(d["ssl"], "no"); got != want {
			t.Errorf("listener %s ssl = %s, doveconf says %s", key, got, want)
		}
		if got, want := yesNo(l.HAProxy), orDefault(d["haproxy"], "no"); got != want {
			t.Errorf("listener %s haproxy = %s, doveconf says %s", key, got, want)
		}
	}
	var missing []string
	for name, svc := range services {
		if loginServices[name] == "" {
			continue
		}
		for lname := range svc.listeners {
			if !seen[name+"/"+lname] {
				missing = append(missing, name+"/"+lname)
			}
		}
	}
	slices.Sort(missing)
	for _, key := range missing {
		t.Errorf("doveconf has listener %s, we do not", key)
	}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
