package nginx

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/webroute"
)

// DefaultConf is where Debian's and Red Hat's nginx read their
// configuration (nginx -V: --conf-path).
const DefaultConf = "/etc/nginx/nginx.conf"

// maxFileSize bounds each configuration file read; nginx itself has no
// limit, but a configuration file of more than this is not one.
const maxFileSize = 16 << 20

// maxIncludeDepth bounds nested includes. nginx has no bound and fails
// on a loop only when it runs out of file descriptors or stack.
const maxIncludeDepth = 64

// ErrNoConfig is wrapped by Read's error when the main configuration
// file does not exist: nginx is not installed there, which is no fault.
// A missing included file is a broken configuration and not ErrNoConfig.
var ErrNoConfig = errors.New("no nginx configuration")

// A File is one file nginx reads, as it names it and with its contents.
type File struct {
	Path string // host path, formed as nginx forms it (conf prefix + include argument)
	Data []byte
}

// A Config is a whole nginx configuration: the main file's directives
// with every include replaced by the directives of the files it names.
type Config struct {
	// Path is the main configuration file; Prefix the directory that
	// relative include paths start from (nginx's conf prefix).
	Path, Prefix string
	Directives   []*Directive
	// Files lists each file read, once, in the order nginx opens them.
	Files []File
}

// Read reads the nginx configuration confPath (a host path, such as
// DefaultConf) under root, following include directives as nginx does:
// a relative path is relative to the directory of confPath, a path with
// '*', '?' or '[' is a glob whose matches are read in sorted order and
// which may match nothing, any other path must exist. Every error names
// file:line. An absent confPath gives an error wrapping ErrNoConfig.
func Read(root hostfs.Root, confPath string) (*Config, error) {
	if !path.IsAbs(confPath) {
		return nil, fmt.Errorf("nginx configuration %s: not an absolute path", confPath)
	}
	c := &Config{Path: confPath, Prefix: strings.TrimSuffix(path.Dir(confPath), "/") + "/"}
	seen := make(map[string]bool)
	var p parser
	readFile := func(name string, depth int) ([]*Directive, error) {
		b, err := root.ReadRegular(name, maxFileSize)
		if err != nil {
			return nil, err
		}
		if !seen[name] {
			seen[name] = true
			c.Files = append(c.Files, File{Path: name, Data: b})
		}
		return p.parseFile(name, b, depth)
	}
	p.include = func(d *Directive, depth int) ([]*Directive, error) {
		if depth > maxIncludeDepth {
			return nil, hostfs.Errorf(d.Pos.File, d.Pos.Line, "include %s: more than %d nested includes", d.Args[0], maxIncludeDepth)
		}
		name := d.Args[0]
		if !path.IsAbs(name) {
			name = c.Prefix + name
		}
		var files []string
		if strings.ContainsAny(name, "*?[") {
			m, err := root.Glob(name)
			if err != nil {
				return nil, hostfs.Errorf(d.Pos.File, d.Pos.Line, "include: %w", err)
			}
			files = webroute.GlobVisible(name, m)
		} else {
			files = []string{name}
		}
		var out []*Directive
		for _, f := range files {
			ds, err := readFile(f, depth)
			if err != nil {
				if pe := (*hostfs.PosError)(nil); errors.As(err, &pe) {
					return nil, err
				}
				return nil, hostfs.Errorf(d.Pos.File, d.Pos.Line, "include: %w", err)
			}
			out = append(out, ds...)
		}
		return out, nil
	}
	ds, err := readFile(confPath, 0)
	if err != nil {
		if pe := (*hostfs.PosError)(nil); errors.As(err, &pe) {
			return nil, err
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %w", ErrNoConfig, err)
		}
		return nil, fmt.Errorf("nginx configuration: %w", err)
	}
	c.Directives = ds
	return c, nil
}

// Dump returns the files in the form of "nginx -T": each file's name in
// a comment line, then its contents and an empty line.
func (c *Config) Dump() string {
	var b strings.Builder
	for _, f := range c.Files {
		fmt.Fprintf(&b, "# configuration file %s:\n%s\n", f.Path, f.Data)
	}
	return b.String()
}
