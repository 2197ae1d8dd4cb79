package apache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/webroute"
)

// A Layout is where a distribution's httpd finds its configuration.
type Layout struct {
	// Conf is the main configuration file (httpd -f), ServerRoot the
	// directory relative paths start from (httpd -d, overridden by a
	// ServerRoot directive).
	Conf, ServerRoot string
	// Envvars is the shell file apache2ctl and the systemd unit source
	// for the variables the configuration names (${APACHE_LOG_DIR}),
	// or "" for none.
	Envvars string
}

// The layouts of Debian's apache2 and Red Hat's httpd packages.
var (
	Debian = Layout{Conf: "/etc/apache2/apache2.conf", ServerRoot: "/etc/apache2", Envvars: "/etc/apache2/envvars"}
	RedHat = Layout{Conf: "/etc/httpd/conf/httpd.conf", ServerRoot: "/etc/httpd"}
)

// Layouts lists the layouts Find tries, in order.
var Layouts = []Layout{Debian, RedHat}

// StaticModules are the modules compiled into Debian's and Red Hat's
// httpd ("apache2 -l"), which <IfModule> finds without LoadModule.
var StaticModules = []string{"core.c", "mod_so.c", "mod_watchdog.c", "http_core.c", "mod_log_config.c", "mod_logio.c", "mod_version.c", "mod_unixd.c"}

// Version is the httpd version <IfVersion> is evaluated against: only
// its major and minor numbers are trusted (see evalIfVersion).
const Version = "2.4"

// maxFileSize bounds each configuration file read.
const maxFileSize = 16 << 20

// maxIncludeDepth is httpd's AP_MAX_INCLUDE_DEPTH.
const maxIncludeDepth = 128

// ErrNoConfig is wrapped by Read's and Find's error when the main
// configuration file does not exist: httpd is not installed there, which
// is no fault. A missing included file is a broken configuration.
var ErrNoConfig = errors.New("no Apache httpd configuration")

// A File is one file httpd reads, each time it reads it.
type File struct {
	Path string // host path
	// Depth is 0 for the main file, 1 for a file it includes, ...
	Depth int
	// Include is the Include directive that read the file (zero for the
	// main file). IncludeLine is the number DUMP_INCLUDES prints: the
	// last line of the Include httpd executed last, which for the second
	// and later matches of a glob is that of the last nested Include
	// read before them, if any.
	Include     hostfs.Pos
	IncludeLine int
}

// A Module is a module LoadModule loaded.
type Module struct {
	Name string // the module identifier, "proxy_module"
	File string // the shared object as written
	Pos  hostfs.Pos
}

// A Config is a whole httpd configuration as httpd reads it: the main
// file's directives with every Include replaced by the directives of the
// files it names, and the conditional sections decided.
type Config struct {
	Layout     Layout
	ServerRoot string // the effective ServerRoot after the last ServerRoot directive
	Directives []*Directive
	// Files lists each file read, in the order httpd opens it, once
	// per inclusion (the list "apache2 -t -D DUMP_INCLUDES" prints).
	Files   []File
	Modules []Module
	// Defines are the parameters <IfDefine> tests and the variables
	// ${NAME} names: Define's, and then the environment's (envvars).
	Defines map[string]string
	Env     map[string]string
	// Notes lists what the reading could not decide or passed over:
	// undefined variables, <IfDirective> sections, ...
	Notes []string
}

// Options change how Read reads.
type Options struct {
	// Defines are the -D parameters httpd was started with.
	Defines []string
	// Env is the environment ${VAR} falls back to; Read adds the
	// exported variables of Layout.Envvars to it.
	Env map[string]string
}

