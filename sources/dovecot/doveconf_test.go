package dovecot

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

// needTool finds a tool the integration tests need: on a developer machine
// without it they skip, in CI (CI=true) they fail.
func needTool(t *testing.T, name string) string {
	t.Helper()
	return testtool.Need(t, name)
}

// runDoveconfOn runs the real doveconf on the configuration tree of a set
// (a directory standing for "/") inside a private mount namespace made by
// mountSetScript. It returns doveconf -a and doveconf -f protocol=P keys
// output for each protocol.
func runDoveconfOn(t *testing.T, set string, protocols []string) (string, map[string]string) {
	t.Helper()
	doveconf := needTool(t, "doveconf")
	unshare := needTool(t, "unshare")
	set, err := filepath.Abs(set)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var sh strings.Builder
	sh.WriteString(mountSetScript(t, set))
	keys := "protocols listen ssl disable_plaintext_auth auth_mechanisms auth_username_format ssl_cert ssl_key"
	fmt.Fprintf(&sh, "%s -c /etc/dovecot/dovecot.conf -a > %s/a.txt 2>%s/a.err\n", doveconf, out, out)
	for _, p := range protocols {
		fmt.Fprintf(&sh, "%s -c /etc/dovecot/dovecot.conf -f protocol=%s %s > %s/%s.txt 2>>%s/a.err\n", doveconf, p, keys, out, p, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "-m", "--propagation", "private", "sh", "-c", sh.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(filepath.Join(out, "a.err"))
		if strings.Contains(stderr.String(), "Operation not permitted") || strings.Contains(stderr.String(), "unknown filesystem type") {
			testtool.Missing(t, "private mount namespace: %v: %s", err, stderr.String())
		}
		t.Fatalf("doveconf in namespace: %v\n%s%s", err, stderr.String(), msg)
	}
	a, err := os.ReadFile(filepath.Join(out, "a.txt"))
	if err != nil {
		t.Fatal(err)
	}
	byProto := map[string]string{}
	for _, p := range protocols {
		b, err := os.ReadFile(filepath.Join(out, p+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		byProto[p] = string(b)
	}
	return string(a), byProto
}

// mountSetScript returns shell commands that, run in a private mount
// namespace, make a set (a directory standing for "/") the host's Dovecot
// configuration: its top-level directories are overlaid on the real ones, its
// etc/dovecot and usr/share/dovecot/protocols.d (or an empty directory)
// replace the real ones exactly.
func mountSetScript(t *testing.T, set string) string {
	t.Helper()
	empty := t.TempDir()
	var sh strings.Builder
	sh.WriteString("set -e\n")
	entries, err := os.ReadDir(set)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch name := e.Name(); {
		case !e.IsDir(), name == "truth", name == "usr", name == "tmp", name == "proc", name == "dev", name == "sys":
		default:
			fmt.Fprintf(&sh, "if [ -d /%s ]; then mount -t overlay overlay -o lowerdir=%s:/%s /%s; fi\n", name, filepath.Join(set, name), name, name)
		}
	}
	fmt.Fprintf(&sh, "mount --bind %s /etc/dovecot\n", filepath.Join(set, "etc", "dovecot"))
	protoD := filepath.Join(set, "usr", "share", "dovecot", "protocols.d")
	if _, err := os.Stat(protoD); err != nil {
		protoD = empty
	}
	fmt.Fprintf(&sh, "mount --bind %s /usr/share/dovecot/protocols.d\n", protoD)
	return sh.String()
}

// TestDoveconfDifferential runs the real doveconf (2.3) on every corpus set
// and on this package's 2.3 fixtures and compares its answers with ours.
// doveconf 2.3 cannot read 2.4 syntax: the 2.4 fixtures are checked by
// TestDoveconf24Differential and TestFixtures24.
func TestDoveconfDifferential(t *testing.T) {
	testtool.NeedRoot(t, "the doveconf differential test uses mount namespaces")
	sets := corpusSets(t)
	fixtures, _ := filepath.Glob(filepath.Join("testdata", "dovecot23-*"))
	sets = append(sets, fixtures...)
	protocols := []string{"imap", "pop3", "submission"}
	for _, dir := range sets {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			a, keys := runDoveconfOn(t, dir, protocols)
			c := loadSet(t, dir)
			out := parseDoveconf(a)
			if len(out.global) < 100 || len(out.listeners) == 0 {
				t.Fatalf("doveconf -a printed %d settings and %d listeners; is its output format unknown?", len(out.global), len(out.listeners))
			}
			t.Logf("doveconf -a: %d settings, %d inet_listeners compared", len(out.global), len(out.listeners))
			compareWithDoveconf(t, c, out)
			for _, p := range protocols {
				compareProtocolKeys(t, c, p, parseDoveconf(keys[p]).global)
			}
		})
	}
}
