package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"slices"
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
// A rebuild that fails leaves the previous Site serving. The previous
// Site's snapshot, with its database connections, is closed by the Store
// once the last request that started on it has finished.
type reloader struct {
	opt     discover.Options
	store   *serve.Store
	guard   *serve.MissGuard
	watcher *discover.Watcher // nil: files are not watched
	log     *slog.Logger

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

// first builds and publishes the first snapshot; its failure is the
// start's failure, since there is nothing to serve instead.
func (r *reloader) first(ctx context.Context) error {
	start := time.Now()
	snap, err := discover.Build(ctx, r.opt)
	if err != nil {
		return err
	}
	for _, w := range snap.Warnings() {
		r.log.Warn(w)
	}
	site, err := serve.NewSite(r.opt.Root, snap, r.log, serve.WithMissGuard(r.guard))
	if err != nil {
		snap.Close()
		return err
	}
	r.store.Publish(site)
	releaseBuildMemory(snap)
	r.log.Info("snapshot built", "domains", snap.NumDomains(), "endpoints", len(snap.Endpoints()),
		"build", time.Since(start).Round(time.Microsecond))
	if r.watcher != nil {
		r.watcher.Set(snap.Files(), snap.Globs())
	}
	return nil
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
// streamed database rows): with a million domains that is the difference
// between about 280 and 200 MiB at the peak, for a few more collections.
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
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
			notify(r.log, daemon.SdNotifyReloading+"\n"+daemon.SdNotifyMonotonicUsec())
			err := r.reload(ctx, false)
			notify(r.log, daemon.SdNotifyReady+"\nSTATUS="+statusLine(r.store.Load().Snapshot(), err))
		case <-r.refresh:
			err := r.reload(ctx, true)
			notify(r.log, "STATUS="+statusLine(r.store.Load().Snapshot(), err))
		}
	}
}

// reload builds a new snapshot and publishes it, or leaves the current
// one serving and returns why not. A quiet one (the refresh timer) logs
// its success at debug level unless the domain count changed.
func (r *reloader) reload(ctx context.Context, quiet bool) error {
	prev := r.store.Load().Snapshot()
	opt := r.opt
	opt.Previous = prev
	restoreGC := func() {}
	if prev.NumDomains() >= largeSnapshot {
		restoreGC = tightenGC()
	}
	defer func() { restoreGC() }()
	start := time.Now()
	snap, err := discover.Build(ctx, opt)
	if err != nil {
		r.log.Error("reload failed; previous snapshot still serving", "err", err)
		if r.watcher != nil {
			// Watch what the broken configuration names too: a file it
			// newly includes must be seen when it is fixed.
			files := append(prev.Files(), discover.ErrorFiles(err)...)
			r.watcher.Set(files, prev.Globs())
		}
		return err
	}
	for _, w := range snap.Warnings() {
		if !slices.Contains(prev.Warnings(), w) {
			r.log.Warn(w)
		}
	}
	site, err := serve.NewSite(r.opt.Root, snap, r.log, serve.WithMissGuard(r.guard))
	if err != nil {
		snap.Close()
		r.log.Error("reload failed; previous snapshot still serving", "err", err)
		return err
	}
	r.store.Publish(site)
	took := time.Since(start).Round(time.Microsecond) // read, render, publish
	if r.watcher != nil {
		r.watcher.Set(snap.Files(), snap.Globs())
	}
	level := slog.LevelInfo
	if quiet && snap.NumDomains() == prev.NumDomains() {
		level = slog.LevelDebug
	}
	r.log.Log(ctx, level, "snapshot published", "domains", snap.NumDomains(), "endpoints", len(snap.Endpoints()),
		"previous_domains", prev.NumDomains(), "files", len(snap.Files()), "build", took)
	// The collection that returns the build's memory must run with the
	// usual target and without the previous snapshot (prev is not used
	// from here on), or it would set the next target from both snapshots.
	restoreGC()
	restoreGC = func() {}
	releaseBuildMemory(snap)
	return nil
}