// Find returns the first of Layouts whose main file exists under root,
// or an error wrapping ErrNoConfig.
func Find(root hostfs.Root) (Layout, error) {
	for _, l := range Layouts {
		if fi, err := root.Stat(l.Conf); err == nil && fi.Mode().IsRegular() {
			return l, nil
		}
	}
	var names []string
	for _, l := range Layouts {
		names = append(names, l.Conf)
	}
	return Layout{}, fmt.Errorf("%w: none of %s", ErrNoConfig, strings.Join(names, ", "))
}

// Read reads the configuration of layout l under root, as httpd does:
// Include and IncludeOptional (paths relative to ServerRoot, globs whose
// matches are read in byte order, directories read whole), <IfModule>
// against the modules LoadModule loaded so far, <IfDefine> against Define
// and opts.Defines, ${VAR} from Define and the environment, and
// backslash continuations. Every error names file:line. An absent main
// file gives an error wrapping ErrNoConfig.
func Read(root hostfs.Root, l Layout, opts Options) (*Config, error) {
	if !path.IsAbs(l.Conf) || !path.IsAbs(l.ServerRoot) {
		return nil, fmt.Errorf("apache configuration %s (ServerRoot %s): not an absolute path", l.Conf, l.ServerRoot)
	}
	c := &Config{Layout: l, ServerRoot: path.Clean(l.ServerRoot), Defines: map[string]string{}, Env: map[string]string{}}
	for k, v := range opts.Env {
		c.Env[k] = v
	}
	if l.Envvars != "" {
		if b, err := root.ReadRegular(l.Envvars, maxFileSize); err == nil {
			for k, v := range parseEnvvars(b) {
				c.Env[k] = v
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			c.Notes = append(c.Notes, fmt.Sprintf("%s not read: %v", l.Envvars, err))
		}
	}
	r := &reader{root: root, c: c, include: true, noted: map[string]bool{}}
	r.defined = append(r.defined, opts.Defines...)
	ds, err := r.readFile(l.Conf, 0, hostfs.Pos{})
	if err != nil {
		if pe := (*hostfs.PosError)(nil); errors.As(err, &pe) {
			return nil, err
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %w", ErrNoConfig, err)
		}
		return nil, fmt.Errorf("apache configuration: %w", err)
	}
	c.Directives = ds
	for _, d := range r.defined {
		if _, ok := c.Defines[d]; !ok {
			c.Defines[d] = ""
		}
	}
	return c, nil
}

// Parse reads one file's text as Read would read it as the main file,
// without following Include (which stays a directive) and with no module
// but StaticModules loaded for <IfModule>. It is for tests and fuzzing.
func Parse(name string, data []byte) ([]*Directive, error) {
	c := &Config{ServerRoot: "/", Defines: map[string]string{}, Env: map[string]string{}}
	r := &reader{c: c, noted: map[string]bool{}}
	return r.parse(name, data, 0)
}

// reader carries the state httpd keeps while it reads: the modules
// loaded and the names defined so far.
type reader struct {
	root    hostfs.Root
	c       *Config
	include bool     // follow Include; false for Parse
	defined []string // -D and Define names, in order
	// lastInclude is the last line of the Include httpd executed last,
	// which DUMP_INCLUDES prints for each file even when a nested Include
	// ran since.
	lastInclude int
	dirDepth    int // directories being read, one inside the other
	noted       map[string]bool
}

func (r *reader) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if !r.noted[s] {
		r.noted[s] = true
		r.c.Notes = append(r.c.Notes, s)
	}
}

// readFile reads the host file name (a directory: every file in it) at
// include depth depth.
func (r *reader) readFile(name string, depth int, inc hostfs.Pos) ([]*Directive, error) {
	fi, err := r.root.Stat(name)
	if err == nil && fi.IsDir() {
		return r.readDir(name, depth, inc)
	}
	b, err := r.root.ReadRegular(name, maxFileSize)
	if err != nil {
		return nil, err
	}
	r.c.Files = append(r.c.Files, File{Path: name, Depth: depth, Include: inc, IncludeLine: r.lastInclude})
	return r.parse(name, b, depth)
}

