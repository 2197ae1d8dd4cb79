package discover

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// corpusSnapshots builds every corpus set (their databases are not
// running: the MySQL-backed sets have unreachable tables and warnings,
// which must survive the round trip too).
func corpusSnapshots(t *testing.T) map[string]*Snapshot {
	t.Helper()
	sets, err := filepath.Glob("../testdata/corpus/*/expected.json")
	if err != nil || len(sets) == 0 {
		t.Fatalf("no corpus sets: %v", err)
	}
	out := map[string]*Snapshot{}
	for _, set := range sets {
		dir := filepath.Dir(set)
		root, err := hostfs.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		opt := Options{Root: root}
		opt.MySQL.Override = filepath.Join(t.TempDir(), "no-such.sock")
		opt.PgSQL.Override = "127.0.0.1:1"
		opt.LDAP.Override = "ldap://127.0.0.1:1/"
		s, err := Build(context.Background(), opt)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		t.Cleanup(func() { s.Close() })
		out[filepath.Base(dir)] = s
	}
	return out
}

// aliasSnapshot is a Snapshot with alias domains and their targets, line
// numbers and several sources, as a database and a hash: table give.
func aliasSnapshot() *Snapshot {
	return &Snapshot{
		hostname: "mail.example.org",
		domains: domainsOf(map[string]domainInfo{
			"a.example":      packDomainInfo(0, 0, false),
			"b.example":      packDomainInfo(0, 0, false),
			"c.example":      packDomainInfo(1, 7, true),
			"static.example": packDomainInfo(2, 3, false),
		}),
		aliasOf:        map[string]string{"b.example": "a.example", "c.example": "a.example"},
		sources:        []string{"/etc/postfix/sql/domains.cf", "/etc/postfix/vdomains", "/etc/postfix/main.cf"},
		listed:         false,
		endpoints:      []Endpoint{{Protocol: "imap", Host: "mail.example.org", Port: 993, Security: SecurityTLS, Auth: []string{"PLAIN"}, Username: UsernameAddress, Server: "dovecot", Source: "/etc/dovecot/dovecot.conf:3"}},
		certs:          []Certificate{{Path: "/etc/ssl/mail.pem", KeyPath: "/etc/ssl/mail.key", Server: "dovecot", Names: []string{"mail.example.org"}, NotAfter: "2036-01-01T00:00:00Z", Source: "/etc/dovecot/dovecot.conf:4"}},
		warnings:       []string{"database down", "other"},
		domainWarnings: []string{"database down"},
		files:          []string{"/etc/dovecot/dovecot.conf", "/etc/postfix/main.cf"},
		globs:          []string{"/etc/dovecot/conf.d/*.conf"},
		unreachable:    []string{"/etc/postfix/sql/domains.cf"},
		held:           []Endpoint{{Protocol: "smtp", Host: "mail.example.org", Port: 465, Security: SecurityTLS, Auth: []string{"PLAIN"}, Username: UsernameAddress, Server: "postfix", Source: "/etc/postfix/master.cf:5"}},
		procNet:        "/proc/self/net",
	}
}

// fingerprintOf computes the fingerprint from scratch, walking every
// domain and alias target: what Build and Restore sum as they go must
// equal it.
func fingerprintOf(s *Snapshot) uint64 {
	head, _ := json.Marshal(contentOf(s))
	sum := mix(hashString(hashSeed, string(head)))
	srcHash := make([]uint64, len(s.sources))
	for i, src := range s.sources {
		srcHash[i] = hashString(hashSeed, src)
	}
	for name, i := range s.domains.all() {
		h := hashString(hashSeed, name)
		h = (h ^ srcHash[i.source()]) * hashPrime
		h = (h ^ uint64(i)&^((1<<31-1)<<32)) * hashPrime
		sum += mix(h)
	}
	for name, target := range s.aliasOf {
		sum += mix(hashString(hashString(hashAliasSeed, name), target))
	}
	return sum
}

// handMade returns s, a Snapshot written as a literal, with its domains
// and alias targets put one at a time as Build puts them, so that it has
// the fingerprint Build would give it.
func handMade(s *Snapshot) *Snapshot {
	domains, aliases := s.domains, s.aliasOf
	s.domains, s.aliasOf = domainSet{}, map[string]string{}
	b := &builder{snap: s}
	b.hashSources()
	for name, i := range domains.all() {
		b.putDomain(name, i)
	}
	for name, target := range aliases {
		b.setAlias(name, target)
	}
	b.sealFingerprint()
	return s
}

