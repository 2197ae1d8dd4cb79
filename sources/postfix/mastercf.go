package postfix

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// A Service is one master.cf entry (master(5)).
type Service struct {
	// Name is the first field as written: "smtp", "submission", "465",
	// "127.0.0.1:10025", "[::1]:587".
	Name string
	// Type is the second field: "inet", "unix", "unix-dgram", "fifo", "pass".
	Type string
	// Host is the host part of an inet service name, IPv6 without brackets;
	// "" when the name has no host (or the host is "*"): the service then
	// listens on inet_interfaces.
	Host string
	// Port is the TCP port of an inet service, 0 for other types.
	Port int
	// Command is the daemon: "smtpd", "postscreen", ...
	Command string
	// Args are the command arguments other than the -o overrides, with
	// "{ }" removed from arguments written with them.
	Args []string
	// Overrides are the -o name=value arguments in order, values unexpanded.
	Overrides []Override
	// Pos is the line where the service starts.
	Pos hostfs.Pos
}

// An Override is one "-o name=value" or "-o { name = value }" of a service.
type Override struct {
	Name, Value string
	Pos         hostfs.Pos
}

// Override returns the last -o setting of name, which is the one the daemon
// uses.
func (s Service) Override(name string) (Override, bool) {
	for i := len(s.Overrides) - 1; i >= 0; i-- {
		if s.Overrides[i].Name == name {
			return s.Overrides[i], true
		}
	}
	return Override{}, false
}

var serviceTypes = map[string]bool{"inet": true, "unix": true, "unix-dgram": true, "fifo": true, "pass": true}

// ParseMasterCF parses a master.cf file (master(5)) and returns every
// service, of all types, in file order. When a name and type are defined
// twice, only the last definition is kept, as master(8) does. Port names of
// inet services are resolved with the built-in IANA table (Load uses the
// host's /etc/services). Each bad line is reported as a *hostfs.PosError;
// the good services are still returned.
func ParseMasterCF(name string, r io.Reader) ([]Service, error) {
	return parseMasterCF(name, r, builtinPort)
}

func parseMasterCF(name string, r io.Reader, port func(string) (int, bool)) ([]Service, error) {
	var errs []error
	lines, err := readLogicalLines(name, r, nil)
	if err != nil {
		errs = append(errs, err)
	}
	var out []Service
	seen := map[string]int{} // name/type -> index in out
	for _, l := range lines {
		s, err := parseService(name, l, port)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		key := s.Name + "/" + s.Type
		if i, ok := seen[key]; ok {
			out[i].Name = "" // superseded; removed below
		}
		seen[key] = len(out)
		out = append(out, s)
	}
	kept := out[:0]
	for _, s := range out {
		if s.Name != "" {
			kept = append(kept, s)
		}
	}
	return kept, errors.Join(errs...)
}