// readDir reads every entry of dir but "." and "..", hidden ones too, in
// byte order, as ap_process_resource_config_nofnmatch does.
func (r *reader) readDir(dir string, depth int, inc hostfs.Pos) ([]*Directive, error) {
	r.dirDepth++
	defer func() { r.dirDepth-- }()
	if r.dirDepth > maxIncludeDepth {
		return nil, fmt.Errorf("directory %s exceeds the maximum include directory nesting level of %d", dir, maxIncludeDepth)
	}
	real, err := r.root.Resolve(dir)
	if err != nil {
		return nil, err
	}
	entries, err := readDirNames(real)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	var out []*Directive
	for _, e := range entries {
		ds, err := r.readFile(path.Join(dir, e), depth, inc)
		if err != nil {
			return nil, err
		}
		out = append(out, ds...)
	}
	return out, nil
}

// frame is an open container while a file is parsed.
type frame struct {
	d    *Directive
	skip bool // a false conditional section: its lines are soaked up
}

// parse parses one file's text into directives.
func (r *reader) parse(name string, data []byte, depth int) ([]*Directive, error) {
	lines := splitLines(data)
	top := &Directive{}
	stack := []*frame{{d: top}}
	// cond marks directives that stand for a true conditional section,
	// whose contents replace them when the section closes.
	cond := map[*Directive]bool{}
	for _, ln := range lines {
		cur := stack[len(stack)-1]
		if ln.text == "" || ln.text[0] == '#' {
			continue
		}
		if cur.skip {
			// ap_soak_end_container: only container openings and
			// closings count, variables are not replaced.
			w, _ := getWord(ln.text)
			switch {
			case strings.HasPrefix(w, "</"):
				if !strings.EqualFold(closeName(w), cur.d.Name) {
					// httpd names the line of the section it skips.
					return nil, hostfs.Errorf(name, skipLine(stack), "expected </%s> but saw %s", cur.d.Name, w)
				}
				stack = stack[:len(stack)-1]
			case strings.HasPrefix(w, "<"):
				stack = append(stack, &frame{d: &Directive{Name: strings.TrimSuffix(w[1:], ">")}, skip: true})
			}
			continue
		}
		text := r.expand(ln.text, name, ln.first)
		w, rest := getWord(text)
		if w == "" {
			continue
		}
		pos := hostfs.Pos{File: name, Line: ln.first}
		if strings.HasPrefix(w, "</") {
			cname := closeName(w)
			if len(stack) == 1 {
				return nil, hostfs.Errorf(name, ln.last, "%s without matching <%s> section", w, cname)
			}
			if !strings.EqualFold(cname, cur.d.Name) {
				return nil, hostfs.Errorf(name, ln.last, "expected </%s> but saw </%s>", cur.d.Name, cname)
			}
			stack = stack[:len(stack)-1]
			parent := stack[len(stack)-1].d
			if cond[cur.d] {
				// A true conditional section: its contents take its place.
				parent.Block = append(parent.Block[:len(parent.Block)-1], cur.d.Block...)
			}
			continue
		}
		d := &Directive{Name: w, Pos: pos, Line: ln.last}
		if strings.HasPrefix(w, "<") {
			if len(w) == 1 {
				return nil, hostfs.Errorf(name, ln.last, "invalid directive name %q", w)
			}
			args := rest
			d.Name = w[1:]
			if args == "" && strings.HasSuffix(d.Name, ">") {
				d.Name, args = strings.TrimSuffix(d.Name, ">"), ">"
			}
			if d.Name == "" {
				return nil, hostfs.Errorf(name, ln.last, "invalid directive name %q", w)
			}
			if !strings.HasSuffix(args, ">") {
				return nil, hostfs.Errorf(name, ln.last, "<%s> directive missing closing '>'", d.Name)
			}
			d.Args = words(strings.TrimSuffix(args, ">"))
			d.IsBlock = true
			parent := cur.d
			parent.Block = append(parent.Block, d)
			f := &frame{d: d}
			if isCond(d.Name) {
				ok, err := r.eval(d)
				if err != nil {
					return nil, err
				}
				f.skip = !ok
				if ok {
					cond[d] = true
				} else {
					parent.Block = parent.Block[:len(parent.Block)-1]
				}
			}
			stack = append(stack, f)
			continue
		}
		d.Args = words(rest)
		ds, err := r.exec(d, depth)
		if err != nil {
			return nil, err
		}
		cur.d.Block = append(cur.d.Block, ds...)
	}
	if len(stack) > 1 && stack[len(stack)-1].skip {
		return nil, hostfs.Errorf(name, skipLine(stack), "expected </%s> before end of configuration", stack[len(stack)-1].d.Name)
	}
	if len(stack) > 1 {
		open := stack[len(stack)-1].d
		at := ""
		if !open.Pos.IsZero() {
			at = " opened at " + open.Pos.String()
		}
		n := 1
		if len(lines) > 0 {
			n = lines[len(lines)-1].last
		}
		return nil, hostfs.Errorf(name, n, "<%s>%s was not closed", open.Name, at)
	}
	return top.Block, nil
}

