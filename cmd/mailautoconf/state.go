package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailautoconf/mailautoconf/discover"
)

// defaultStateDir is where the packaged unit's StateDirectory= puts the
// last good snapshot; show looks there when nothing else says where.
const defaultStateDir = "/var/lib/mailautoconf"

// stateDir returns the directory for the last good snapshot: flag when
// given, else the first of systemd's $STATE_DIRECTORY (a colon-separated
// list), else "" (nothing is saved).
func stateDir(flag string) string {
	if flag != "" {
		return flag
	}
	first, _, _ := strings.Cut(os.Getenv("STATE_DIRECTORY"), ":")
	return first
}

// savedPath returns the saved snapshot's file in dir, or "" without one.
func savedPath(dir string) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, discover.SavedFile)
}

// A fallback is what the daemon serves while the configuration it
// started with cannot be built: the saved snapshot, or nothing (503).
type fallback struct {
	err   error               // why the configuration cannot be built
	saved *discover.SavedInfo // the saved snapshot served; nil: none
	// savedErr is why the saved snapshot cannot be served (damaged), when
	// there is one.
	savedErr error
}

// formatSaved describes a saved snapshot for a person.
func formatSaved(info discover.SavedInfo) string {
	by := ""
	if info.Version != "" {
		by = " by mailautoconf " + info.Version
	}
	return fmt.Sprintf("%s, saved %s%s (%d domains)", info.Path, info.Saved.UTC().Format(time.RFC3339), by, info.Domains)
}

// A savedCheck is the saved snapshot at file, read whole and checked
// once (discover.VerifySaved) for what show says about it.
type savedCheck struct {
	file string
	info discover.SavedInfo
	err  error
}

func checkSaved(file string) savedCheck {
	info, err := discover.VerifySaved(file)
	return savedCheck{file: file, info: info, err: err}
}

// savedState tells show's reader about the saved snapshot at file: that
// there is none, when and by which release it was saved, or that it
// cannot be read by this user (it is the service user's, mode 0600).
func savedState(file string) string { return checkSaved(file).state() }

func (c savedCheck) state() string {
	switch {
	case c.err == nil:
		return formatSaved(c.info)
	case errors.Is(c.err, discover.ErrNoSaved):
		return "none in " + filepath.Dir(c.file)
	case errors.Is(c.err, fs.ErrPermission):
		if st, serr := os.Stat(c.file); serr == nil {
			return fmt.Sprintf("%s, modified %s, cannot be read by this user (it is the service user's, mode 0600): run show as root to see which",
				c.file, st.ModTime().UTC().Format(time.RFC3339))
		}
		return fmt.Sprintf("%s cannot be read by this user (permission denied): run show as root", c.file)
	}
	return fmt.Sprintf("damaged, would not be served: %v", c.err)
}

// brokenNote is what show adds to a configuration error: what a daemon
// (re)started now would serve until it is fixed.
func brokenNote(file string) string { return checkSaved(file).brokenNote() }

func (c savedCheck) brokenNote() string {
	const keeps = "A running daemon keeps its answers; "
	switch {
	case c.err == nil:
		return keeps + "one started now serves the saved snapshot " + formatSaved(c.info) + " until this is fixed."
	case errors.Is(c.err, discover.ErrNoSaved):
		return keeps + "one started now has no saved snapshot (" + filepath.Dir(c.file) + ") and answers 503 until this is fixed."
	case errors.Is(c.err, fs.ErrPermission):
		return keeps + "saved snapshot: " + c.state() + "."
	}
	return fmt.Sprintf(keeps+"one started now answers 503 until this is fixed: saved snapshot damaged: %v", c.err)
}
