package discover

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mailautoconf/mailautoconf/sources/dovecot"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/keystage"
	"github.com/mailautoconf/mailautoconf/sources/ldaptable"
	"github.com/mailautoconf/mailautoconf/sources/postfix"
	"github.com/mailautoconf/mailautoconf/sources/sqltable"
)

// Options says where the mail server's files are. The zero value reads the
// standard places on the real file system.
type Options struct {
	Root hostfs.Root
	// PostfixDir is Postfix's configuration directory; empty means
	// /etc/postfix, or /opt/postfix/conf (mailcow) when only that exists.
	PostfixDir string
	// DovecotConfig is Dovecot's main file; empty means
	// /etc/dovecot/dovecot.conf.
	DovecotConfig string
	// MySQL, PgSQL and SQLite tune the connections to the databases of
	// mysql:, pgsql: and sqlite: lookup tables, LDAP those of ldap: tables
	// (their Root is Options.Root).
	MySQL, PgSQL, SQLite sqltable.Options
	LDAP                 ldaptable.Options
	// ProcNet is the directory with the kernel's tables of TCP sockets
	// (tcp, tcp6) of the network namespace the mail servers listen in: an
	// endpoint whose port nothing listens on there is held back until
	// the server is reloaded. Empty means listening.DefaultDir when Root
	// is the real file system, and no check under another root, since a
	// copy of a host's files is not this host.
	ProcNet string
	// Now is the time certificates are checked against; zero means now.
	Now time.Time
	// StagedKeys is the host directory holding the copies "mailautoconf
	// stage-keys" made of certificate and key files the service user
	// cannot read (package keystage); "" means keystage.Dir.
	StagedKeys string
	// ServiceUser is the user the daemon runs as; "" means
	// keystage.DefaultUser. When this process runs as another user (root
	// running show), each Certificate also tells what that user can read.
	ServiceUser string
	// Serving says this process is the daemon, whichever user it runs as
	// (root running serve by hand): each Certificate tells what this
	// process reads, not what the service user would.
	Serving bool

	// Nginx is nginx's main configuration file, read for the groupware
	// it proxies (SOGo's CalDAV, CardDAV and ActiveSync); empty means
	// /etc/nginx/nginx.conf. A host without nginx has no groupware.
	Nginx string
	// SOGoLibDirs are the directories searched for SOGo's ActiveSync
	// bundle (ActiveSync.SOGo, from package sogo-activesync); nil means
	// DefaultSOGoLibDirs.
	SOGoLibDirs []string
	// Probe asks a groupware backend (an address from the web server's
	// proxy_pass, "127.0.0.1:20000" or "unix:/path") for method on path
	// and returns the HTTP status. nil means a real HTTP request when Root
	// is the real file system, and no probe under another root (a copy
	// of a host's files is not this host): then nothing is advertised.
	Probe ProbeFunc

	Log *slog.Logger
	// Previous is the Snapshot being served, if any. When a database
	// table cannot be listed, its domains in Previous are carried forward
	// (with a warning), so a database outage does not drop known domains.
	Previous *Snapshot
	// PreviousFunc, when Previous is nil, is called the first time a
	// table cannot be listed, for the Snapshot whose domains to carry
	// forward (nil: none): a start reads its saved snapshot only when a
	// table is down. Build calls it at most once.
	PreviousFunc func() *Snapshot
}

// certExpirySoon is how close to its end a certificate draws a warning.
const certExpirySoon = 14 * 24 * time.Hour

// Build reads every source and returns the Snapshot they describe. It fails
// when Postfix's configuration is missing or broken, or Dovecot's is broken;
// a missing Dovecot, an unreachable database or a doubtful certificate are
// warnings in the Snapshot instead.
func Build(ctx context.Context, opt Options) (*Snapshot, error) {
	b := newBuilder(opt)
	dcErr, err := b.readConfig()
	if err != nil {
		return nil, err
	}
	if dcErr != nil {
		return nil, dcErr
	}
	b.loadCertificates()
	b.chooseHostnames()
	b.checkSigning()
	b.buildEndpoints()
	b.findGroupware(ctx)
	b.recordPorts()
	before := len(b.snap.warnings)
	b.buildDomains(ctx)
	b.snap.domainWarnings = slices.Clone(b.snap.warnings[before:])

	s := b.snap
	s.builtAt = time.Now()
	sort.Strings(s.files)
	s.files = slices.Compact(s.files)
	b.sealFingerprint()
	return s, nil
}

// newBuilder returns a builder for opt, its defaults filled in.
func newBuilder(opt Options) *builder {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	return &builder{opt: opt, snap: &Snapshot{aliasOf: map[string]string{}, listed: true}, sourceIndex: map[string]int{}, tableSeen: map[tableUse]bool{}}
}

