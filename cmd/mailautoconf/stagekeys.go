package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/sources/keystage"
)

// runStageKeys is the unit's privileged step (ExecStartPre=+ and
// ExecReload=+, as root): it copies the certificate and key files Postfix
// and Dovecot name that the service user cannot read into the staging
// directory the daemon reads them from (package keystage). It is not in
// the usage: an admin never needs to run it by hand.
//
// It never fails the start: whatever goes wrong is logged and it exits 0.
// With Dovecot's configuration broken it stages Postfix's pairs and keeps
// the other copies; with Postfix's broken it stages nothing and leaves the
// previous copies (RuntimeDirectoryPreserve=restart keeps them across a
// restart), which the daemon's last good snapshot may still sign with.
func runStageKeys(_ context.Context, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("stage-keys", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var common commonFlags
	common.register(fs)
	user := fs.String("user", keystage.DefaultUser, "the service `user` the copies are for")
	dir := fs.String("dir", keystage.Dir, "the staging `directory` (a host path, under --root)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "stage-keys: unexpected argument %q\n", fs.Arg(0))
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	log := common.logger(stderr, slog.LevelInfo).With("step", "stage-keys")
	stageKeys(&common, *user, *dir, log)
	return nil
}

// stageKeys does runStageKeys' work, logging instead of failing.
func stageKeys(common *commonFlags, user, dir string, log *slog.Logger) {
	opt, err := common.options(log)
	if err != nil {
		log.Warn("nothing staged", "err", err)
		return
	}
	acct, err := keystage.LookupAccount(opt.Root, user)
	if err != nil {
		log.Warn("nothing staged: no service user", "err", err)
		return
	}
	certs, warnings, err := discover.Certificates(opt)
	complete := true
	switch {
	case errors.Is(err, discover.ErrIncomplete):
		// Postfix's pairs are staged; Dovecot's staged before are kept.
		log.Warn("Dovecot's configuration cannot be read: staging Postfix's certificates, keeping the copies staged before", "err", err)
		complete = false
	case err != nil:
		// Postfix's configuration names no pair this step could trust:
		// the daemon's saved snapshot is the service user's file, and
		// root must not copy the keys it names.
		log.Warn("nothing staged: the mail server's configuration cannot be read; previous copies kept", "err", err)
		return
	}
	for _, w := range warnings {
		log.Debug("configuration", "warning", w)
	}
	var pairs []keystage.Pair
	for _, c := range certs {
		pairs = append(pairs, keystage.Pair{Cert: c.Path, Key: c.KeyPath})
	}
	m, err := keystage.Stage(opt.Root, dir, acct, pairs, complete, log)
	if err != nil {
		log.Warn("staging failed", "dir", dir, "err", err)
		return
	}
	log.Info("staged", "files", len(m.Files), "dir", dir, "user", user)
}