func parseService(file string, l logicalLine, port func(string) (int, bool)) (Service, error) {
	pos := hostfs.Pos{File: file, Line: l.line}
	bad := func(format string, args ...any) (Service, error) {
		return Service{}, &hostfs.PosError{Pos: pos, Err: fmt.Errorf(format, args...)}
	}
	tokens, err := splitArgs(l.text)
	if err != nil {
		return bad("%v", err)
	}
	if len(tokens) < 8 {
		return bad("expected 8 fields (service type private unpriv chroot wakeup maxproc command), got %d: %q", len(tokens), clip(l.text))
	}
	for i, f := range []string{"service", "type", "private", "unprivileged", "chroot", "wakeup time", "process limit", "command"} {
		if tokens[i].text == "" {
			return bad("empty %s field", f)
		}
	}
	s := Service{Name: tokens[0].text, Type: tokens[1].text, Command: tokens[7].text, Pos: pos}
	if !serviceTypes[s.Type] {
		return bad("unknown service type %q", s.Type)
	}
	for i, f := range []string{"private", "unprivileged", "chroot"} {
		if v := tokens[2+i].text; v != "y" && v != "n" && v != "-" {
			return bad("bad %s field %q: want y, n or -", f, v)
		}
	}
	if v := tokens[5].text; v != "-" && !allDigits(strings.TrimSuffix(v, "?")) {
		return bad("bad wakeup time field %q", v)
	}
	if v := tokens[6].text; v != "-" && !allDigits(v) {
		return bad("bad process limit field %q", v)
	}
	if s.Type == "inet" {
		host, p, err := parseInetName(s.Name, port)
		if err != nil {
			return bad("service %q: %v", s.Name, err)
		}
		s.Host, s.Port = host, p
	}
	args := tokens[8:]
	for i := 0; i < len(args); i++ {
		a := args[i].text
		var spec string
		opos := hostfs.Pos{File: file, Line: l.lineAt(args[i].off)}
		switch {
		case a == "-o":
			if i+1 >= len(args) {
				return bad("-o without a name=value")
			}
			i++
			spec = args[i].text
		case strings.HasPrefix(a, "-o") && !args[i].braced:
			spec = a[2:] // getopt's "-oname=value"
		default:
			s.Args = append(s.Args, a)
			continue
		}
		n, v, ok := strings.Cut(spec, "=")
		n = strings.TrimSpace(n)
		if !ok || n == "" {
			return bad("-o %q: want name=value", spec)
		}
		s.Overrides = append(s.Overrides, Override{Name: n, Value: strings.TrimSpace(v), Pos: opos})
	}
	return s, nil
}

// An arg is one field of a master.cf line; braced reports that it was
// written as "{ ... }".
type arg struct {
	text   string
	braced bool
	off    int // offset in the logical line
}

// splitArgs splits a master.cf line at whitespace outside "{ }" groups, then
// removes the outer braces of each "{ text }" field and the whitespace just
// inside them (master(5), Postfix 3.0 and later).
func splitArgs(s string) ([]arg, error) {
	var out []arg
	for i := 0; i < len(s); {
		if isSpace(s[i]) {
			i++
			continue
		}
		start, depth := i, 0
		for ; i < len(s) && (depth > 0 || !isSpace(s[i])); i++ {
			switch s[i] {
			case '{':
				depth++
			case '}':
				if depth > 0 {
					depth--
				}
			}
		}
		tok := s[start:i]
		if depth > 0 {
			return nil, fmt.Errorf("missing '}' in %q", clip(tok))
		}
		if strings.HasPrefix(tok, "{") {
			if !strings.HasSuffix(tok, "}") || matchBracket(tok, 0) != len(tok)-1 {
				return nil, fmt.Errorf("text after '}' in %q", clip(tok))
			}
			out = append(out, arg{text: strings.TrimSpace(tok[1 : len(tok)-1]), braced: true, off: start})
			continue
		}
		out = append(out, arg{text: tok, off: start})
	}
	return out, nil
}

// parseInetName splits an inet service name into host and port: "587",
// "submission", "127.0.0.1:10025", "[::1]:587", "::1:smtp",
// "mail.example.com:587". A host of "*" means no host.
func parseInetName(name string, port func(string) (int, bool)) (host string, p int, err error) {
	ps := name
	switch {
	case strings.HasPrefix(name, "["):
		end := strings.IndexByte(name, ']')
		if end < 0 {
			return "", 0, errors.New("missing ']'")
		}
		host = name[1:end]
		rest := name[end+1:]
		if !strings.HasPrefix(rest, ":") {
			return "", 0, errors.New("missing ':port' after ']'")
		}
		ps = rest[1:]
	case strings.Contains(name, ":"):
		i := strings.LastIndexByte(name, ':')
		host, ps = name[:i], name[i+1:]
	}
	if host == "*" {
		host = ""
	}
	if ps == "" {
		return "", 0, errors.New("missing port")
	}
	if allDigits(ps) {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 1 || n > 65535 {
			return "", 0, fmt.Errorf("bad port %q", ps)
		}
		return host, n, nil
	}
	n, ok := port(ps)
	if !ok {
		return "", 0, fmt.Errorf("unknown port name %q (not in /etc/services)", ps)
	}
	return host, n, nil
}
