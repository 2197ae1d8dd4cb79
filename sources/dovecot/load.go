package dovecot

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// maxIncludeDepth bounds nested includes that are not loops (a/b/a/b... via
// globs cannot happen, but a very deep chain of distinct files can).
const maxIncludeDepth = 64

// maxIncludes bounds the files read in all, against include trees that
// multiply through symbolic links to the same file.
const maxIncludes = 10000

// Load reads the configuration whose main file is the host path p (normally
// "/etc/dovecot/dovecot.conf") under root, with everything it includes.
// Every problem found is returned, joined; each names its file and line.
func Load(root hostfs.Root, p string) (*Config, error) {
	l := &loader{root: root, ev: newEvaluator()}
	l.ev.debian = looksDebian(root)
	if err := l.file(p, nil); err != nil {
		return nil, err // the main file itself is unreadable
	}
	l.ev.finish()
	c := l.ev.config(l.files)
	c.globs = l.globs
	errs := append(l.errs, l.ev.errs...)
	errs = append(errs, c.compute()...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// looksDebian reports whether root holds a Debian-family system, whose
// Dovecot has an empty built-in protocols default (Debian's split-protocols
// patch) and adds protocols from /usr/share/dovecot/protocols.d.
func looksDebian(root hostfs.Root) bool {
	for _, p := range []string{"/etc/debian_version", "/usr/share/dovecot/protocols.d"} {
		if _, err := root.Stat(p); err == nil {
			return true
		}
	}
	return false
}

type loader struct {
	root  hostfs.Root
	ev    *evaluator
	files []string // host paths read, in order, without duplicates
	globs []string // include patterns with wildcards, as host paths
	stack []string // the include chain being read, for loop detection
	reads int
	errs  []error
}

func (l *loader) addFile(p string) {
	for _, f := range l.files {
		if f == p {
			return
		}
	}
	l.files = append(l.files, p)
}

// file reads and applies the host file p. from is the !include line that
// names it, nil for the main file; an unreadable main file is returned, any
// other problem is collected.
func (l *loader) file(p string, from *Line) error {
	data, err := l.root.ReadFile(p)
	if err != nil {
		err = fmt.Errorf("read %s: %w", p, err)
		if h := hostfs.PermissionHint(err); h != "" {
			err = fmt.Errorf("%w (%s)", err, h)
		}
		if from == nil {
			return err
		}
		l.errs = append(l.errs, &hostfs.PosError{Pos: from.Pos, Err: err})
		return nil
	}
	l.addFile(p)
	l.stack = append(l.stack, p)
	defer func() { l.stack = l.stack[:len(l.stack)-1] }()
	f, errs := parseLines(p, data)
	l.errs = append(l.errs, errs...)
	for i := range f.Lines {
		ln := &f.Lines[i]
		if ln.Kind == LineInclude {
			l.include(ln)
			continue
		}
		if ln.Kind == LineSetting && ln.ValueKind == FromFile {
			l.addFile(hostPath(ln.Pos.File, ln.Value))
		}
		l.ev.apply(l.root, ln)
	}
	return nil
}

// hostPath resolves a path written in file against that file's directory.
func hostPath(file, p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Join(path.Dir(file), p)
}

func (l *loader) include(ln *Line) {
	pattern := hostPath(ln.Pos.File, ln.Value)
	if strings.Contains(pattern, "protocols.d") {
		l.ev.debian = true // Debian's dovecot.conf; see looksDebian
	}
	directive := "!include"
	if ln.Try {
		directive = "!include_try"
	}
	fail := func(format string, args ...any) {
		l.errs = append(l.errs, &hostfs.PosError{Pos: ln.Pos, Err: fmt.Errorf(directive+" "+ln.Value+": "+format, args...)})
	}
	var matches []string
	for _, alt := range expandBraces(pattern) {
		if !hasGlobMeta(alt) {
			fi, err := l.root.Stat(alt)
			switch {
			case err == nil && fi.IsDir():
				if !ln.Try {
					fail("%s is a directory", alt)
				}
			case err == nil:
				matches = append(matches, alt)
			case errors.Is(err, fs.ErrNotExist) && ln.Try:
			default:
				if h := hostfs.PermissionHint(err); h != "" {
					fail("%v (%s)", err, h)
				} else {
					fail("%v", err)
				}
			}
			continue
		}
		if !slices.Contains(l.globs, alt) {
			l.globs = append(l.globs, alt)
		}
		found, err := l.root.Glob(alt)
		if err != nil {
			fail("%v", err)
			continue
		}
		var files []string
		for _, m := range found {
			if hiddenMatch(alt, m) {
				continue
			}
			if fi, err := l.root.Stat(m); err == nil && fi.IsDir() {
				continue
			}
			files = append(files, m)
		}
		sort.Strings(files)
		if len(files) == 0 && !ln.Try {
			fail("no matching files")
		}
		matches = append(matches, files...)
	}
	for _, m := range matches {
		if l.inStack(m) {
			fail("recursive include of %s", m)
			continue
		}
		if len(l.stack) >= maxIncludeDepth {
			fail("includes nested more than %d deep", maxIncludeDepth)
			return
		}
		if l.reads++; l.reads > maxIncludes {
			fail("more than %d included files", maxIncludes)
			return
		}
		_ = l.file(m, ln)
	}
}

func (l *loader) inStack(p string) bool {
	for _, s := range l.stack {
		if s == p {
			return true
		}
	}
	return false
}

func hasGlobMeta(s string) bool { return strings.ContainsAny(s, `*?[`) }

// hiddenMatch reports whether a wildcard component of pattern matched a name
// starting with "." that the component does not spell out, which glob(3)
// never matches.
func hiddenMatch(pattern, match string) bool {
	pc := strings.Split(path.Clean(pattern), "/")
	mc := strings.Split(match, "/")
	if len(pc) != len(mc) {
		return false
	}
	for i := range pc {
		if hasGlobMeta(pc[i]) && strings.HasPrefix(mc[i], ".") && !strings.HasPrefix(pc[i], ".") {
			return true
		}
	}
	return false
}

// expandBraces expands glob(3)'s GLOB_BRACE alternatives: "a{b,c}d" is
// "abd" and "acd". Unbalanced braces are left as they are.
func expandBraces(s string) []string {
	open := strings.IndexByte(s, '{')
	if open < 0 {
		return []string{s}
	}
	depth, closeAt := 0, -1
	var commas []int
	for i := open; i < len(s) && closeAt < 0; i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				closeAt = i
			}
		case ',':
			if depth == 1 {
				commas = append(commas, i)
			}
		}
	}
	if closeAt < 0 {
		return []string{s}
	}
	var out []string
	prev := open + 1
	for _, c := range append(commas, closeAt) {
		for _, tail := range expandBraces(s[prev:c] + s[closeAt+1:]) {
			out = append(out, s[:open]+tail)
		}
		prev = c + 1
		if len(out) > 1024 {
			break
		}
	}
	return out
}
