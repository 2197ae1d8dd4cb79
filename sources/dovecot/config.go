package dovecot

import (
	"strconv"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// A Config is a loaded Dovecot configuration. It is never modified after
// Load returns it.
type Config struct {
	ev        *evaluator
	files     []string
	globs     []string
	effective Effective
	listeners []Listener
}

func (e *evaluator) config(files []string) *Config {
	return &Config{ev: e, files: files}
}

// Version returns the configuration syntax: the major.minor of
// dovecot_config_version ("2.4"), or "2.3" when it is not set.
func (c *Config) Version() string { return c.ev.versionMajorMinor() }

// is24 reports whether version (major.minor) is 2.4 or later.
func is24(version string) bool {
	maj, min, _ := strings.Cut(version, ".")
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(min)
	if err1 != nil || err2 != nil {
		return false
	}
	return a > 2 || a == 2 && b >= 4
}

// Files returns every host path Load read or that a "<file" value names, in
// the order met: what a watcher must watch.
func (c *Config) Files() []string { return append([]string(nil), c.files...) }

// Globs returns the wildcard patterns of the !include and !include_try
// lines met (host paths, braces expanded): a file created later that
// matches one changes the configuration too.
func (c *Config) Globs() []string { return append([]string(nil), c.globs...) }

// Setting returns the global value of a setting: its last assignment at the
// top level (inside no filter), variables expanded, or Dovecot's built-in
// default with a zero Pos. A "<file" value this package does not read (a
// certificate, a key) is returned as written, "</path", as doveconf prints it.
func (c *Config) Setting(name string) (string, hostfs.Pos) {
	return c.settingIn(c.ev.root, name)
}

func (c *Config) settingIn(s *scope, name string) (string, hostfs.Pos) {
	v, pos, _ := c.ev.lookup(s, name)
	return c.ev.expandSETDepth(s, v, 8), pos
}

// ProtocolSetting returns a setting as processes of protocol see it (what
// doveconf -f protocol=imap prints): the value from "protocol imap { }"
// blocks when they set it, else the global one.
func (c *Config) ProtocolSetting(protocol, name string) (string, hostfs.Pos) {
	var found *scope
	for _, f := range c.ev.filters {
		if f.parent != c.ev.root || f.kind != "protocol" {
			continue
		}
		if !matchesProtocol(f.arg, protocol) {
			continue
		}
		if _, ok := c.ev.own(f, name); ok {
			found = f
		}
	}
	if found == nil {
		return c.Setting(name)
	}
	return c.settingIn(found, name)
}

// matchesProtocol reports whether a protocol filter's argument ("imap",
// "imap pop3", "!lmtp") selects protocol.
func matchesProtocol(arg, protocol string) bool {
	for _, p := range splitList(arg) {
		if neg, ok := strings.CutPrefix(p, "!"); ok {
			if neg != protocol {
				return true
			}
			continue
		}
		if p == protocol {
			return true
		}
	}
	return false
}

// compute fills in Effective and Listeners, returning bad values.
func (c *Config) compute() []error {
	var errs []error
	c.effective, errs = c.computeEffective()
	ls, lerrs := c.computeListeners()
	c.listeners = ls
	return append(errs, lerrs...)
}