// skipLine returns the last line of the outermost skipped section in
// stack.
func skipLine(stack []*frame) int {
	for _, f := range stack {
		if f.skip {
			return f.d.Line
		}
	}
	return 0
}

// isCond reports whether a container is decided while httpd reads.
func isCond(name string) bool {
	for _, c := range []string{"IfModule", "IfDefine", "IfVersion", "IfFile", "IfDirective", "IfSection"} {
		if strings.EqualFold(name, c) {
			return true
		}
	}
	return false
}

// eval decides a conditional section.
func (r *reader) eval(d *Directive) (bool, error) {
	if len(d.Args) == 0 {
		return false, hostfs.Errorf(d.Pos.File, d.Line, "<%s> needs an argument", d.Name)
	}
	arg := d.Args[0]
	neg := strings.HasPrefix(arg, "!")
	arg = strings.TrimPrefix(arg, "!")
	var ok bool
	switch strings.ToLower(d.Name) {
	case "ifmodule":
		ok = r.loaded(arg)
	case "ifdefine":
		ok = slices.Contains(r.defined, arg)
	case "iffile":
		p := arg
		if !path.IsAbs(p) {
			p = path.Join(r.c.ServerRoot, p)
		}
		if r.include {
			_, err := r.root.Stat(p)
			ok = err == nil
		}
	case "ifversion":
		v, known := evalIfVersion(d.Args)
		if !known {
			r.note("%s: <IfVersion %s> depends on httpd's patch level; its contents were not read", d.Pos, strings.Join(d.Args, " "))
			return false, nil
		}
		return v, nil
	default: // IfDirective, IfSection: what the loaded modules provide
		r.note("%s: <%s %s> is not evaluated; its contents were not read", d.Pos, d.Name, strings.Join(d.Args, " "))
		return false, nil
	}
	return ok != neg, nil
}

// evalIfVersion decides <IfVersion [op] version> for httpd 2.4.x when
// the answer is the same for every x, and reports whether it is.
func evalIfVersion(args []string) (result, known bool) {
	op, v := "=", args[0]
	if len(args) > 1 {
		op, v = args[0], args[1]
	}
	if strings.HasPrefix(v, "/") || strings.HasPrefix(v, "~") || op == "~" {
		return false, false
	}
	parts := strings.Split(v, ".")
	nums := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || len(parts) > 3 {
			return false, false
		}
		nums[i] = n
	}
	// Compare 2.4 with the given major.minor; a patch level decides
	// only when major.minor differ.
	cmp := 0
	for i, have := range []int{2, 4} {
		if i >= len(nums) {
			break
		}
		if have != nums[i] {
			cmp = have - nums[i]
			break
		}
	}
	if cmp == 0 && len(nums) != 2 {
		// Equal so far: the patch level (or the omitted minor) decides.
		return false, false
	}
	switch op {
	case "=", "==":
		return cmp == 0, true
	case "!=":
		return cmp != 0, true
	case "<":
		return cmp < 0, true
	case "<=":
		return cmp <= 0, true
	case ">":
		return cmp > 0, true
	case ">=":
		return cmp >= 0, true
	}
	return false, false
}