func mustJSON(t *testing.T, s *Snapshot) []byte {
	t.Helper()
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSavedRoundTrip saves and restores every corpus set's Snapshot and a
// hand-made one with alias targets: what show --json prints, the alias
// targets, the files to watch and the fingerprint come back unchanged.
func TestSavedRoundTrip(t *testing.T) {
	snaps := corpusSnapshots(t)
	snaps["aliases"] = handMade(aliasSnapshot())
	snaps["empty"] = handMade(&Snapshot{aliasOf: map[string]string{}})
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	for name, orig := range snaps {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), SavedFile)
			info, err := Save(file, orig, "1.2.3", now)
			if err != nil {
				t.Fatal(err)
			}
			got, rinfo, err := Restore(file)
			if err != nil {
				t.Fatal(err)
			}
			if rinfo != info {
				t.Errorf("Restore info = %+v, Save info = %+v", rinfo, info)
			}
			if info.Saved != now || info.Version != "1.2.3" || info.Domains != orig.NumDomains() || info.Path != file {
				t.Errorf("info = %+v", info)
			}
			if want, got := mustJSON(t, orig), mustJSON(t, got); !bytes.Equal(got, want) {
				t.Errorf("restored show --json differs:\n got %s\nwant %s", got, want)
			}
			if !maps.Equal(got.AliasTargets(), orig.AliasTargets()) {
				t.Errorf("AliasTargets = %v, want %v", got.AliasTargets(), orig.AliasTargets())
			}
			for _, c := range []struct {
				what      string
				got, want []string
			}{
				{"Files", got.Files(), orig.Files()},
				{"Globs", got.Globs(), orig.Globs()},
				{"Unreachable", got.Unreachable(), orig.Unreachable()},
				{"DomainWarnings", got.DomainWarnings(), orig.DomainWarnings()},
			} {
				if !slices.Equal(c.got, c.want) {
					t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
				}
			}
			if !slices.EqualFunc(got.HeldBack(), orig.HeldBack(), func(a, b Endpoint) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) || got.procNet != orig.procNet {
				t.Errorf("HeldBack = %v (%s), want %v (%s)", got.HeldBack(), got.procNet, orig.HeldBack(), orig.procNet)
			}
			// Every field but the database lookups and what only watches
			// the live host since the build (awaited backends, the ports'
			// state, the build time: a restored Snapshot was not built),
			// so that a field added to Snapshot and forgotten in
			// savedContent fails here.
			a, b := *orig, *got
			if !maps.Equal(a.domains.toMap(), b.domains.toMap()) {
				t.Errorf("restored domains differ:\n got %v\nwant %v", b.domains.toMap(), a.domains.toMap())
			}
			a.domains, b.domains = domainSet{}, domainSet{} // their seeds and layouts differ
			a.lookups, a.closers = nil, nil
			a.awaited, a.builtAt, a.backends, a.ports = nil, time.Time{}, nil, nil
			if !reflect.DeepEqual(a, b) {
				t.Errorf("restored Snapshot differs:\n got %+v\nwant %+v", b, a)
			}
			if got.CanLookup() {
				t.Error("a restored snapshot asks databases")
			}
			if got.Fingerprint() != orig.Fingerprint() || info.Fingerprint != orig.Fingerprint() || orig.Fingerprint() != fingerprintOf(orig) {
				t.Errorf("fingerprint %x after the round trip, %x before (%x from scratch), %x saved", got.Fingerprint(), orig.Fingerprint(), fingerprintOf(orig), info.Fingerprint)
			}
			head, err := ReadSavedInfo(file)
			if err != nil || head != info {
				t.Errorf("ReadSavedInfo = %+v, %v; want %+v", head, err, info)
			}
		})
	}
}

// TestFingerprint: any change to what is saved changes the fingerprint;
// the same content built twice has the same one.
func TestFingerprint(t *testing.T) {
	base := fingerprintOf(aliasSnapshot())
	if again := fingerprintOf(aliasSnapshot()); again != base {
		t.Fatalf("the same snapshot: %x, then %x", base, again)
	}
	changes := map[string]func(s *Snapshot){
		"domain added":   func(s *Snapshot) { s.domains.set("new.example", packDomainInfo(0, 0, false)) },
		"domain removed": func(s *Snapshot) { s.domains.del("static.example") },
		"alias target":   func(s *Snapshot) { s.aliasOf["c.example"] = "static.example" },
		"alias flag":     func(s *Snapshot) { s.domains.set("a.example", packDomainInfo(0, 0, true)) },
		"line":           func(s *Snapshot) { s.domains.set("static.example", packDomainInfo(2, 4, false)) },
		"source":         func(s *Snapshot) { s.domains.set("static.example", packDomainInfo(1, 3, false)) },
		"hostname":       func(s *Snapshot) { s.hostname = "mx.example.org" },
		"port":           func(s *Snapshot) { s.endpoints[0].Port = 143 },
		"certificate":    func(s *Snapshot) { s.certs[0].NotAfter = "2037-01-01T00:00:00Z" },
		"warning":        func(s *Snapshot) { s.warnings = s.warnings[:1] },
		"held back":      func(s *Snapshot) { s.held = nil },
		// Swapping two domains' infos keeps every per-field total.
		"swap": func(s *Snapshot) {
			a, _ := s.domains.get("a.example")
			c, _ := s.domains.get("c.example")
			s.domains.set("a.example", c)
			s.domains.set("c.example", a)
		},
	}
	for name, change := range changes {
		s := aliasSnapshot()
		change(s)
		if got := fingerprintOf(s); got == base {
			t.Errorf("%s: fingerprint unchanged (%x)", name, got)
		}
	}
}

