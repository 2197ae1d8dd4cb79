package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// LoadFile runs the SQL file at path into database db through psql, as
// "psql -v ON_ERROR_STOP=1 -U postgres -d db -f path" would on the server's
// host: psql's backslash commands work, and the first error fails t.
//
// A file may reconnect as another role ("\c vmail vmailadmin"). That role
// needs its password, as on a real server, so psql gets a password file
// with the passwords CreateUser set and those the file itself gives roles
// (CREATE or ALTER USER/ROLE name ... PASSWORD 'x').
func (s *Server) LoadFile(t testing.TB, db, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	s.load(t, db, abs, b)
}

// LoadSQL runs sql into database db through psql (see LoadFile).
func (s *Server) LoadSQL(t testing.TB, db, sql string) {
	t.Helper()
	s.load(t, db, "", []byte(sql))
}

// load runs sql, read from file unless that is "", into db.
func (s *Server) load(t testing.TB, db, file string, sql []byte) {
	t.Helper()
	name := file
	if name == "" {
		name = abbrev(string(sql))
	}
	psql, err := s.psql()
	if err != nil {
		missing(t, "psql", err)
	}
	if !s.running() {
		t.Fatalf("pgtest: load %s: server is stopped", name)
	}
	passfile, err := s.writePassfile(sql)
	if err != nil {
		t.Fatalf("pgtest: load %s: %v", name, err)
	}
	defer os.Remove(passfile)

	ctx, cancel := context.WithTimeout(context.Background(), 2*readyTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, psql, "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1",
		"--host="+s.dir, "--port="+strconv.Itoa(s.port), "--username="+Superuser, "--dbname="+db,
		"--no-password")
	if file != "" {
		// psql then names file:line in errors; \i resolves beside it.
		cmd.Args = append(cmd.Args, "--file="+file)
		cmd.Dir = filepath.Dir(file)
	} else {
		cmd.Args = append(cmd.Args, "--file=-")
		cmd.Stdin = bytes.NewReader(sql)
	}
	cmd.Env = append(cleanEnv(), "PGPASSFILE="+passfile, "PGCONNECT_TIMEOUT=10", "LC_ALL=C")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("pgtest: load %s into %s: %v\n%s", name, db, err, out.String())
	}
}

// psql returns the psql of the server's version, else the one in $PATH
// (on Debian, a wrapper that picks a version).
func (s *Server) psql() (string, error) {
	if p := filepath.Join(s.bin, "psql"); isExec(p) {
		return p, nil
	}
	return exec.LookPath("psql")
}

// rolePassword finds the passwords a SQL file gives roles. Unquoted names
// fold to lower case, as PostgreSQL folds them.
var rolePassword = regexp.MustCompile(`(?is)\b(?:CREATE|ALTER)\s+(?:USER|ROLE)\s+("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)[^;]*?\bPASSWORD\s+'((?:[^']|'')*)'`)

// writePassfile writes a libpq password file with the passwords
// CreateUser set and those sql sets, and returns its path.
func (s *Server) writePassfile(sql []byte) (string, error) {
	pw := map[string]string{}
	s.mu.Lock()
	for u, p := range s.passwords {
		pw[u] = p
	}
	s.mu.Unlock()
	for _, m := range rolePassword.FindAllSubmatch(sql, -1) {
		name := string(m[1])
		if strings.HasPrefix(name, `"`) {
			name = strings.ReplaceAll(name[1:len(name)-1], `""`, `"`)
		} else {
			name = strings.ToLower(name)
		}
		pw[name] = strings.ReplaceAll(string(m[2]), "''", "'")
	}
	esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`)
	var b strings.Builder
	for u, p := range pw {
		fmt.Fprintf(&b, "*:*:*:%s:%s\n", esc.Replace(u), esc.Replace(p))
	}
	f, err := os.CreateTemp(s.dir, "passfile")
	if err != nil {
		return "", err
	}
	// libpq ignores a password file that others can read; CreateTemp
	// makes it 0600.
	if _, err := io.WriteString(f, b.String()); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), f.Close()
}
