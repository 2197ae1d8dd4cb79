// Package hostfs reads a mail host's files as a process chrooted at a root
// directory would, and names positions inside them.
//
// Every path a source handles is the path as the mail server writes it
// ("/etc/postfix/main.cf", "ssl_cert = </etc/ssl/certs/x.pem"). A Root maps
// such a path to the file that holds it: with the empty root that is the path
// itself; with --root DIR it is the same path under DIR, and absolute symbolic
// links met on the way are resolved inside DIR too, so a copy of a host's /etc
// (certbot's live/ symlinks included) reads exactly as it does on the host.
//
// Errors and positions always use the host path, never the path under the
// root, so a message names the file the admin knows.
package hostfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// A Root is the directory that stands for "/" on the mail host.
// The zero value reads the real file system.
type Root struct {
	dir string // cleaned absolute directory, or "" for the real "/"
}

// New returns a Root at dir; "" and "/" mean the real file system.
func New(dir string) (Root, error) {
	if dir == "" || dir == "/" {
		return Root{}, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Root{}, fmt.Errorf("root %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return Root{}, fmt.Errorf("root: %w", err)
	}
	if !fi.IsDir() {
		return Root{}, fmt.Errorf("root %s: not a directory", dir)
	}
	return Root{dir: abs}, nil
}

// Dir returns the root directory, or "/" for the real file system.
func (r Root) Dir() string {
	if r.dir == "" {
		return "/"
	}
	return r.dir
}

// maxLinks bounds symbolic link resolution, as the kernel does (ELOOP).
const maxLinks = 40

// Resolve returns the real file system path of the host path p, following
// symbolic links inside the root. p must be absolute. The file need not exist:
// components after the first missing one are appended unresolved.
func (r Root) Resolve(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", &fs.PathError{Op: "resolve", Path: p, Err: errors.New("not an absolute path")}
	}
	if r.dir == "" {
		return path.Clean(p), nil // the kernel follows the links
	}
	resolved, err := r.Walk(p, nil)
	if err != nil {
		return "", err
	}
	return r.real(resolved), nil
}

// Walk resolves the host path p component by component, as the kernel
// would in a process chrooted at the root (for the zero Root too): "." and
// ".." (never above "/"), symbolic links relative to their directory or,
// when absolute, to the root, at most maxLinks of them. It returns the
// resolved host path, which names no link on the way. The file need not
// exist: components after the first missing one are appended unresolved.
//
// When fn is not nil, Walk calls it before each name it looks up, with
// the host path and FileInfo of the directory the name is looked up in
// ("/" first): the directories a process needs search permission on to
// reach p. A directory that cannot be examined, a missing one included,
// ends the walk with its error, and so does an error fn returns.
func (r Root) Walk(p string, fn func(hostPath string, fi fs.FileInfo) error) (string, error) {
	if !path.IsAbs(p) {
		return "", &fs.PathError{Op: "resolve", Path: p, Err: errors.New("not an absolute path")}
	}
	// resolved is the host path resolved so far; rest holds the components
	// still to walk.
	resolved := "/"
	rest := splitPath(p)
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		if c == "." {
			continue
		}
		if fn != nil {
			fi, err := os.Stat(r.real(resolved))
			if err != nil {
				return "", &fs.PathError{Op: "stat", Path: resolved, Err: unwrapPathError(err)}
			}
			if err := fn(resolved, fi); err != nil {
				return "", err
			}
		}
		if c == ".." {
			resolved = path.Dir(resolved) // never above "/"
			continue
		}
		next := path.Join(resolved, c)
		fi, err := os.Lstat(r.real(next))
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			// Missing, unreadable or an ordinary file: the open that follows
			// reports the error with the host path.
			resolved = next
			continue
		}
		links++
		if links > maxLinks {
			return "", &fs.PathError{Op: "resolve", Path: p, Err: syscall.ELOOP}
		}
		target, err := os.Readlink(r.real(next))
		if err != nil {
			return "", &fs.PathError{Op: "readlink", Path: next, Err: unwrapPathError(err)}
		}
		if path.IsAbs(target) {
			resolved = "/"
		}
		rest = append(splitPath(target), rest...)
	}
	return resolved, nil
}

// real returns the real file system path of the host path hp, which names
// no link.
func (r Root) real(hp string) string {
	return filepath.Join(r.Dir(), filepath.FromSlash(hp))
}

func splitPath(p string) []string {
	var parts []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			parts = append(parts, c)
		}
	}
	return parts
}

// unwrapPathError drops the *fs.PathError around err, whose path would name
// the file under the root rather than the host path.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ReadFile reads the host file p. Its errors are *fs.PathError naming p.
func (r Root) ReadFile(p string) ([]byte, error) {
	real, err := r.Resolve(p)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(real)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: p, Err: unwrapPathError(err)}
	}
	return b, nil
}