// TestFingerprintSummed: the fingerprint Build and Restore sum as they
// add, replace and remove domains equals the one computed from scratch,
// for every corpus set, the hand-made snapshots, domains carried forward
// from a previous snapshot (given, or asked for when a table fails) and a
// builder that replaces and removes what it added.
func TestFingerprintSummed(t *testing.T) {
	check := func(t *testing.T, what string, s *Snapshot) {
		t.Helper()
		if got, want := s.Fingerprint(), fingerprintOf(s); got != want {
			t.Errorf("%s: fingerprint %x, %x from scratch", what, got, want)
		}
	}
	corpus := corpusSnapshots(t)
	for name, s := range corpus {
		check(t, name, s)
	}
	check(t, "aliases", handMade(aliasSnapshot()))
	check(t, "big", bigSnapshot(1000))
	dir := t.TempDir()
	for name, s := range map[string]*Snapshot{"aliases": handMade(aliasSnapshot()), "big": bigSnapshot(1000)} {
		file := filepath.Join(dir, name)
		if _, err := Save(file, s, "1", time.Now()); err != nil {
			t.Fatal(err)
		}
		got, _, err := Restore(file)
		if err != nil {
			t.Fatal(err)
		}
		check(t, name+" restored", got)
	}

	// Each corpus set built again with a previous snapshot listing
	// domains, some with alias targets, from its unreachable tables.
	for name, orig := range corpus {
		if len(orig.Unreachable()) == 0 {
			continue
		}
		prev := &Snapshot{aliasOf: map[string]string{}, sources: orig.Unreachable()}
		for i := range prev.sources {
			prev.domains.set(fmt.Sprintf("kept%d.example", i), packDomainInfo(i, 0, false))
			prev.domains.set(fmt.Sprintf("alias%d.example", i), packDomainInfo(i, 0, true))
			prev.aliasOf[fmt.Sprintf("alias%d.example", i)] = fmt.Sprintf("kept%d.example", i)
		}
		handMade(prev)
		dir := filepath.Join("../testdata/corpus", name)
		root, err := hostfs.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, lazy := range []bool{false, true} {
			opt := Options{Root: root}
			opt.MySQL.Override = filepath.Join(t.TempDir(), "no-such.sock")
			opt.PgSQL.Override = "127.0.0.1:1"
			opt.LDAP.Override = "ldap://127.0.0.1:1/"
			asked := 0
			if lazy {
				opt.PreviousFunc = func() *Snapshot { asked++; return prev }
			} else {
				opt.Previous = prev
			}
			s, err := Build(context.Background(), opt)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			s.Close()
			if s.NumDomains() < orig.NumDomains()+prev.NumDomains() {
				t.Errorf("%s: %d domains, want the %d carried forward too", name, s.NumDomains(), prev.NumDomains())
			}
			if lazy && asked != 1 {
				t.Errorf("%s: PreviousFunc called %d times, want once", name, asked)
			}
			check(t, fmt.Sprintf("%s carried forward (lazy %v)", name, lazy), s)
		}
	}

	// A builder's own changes: a domain replaced, one removed, an alias
	// target set twice.
	b := &builder{snap: &Snapshot{aliasOf: map[string]string{}}, sourceIndex: map[string]int{}}
	mbox, alias := packDomainInfo(b.source("/etc/postfix/vdomains"), 4, false), packDomainInfo(b.source("/etc/postfix/valiases"), 0, true)
	b.putDomain("a.example", alias)
	b.putDomain("b.example", mbox)
	b.putDomain("c.example", alias)
	b.replaceDomain("a.example", alias, mbox)
	b.deleteListed(alias)
	b.setAlias("b.example", "c.example")
	b.setAlias("b.example", "a.example")
	b.sealFingerprint()
	check(t, "replaced and removed", b.snap)
	if b.snap.NumDomains() != 2 || b.snap.aliasOf["b.example"] != "a.example" {
		t.Errorf("domains %v, aliases %v", b.snap.domains.toMap(), b.snap.aliasOf)
	}
}

