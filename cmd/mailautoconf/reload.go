package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/serve"
)

// A reloader rebuilds the snapshot and publishes it. Reload requests
// (SIGHUP, a changed file, the refresh timer) only set a flag on a channel
// with a buffer of one; one goroutine (run) does the rebuilds, so they
// never overlap and a burst of requests during one rebuild makes one more.
//
// The refresh timer rebuilds only when something the file watcher cannot
// see may have changed (refreshDue): a database table's cheap change check
// says so, a table could not be listed, a certificate's date is passed,
// or the last rebuild is relistEvery old on a host with database tables.
// A host whose domains all come from files is never rebuilt by the timer.
//
// A rebuild that fails leaves the previous Site serving. The previous
// Site's snapshot, with its database connections, is closed by the Store
// once the last request that started on it has finished.
//
// Each published snapshot that tells clients something new is saved to
// savePath; when the configuration cannot be built at start, the saved
// one is served instead (or nothing: 503) until a rebuild succeeds.
type reloader struct {
	opt     discover.Options
	store   *serve.Store
	guard   *serve.MissGuard
	watcher *discover.Watcher // nil: files are not watched
	log     *slog.Logger

	lastBuild time.Time // when the snapshot served was built; only first and run touch it

	savePath   string             // the last good snapshot's file; "": none is kept
	savedFP    uint64             // the fingerprint of what savePath holds, when savedKnown
	savedKnown bool               // only run touches savedFP, savedKnown, unsaved
	unsaved    *discover.Snapshot // published by first, to be saved by run

	mu       sync.Mutex
	fallback *fallback // non-nil while no snapshot of the present configuration is published

	kick    chan struct{} // SIGHUP or a file change: a reload systemd is told about
	refresh chan struct{} // the refresh timer: a quiet rebuild
	done    chan struct{} // closed when run returns
}

