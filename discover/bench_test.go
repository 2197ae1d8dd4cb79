package discover

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// BenchmarkBuild measures a snapshot build (what a reload costs before the
// Site renders): every corpus set (their databases are not running, so
// MySQL-backed sets measure the files and the failed connection), and
// 10 000 domains from a literal list in main.cf and from a hash: table's
// text source.
func BenchmarkBuild(b *testing.B) {
	sets, err := filepath.Glob("../testdata/corpus/*/expected.json")
	if err != nil || len(sets) == 0 {
		b.Fatalf("no corpus sets: %v", err)
	}
	for _, set := range sets {
		dir := filepath.Dir(set)
		b.Run(filepath.Base(dir), func(b *testing.B) { benchBuild(b, dir) })
	}

	const n = 10000
	var literal, table strings.Builder
	for i := range n {
		fmt.Fprintf(&literal, " d%d.example", i)
		fmt.Fprintf(&table, "d%d.example OK\n", i)
	}
	b.Run("literal-10k", func(b *testing.B) {
		h := baseHost(b)
		h["/etc/postfix/main.cf"] = strings.Replace(h["/etc/postfix/main.cf"], "virtual_mailbox_domains = example.org example.com",
			"virtual_mailbox_domains = example.org"+literal.String(), 1)
		benchBuild(b, writeHostDir(b, h))
	})
	b.Run("hash-10k", func(b *testing.B) {
		h := baseHost(b)
		h["/etc/postfix/main.cf"] = strings.Replace(h["/etc/postfix/main.cf"], "virtual_mailbox_domains = example.org example.com",
			"virtual_mailbox_domains = hash:/etc/postfix/vdomains", 1)
		h["/etc/postfix/vdomains"] = table.String()
		h["/etc/postfix/vdomains.db"] = ""
		benchBuild(b, writeHostDir(b, h))
	})
}

func benchBuild(b *testing.B, dir string) {
	root, err := hostfs.New(dir)
	if err != nil {
		b.Fatal(err)
	}
	opt := Options{Root: root}
	opt.MySQL.Override = filepath.Join(b.TempDir(), "no-such.sock") // fail fast, never the host's server
	b.ReportAllocs()
	var domains int
	for b.Loop() {
		s, err := Build(context.Background(), opt)
		if err != nil {
			b.Fatal(err)
		}
		domains = s.NumDomains()
		s.Close()
	}
	b.ReportMetric(float64(domains), "domains")
}

// writeHostDir writes h under a temporary directory and returns it.
func writeHostDir(b *testing.B, h host) string {
	dir := b.TempDir()
	testtool.WriteFiles(b, dir, h)
	return dir
}