// readConfig reads Postfix's configuration, failing when it is missing or
// broken, and Dovecot's: dcErr says why Dovecot's cannot be read (a
// missing Dovecot is a warning, not an error), and then b.dc stays nil.
func (b *builder) readConfig() (dcErr, err error) {
	opt := b.opt
	pfDir := opt.PostfixDir
	if pfDir == "" {
		pfDir = defaultPostfixDir(opt.Root)
	}
	b.read(path.Join(pfDir, "main.cf"), path.Join(pfDir, "master.cf"), "/etc/services")
	pf, err := postfix.Load(opt.Root, pfDir)
	if err != nil {
		return nil, fmt.Errorf("postfix: %w", withHint(err))
	}
	b.pf = pf

	dcPath := opt.DovecotConfig
	if dcPath == "" {
		dcPath = "/etc/dovecot/dovecot.conf"
	}
	b.read(dcPath)
	dc, err := dovecot.Load(opt.Root, dcPath)
	switch {
	case errors.Is(err, fs.ErrNotExist) && opt.DovecotConfig == "" && !exists(opt.Root, dcPath):
		b.warn("no Dovecot configuration at %s: no IMAP or POP3 server to advertise", dcPath)
	case err != nil:
		return fmt.Errorf("dovecot: %w", withHint(err)), nil
	default:
		b.dc = dc
		b.read(dc.Files()...)
		b.snap.globs = dc.Globs()
	}
	return nil, nil
}

// builder holds what Build has read so far.
type builder struct {
	opt  Options
	pf   *postfix.Config
	dc   *dovecot.Config // nil without Dovecot
	snap *Snapshot

	pfCerts []*loadedCert
	dcCerts []*loadedCert
	staged  *keystage.Manifest // read on first use; see manifest

	pfHost, dcHost string // the names each server's endpoints are advertised under

	sourceIndex map[string]int  // Snapshot.sources → index
	arena       strings.Builder // holds the alias targets the domains lack; see intern
	tableSeen   map[tableUse]bool
	aliasCand   map[string]string // alias domain → target, before both are known hosted

	srcHash   []uint64 // sourceHash of each of snap.sources
	domainSum uint64   // the fingerprint's share of the domains and alias targets: see putDomain
}

// tableUse is a lookup table as a source of mailbox or of alias domains.
type tableUse struct {
	file  string
	alias bool
}

// arenaChunk is the size of the strings alias targets are copied into.
const arenaChunk = 64 << 10

// intern returns a copy of name that shares its memory with the other
// names interned: many names are then a few allocations the garbage
// collector hardly notices. It relies on a strings.Builder never moving
// bytes it has written while it has room. name is a string, or the bytes
// of a line read from a file (Restore). The domains' own names live in
// Snapshot.domains (domainSet), which copies them itself; intern is for
// the alias targets that are not among them (see aliasName).
func intern[S string | []byte](b *builder, name S) string {
	if b.arena.Cap()-b.arena.Len() < len(name) {
		b.arena = strings.Builder{}
		b.arena.Grow(max(arenaChunk, len(name)))
	}
	start := b.arena.Len()
	switch n := any(name).(type) { // resolved when compiled: no conversion, no allocation
	case string:
		b.arena.WriteString(n)
	case []byte:
		b.arena.Write(n)
	}
	return b.arena.String()[start:]
}

// source returns the index of a domain source in Snapshot.sources.
func (b *builder) source(file string) int {
	if i, ok := b.sourceIndex[file]; ok {
		return i
	}
	b.snap.sources = append(b.snap.sources, file)
	b.hashSources()
	b.sourceIndex[file] = len(b.snap.sources) - 1
	return len(b.snap.sources) - 1
}

// read records host files the Snapshot depends on, read or not (a file
// that does not exist yet matters once it is created).
func (b *builder) read(paths ...string) {
	for _, p := range paths {
		if p != "" && path.IsAbs(p) {
			b.snap.files = append(b.snap.files, path.Clean(p))
		}
	}
}

func (b *builder) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if !slices.Contains(b.snap.warnings, msg) {
		b.snap.warnings = append(b.snap.warnings, msg)
	}
}

func defaultPostfixDir(root hostfs.Root) string {
	if !exists(root, "/etc/postfix/main.cf") && exists(root, "/opt/postfix/conf/main.cf") {
		return "/opt/postfix/conf"
	}
	return "/etc/postfix"
}

func exists(root hostfs.Root, p string) bool {
	_, err := root.Stat(p)
	return err == nil
}

// withHint adds the permission hint to a permission error.
func withHint(err error) error {
	if hint := hostfs.PermissionHint(err); hint != "" && !strings.Contains(err.Error(), hint) {
		return fmt.Errorf("%w (%s)", err, hint)
	}
	return err
}