// TestSaveFile: the file is mode 0600 whatever the umask and a left-over
// temporary file's mode; it replaces the previous file by a rename (a
// reader of the old one reads the old one to its end); nothing is left
// beside it; and a failed save leaves the previous file as it was.
func TestSaveFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, SavedFile)
	first := handMade(aliasSnapshot())
	if _, err := Save(file, first, "1", time.Now()); err != nil {
		t.Fatal(err)
	}
	old, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldBytes, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}

	// A temporary file left by a crash, readable by all.
	if err := os.WriteFile(file+".tmp", []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	second := aliasSnapshot()
	second.hostname = "mx.example.org"
	handMade(second)
	if _, err := Save(file, second, "2", time.Now()); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after the save, want only %s", len(entries), SavedFile)
	}
	stillOld, err := readAll(old)
	if err != nil || !bytes.Equal(stillOld, oldBytes) {
		t.Errorf("the file open before the save changed under its reader (an in-place write, not a rename)")
	}
	if s, _, err := Restore(file); err != nil || s.Hostname() != "mx.example.org" {
		t.Fatalf("after the second save: %v, %v", s, err)
	}

	// A save that cannot write its temporary file fails and leaves the
	// saved file alone.
	before, _ := os.ReadFile(file)
	if err := os.Mkdir(file+".tmp", 0o700); err != nil {
		t.Fatal(err)
	}
	third := aliasSnapshot()
	third.hostname = "third.example.org"
	handMade(third)
	if _, err := Save(file, third, "3", time.Now()); err == nil {
		t.Error("Save succeeded with a directory in the way of its temporary file")
	}
	if after, _ := os.ReadFile(file); !bytes.Equal(after, before) {
		t.Error("a failed save changed the saved file")
	}
}

func readAll(f *os.File) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(f)
	return b.Bytes(), err
}

// TestRestoreDamaged: a damaged, truncated or foreign file is an error
// naming the file (and the line where there is one), never a Snapshot
// with part of the domains; a missing file is ErrNoSaved.
func TestRestoreDamaged(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if _, err := Save(good, handMade(aliasSnapshot()), "1", time.Now()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	domainLine := lines[3] // some domain
	tests := []struct {
		name, content, want string
	}{
		{"empty", "", ":1: not a saved snapshot"},
		{"foreign", "hello\n", ":1: not a saved snapshot"},
		{"header cut", lines[0] + lines[1][:20], ":2: truncated header"},
		{"bad header", lines[0] + "{\n", ":2: bad header"},
		{"no end line", strings.Join(lines[:len(lines)-2], ""), ": truncated: no end line"},
		{"cut in the end line", string(data[:len(data)-3]), "truncated"},
		{"wrong count", strings.Replace(string(data), "\nend 4 ", "\nend 5 ", 1), ":7: 4 domains read, the file says 5"},
		{"flipped byte", strings.Replace(string(data), domainLine, strings.Replace(domainLine, ".example", ".exbmple", 1), 1), "damaged: checksum"},
		{"bad line", strings.Replace(string(data), domainLine, "x\n", 1), ":4: want 4 or 5 fields"},
		{"domain twice", strings.Join(lines[:4], "") + domainLine + strings.Join(lines[5:], ""), ":5: domain " + strings.Fields(domainLine)[0] + " twice"},
		{"data after the end", string(data) + "more\n", "data after the end line"},
		{"binary", savedMagic + "\n\x00\x01\x02", ":2: truncated header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			if err := os.WriteFile(file, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			s, _, err := Restore(file)
			if err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Restore = %v, %v; want an error naming %s with %q", s, err, file, tt.want)
			}
		})
	}
	if _, _, err := Restore(filepath.Join(dir, "missing")); !errors.Is(err, ErrNoSaved) {
		t.Errorf("Restore(missing) = %v, want ErrNoSaved", err)
	}
	if _, err := ReadSavedInfo(filepath.Join(dir, "missing")); !errors.Is(err, ErrNoSaved) {
		t.Errorf("ReadSavedInfo(missing) = %v, want ErrNoSaved", err)
	}
}

