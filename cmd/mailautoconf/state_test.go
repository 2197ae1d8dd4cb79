package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
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
		setpriv := testtool.Need(t, "setpriv")
		bin := buildDaemon(t)
		if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
			bin, "show", "--root", corpus, "--state-dir", dir).CombinedOutput()
		if err != nil {
			t.Fatalf("show as nobody: %v\n%s", err, b)
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
