package postfix

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// lookTool finds a tool for an integration test: a missing tool skips the
// test on a developer machine and fails it in CI.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	return testtool.Need(t, name)
}

// postconfOutput is what the real postconf says about one set.
type postconfOutput struct {
	x   map[string]string // postconf -x: every parameter, expanded
	p   map[string]string // postconf -P: "service/type/name" -> raw -o value
	px  map[string]string // postconf -Px: the same, expanded in the service's context
	m   []string          // postconf -M: "name type command" per service
	how string            // how postconf was run, for messages
}

const postconfSep = "@@@postconf@@@"

// runPostconf runs postconf on the set at dir whose configuration directory
// is the host path conf. With unshare -m (as root) the set's directory is
// bind-mounted over conf in a private mount namespace, so postconf reads it
// exactly as a server would; elsewhere "postconf -c" reads it in place and
// the directory's real path is replaced by conf in the output.
func runPostconf(t *testing.T, postconf, dir, conf string) postconfOutput {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	setConf := filepath.Join(abs, conf)
	queries := fmt.Sprintf("%[1]s -c %[2]s -x; echo %[3]s; %[1]s -c %[2]s -P; echo %[3]s; %[1]s -c %[2]s -Px; echo %[3]s; %[1]s -c %[2]s -M",
		postconf, shellQuote(conf), postconfSep)
	var script strings.Builder
	script.WriteString("set -e\n")
	if strings.HasPrefix(conf, "/etc/") {
		fmt.Fprintf(&script, "mount --bind %s %s\n", shellQuote(setConf), shellQuote(conf))
	} else {
		// Hide the host's /opt (or the like) behind a tmpfs, inside the
		// private namespace only, to create the mount point.
		top := "/" + strings.Split(strings.TrimPrefix(conf, "/"), "/")[0]
		fmt.Fprintf(&script, "mount -t tmpfs tmpfs %s\nmkdir -p %s\nmount --bind %s %s\n",
			shellQuote(top), shellQuote(conf), shellQuote(setConf), shellQuote(conf))
	}
	if _, err := os.Stat(filepath.Join(abs, "etc/services")); err == nil {
		fmt.Fprintf(&script, "mount --bind %s /etc/services\n", shellQuote(filepath.Join(abs, "etc/services")))
	}
	script.WriteString("set +e\n" + queries + "\n")

	var out, stderr bytes.Buffer
	how := "unshare -m"
	cmd := exec.Command("unshare", "-m", "sh", "-c", script.String())
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil || out.Len() == 0 {
		t.Logf("unshare -m failed (%v: %s); running postconf -c on the set in place", err, strings.TrimSpace(stderr.String()))
		how = "postconf -c " + setConf
		out.Reset()
		stderr.Reset()
		q := strings.ReplaceAll(queries, "-c "+shellQuote(conf), "-c "+shellQuote(setConf))
		cmd = exec.Command("sh", "-c", q)
		cmd.Stdout, cmd.Stderr = &out, &stderr
		_ = cmd.Run()
	}
	text := out.String()
	if how != "unshare -m" {
		text = strings.ReplaceAll(text, setConf, conf)
	}
	parts := strings.Split(text, postconfSep+"\n")
	if len(parts) != 4 {
		t.Fatalf("postconf output has %d parts, want 4; stderr:\n%s", len(parts), stderr.String())
	}
	res := postconfOutput{x: parseNameValues(parts[0]), p: parseNameValues(parts[1]), px: parseNameValues(parts[2]), how: how}
	for _, l := range strings.Split(parts[3], "\n") {
		f := strings.Fields(l)
		if len(f) >= 8 {
			res.m = append(res.m, f[0]+" "+f[1]+" "+f[7])
		}
	}
	if len(res.x) == 0 {
		t.Fatalf("postconf -x printed nothing; stderr:\n%s", stderr.String())
	}
	return res
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// parseNameValues reads "name = value" lines as postconf prints them.
func parseNameValues(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		name, value, ok := strings.Cut(l, " =")
		if !ok || strings.ContainsAny(name, " \t") {
			continue
		}
		m[name] = strings.TrimPrefix(value, " ")
	}
	return m
}

