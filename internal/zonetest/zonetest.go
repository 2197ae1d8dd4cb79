// Package zonetest reads the zone text `mailautoconf dns` prints, for
// tests: each domain's block, and named-checkzone's verdict on it.
package zonetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Blocks splits dns's zone output into each domain's block, keyed by the
// domain ("; ===== example.com =====" starts one; the certificate list
// ends them).
func Blocks(zone string) map[string]string {
	blocks := map[string]string{}
	cur := ""
	for _, line := range strings.SplitAfter(zone, "\n") {
		if name, ok := strings.CutPrefix(line, "; ===== "); ok {
			cur = strings.TrimSuffix(strings.TrimSpace(name), " =====")
			if cur == "TLS certificate names" {
				cur = ""
			}
			continue
		}
		if cur != "" {
			blocks[cur] += line
		}
	}
	return blocks
}

// Check wraps a domain's block into a minimal zone (SOA, NS, and an
// address for the mail host when it lies inside the zone) and runs
// named-checkzone (bin) on it. -i local keeps it from resolving outside
// names; -S fail and -M fail refuse SRV and MX targets that are CNAMEs.
// It returns named-checkzone's output followed by the zone.
func Check(t testing.TB, bin, domain, host, block string) (string, error) {
	t.Helper()
	var b strings.Builder
	b.WriteString("$ORIGIN " + domain + ".\n$TTL 3600\n")
	b.WriteString("@ IN SOA ns.invalid. hostmaster.invalid. 1 3600 600 86400 3600\n@ IN NS ns.invalid.\n")
	if host == domain || strings.HasSuffix(host, "."+domain) {
		b.WriteString(host + ". IN A 192.0.2.1\n")
	}
	b.WriteString(block)
	path := filepath.Join(t.TempDir(), domain+".zone")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-i", "local", "-k", "fail", "-n", "fail", "-M", "fail", "-S", "fail", domain, path).CombinedOutput()
	return string(out) + "\n" + b.String(), err
}
