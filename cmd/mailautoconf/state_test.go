package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/serve"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

const staticCorpus = "../../testdata/corpus/handmade-static-domains"

// saveCorpus saves the static corpus set's snapshot into dir as the
// daemon would and returns what was saved.
func saveCorpus(t *testing.T, dir string) discover.SavedInfo {
	t.Helper()
	root, err := hostfs.New(staticCorpus)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := discover.Build(context.Background(), discover.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	info, err := discover.Save(filepath.Join(dir, discover.SavedFile), snap, "9.8.7", time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestShowSaved: show ends with the release and the state of the saved
// snapshot, and a configuration error says what a daemon started now
// would serve.
func TestShowSaved(t *testing.T) {
	empty, full := t.TempDir(), t.TempDir()
	saveCorpus(t, full)
	broken := t.TempDir()
	testtool.WriteFiles(t, broken, map[string]string{"etc/postfix/main.cf": "myhostname mail.example.org\n"})

	tests := []struct {
		name string
		args []string
		want string // in the output, or in the error
		fail bool
	}{
		{"none", []string{"--root", staticCorpus, "--state-dir", empty},
			"\nVersion: mailautoconf " + version + "\nSaved snapshot: none in " + empty + "\n", false},
		{"saved", []string{"--root", staticCorpus, "--state-dir", full},
			"\nSaved snapshot: " + filepath.Join(full, "snapshot") + ", saved 2025-03-04T05:06:07Z by mailautoconf 9.8.7 (4 domains)\n", false},
		{"broken, saved", []string{"--root", broken, "--state-dir", full},
			"/etc/postfix/main.cf:1: missing '='", true},
		{"broken, saved: the note", []string{"--root", broken, "--state-dir", full},
			"one started now serves the saved snapshot " + filepath.Join(full, "snapshot") + ", saved 2025-03-04T05:06:07Z", true},
		{"broken, none", []string{"--root", broken, "--state-dir", empty},
			"one started now has no saved snapshot (" + empty + ") and answers 503 until this is fixed", true},
		{"broken, no state directory", []string{"--root", broken}, "/etc/postfix/main.cf:1: ", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("STATE_DIRECTORY", "")
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"show"}, tt.args...), &stdout, &stderr)
			got := stdout.String()
			if err != nil {
				got = err.Error()
			}
			if (err != nil) != tt.fail || !strings.Contains(got, tt.want) {
				t.Errorf("show %q: error %v, output:\n%s\nwant %q", tt.args, err, got, tt.want)
			}
		})
	}
}

// TestShowSavedUnreadable: a user who cannot read the saved snapshot
// (the service user's, mode 0600) is told when it was modified and that
// it cannot be read, not that there is none. As root, show runs as
// nobody.
func TestShowSavedUnreadable(t *testing.T) {
	dir, err := os.MkdirTemp("", "mailautoconf-state-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // as StateDirectoryMode=0755
		t.Fatal(err)
	}
	saveCorpus(t, dir)
	file := filepath.Join(dir, discover.SavedFile)
	corpus, err := filepath.Abs(staticCorpus)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if os.Geteuid() == 0 {
		asUser := testtool.AsUser(t, serviceUID)
		bin := buildDaemon(t)
		if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := exec.Command(asUser[0], append(asUser[1:], bin, "show", "--root", corpus, "--state-dir", dir)...).CombinedOutput()
		if err != nil {
			t.Fatalf("show as the service user: %v\n%s", err, b)
		}
		out = string(b)
	} else {
		if err := os.Chmod(file, 0); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), []string{"show", "--root", corpus, "--state-dir", dir}, &stdout, &stderr); err != nil {
			t.Fatal(err)
		}
		out = stdout.String()
	}
	want := "Saved snapshot: " + file + ", modified "
	if !strings.Contains(out, want) || !strings.Contains(out, "cannot be read by this user") {
		t.Errorf("show by a user who cannot read the saved snapshot:\n%s\nwant %q ... cannot be read by this user", out, want)
	}
}

