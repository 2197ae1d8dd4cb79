package postfix

import (
	"errors"
	"io"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// A Setting is one "name = value" of main.cf (or of a mysql_table(5) file),
// with the value as written: continuation lines joined, no $name expanded.
type Setting struct {
	Name  string
	Value string
	Pos   hostfs.Pos
}

// MainCF is a parsed main.cf file.
type MainCF struct {
	File string // host path (or the name given to ParseMainCF)

	// Settings in file order, including ones a later line overrides.
	Settings []Setting
	// Warnings are problems Postfix only warns about: a parameter set
	// twice, a continuation line with nothing to continue.
	Warnings []error

	last map[string]int // name -> index in Settings of the definition that wins
}

// Lookup returns the definition of name that Postfix uses (the last one).
func (m *MainCF) Lookup(name string) (Setting, bool) {
	if m == nil {
		return Setting{}, false
	}
	i, ok := m.last[name]
	if !ok {
		return Setting{}, false
	}
	return m.Settings[i], true
}

// ParseMainCF parses a main.cf file with postconf(5) syntax. name is used in
// positions and errors. Each bad line is reported as a *hostfs.PosError; the
// good lines are still returned.
func ParseMainCF(name string, r io.Reader) (*MainCF, error) {
	m := &MainCF{File: name, last: map[string]int{}}
	settings, warnings, err := parseSettings(name, r)
	m.Settings = settings
	m.Warnings = warnings
	for i, s := range settings {
		if j, ok := m.last[s.Name]; ok {
			m.Warnings = append(m.Warnings, hostfs.Errorf(name, s.Pos.Line,
				"%s is set again, overriding line %d", s.Name, settings[j].Pos.Line))
		}
		m.last[s.Name] = i
	}
	return m, err
}

// parseSettings reads the "name = value" lines shared by main.cf and
// mysql_table(5) files.
func parseSettings(name string, r io.Reader) ([]Setting, []error, error) {
	var warnings, errs []error
	lines, err := readLogicalLines(name, r, func(line int, text string) {
		warnings = append(warnings, hostfs.Errorf(name, line,
			"logical line must not start with whitespace: %q", clip(text)))
	})
	var out []Setting
	for _, l := range lines {
		n, v, msg := splitNameValue(l.text)
		if msg != "" {
			errs = append(errs, &hostfs.PosError{Pos: hostfs.Pos{File: name, Line: l.line}, Err: errors.New(msg)})
			continue
		}
		out = append(out, Setting{Name: n, Value: v, Pos: hostfs.Pos{File: name, Line: l.line}})
	}
	if err != nil {
		errs = append(errs, err)
	}
	return out, warnings, errors.Join(errs...)
}

// clip shortens s for an error message.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
