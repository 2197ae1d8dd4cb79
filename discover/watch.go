package discover

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// A Watcher tells when a Snapshot's files change. It watches their parent
// directories, not the files: editors save by writing a new file and
// renaming it over the old one, and certbot renews by pointing a symbolic
// link at a new file, and both replace the inode a file watch would hold.
// For a symbolic link it watches the directory of the link and of each
// target, so that either changing is seen.
//
// Events for other files in those directories are ignored. A change of
// mode or owner counts (a lookup file made unreadable is an outage, and
// readable again its end); a burst of events (an editor's save, a postmap
// run) ends in one call after a quiet period.
type Watcher struct {
	root  hostfs.Root
	quiet time.Duration
	log   *slog.Logger
	fsw   *fsnotify.Watcher

	mu     sync.Mutex
	wanted map[string]bool     // real paths whose events count
	globs  map[string][]string // real directory → file name patterns whose events count
	dirs   map[string]bool     // real directories being watched
}

// NewWatcher returns a Watcher for files under root that calls back after
// quiet has passed without another event. It watches nothing until Set.
func NewWatcher(root hostfs.Root, quiet time.Duration, log *slog.Logger) (*Watcher, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return &Watcher{root: root, quiet: quiet, log: log, fsw: fsw, dirs: map[string]bool{}}, nil
}

// Close stops watching.
func (w *Watcher) Close() error { return w.fsw.Close() }

// Set replaces what is watched by the host files and host path patterns
// given (a Snapshot's Files and Globs). A directory that cannot be watched
// (it does not exist) is logged at debug level and skipped: the files in
// it cannot change without it being created, which a rebuild would see.
func (w *Watcher) Set(files, globs []string) {
	wanted := map[string]bool{}
	globDirs := map[string][]string{}
	dirs := map[string]bool{}
	for _, p := range files {
		for _, real := range w.chain(p) {
			wanted[real] = true
			dirs[filepath.Dir(real)] = true
		}
	}
	for _, g := range globs {
		dir, base := path.Split(g)
		if strings.ContainsAny(dir, `*?[`) {
			continue // a wildcard directory: only its current matches are watched
		}
		real, err := w.root.Resolve(path.Clean(dir))
		if err != nil {
			continue
		}
		globDirs[real] = append(globDirs[real], base)
		dirs[real] = true
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	for d := range w.dirs {
		if !dirs[d] {
			w.fsw.Remove(d) // gone already when the directory was removed
			delete(w.dirs, d)
		}
	}
	for d := range dirs {
		if w.dirs[d] {
			continue
		}
		if err := w.fsw.Add(d); err != nil {
			w.log.Debug("cannot watch directory", "dir", d, "err", err)
			continue
		}
		w.dirs[d] = true
	}
	w.wanted, w.globs = wanted, globDirs
}

// maxChain bounds the symbolic links followed for one file, as the kernel
// does (ELOOP).
const maxChain = 40

// chain returns the real paths of the host file p's directory entry and,
// when it is a symbolic link, of every link and file it leads to.
func (w *Watcher) chain(p string) []string {
	var out []string
	rootDir := w.root.Dir()
	for range maxChain {
		dir, err := w.root.Resolve(path.Dir(p))
		if err != nil {
			break
		}
		entry := filepath.Join(dir, path.Base(p))
		out = append(out, entry)
		fi, err := os.Lstat(entry)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			break
		}
		target, err := os.Readlink(entry)
		if err != nil {
			break
		}
		if path.IsAbs(target) {
			p = path.Clean(target)
			continue
		}
		// Relative to the link's real directory, as a host path.
		hostDir := filepath.ToSlash(dir)
		if rootDir != "/" {
			hostDir = "/" + strings.TrimPrefix(strings.TrimPrefix(hostDir, filepath.ToSlash(rootDir)), "/")
		}
		p = path.Join(hostDir, target)
	}
	return out
}

// matches reports whether an event on the real path name counts.
func (w *Watcher) matches(name string) bool {
	name = filepath.Clean(name)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.wanted[name] {
		return true
	}
	for _, pat := range w.globs[filepath.Dir(name)] {
		if ok, _ := path.Match(pat, filepath.Base(name)); ok {
			return true
		}
	}
	return false
}

// Run calls changed, from Run's goroutine, each time a watched file has
// changed and no further event came for the quiet period, until ctx ends.
// Watch errors (an inotify queue overflow) are logged and count as a
// change, since an event may have been lost.
func (w *Watcher) Run(ctx context.Context, changed func()) {
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			// A change of mode or owner counts too: a lookup file made
			// unreadable, or readable again, changes the snapshot.
			if !w.matches(ev.Name) {
				continue // a sibling file
			}
			w.log.Debug("file changed", "file", ev.Name, "op", ev.Op.String())
			settle.Reset(w.quiet) // each event restarts the quiet period
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			w.log.Warn("watching files", "err", err)
			settle.Reset(w.quiet)
		case <-settle.C:
			changed()
		}
	}
}

// ErrorFiles returns the host files an error from Build names (positions
// of syntax errors, files that could not be read), so that a watcher can
// also watch files a failed Build met but never got to list.
func ErrorFiles(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
			return
		case *hostfs.PosError:
			if path.IsAbs(e.Pos.File) {
				out = append(out, e.Pos.File)
			}
		case *fs.PathError:
			if path.IsAbs(e.Path) {
				out = append(out, e.Path)
			}
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}