// TestStatusSignedFromSite: STATUS says whether profiles are signed as
// the served Site found when it loaded the key, not as the snapshot it
// serves says. A saved snapshot restored after a restart says what was
// true when it was saved; here its key is gone since (as a staged copy is
// when /run is cleaned), and STATUS must not claim signed profiles.
func TestStatusSignedFromSite(t *testing.T) {
	dir := t.TempDir()
	staticHost(t, dir)
	installCert(t, dir, 1)
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := discover.Build(context.Background(), discover.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if _, why := snap.ProfileSigning(); why != "" {
		t.Fatalf("the host cannot sign to begin with: %s", why)
	}
	state := t.TempDir()
	info, err := discover.Save(filepath.Join(state, discover.SavedFile), snap, version, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	fb := &fallback{err: errors.New("dovecot: /etc/dovecot/dovecot.conf:9: missing '}'"), saved: &info}
	for _, tc := range []struct {
		name     string
		keyGone  bool
		unsigned bool
	}{{"key there", false, false}, {"key gone", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.keyGone {
				os.Remove(filepath.Join(dir, "etc/letsencrypt/archive/mail.example.com/privkey1.pem"))
			}
			saved, _, err := discover.Restore(info.Path)
			if err != nil {
				t.Fatal(err)
			}
			site, err := serve.NewSite(root, saved, nil)
			if err != nil {
				t.Fatal(err)
			}
			line := statusLine(site, nil, fb)
			if got := strings.Contains(line, "Apple profiles unsigned: "); got != tc.unsigned || site.Signed() == tc.unsigned {
				t.Errorf("signed %v, STATUS=%s\nwant unsigned in STATUS: %v", site.Signed(), line, tc.unsigned)
			}
			if tc.unsigned && !strings.Contains(line, "privkey.pem") {
				t.Errorf("STATUS does not name the key: %s", line)
			}
		})
	}
}

// TestSaveRewritesDamaged: a saved snapshot whose header is intact but
// whose body is damaged is written again by the first save of a new
// process, even though its header names the same fingerprint: otherwise
// it stays damaged until the broken start that needs it.
func TestSaveRewritesDamaged(t *testing.T) {
	root, err := hostfs.New(staticCorpus)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := discover.Build(context.Background(), discover.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	state := t.TempDir()
	file := filepath.Join(state, discover.SavedFile)
	var log bytes.Buffer
	first := &reloader{savePath: file, log: newLogger(&log, slog.LevelInfo)}
	first.save(snap)
	if _, err := discover.VerifySaved(file); err != nil {
		t.Fatalf("saved: %v\n%s", err, log.String())
	}
	// One domain line's byte flipped, the header untouched.
	b, _ := os.ReadFile(file)
	i := bytes.IndexByte(b[bytes.IndexByte(b, '\n')+1:], '\n') + bytes.IndexByte(b, '\n') + 3
	b[i] ^= 0x20
	os.WriteFile(file, b, 0o600)
	if _, err := discover.ReadSavedInfo(file); err != nil {
		t.Fatalf("the header must be intact: %v", err)
	}
	if _, err := discover.VerifySaved(file); err == nil {
		t.Fatal("VerifySaved accepts a damaged body")
	}
	if got := brokenNote(file); !strings.Contains(got, "saved snapshot damaged: ") {
		t.Errorf("show's note on a damaged snapshot: %s", got)
	}
	// A restart: a new process, the same snapshot.
	second := &reloader{savePath: file, log: newLogger(&log, slog.LevelInfo)}
	second.save(snap)
	if _, err := discover.VerifySaved(file); err != nil {
		t.Errorf("the damaged snapshot was not written again: %v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "the saved snapshot is damaged; writing it again") {
		t.Errorf("the log does not say the saved snapshot was damaged:\n%s", log.String())
	}
}
