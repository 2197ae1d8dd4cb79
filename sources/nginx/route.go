package nginx

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// A Route is what nginx does with a request for a path on a server, as
// far as the configuration alone tells: the location it ends in, or the
// redirect or status a rewrite or return answers with first.
type Route struct {
	Path     string     // the request path asked about
	URI      string     // the URI after internal rewrites
	Location *Directive // the location that handles URI; nil for none, or when Status is set
	// Status is set when a rewrite or return answers before any handler:
	// a redirect (301, 302, 303, 307, 308) to Target, or another status.
	Status int
	Target string
	Pos    hostfs.Pos // the rewrite or return that answered
	// Notes tells what the reading had to pass over (if blocks, regexes
	// RE2 cannot compile), each with its position.
	Notes []string
}

// maxRewrites is nginx's bound on URI changes in one request (10 cycles).
const maxRewrites = 10

// Route follows a request for path (no query) through the server's
// server-level rewrite and return directives, nginx's location search
// (exact, longest prefix, ^~, regexes in order, nested locations) and the
// chosen location's rewrite and return directives. "if" blocks cannot be
// judged without a request and are passed over with a note.
func (s *Server) Route(path string) Route {
	r := Route{Path: path, URI: path}
	if answered, _ := r.rewrite(s.block); answered {
		return r
	}
	for range maxRewrites {
		loc := r.findLocation(s.block)
		r.Location = loc
		if loc == nil {
			return r
		}
		answered, research := r.rewrite(loc.Block)
		if answered {
			r.Location = nil
			return r
		}
		if !research {
			return r
		}
	}
	r.Status = 500 // nginx: "rewrite or internal redirection cycle"
	r.Location = nil
	return r
}

// rewrite runs the rewrite-module directives of one level, in order. It
// reports whether one of them answered (Status set), and whether the URI
// changed so that nginx searches the locations again (not after "break").
func (r *Route) rewrite(block []*Directive) (answered, research bool) {
	for _, d := range block {
		switch d.Name {
		case "if":
			r.Notes = append(r.Notes, fmt.Sprintf("%s: if %s passed over", d.Pos, strings.Join(d.Args, " ")))
		case "return":
			if len(d.Args) == 0 {
				continue
			}
			code, err := strconv.Atoi(d.Args[0])
			if err != nil { // "return URL": 302
				r.Status, r.Target, r.Pos = 302, d.Args[0], d.Pos
				return true, false
			}
			r.Status, r.Pos = code, d.Pos
			if len(d.Args) > 1 && isRedirect(code) {
				r.Target = d.Args[1]
			}
			return true, false
		case "rewrite":
			if len(d.Args) < 2 {
				continue
			}
			re, err := compileRegex(d.Args[0], false)
			if err != nil {
				r.Notes = append(r.Notes, fmt.Sprintf("%s: rewrite regex %q not understood, passed over: %v", d.Pos, d.Args[0], err))
				continue
			}
			m := re.FindStringSubmatchIndex(r.URI)
			if m == nil {
				continue
			}
			repl := d.Args[1]
			flag := ""
			if len(d.Args) > 2 {
				flag = d.Args[2]
			}
			target := string(re.ExpandString(nil, pcreTemplate(repl), r.URI, m))
			switch {
			case flag == "permanent":
				r.Status, r.Target, r.Pos = 301, target, d.Pos
				return true, false
			case flag == "redirect", hasScheme(repl):
				r.Status, r.Target, r.Pos = 302, target, d.Pos
				return true, false
			}
			if i := strings.IndexByte(target, '?'); i >= 0 {
				target = target[:i]
			}
			r.URI = target
			research = true
			switch flag {
			case "last":
				return false, true
			case "break":
				return false, false
			}
		}
	}
	return false, research
}

func isRedirect(code int) bool {
	switch code {
	case 301, 302, 303, 307, 308:
		return true
	}
	return false
}

func hasScheme(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "$scheme")
}

// pcreTemplate turns nginx's $1 capture references into Go's ${1} and
// keeps every other $ (variables such as $host) as text.
func pcreTemplate(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '$' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			b.WriteString("${" + s[i+1:i+2] + "}")
			i++
		case s[i] == '$':
			b.WriteString("$$")
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// compileRegex compiles an nginx (PCRE) regex with RE2, which reads the
// patterns web server configurations use alike.
func compileRegex(expr string, caseless bool) (*regexp.Regexp, error) {
	if caseless {
		expr = "(?i)" + expr
	}
	return regexp.Compile(expr)
}

// A location's match kind.
const (
	locPrefix   = ""
	locExact    = "="
	locNoRegex  = "^~"
	locRegex    = "~"
	locRegexNoC = "~*"
	locNamed    = "@"
)

// locationMatch splits a location's arguments into modifier and pattern,
// accepting the forms nginx does ("= /x", "=/x", "^~ /x", "~* re", "@n").
func locationMatch(d *Directive) (mod, pattern string) {
	switch len(d.Args) {
	case 2:
		return d.Args[0], d.Args[1]
	case 1:
		a := d.Args[0]
		for _, m := range []string{locNoRegex, locRegexNoC, locExact, locRegex, locNamed} {
			if len(a) > len(m) && strings.HasPrefix(a, m) {
				if m == locNamed {
					return m, a[1:]
				}
				return m, a[len(m):]
			}
		}
		return locPrefix, a
	}
	return "?", ""
}

// findLocation is ngx_http_core_find_location over the locations of block.
func (r *Route) findLocation(block []*Directive) *Directive {
	var best *Directive
	bestLen := -1
	bestNoRegex := false
	var regexes []*Directive
	for _, d := range block {
		if d.Name != "location" || !d.IsBlock {
			continue
		}
		mod, pat := locationMatch(d)
		switch mod {
		case locExact:
			if r.URI == pat {
				return r.nested(d)
			}
		case locPrefix, locNoRegex:
			if strings.HasPrefix(r.URI, pat) && len(pat) > bestLen {
				best, bestLen, bestNoRegex = d, len(pat), mod == locNoRegex
			}
		case locRegex, locRegexNoC:
			regexes = append(regexes, d)
		}
	}
	if best != nil {
		if n := r.nestedOrNil(best); n != nil {
			return n
		}
		if bestNoRegex {
			return best
		}
	}
	for _, d := range regexes {
		mod, pat := locationMatch(d)
		re, err := compileRegex(pat, mod == locRegexNoC)
		if err != nil {
			r.Notes = append(r.Notes, fmt.Sprintf("%s: location regex %q not understood, passed over: %v", d.Pos, pat, err))
			continue
		}
		if re.MatchString(r.URI) {
			return r.nested(d)
		}
	}
	return best
}

// nested returns the location nested in d that matches, or d.
func (r *Route) nested(d *Directive) *Directive {
	if n := r.nestedOrNil(d); n != nil {
		return n
	}
	return d
}

func (r *Route) nestedOrNil(d *Directive) *Directive {
	for _, c := range d.Block {
		if c.Name == "location" {
			return r.findLocation(d.Block)
		}
	}
	return nil
}
