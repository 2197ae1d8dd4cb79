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
		domains: map[string]domainInfo{
			"a.example":      packDomainInfo(0, 0, false),
			"b.example":      packDomainInfo(0, 0, false),
			"c.example":      packDomainInfo(1, 7, true),
			"static.example": packDomainInfo(2, 3, false),
		},
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
	snaps["aliases"] = aliasSnapshot()
	snaps["empty"] = &Snapshot{domains: map[string]domainInfo{}, aliasOf: map[string]string{}}
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
			// Every field but the database lookups, so that a field added
			// to Snapshot and forgotten in savedContent fails here.
			a, b := *orig, *got
			a.lookups, a.closers = nil, nil
			if !reflect.DeepEqual(a, b) {
				t.Errorf("restored Snapshot differs:\n got %+v\nwant %+v", b, a)
			}
			if got.CanLookup() {
				t.Error("a restored snapshot asks databases")
			}
			if Fingerprint(got) != Fingerprint(orig) || info.Fingerprint != Fingerprint(orig) {
				t.Errorf("fingerprint %x after the round trip, %x before, %x saved", Fingerprint(got), Fingerprint(orig), info.Fingerprint)
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
	base := Fingerprint(aliasSnapshot())
	if again := Fingerprint(aliasSnapshot()); again != base {
		t.Fatalf("the same snapshot: %x, then %x", base, again)
	}
	changes := map[string]func(s *Snapshot){
		"domain added":   func(s *Snapshot) { s.domains["new.example"] = packDomainInfo(0, 0, false) },
		"domain removed": func(s *Snapshot) { delete(s.domains, "static.example") },
		"alias target":   func(s *Snapshot) { s.aliasOf["c.example"] = "static.example" },
		"alias flag":     func(s *Snapshot) { s.domains["a.example"] = packDomainInfo(0, 0, true) },
		"line":           func(s *Snapshot) { s.domains["static.example"] = packDomainInfo(2, 4, false) },
		"source":         func(s *Snapshot) { s.domains["static.example"] = packDomainInfo(1, 3, false) },
		"hostname":       func(s *Snapshot) { s.hostname = "mx.example.org" },
		"port":           func(s *Snapshot) { s.endpoints[0].Port = 143 },
		"certificate":    func(s *Snapshot) { s.certs[0].NotAfter = "2037-01-01T00:00:00Z" },
		"warning":        func(s *Snapshot) { s.warnings = s.warnings[:1] },
		"held back":      func(s *Snapshot) { s.held = nil },
		// Swapping two domains' infos keeps every per-field total.
		"swap": func(s *Snapshot) {
			s.domains["a.example"], s.domains["c.example"] = s.domains["c.example"], s.domains["a.example"]
		},
	}
	for name, change := range changes {
		s := aliasSnapshot()
		change(s)
		if got := Fingerprint(s); got == base {
			t.Errorf("%s: fingerprint unchanged (%x)", name, got)
		}
	}
}

// TestSaveFile: the file is mode 0600 whatever the umask and a left-over
// temporary file's mode; it replaces the previous file by a rename (a
// reader of the old one reads the old one to its end); nothing is left
// beside it; and a failed save leaves the previous file as it was.
func TestSaveFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, SavedFile)
	first := aliasSnapshot()
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
	if _, err := Save(good, aliasSnapshot(), "1", time.Now()); err != nil {
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
	s.domains = make(map[string]domainInfo, n)
	s.aliasOf = map[string]string{}
	for i := range n {
		name := fmt.Sprintf("d%d.example", i)
		s.domains[name] = packDomainInfo(0, 0, false)
		if i%10 == 1 {
			s.aliasOf[name] = fmt.Sprintf("d%d.example", i-1)
		}
	}
	return s
}

// BenchmarkSaved measures what the last good snapshot costs with a
// million domains: the fingerprint every refresh computes, a save (only
// when the fingerprint changed) and a restore (only at a start with a
// broken configuration).
func BenchmarkSaved(b *testing.B) {
	const n = 1_000_000
	s := bigSnapshot(n)
	file := filepath.Join(b.TempDir(), SavedFile)
	b.Run("fingerprint-1M", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Fingerprint(s)
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
	if _, err := Save(good, aliasSnapshot(), "1", time.Now()); err != nil {
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
