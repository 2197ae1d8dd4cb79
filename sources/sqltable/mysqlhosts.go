package sqltable

import (
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// DefaultSocket is where Debian's MariaDB and MySQL client libraries look for
// the server when the host is "localhost" and no option file names a socket.
const DefaultSocket = "/run/mysqld/mysqld.sock"

// A mysqlHost is one way to reach a MySQL server.
type mysqlHost struct {
	host string // as written in hosts
	net  string // "unix" or "tcp"
	addr string // socket path or host:port
}

// String names the endpoint in errors: "127.0.0.1:3306",
// "unix:/run/mysqld/mysqld.sock", or "localhost (unix:/run/...)".
func (e mysqlHost) String() string {
	if e.net == "tcp" {
		return e.addr
	}
	name := "unix:" + e.addr
	if e.host == "" || e.host == name {
		return name
	}
	return e.host + " (" + name + ")"
}

// parseHost turns one hosts entry into an endpoint the way Postfix's
// dict_mysql and libmysqlclient do: "unix:/path" is a socket; "inet:host:port",
// "host:port" and "host" are TCP (port 3306 by default), except that the
// host name localhost always means the client library's default unix socket.
func parseHost(h string, localSocket func() (string, error)) (mysqlHost, error) {
	if p, ok := strings.CutPrefix(h, "unix:"); ok {
		if p == "" {
			return mysqlHost{}, fmt.Errorf("host %q: empty socket path", h)
		}
		return mysqlHost{host: h, net: "unix", addr: p}, nil
	}
	rest := strings.TrimPrefix(h, "inet:")
	host, port := rest, "3306"
	switch {
	case strings.HasPrefix(rest, "["):
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return mysqlHost{}, fmt.Errorf("host %q: missing ']'", h)
		}
		host = rest[1:end]
		if tail := rest[end+1:]; tail != "" {
			p, ok := strings.CutPrefix(tail, ":")
			if !ok {
				return mysqlHost{}, fmt.Errorf("host %q: junk after ']'", h)
			}
			port = p
		}
	case strings.Count(rest, ":") == 1:
		host, port, _ = strings.Cut(rest, ":")
	}
	if host == "" || strings.EqualFold(host, "localhost") {
		sock, err := localSocket()
		if err != nil {
			return mysqlHost{}, err
		}
		return mysqlHost{host: h, net: "unix", addr: sock}, nil
	}
	if port == "" {
		port = "3306"
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		pn, lerr := net.LookupPort("tcp", port)
		if lerr != nil {
			return mysqlHost{}, fmt.Errorf("host %q: bad port %q", h, port)
		}
		n = uint64(pn)
	}
	return mysqlHost{host: h, net: "tcp", addr: net.JoinHostPort(host, strconv.FormatUint(n, 10))}, nil
}

// splitHosts splits a hosts value on commas and white space, as Postfix
// does.
func splitHosts(hosts []string) []string {
	var out []string
	for _, h := range hosts {
		out = append(out, strings.FieldsFunc(h, func(r rune) bool {
			return r == ',' || r == ' ' || r == '\t' || r == '\r' || r == '\n'
		})...)
	}
	return out
}

// defaultOptionFiles are the option files libmariadb reads when Postfix
// gives it an option group but no option file.
var defaultOptionFiles = []string{"/etc/my.cnf", "/etc/mysql/my.cnf"}

// localSocket returns the unix socket the client library uses for
// "localhost": the last "socket =" in the option groups Postfix makes it
// read ([client], [client-server], [client-mariadb] and option_group), or
// DefaultSocket. With neither option_file nor option_group set, no option
// file is read.
func localSocket(root hostfs.Root, optionFile, optionGroup string) (string, error) {
	if optionFile == "" && optionGroup == "" {
		return DefaultSocket, nil
	}
	groups := map[string]bool{"client": true, "client-server": true, "client-mariadb": true}
	if optionGroup != "" {
		groups[strings.ToLower(optionGroup)] = true
	}
	r := &optionReader{root: root, groups: groups}
	if optionFile != "" {
		if err := r.read(optionFile, true); err != nil {
			return "", err
		}
	} else {
		for _, f := range defaultOptionFiles {
			if err := r.read(f, false); err != nil {
				return "", err
			}
		}
	}
	if r.socket != "" {
		return r.socket, nil
	}
	return DefaultSocket, nil
}

// optionReader reads the "socket" option from my.cnf-style files with their
// !include and !includedir directives.
type optionReader struct {
	root   hostfs.Root
	groups map[string]bool
	socket string
	depth  int
}

func (r *optionReader) read(file string, mustExist bool) error {
	if r.depth > 10 {
		return fmt.Errorf("option file %s: includes nested too deeply", file)
	}
	b, err := r.root.ReadFile(file)
	if err != nil {
		if !mustExist {
			return nil // a missing default file is normal
		}
		if hint := hostfs.PermissionHint(err); hint != "" {
			return fmt.Errorf("option file: %w (%s)", err, hint)
		}
		return fmt.Errorf("option file: %w", err)
	}
	r.depth++
	defer func() { r.depth-- }()
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case strings.HasPrefix(line, "!includedir"):
			dir := strings.TrimSpace(strings.TrimPrefix(line, "!includedir"))
			files, _ := r.root.Glob(path.Join(dir, "*.cnf"))
			for _, f := range files {
				if err := r.read(f, false); err != nil {
					return err
				}
			}
		case strings.HasPrefix(line, "!include"):
			if err := r.read(strings.TrimSpace(strings.TrimPrefix(line, "!include")), false); err != nil {
				return err
			}
		case line[0] == '[':
			name, _, _ := strings.Cut(line[1:], "]")
			in = r.groups[strings.ToLower(strings.TrimSpace(name))]
		case in:
			k, v, _ := strings.Cut(line, "=")
			k = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(k)), "_", "-")
			if k == "socket" {
				r.socket = unquoteOption(strings.TrimSpace(v))
			}
		}
	}
	return nil
}

// unquoteOption strips a trailing comment and matching quotes from an
// option value.
func unquoteOption(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') {
		if end := strings.IndexByte(v[1:], v[0]); end >= 0 {
			return v[1 : end+1]
		}
	}
	if i := strings.Index(v, " #"); i >= 0 {
		v = strings.TrimSpace(v[:i])
	}
	return v
}