func newReloader(opt discover.Options, store *serve.Store, guard *serve.MissGuard, w *discover.Watcher, log *slog.Logger) *reloader {
	return &reloader{
		opt: opt, store: store, guard: guard, watcher: w, log: log,
		kick: make(chan struct{}, 1), refresh: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

// Kick asks for a reload; it never blocks.
func (r *reloader) Kick() {
	select {
	case r.kick <- struct{}{}:
	default: // one is pending already
	}
}

// Refresh asks for a rebuild to re-list the domains; it never blocks.
func (r *reloader) Refresh() {
	select {
	case r.refresh <- struct{}{}:
	default:
	}
}

// first builds and publishes the first snapshot. When the configuration
// cannot be built (a syntax error, an unreadable file), it publishes the
// last good snapshot saved by an earlier run instead, or nothing (the
// server answers 503), and watches the files so that the fix is noticed:
// a broken configuration must not keep the daemon from starting.
func (r *reloader) first(ctx context.Context) {
	start := time.Now()
	r.lastBuild = start
	opt := r.opt
	var saved *discover.Snapshot // read only if a table cannot be listed
	opt.PreviousFunc = func() *discover.Snapshot {
		saved = r.restoreForTables()
		return saved
	}
	snap, err := discover.Build(ctx, opt)
	if saved != nil {
		if err == nil {
			r.log.Info("tables unreachable at start: serving the domains the saved snapshot had from them",
				"tables", snap.Unreachable(), "file", r.savePath)
		}
		saved.Close()
	}
	if err == nil {
		for _, w := range snap.Warnings() {
			r.log.Warn(w)
		}
		var site *serve.Site
		if site, err = serve.NewSite(r.opt.Root, snap, r.log, serve.WithMissGuard(r.guard)); err != nil {
			snap.Close()
		} else {
			r.store.Publish(site)
		}
	}
	if err != nil {
		r.startFallback(err)
		return
	}
	releaseBuildMemory(snap)
	r.log.Info("snapshot built", "domains", snap.NumDomains(), "endpoints", len(snap.Endpoints()),
		"build", time.Since(start).Round(time.Microsecond))
	if r.watcher != nil {
		r.watcher.Set(snap.Files(), snap.Globs())
	}
	r.unsaved = snap
}

// startFallback publishes the saved snapshot, if there is a usable one,
// for a start whose configuration cannot be built (err), and watches the
// main files, the saved snapshot's and those err names.
func (r *reloader) startFallback(err error) {
	fb := &fallback{err: err}
	files := discover.MainFiles(r.opt)
	var globs []string
	if r.savePath != "" {
		saved, info, rerr := discover.Restore(r.savePath)
		switch {
		case errors.Is(rerr, discover.ErrNoSaved):
		case rerr != nil:
			r.log.Warn("cannot use the saved snapshot", "err", rerr)
			fb.savedErr = rerr
		default:
			site, serr := serve.NewSite(r.opt.Root, saved, r.log, serve.WithMissGuard(r.guard))
			if serr != nil {
				r.log.Warn("cannot serve the saved snapshot", "file", r.savePath, "err", serr)
				break
			}
			r.store.Publish(site)
			fb.saved = &info
			r.savedFP, r.savedKnown = info.Fingerprint, true
			files = append(files, saved.Files()...)
			globs = saved.Globs()
		}
	}
	if fb.saved != nil {
		r.log.Error("configuration error; serving the saved snapshot until it is fixed", "err", err,
			"saved", fb.saved.Saved.UTC().Format(time.RFC3339), "saved_by", fb.saved.Version, "domains", fb.saved.Domains, "file", fb.saved.Path)
	} else if fb.savedErr != nil {
		r.log.Error("configuration error and the saved snapshot is damaged; answering 503 until it is fixed", "err", err, "saved_err", fb.savedErr)
	} else {
		r.log.Error("configuration error and no saved snapshot; answering 503 until it is fixed", "err", err, "state_file", r.savePath)
	}
	if r.watcher != nil {
		// Watch what the broken configuration names too: the fix may be
		// in a file no snapshot has listed yet.
		r.watcher.Set(append(files, discover.ErrorFiles(err)...), globs)
	}
	r.mu.Lock()
	r.fallback = fb
	r.mu.Unlock()
}

// current returns the snapshot being served, nil when none is.
func (r *reloader) current() *discover.Snapshot {
	if site := r.store.Load(); site != nil {
		return site.Snapshot()
	}
	return nil
}

// status is the STATUS= line after a reload that returned err.
func (r *reloader) status(err error) string {
	r.mu.Lock()
	fb := r.fallback
	r.mu.Unlock()
	return statusLine(r.store.Load(), err, fb)
}

// save writes snap to savePath when it differs from what the file holds;
// a refresh that changes nothing writes nothing. A failure is a warning:
// serving goes on, only the next start with a broken configuration loses.
func (r *reloader) save(snap *discover.Snapshot) {
	if r.savePath == "" {
		return
	}
	if !r.savedKnown {
		// The whole file, once per process: a file whose header is
		// intact but whose body is damaged must be rewritten, not
		// trusted by its header's fingerprint until the broken start
		// that needs it.
		info, err := discover.VerifySaved(r.savePath)
		switch {
		case err == nil:
			r.savedFP, r.savedKnown = info.Fingerprint, true
		case !errors.Is(err, discover.ErrNoSaved):
			r.log.Warn("the saved snapshot is damaged; writing it again", "err", err)
		}
	}
	if r.savedKnown && snap.Fingerprint() == r.savedFP {
		return
	}
	if err := os.MkdirAll(filepath.Dir(r.savePath), 0o700); err != nil {
		r.log.Warn("cannot save the snapshot for a start with a broken configuration", "err", err)
		return
	}
	start := time.Now()
	info, err := discover.Save(r.savePath, snap, version, start)
	if err != nil {
		r.log.Warn("cannot save the snapshot for a start with a broken configuration", "err", err)
		return
	}
	r.savedFP, r.savedKnown = info.Fingerprint, true
	r.log.Info("snapshot saved", "file", r.savePath, "domains", info.Domains, "took", time.Since(start).Round(time.Microsecond))
}

// largeSnapshot is the domain count from which a build's garbage (the
// database rows, the previous snapshot) is returned to the system at once.
const largeSnapshot = 100_000

// releaseBuildMemory returns the memory a large build used and no longer
// needs to the system right away, instead of letting RSS stay at the
// build's peak for minutes until the runtime's scavenger gets to it. It
// costs one garbage collection, after a rebuild only.
func releaseBuildMemory(snap *discover.Snapshot) {
	if snap.NumDomains() >= largeSnapshot {
		debug.FreeOSMemory()
	}
}

// rebuildGCPercent is the garbage collector's target (GOGC) while a large
// snapshot is rebuilt.
const rebuildGCPercent = 25

// tightenGC lowers the garbage collector's target for the time of a large
// rebuild and returns the function that restores it. The previous snapshot
// and the new one are both live then, and the default GOGC of 100 would let
// the heap grow to twice both before collecting the rebuild's garbage (the
// streamed database rows): with a million domains, when each was a map
// entry, that was the difference between about 280 and 200 MiB at the
// peak, for a few more collections.
// GOGC=off is tightened too: a rebuild must not double the heap.
func tightenGC() (restore func()) {
	old := debug.SetGCPercent(rebuildGCPercent)
	if old >= 0 && old < rebuildGCPercent { // GOGC was set lower still
		debug.SetGCPercent(old)
	}
	return func() { debug.SetGCPercent(old) }
}

// run does the reloads asked for until ctx ends.
func (r *reloader) run(ctx context.Context) {
	defer close(r.done)
	if r.unsaved != nil {
		r.save(r.unsaved)
		r.unsaved = nil
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
			notify(r.log, daemon.SdNotifyReloading+"\n"+daemon.SdNotifyMonotonicUsec())
			err := r.reload(ctx, false)
			notify(r.log, daemon.SdNotifyReady+"\nSTATUS="+r.status(err))
		case <-r.refresh:
			if !r.refreshDue(ctx) {
				continue
			}
			err := r.reload(ctx, true)
			notify(r.log, "STATUS="+r.status(err))
		}
	}
}

// relistEvery is how often a host with database tables is rebuilt even
// though no change check saw a change: the safety net for what a check
// cannot see (sqltable's and ldaptable's Changed say what that is).
const relistEvery = time.Hour

// tableCheckTimeout bounds one refresh's change checks of every table.
const tableCheckTimeout = 30 * time.Second

// refreshDue tells whether a tick of the refresh timer should rebuild the
// snapshot. Files are the watcher's: without a database table, nothing
// but the clock (a certificate that comes to expire) and the servers'
// sockets (one stopped or started: Snapshot.SocketsChanged) make a
// rebuild say something new. With tables, each one's cheap change check is asked; a
// check that fails (the server is down) rebuilds, so that the outage is
// told and the known domains carried forward as before.
func (r *reloader) refreshDue(ctx context.Context) bool {
	r.mu.Lock()
	fb := r.fallback
	r.mu.Unlock()
	prev := r.current()
	if prev == nil || fb != nil || r.watcher == nil {
		// Nothing of the present configuration is served, or files are
		// not watched: only a rebuild can tell.
		return true
	}
	now := time.Now()
	if at := prev.StaleAt(r.lastBuild); !at.IsZero() && !now.Before(at) {
		r.log.Debug("refresh: a certificate date has passed", "at", at)
		return true
	}
	if changed, port := prev.SocketsChanged(); changed {
		// A server stopped or started (Postfix, Dovecot, SOGo) with no
		// file changed: its endpoints are held back or advertised again.
		r.log.Debug("refresh: a port listens otherwise than at the last build", "port", port)
		return true
	}
	if !prev.HasTables() {
		return false
	}
	if now.Sub(r.lastBuild) >= relistEvery {
		r.log.Debug("refresh: re-listing the domain tables", "last", r.lastBuild, "every", relistEvery)
		return true
	}
	start := time.Now()
	// A hung database must not hold the reloads SIGHUP and the watcher
	// ask for: past tableCheckTimeout the check counts as a change, and
	// the rebuild tells the outage.
	checkCtx, cancel := context.WithTimeout(ctx, tableCheckTimeout)
	defer cancel()
	changed, why, err := prev.TablesChanged(checkCtx)
	if changed {
		r.log.Debug("refresh: domain tables changed", "why", why, "err", err, "check", time.Since(start).Round(time.Microsecond))
	}
	return changed
}

// reload builds a new snapshot and publishes it, or leaves the current
// one serving and returns why not. A quiet one (the refresh timer) logs
// its success at debug level unless the domain count changed.
func (r *reloader) reload(ctx context.Context, quiet bool) error {
	prev := r.current() // nil: nothing served (a start with a broken configuration)
	r.mu.Lock()
	fb := r.fallback
	r.mu.Unlock()
	opt := r.opt
	opt.Previous = prev
	restoreGC := func() {}
	if prev != nil && prev.NumDomains() >= largeSnapshot {
		restoreGC = tightenGC()
	}
	defer func() { restoreGC() }()
	start := time.Now()
	snap, err := discover.Build(ctx, opt)
	if err != nil {
		r.failed(err, prev, fb)
		return err
	}
	var prevWarnings []string
	prevDomains := 0
	if prev != nil {
		prevWarnings, prevDomains = prev.Warnings(), prev.NumDomains()
	}
	for _, w := range snap.Warnings() {
		if !slices.Contains(prevWarnings, w) {
			r.log.Warn(w)
		}
	}
	site, err := serve.NewSite(r.opt.Root, snap, r.log, serve.WithMissGuard(r.guard))
	if err != nil {
		snap.Close()
		r.failed(err, prev, fb)
		return err
	}
	r.store.Publish(site)
	r.lastBuild = start
	took := time.Since(start).Round(time.Microsecond) // read, render, publish
	if r.watcher != nil {
		r.watcher.Set(snap.Files(), snap.Globs())
	}
	level := slog.LevelInfo
	if quiet && snap.NumDomains() == prevDomains && fb == nil {
		level = slog.LevelDebug
	}
	msg := "snapshot published"
	if fb != nil {
		msg = "configuration fixed: snapshot published"
		r.mu.Lock()
		r.fallback = nil
		r.mu.Unlock()
	}
	r.log.Log(ctx, level, msg, "domains", snap.NumDomains(), "endpoints", len(snap.Endpoints()),
		"previous_domains", prevDomains, "files", len(snap.Files()), "build", took)
	// The collection that returns the build's memory must run with the
	// usual target and without the previous snapshot (prev is not used
	// from here on), or it would set the next target from both snapshots.
	restoreGC()
	restoreGC = func() {}
	releaseBuildMemory(snap)
	r.save(snap)
	return nil
}

// failed logs a failed rebuild and keeps watching what the configuration
// names, with prev (nil: nothing) still served.
func (r *reloader) failed(err error, prev *discover.Snapshot, fb *fallback) {
	switch {
	case fb != nil && fb.saved != nil:
		r.log.Error("reload failed; still serving the saved snapshot", "err", err)
	case fb != nil:
		r.log.Error("reload failed; no snapshot, answering 503", "err", err)
	default:
		r.log.Error("reload failed; previous snapshot still serving", "err", err)
	}
	if fb != nil {
		r.mu.Lock()
		r.fallback = &fallback{err: err, saved: fb.saved, savedErr: fb.savedErr}
		r.mu.Unlock()
	}
	if r.watcher != nil {
		// Watch what the broken configuration names too: a file it
		// newly includes must be seen when it is fixed.
		files, globs := discover.MainFiles(r.opt), []string(nil)
		if prev != nil {
			files, globs = append(files, prev.Files()...), prev.Globs()
		}
		r.watcher.Set(append(files, discover.ErrorFiles(err)...), globs)
	}
}

// restoreForTables reads the saved snapshot for a first build some of
// whose tables cannot be listed (a database down at start, a lookup file
// unreadable), so that their domains are carried forward as on a rebuild
// during an outage, instead of a restart forgetting them. It returns nil
// without a usable saved snapshot.
func (r *reloader) restoreForTables() *discover.Snapshot {
	if r.savePath == "" {
		return nil
	}
	saved, _, err := discover.Restore(r.savePath)
	if err != nil {
		if !errors.Is(err, discover.ErrNoSaved) {
			r.log.Warn("cannot use the saved snapshot", "err", err)
		}
		return nil
	}
	return saved
}