// bigSnapshot is a Snapshot of n domains from one database table, every
// tenth an alias of the one before.
func bigSnapshot(n int) *Snapshot {
	s := aliasSnapshot()
	s.domains = domainSet{}
	s.domains.reserve(n)
	s.aliasOf = map[string]string{}
	for i := range n {
		name := fmt.Sprintf("d%d.example", i)
		s.domains.set(name, packDomainInfo(0, 0, false))
		if i%10 == 1 {
			s.aliasOf[name] = fmt.Sprintf("d%d.example", i-1)
		}
	}
	return handMade(s)
}

// BenchmarkSaved measures what the last good snapshot costs with a
// million domains: the fingerprint every refresh compares (summed while
// the Snapshot is built: fingerprint-1M is what a refresh asks for it,
// insert-1M and insert+fingerprint-1M what a build's domains cost without
// and with the sum, from-scratch-1M the walk a refresh made before), a
// save (only when the fingerprint changed) and a
// restore (only at a start with a broken configuration).
func BenchmarkSaved(b *testing.B) {
	const n = 1_000_000
	s := bigSnapshot(n)
	file := filepath.Join(b.TempDir(), SavedFile)
	b.Run("fingerprint-1M", func(b *testing.B) {
		var fp uint64
		for b.Loop() {
			fp ^= s.Fingerprint()
		}
		if fp == 1 {
			b.Log(fp)
		}
	})
	b.Run("from-scratch-1M", func(b *testing.B) { // what each refresh walked before it was summed
		for b.Loop() {
			fingerprintOf(s)
		}
	})
	b.Run("insert-1M", func(b *testing.B) {
		for b.Loop() {
			var d domainSet
			d.reserve(n)
			for name, i := range s.domains.all() {
				d.set(name, i)
			}
		}
	})
	b.Run("insert+fingerprint-1M", func(b *testing.B) {
		for b.Loop() {
			bl := &builder{snap: &Snapshot{sources: s.sources}}
			bl.snap.domains.reserve(n)
			bl.hashSources()
			for name, i := range s.domains.all() {
				bl.putDomain(name, i)
			}
		}
	})
	b.Run("save-1M", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Save(file, s, "bench", time.Now()); err != nil {
				b.Fatal(err)
			}
		}
		if st, err := os.Stat(file); err == nil {
			b.ReportMetric(float64(st.Size())/(1<<20), "MiB")
		}
	})
	b.Run("restore-1M", func(b *testing.B) {
		if _, err := Save(file, s, "bench", time.Now()); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			r, _, err := Restore(file)
			if err != nil || r.NumDomains() != n {
				b.Fatal(err)
			}
		}
	})
}

// TestSavedHostile: the saved snapshot is the service user's file, and
// root reads it (show, check): a link in its place (to /dev/zero), a
// FIFO, or a header line without end is an error at once, never a hang
// or the memory of the reader. VerifySaved also checks what
// ReadSavedInfo does not read: the body.
func TestSavedHostile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if _, err := Save(good, handMade(aliasSnapshot()), "1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifySaved(good); err != nil {
		t.Fatalf("VerifySaved(good): %v", err)
	}
	data, _ := os.ReadFile(good)
	damaged := filepath.Join(dir, "damaged")
	os.WriteFile(damaged, bytes.Replace(data, []byte(".example"), []byte(".exbmple"), 1), 0o600)
	link := filepath.Join(dir, "link")
	if err := os.Symlink("/dev/zero", link); err != nil {
		t.Fatal(err)
	}
	linkGood := filepath.Join(dir, "link-good")
	os.Symlink(good, linkGood)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(dir, "long")
	f, _ := os.Create(long)
	f.WriteString(savedMagic + "\n")
	f.Truncate(int64(len(savedMagic)+1) + maxSavedHeader + 10) // a hole: zeros, no newline
	f.Close()
	tests := []struct {
		name, file, want string
		infoOK           bool // ReadSavedInfo reads only the header
	}{
		{"damaged body", damaged, "damaged: checksum", true},
		{"link to /dev/zero", link, "symbolic link", false},
		{"link to a good one", linkGood, "symbolic link", false},
		{"fifo", fifo, "not a regular file", false},
		{"endless header", long, ":2: header over", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan struct{})
			go func() {
				defer close(done)
				_, err := ReadSavedInfo(tt.file)
				if (err == nil) != tt.infoOK || (err != nil && !strings.Contains(err.Error(), tt.want)) {
					t.Errorf("ReadSavedInfo = %v, want %q", err, tt.want)
				}
				if _, err := VerifySaved(tt.file); err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("VerifySaved = %v, want %q", err, tt.want)
				}
				if _, _, err := Restore(tt.file); err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("Restore = %v, want %q", err, tt.want)
				}
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("reading the file hangs")
			}
		})
	}
}