// keyParams are compared with postconf even when its version differs from
// the one builtinDefaults was made from.
var keyParams = []string{
	"config_directory", "myhostname", "mydomain", "myorigin", "mydestination", "relay_domains",
	"inet_interfaces", "inet_protocols", "compatibility_level",
	"virtual_mailbox_domains", "virtual_mailbox_maps", "virtual_alias_domains", "virtual_alias_maps", "virtual_maps",
	"smtpd_tls_security_level", "smtpd_use_tls", "smtpd_enforce_tls", "smtpd_tls_wrappermode", "smtpd_tls_auth_only",
	"smtpd_tls_cert_file", "smtpd_tls_key_file", "smtpd_tls_eccert_file", "smtpd_tls_eckey_file", "smtpd_tls_chain_files",
	"smtpd_tls_CAfile", "tls_server_sni_maps", "smtpd_sasl_auth_enable", "smtpd_sasl_type", "smtpd_sasl_path",
	"smtpd_upstream_proxy_protocol", "postscreen_upstream_proxy_protocol", "postscreen_tls_security_level",
	"data_directory", "queue_directory", "daemon_directory", "mail_name",
}

// machineParams depend on the running process or machine, not on main.cf.
var machineParams = map[string]bool{"process_id": true, "process_name": true, "mynetworks": true, "debugger_command": true}

// postconfSets lists the corpus sets and this package's own fixtures.
func postconfSets(t *testing.T) []corpusSet {
	sets := corpusSets(t)
	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		for _, conf := range []string{"/etc/postfix", "/opt/postfix/conf"} {
			dir := filepath.Join("testdata", e.Name())
			if _, err := os.Stat(filepath.Join(dir, conf, "main.cf")); err == nil {
				sets = append(sets, corpusSet{"testdata/" + e.Name(), dir, conf})
			}
		}
	}
	return sets
}

func TestPostconfDifferential(t *testing.T) {
	postconf := lookTool(t, "postconf")
	for _, set := range postconfSets(t) {
		t.Run(set.name, func(t *testing.T) {
			t.Parallel()
			want := runPostconf(t, postconf, set.dir, set.conf)
			root, err := hostfs.New(set.dir)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Load(root, set.conf)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			comparePostconf(t, c, want)
		})
	}
}

func comparePostconf(t *testing.T, c *Config, want postconfOutput) {
	t.Helper()
	// Parameters: all of them when the versions agree, else the key ones
	// and those main.cf sets.
	names := keyParams
	if want.x["mail_version"] == builtinDefaults["mail_version"] {
		names = nil
		for n := range want.x {
			names = append(names, n)
		}
	} else {
		t.Logf("postconf is version %s, defaults are from %s: comparing key parameters only",
			want.x["mail_version"], builtinDefaults["mail_version"])
		for _, s := range c.Main().Settings {
			names = append(names, s.Name)
		}
	}
	// mynetworks's default comes from the machine's interfaces, which
	// Config does not read: skip what postconf derived from it.
	_, ownNetworks := c.Main().Lookup("mynetworks")
	compared := 0
	for _, n := range names {
		w, ok := want.x[n]
		if !ok || machineParams[n] || !ownNetworks && want.x["mynetworks"] != "" && strings.Contains(w, want.x["mynetworks"]) {
			continue
		}
		compared++
		if got, _ := c.Param(n); got != w {
			t.Errorf("Param(%q) = %q, postconf -x (%s) says %q", n, got, want.how, w)
		}
	}
	if compared < len(keyParams)/2 {
		t.Errorf("only %d parameters compared", compared)
	}
	t.Logf("%d parameters compared with postconf -x (%s)", compared, want.how)

	// master.cf: services and -o overrides, raw and expanded.
	var got []string
	for _, s := range c.AllServices() {
		got = append(got, s.Name+" "+s.Type+" "+s.Command)
	}
	if strings.Join(got, "\n") != strings.Join(want.m, "\n") {
		t.Errorf("services =\n%s\npostconf -M says\n%s", strings.Join(got, "\n"), strings.Join(want.m, "\n"))
	}
	seen := map[string]bool{}
	for _, s := range c.AllServices() {
		for _, o := range s.Overrides {
			key := s.Name + "/" + s.Type + "/" + o.Name
			if seen[key] {
				continue
			}
			seen[key] = true
			last, _ := s.Override(o.Name)
			if w, ok := want.p[key]; !ok || collapseSpace(last.Value) != w {
				t.Errorf("-o %s = %q, postconf -P says %q (present %v)", key, last.Value, w, ok)
			}
			if w := want.px[key]; true {
				if got, _ := c.ServiceParam(s, o.Name); got != w {
					t.Errorf("ServiceParam(%s, %s) = %q, postconf -Px says %q", s.Name, o.Name, got, w)
				}
			}
		}
	}
	for key := range want.p {
		if !seen[key] {
			t.Errorf("postconf -P has %s, we have no such override", key)
		}
	}
}