// loaded reports whether <IfModule name> finds a module: by identifier
// ("proxy_module") or by source file name ("mod_proxy.c").
func (r *reader) loaded(name string) bool {
	if slices.Contains(StaticModules, name) {
		return true
	}
	for _, m := range r.c.Modules {
		if m.Name == name || sourceName(m) == name {
			return true
		}
	}
	return false
}

// sourceName guesses the source file name a module registers (its
// STANDARD20_MODULE_STUFF __FILE__): mod_proxy.so → mod_proxy.c, or
// from the identifier, proxy_module → mod_proxy.c.
func sourceName(m Module) string {
	base := path.Base(m.File)
	if strings.HasPrefix(base, "mod_") && strings.HasSuffix(base, ".so") {
		return strings.TrimSuffix(base, ".so") + ".c"
	}
	return "mod_" + strings.TrimSuffix(m.Name, "_module") + ".c"
}

// exec runs a directive httpd executes while it reads (EXEC_ON_READ)
// and returns what takes its place.
func (r *reader) exec(d *Directive, depth int) ([]*Directive, error) {
	switch strings.ToLower(d.Name) {
	case "include", "includeoptional":
		if !r.include {
			return []*Directive{d}, nil
		}
		if len(d.Args) != 1 {
			return nil, hostfs.Errorf(d.Pos.File, d.Line, "%s takes one argument", d.Name)
		}
		return r.includeFiles(d, depth)
	case "loadmodule":
		if len(d.Args) != 2 {
			return nil, hostfs.Errorf(d.Pos.File, d.Line, "LoadModule takes two arguments")
		}
		if !r.loaded(d.Args[0]) {
			r.c.Modules = append(r.c.Modules, Module{Name: d.Args[0], File: d.Args[1], Pos: d.Pos})
		}
	case "define":
		if len(d.Args) < 1 || len(d.Args) > 2 {
			return nil, hostfs.Errorf(d.Pos.File, d.Line, "Define takes one or two arguments")
		}
		if strings.Contains(d.Args[0], ":") {
			return nil, hostfs.Errorf(d.Pos.File, d.Line, "Define: variable name must not contain ':'")
		}
		if !slices.Contains(r.defined, d.Args[0]) {
			r.defined = append(r.defined, d.Args[0])
		}
		if len(d.Args) == 2 {
			r.c.Defines[d.Args[0]] = d.Args[1]
		}
	case "undefine":
		if len(d.Args) == 1 {
			r.defined = slices.DeleteFunc(r.defined, func(s string) bool { return s == d.Args[0] })
			delete(r.c.Defines, d.Args[0])
		}
	case "serverroot":
		if len(d.Args) == 1 && path.IsAbs(d.Args[0]) {
			r.c.ServerRoot = path.Clean(d.Args[0])
		}
	}
	return []*Directive{d}, nil
}

