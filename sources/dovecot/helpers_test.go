package dovecot

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// writeRoot creates a host root holding files (host path → contents); a
// value starting with "->" makes a symbolic link to the rest.
func writeRoot(t *testing.T, files map[string]string) hostfs.Root {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if strings.HasSuffix(p, "/") {
			continue // directory only
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// doveconfOutput is what doveconf -a (or -n) prints, read back: the global
// settings and every inet_listener of every service.
type doveconfOutput struct {
	global    map[string]string
	listeners map[string]map[string]string // "service/listener" → settings
	services  map[string]bool
}

// parseDoveconf reads doveconf's output format: "key = value" lines and
// "name [arg] {" ... "}" sections indented by two spaces per level.
func parseDoveconf(text string) doveconfOutput {
	out := doveconfOutput{global: map[string]string{}, listeners: map[string]map[string]string{}, services: map[string]bool{}}
	var stack []string
	unnamed := 0
	for _, line := range strings.Split(text, "\n") {
		s := strings.TrimSpace(line)
		switch {
		case s == "" || strings.HasPrefix(s, "#"):
		case s == "}":
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case strings.HasSuffix(s, "{"):
			head := strings.TrimSpace(strings.TrimSuffix(s, "{"))
			if head == "inet_listener" {
				head = "inet_listener #" + string(rune('0'+unnamed))
				unnamed++
			}
			stack = append(stack, head)
			if len(stack) == 1 && strings.HasPrefix(head, "service ") {
				out.services[strings.TrimPrefix(head, "service ")] = true
			}
		default:
			k, v, _ := strings.Cut(s, " = ")
			k = strings.TrimSuffix(k, " =")
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			switch {
			case len(stack) == 0:
				out.global[k] = v
			case len(stack) == 2 && strings.HasPrefix(stack[0], "service ") && strings.HasPrefix(stack[1], "inet_listener "):
				key := strings.TrimPrefix(stack[0], "service ") + "/" + strings.TrimPrefix(stack[1], "inet_listener ")
				if out.listeners[key] == nil {
					out.listeners[key] = map[string]string{}
				}
				out.listeners[key][k] = v
			}
		}
	}
	return out
}

// compareWithDoveconf checks c against doveconf -a output.
func compareWithDoveconf(t *testing.T, c *Config, a doveconfOutput) {
	t.Helper()
	eff := c.Effective()
	for _, key := range []string{"protocols", "listen", "auth_mechanisms"} {
		got, _ := c.Setting(key)
		if !equalLists(splitList(got), splitList(a.global[key])) {
			t.Errorf("Setting(%q) = %q, doveconf says %q", key, got, a.global[key])
		}
	}
	for _, key := range []string{"ssl", "disable_plaintext_auth", "auth_username_format", "ssl_cert"} {
		if got, _ := c.Setting(key); got != a.global[key] {
			t.Errorf("Setting(%q) = %q, doveconf says %q", key, got, a.global[key])
		}
	}
	if want := strings.TrimPrefix(a.global["ssl_cert"], "<"); eff.CertFile != want {
		t.Errorf("CertFile = %q, doveconf says %q", eff.CertFile, want)
	}
	seen := map[string]bool{}
	for _, l := range c.Listeners() {
		if !a.services[l.Service] {
			continue // e.g. managesieve-login without Pigeonhole installed
		}
		name := l.Name
		if name == "" {
			continue // unnamed listeners are numbered by doveconf; checked by count below
		}
		key := l.Service + "/" + name
		seen[key] = true
		d, ok := a.listeners[key]
		if !ok {
			t.Errorf("listener %s: doveconf has none", key)
			continue
		}
		addr := d["address"]
		if addr == "" {
			addr = a.global["listen"]
		}
		if !equalLists(l.Address, splitList(addr)) {
			t.Errorf("listener %s address = %q, doveconf says %q", key, l.Address, addr)
		}
		if got := itoa(l.Port); got != d["port"] {
			t.Errorf("listener %s port = %s, doveconf says %s", key, got, d["port"])
		}
		if got := yesNo(l.SSL); got != d["ssl"] {
			t.Errorf("listener %s ssl = %s, doveconf says %s", key, got, d["ssl"])
		}
		if got := yesNo(l.HAProxy); got != d["haproxy"] {
			t.Errorf("listener %s haproxy = %s, doveconf says %s", key, got, d["haproxy"])
		}
	}
	for key := range a.listeners {
		svc, name, _ := strings.Cut(key, "/")
		if loginServices[svc] != "" && !strings.HasPrefix(name, "#") && !seen[key] {
			t.Errorf("doveconf has listener %s, we do not", key)
		}
	}
}

func equalLists(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func itoa(n int) string { return strconv.Itoa(n) }