// ReadRegular reads the host file p as ReadFile does, but only when it is
// a regular file of at most limit bytes: a device (/dev/zero), a FIFO or a
// huge file named where a key or certificate belongs is an error, not a
// hang or the memory of the process. It opens p non-blocking, so that a
// FIFO cannot stall the open either.
func (r Root) ReadRegular(p string, limit int64) ([]byte, error) {
	real, err := r.Resolve(p)
	if err != nil {
		return nil, err
	}
	b, err := ReadRegularFile(real, 0, limit)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: p, Err: unwrapPathError(err)}
	}
	return b, nil
}

// ErrNotRegular and ErrTooLarge are the errors of ReadRegularFile for a
// file that is not a regular one, or larger than allowed.
var (
	ErrNotRegular = errors.New("not a regular file")
	ErrTooLarge   = errors.New("file too large")
)

// ReadRegularFile reads the file at the real path name, opened with flag
// (e.g. syscall.O_NOFOLLOW) added to O_RDONLY|O_NONBLOCK, when it is a
// regular file of at most limit bytes.
func ReadRegularFile(name string, flag int, limit int64) ([]byte, error) {
	f, err := OpenRegular(name, flag)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%w: %d bytes, at most %d expected", ErrTooLarge, fi.Size(), limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit { // grew while read
		return nil, fmt.Errorf("%w: over %d bytes", ErrTooLarge, limit)
	}
	return b, nil
}

// OpenRegular opens the file at the real path name for reading, with flag
// (e.g. syscall.O_NOFOLLOW) added to O_RDONLY|O_NONBLOCK, when it is a
// regular file: a FIFO or a device in its place is refused (an error
// wrapping ErrNotRegular) without the open or a read hanging.
func OpenRegular(name string, flag int) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|flag, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w (%s)", ErrNotRegular, fi.Mode().Type())
	}
	return f, nil
}

// Stat returns the FileInfo of the host file p, following links.
func (r Root) Stat(p string) (fs.FileInfo, error) {
	real, err := r.Resolve(p)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: p, Err: unwrapPathError(err)}
	}
	return fi, nil
}

// Glob returns the host paths matching pattern (path.Match syntax in the last
// components), sorted. A pattern with no metacharacters matches itself only
// when that file exists. Like filepath.Glob, the only error is a bad pattern.
func (r Root) Glob(pattern string) ([]string, error) {
	if !path.IsAbs(pattern) {
		return nil, fmt.Errorf("glob %s: not an absolute path", pattern)
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, fmt.Errorf("glob %s: %w", pattern, err)
	}
	matches := []string{"/"}
	for _, c := range splitPath(pattern) {
		var next []string
		for _, dir := range matches {
			if !hasMeta(c) {
				p := path.Join(dir, c)
				if _, err := r.lstatResolved(p); err == nil {
					next = append(next, p)
				}
				continue
			}
			real, err := r.Resolve(dir)
			if err != nil {
				continue
			}
			entries, err := os.ReadDir(real)
			if err != nil {
				continue
			}
			for _, e := range entries {
				if ok, _ := path.Match(c, e.Name()); ok {
					next = append(next, path.Join(dir, e.Name()))
				}
			}
		}
		matches = next
	}
	sort.Strings(matches)
	return matches, nil
}

func (r Root) lstatResolved(p string) (fs.FileInfo, error) {
	real, err := r.Resolve(p)
	if err != nil {
		return nil, err
	}
	return os.Lstat(real)
}

func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// Pos is a position in a host file: the file's host path and a 1-based line.
// Line 0 means the whole file; an empty File means a built-in default.
type Pos struct {
	File string
	Line int
}

// String formats p as "file:line", "file", or "default".
func (p Pos) String() string {
	switch {
	case p.File == "":
		return "default"
	case p.Line <= 0:
		return p.File
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// IsZero reports whether p names no file (a built-in default).
func (p Pos) IsZero() bool { return p.File == "" }

// A PosError is a problem at a position of a file. It prints as
// "file:line: message", the form editors and grep understand.
type PosError struct {
	Pos Pos
	Err error
}

func (e *PosError) Error() string { return e.Pos.String() + ": " + e.Err.Error() }
func (e *PosError) Unwrap() error { return e.Err }

// Errorf returns a *PosError at file:line.
func Errorf(file string, line int, format string, args ...any) error {
	return &PosError{Pos: Pos{File: file, Line: line}, Err: fmt.Errorf(format, args...)}
}

// PermissionHint returns a sentence that tells how to fix err when it is a
// permission error on a file the daemon must read, or "" otherwise.
func PermissionHint(err error) string {
	if !errors.Is(err, fs.ErrPermission) {
		return ""
	}
	return "mailautoconf reads the mail server's files read-only; Postfix's lookup files are usually root:postfix 0640 and Dovecot's root:dovecot, so run it with those supplementary groups (the packages add the mailautoconf user to the postfix, dovecot and ssl-cert groups that exist)"
}