// includeFiles reads what an Include or IncludeOptional names.
func (r *reader) includeFiles(d *Directive, depth int) ([]*Directive, error) {
	if depth+1 > maxIncludeDepth {
		return nil, hostfs.Errorf(d.Pos.File, d.Line, "exceeded the maximum include nesting level of %d", maxIncludeDepth)
	}
	r.lastInclude = d.Line
	optional := strings.EqualFold(d.Name, "IncludeOptional")
	name := d.Args[0]
	if !path.IsAbs(name) {
		name = path.Join(r.c.ServerRoot, name)
	}
	name = path.Clean(name)
	var files []string
	if strings.ContainsAny(name, "*?[") {
		m, err := r.root.Glob(name)
		if err != nil {
			return nil, hostfs.Errorf(d.Pos.File, d.Line, "%s: %w", d.Name, err)
		}
		files = webroute.GlobVisible(name, m)
		if len(files) == 0 && !optional {
			return nil, hostfs.Errorf(d.Pos.File, d.Line, "%s %s: no matches for the wildcard", d.Name, d.Args[0])
		}
	} else {
		if _, err := r.root.Stat(name); errors.Is(err, fs.ErrNotExist) && optional {
			return nil, nil
		}
		files = []string{name}
	}
	var out []*Directive
	for _, f := range files {
		ds, err := r.readFile(f, depth+1, d.Pos)
		if err != nil {
			if pe := (*hostfs.PosError)(nil); errors.As(err, &pe) {
				return nil, err
			}
			return nil, hostfs.Errorf(d.Pos.File, d.Line, "%s: %w", d.Name, err)
		}
		out = append(out, ds...)
	}
	return out, nil
}

var varRef = regexp.MustCompile(`\$\{([^}]*)\}`)

// expand replaces ${NAME} as ap_resolve_env does: with Define's value,
// else the environment's; an unknown name stays as written.
func (r *reader) expand(s, file string, line int) string {
	if !strings.Contains(s, "${") {
		return s
	}
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		if v, ok := r.c.Defines[name]; ok {
			return v
		}
		if v, ok := r.c.Env[name]; ok {
			return v
		}
		r.note("%s:%d: variable ${%s} is not defined; kept as text", file, line, name)
		return m
	})
}

// parseEnvvars reads the "export NAME=value" lines of a shell file such
// as Debian's /etc/apache2/envvars, replacing $NAME and ${NAME} of the
// variables set before (SUFFIX is empty, as for the default instance).
func parseEnvvars(b []byte) map[string]string {
	vars := map[string]string{"SUFFIX": ""}
	out := map[string]string{}
	ref := regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)
	for _, ln := range strings.Split(string(b), "\n") {
		ln = strings.TrimSpace(ln)
		rest, ok := strings.CutPrefix(ln, "export ")
		if !ok {
			continue
		}
		name, val, ok := strings.Cut(strings.TrimSpace(rest), "=")
		if !ok || strings.ContainsAny(name, " \t") {
			continue
		}
		if i := strings.Index(val, " #"); i >= 0 {
			val = val[:i]
		}
		val = strings.Trim(strings.TrimSpace(val), `"'`)
		val = ref.ReplaceAllStringFunc(val, func(m string) string {
			return vars[ref.FindStringSubmatch(m)[1]]
		})
		vars[name], out[name] = val, val
	}
	return out
}

// DumpIncludes returns the files in the form of
// "apache2 -t -D DUMP_INCLUDES".
func (c *Config) DumpIncludes() string {
	var b strings.Builder
	b.WriteString("Included configuration files:\n")
	for _, f := range c.Files {
		b.WriteString(strings.Repeat("  ", f.Depth+1))
		if f.Depth == 0 {
			b.WriteString("(*) ")
		} else {
			fmt.Fprintf(&b, "(%d) ", f.IncludeLine)
		}
		b.WriteString(f.Path)
		b.WriteByte('\n')
	}
	return b.String()
}

// Walk calls fn for each directive of ds and, when fn returns true, for
// the directives of its container, depth first.
func Walk(ds []*Directive, fn func(d *Directive) bool) {
	for _, d := range ds {
		if fn(d) {
			Walk(d.Block, fn)
		}
	}
}

// closeName returns the name a closing word "</Name>" closes: httpd
// drops the word's last character, '>' or not.
func closeName(w string) string {
	if len(w) <= 2 {
		return ""
	}
	return w[2 : len(w)-1]
}

// readDirNames returns the names in the real directory dir, sorted.
func readDirNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
