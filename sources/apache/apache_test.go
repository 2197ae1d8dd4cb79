package apache

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// Differential tests: the real httpd (Debian's apache2) reads the same
// files, and what it reports with DUMP_INCLUDES and DUMP_VHOSTS (-S) must
// be what Read and VirtualHosts found.

const fixture = "../../testdata/groupware/apache-sogo"

// apache2 runs the real apache2 on a copy of a host tree at dir (its
// /etc/apache2 at dir/etc/apache2, or serverRoot), with the variables of
// its envvars sourced (when there is one) and the run, lock and log
// directories moved into dir. It returns standard output, standard
// error and the error.
func apache2(t *testing.T, dir, serverRoot, conf string, args ...string) (string, string, error) {
	t.Helper()
	bin := testtool.Need(t, "apache2")
	for _, d := range []string{"run", "lock", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := `[ -f ./envvars ] && . ./envvars
export APACHE_RUN_DIR="$D/run" APACHE_PID_FILE="$D/run/apache2.pid" APACHE_LOCK_DIR="$D/lock" APACHE_LOG_DIR="$D/log"
exec "$0" "$@"`
	cmd := exec.Command("sh", append([]string{"-c", script, bin, "-d", serverRoot, "-f", conf}, args...)...)
	cmd.Dir = serverRoot
	cmd.Env = append(os.Environ(), "D="+dir)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// hostPaths matches the host paths under /etc at the start of a word;
// copyForApache moves them under the copy. /usr/lib/apache2/modules
// stays: the copy loads the host's real modules.
var hostPaths = regexp.MustCompile(`(^|[\s"'])/etc/`)

// copyForApache copies the fixture root src to dst with every /etc path
// in the files and in absolute links moved under dst, so that apache2,
// which has no --root, reads the copy as the host's files. Lines keep
// their numbers.
func copyForApache(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if filepath.IsAbs(target) {
				target = dst + target
			}
			return os.Symlink(target, out)
		case e.IsDir():
			return os.MkdirAll(out, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b = hostPaths.ReplaceAll(b, []byte("${1}"+dst+"/etc/"))
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// snakeoil puts the throwaway certificate and key of the shared corpus
// where Debian's default-ssl.conf expects its snakeoil pair.
func snakeoil(t *testing.T, dir string) {
	t.Helper()
	const ssl = "../../testdata/corpus/iredmail-mysql-debian12/etc/ssl"
	for src, dst := range map[string]string{"certs/iRedMail.crt": "certs/ssl-cert-snakeoil.pem", "private/iRedMail.key": "private/ssl-cert-snakeoil.key"} {
		b, err := os.ReadFile(filepath.Join(ssl, src))
		if err != nil {
			t.Fatal(err)
		}
		testtool.WriteFiles(t, filepath.Join(dir, "etc/ssl"), map[string]string{dst: string(b)})
	}
}

// vhostLines parses the VirtualHost part of "apache2 -S" into lines
// "address file:line [default] [name]", sorted.
func vhostLines(out string) []string {
	var lines []string
	addr := ""
	single := regexp.MustCompile(`^(\S+)\s+(\S+) \((.+):(\d+)\)$`)
	group := regexp.MustCompile(`^(\S+)\s+is a NameVirtualHost$`)
	member := regexp.MustCompile(`^\s+(default server|port \S+ namevhost) (\S+) \((.+):(\d+)\)$`)
	for _, l := range strings.Split(out, "\n") {
		if m := group.FindStringSubmatch(l); m != nil {
			addr = m[1]
			continue
		}
		if m := single.FindStringSubmatch(l); m != nil && m[1] != "ServerRoot:" {
			lines = append(lines, m[1]+" "+m[3]+":"+m[4]+" default "+m[2])
			continue
		}
		if m := member.FindStringSubmatch(l); m != nil {
			if strings.HasPrefix(m[1], "default") {
				// The default server is listed again as a namevhost.
				continue
			}
			lines = append(lines, addr+" "+m[3]+":"+m[4]+" "+m[2])
		}
	}
	// Mark the first namevhost of each group default, as -S's "default
	// server" line says.
	seen := map[string]bool{}
	for i, l := range lines {
		a, _, _ := strings.Cut(l, " ")
		if !seen[a] && !strings.Contains(l, " default ") {
			f := strings.Fields(l)
			lines[i] = f[0] + " " + f[1] + " default " + f[2]
		}
		seen[a] = true
	}
	slices.Sort(lines)
	return lines
}

// ourVhostLines formats VirtualHosts as vhostLines does; an unnamed vhost
// takes fallback, the name httpd gives it.
func ourVhostLines(c *Config, fallback string) []string {
	var lines []string
	for _, v := range c.VirtualHosts() {
		name := fallback
		if len(v.Names) > 0 {
			name = v.Names[0]
		}
		for _, a := range v.Addrs {
			l := strings.Replace(a, "_default_", "*", 1) + " " + v.Pos.String()
			if v.Default {
				l += " default"
			}
			lines = append(lines, l+" "+name)
		}
	}
	slices.Sort(lines)
	return lines
}

// TestReadMatchesApacheSOGo reads Debian's layout with SOGo's sample
// configuration under --root and compares the files read with what
// "apache2 -t -D DUMP_INCLUDES" lists, and the virtual hosts with
// "apache2 -S", on a copy of the tree.
func TestReadMatchesApacheSOGo(t *testing.T) {
	root, err := hostfs.New(fixture)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Read(root, Debian, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	copyForApache(t, fixture, dir)
	snakeoil(t, dir)
	compareWithApache(t, cfg, dir, dir+"/etc/apache2", dir+Debian.Conf)
}

// compareWithApache runs apache2 -t -D DUMP_INCLUDES and -S on the copy
// in dir and compares with cfg.
func compareWithApache(t *testing.T, cfg *Config, dir, serverRoot, conf string, args ...string) {
	t.Helper()
	out, stderr, err := apache2(t, dir, serverRoot, conf, append([]string{"-t", "-D", "DUMP_INCLUDES"}, args...)...)
	if err != nil {
		t.Fatalf("apache2 -t -D DUMP_INCLUDES: %v\n%s", err, stderr)
	}
	got, want := cfg.DumpIncludes(), strings.ReplaceAll(out, dir, "")
	if got != want {
		t.Errorf("DumpIncludes() differs from apache2 -D DUMP_INCLUDES:\n--- got\n%s--- want\n%s", got, want)
	}
	out, stderr, err = apache2(t, dir, serverRoot, conf, append([]string{"-S"}, args...)...)
	if err != nil {
		t.Fatalf("apache2 -S: %v\n%s", err, stderr)
	}
	// httpd names an unnamed vhost after the main server: its ServerName,
	// or the host's name (127.0.0.1 when that does not resolve).
	fallback := "127.0.0.1"
	if m := regexp.MustCompile(`using (\S+)\. Set the 'ServerName'`).FindStringSubmatch(stderr); m != nil {
		fallback = m[1]
	}
	for _, d := range cfg.Directives {
		if d.Is("ServerName") && len(d.Args) > 0 {
			fallback = hostName(d.Args[0])
		}
	}
	gotV, wantV := ourVhostLines(cfg, fallback), vhostLines(strings.ReplaceAll(out, dir, ""))
	if !slices.Equal(gotV, wantV) {
		t.Errorf("VirtualHosts() differ from apache2 -S:\n--- got\n%s\n--- want\n%s\n--- apache2 -S\n%s", strings.Join(gotV, "\n"), strings.Join(wantV, "\n"), out)
	}
	if len(wantV) == 0 {
		t.Errorf("apache2 -S lists no virtual host; the test compares nothing:\n%s", out)
	}
}

// includeTree is a tree of include cases of its own, under a ServerRoot
// at conf/ (paths relative to the test's directory).
var includeTree = map[string]string{
	"conf/main.conf": `LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
ErrorLog /dev/null
Define SUB d
Include ${SUB}/*.conf
IncludeOptional e/*.conf
IncludeOptional nope.conf
IncludeOptional nodir/*.conf
Include dir
# a comment continued \
Include missing.conf
<IfModule !mod_ssl.c>
  Include d/../e2.conf
</IfModule>
<IfDefine NOPE>
Include missing2.conf
</IfDefine>
<IfDefine FROMCMD>
  Include "quoted dir/q.conf"
</IfDefine>
<IfModule mpm_event_module>
  <IfDefine !NOPE>
    Include nested/*.conf
  </IfDefine>
</IfModule>
Include \
  vhosts/*.conf
`,
	"conf/d/a.conf":                 "# a\n",
	"conf/d/b.conf":                 "Include d/inner/x.conf\n",
	"conf/d/inner/x.conf":           "# x\n",
	"conf/d/.hidden.conf":           "this is not read\n",
	"conf/e2.conf":                  "# e2\n",
	"conf/dir/x":                    "# x\n",
	"conf/dir/.h":                   "# hidden, read: a directory is read whole\n",
	"conf/dir/sub/y.conf":           "# y\n",
	"conf/quoted dir/q.conf":        "# q\n",
	"conf/nested/n.conf":            "<IfModule proxy_module>\nInclude missing3.conf\n</IfModule>\n",
	"conf/vhosts/a.conf":            "<VirtualHost *:8443>\n  ServerName mail.example.org\n  Include vhosts/inc/alias.inc\n</VirtualHost>\n<VirtualHost *:8443>\n  ServerName other.example.org\n</VirtualHost>\n",
	"conf/vhosts/b.conf":            "<VirtualHost 127.0.0.1:8080 [::1]:8080>\n  ServerName local.example.org\n</VirtualHost>\n<VirtualHost _default_:8444>\n</VirtualHost>\n",
	"conf/vhosts/inc/alias.inc":     "ServerAlias mx.example.org\n",
	"conf/vhosts/zz-not-conf.txt":   "not read\n",
	"conf/vhosts/.hidden-too.conf":  "not read\n",
	"conf/e/.only-hidden-here.conf": "not read\n",
}

// TestReadMatchesApacheIncludes covers include resolution: globs
// relative to ServerRoot, hidden files, directories read whole, Define
// variables in paths, a comment continued over an Include, <IfModule>
// and <IfDefine> (with -D) deciding what is read, and includes inside
// <VirtualHost>.
func TestReadMatchesApacheIncludes(t *testing.T) {
	dir := t.TempDir()
	testtool.WriteFiles(t, dir, includeTree)
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Read(root, Layout{Conf: "/conf/main.conf", ServerRoot: "/conf"}, Options{Defines: []string{"FROMCMD"}})
	if err != nil {
		t.Fatal(err)
	}
	// The copy is the tree itself: its paths are all relative.
	compareWithApache(t, cfg, dir, dir+"/conf", dir+"/conf/main.conf", "-D", "FROMCMD")
	v := cfg.VirtualHosts()
	if len(v) != 4 || !slices.Equal(v[0].Names, []string{"mail.example.org", "mx.example.org"}) {
		t.Errorf("VirtualHosts()[0].Names = %v, want [mail.example.org mx.example.org]", v[0].Names)
	}
}

// syntaxLine matches httpd's innermost "Syntax error on line N of FILE:".
var syntaxLine = regexp.MustCompile(`Syntax error on line (\d+) of ([^:]+):`)

// TestReadErrorsLikeApache checks that Read fails where httpd fails,
// naming the same file and line, and reads what httpd reads.
func TestReadErrorsLikeApache(t *testing.T) {
	const mpm = "LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\nErrorLog /dev/null\n"
	tests := []struct {
		name  string
		files map[string]string
		ok    bool
	}{
		{"glob matching nothing", map[string]string{"main.conf": mpm + "Include empty/*.conf\n", "empty/x.txt": ""}, false},
		{"glob in a missing directory", map[string]string{"main.conf": mpm + "Include nodir/*.conf\n"}, false},
		{"optional glob in a missing directory", map[string]string{"main.conf": mpm + "IncludeOptional nodir/*.conf\n"}, true},
		{"missing file", map[string]string{"main.conf": mpm + "\n\nInclude nope.conf\n"}, false},
		{"optional missing file", map[string]string{"main.conf": mpm + "IncludeOptional nope.conf\n"}, true},
		{"error in an included file", map[string]string{"main.conf": mpm + "Include a.conf\n", "a.conf": "# x\n\n<VirtualHost *:8443>\n"}, false},
		{"close in an included file", map[string]string{"main.conf": mpm + "<VirtualHost *:8443>\nInclude v.conf\n", "v.conf": "</VirtualHost>\n"}, false},
		{"stray close", map[string]string{"main.conf": mpm + "</Location>\n"}, false},
		{"wrong close", map[string]string{"main.conf": mpm + "<VirtualHost *:8443>\n<Location /x>\n</VirtualHost>\n"}, false},
		{"wrong close in a skipped section", map[string]string{"main.conf": mpm + "<IfModule nope_module>\n<Location /x>\n</VirtualHost>\n</IfModule>\n"}, false},
		{"missing '>'", map[string]string{"main.conf": mpm + "<VirtualHost *:8443\n</VirtualHost>\n"}, false},
		{"continued lines", map[string]string{"main.conf": mpm + "Include \\\n  a.conf\n# \\\\\nInclude b.conf\n", "a.conf": "", "b.conf": ""}, true},
		{"unclosed skipped section", map[string]string{"main.conf": mpm + "<IfDefine NOPE>\n<Location /x>\n</Location>\n"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			testtool.WriteFiles(t, filepath.Join(dir, "conf"), tt.files)
			root, err := hostfs.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Read(root, Layout{Conf: "/conf/main.conf", ServerRoot: "/conf"}, Options{})
			_, stderr, aerr := apache2(t, dir, dir+"/conf", dir+"/conf/main.conf", "-t", "-D", "DUMP_INCLUDES")
			if (aerr == nil) != tt.ok {
				t.Fatalf("apache2 -t: %v, want ok=%v; the case is wrong\n%s", aerr, tt.ok, stderr)
			}
			if tt.ok {
				if err != nil {
					t.Fatalf("Read: %v; apache2 -t accepts it", err)
				}
				compareWithApache0(t, cfg, dir)
				return
			}
			if err == nil {
				t.Fatalf("Read accepted what apache2 -t rejects:\n%s", stderr)
			}
			var pe *hostfs.PosError
			if !errors.As(err, &pe) {
				t.Fatalf("Read: %v, want a file:line error", err)
			}
			ms := syntaxLine.FindAllStringSubmatch(strings.ReplaceAll(stderr, dir, ""), -1)
			if len(ms) == 0 {
				t.Logf("apache2 names no line: %s", stderr)
				return
			}
			m := ms[len(ms)-1]
			if want := m[2] + ":" + m[1]; pe.Pos.String() != want {
				t.Errorf("Read: %v, at %s; apache2 says %s:\n%s", err, pe.Pos, want, stderr)
			}
		})
	}
}

// compareWithApache0 compares only the includes (the tree has no vhost).
func compareWithApache0(t *testing.T, cfg *Config, dir string) {
	t.Helper()
	out, stderr, err := apache2(t, dir, dir+"/conf", dir+"/conf/main.conf", "-t", "-D", "DUMP_INCLUDES")
	if err != nil {
		t.Fatalf("apache2: %v\n%s", err, stderr)
	}
	if got, want := cfg.DumpIncludes(), strings.ReplaceAll(out, dir, ""); got != want {
		t.Errorf("DumpIncludes() differs:\n--- got\n%s--- want\n%s", got, want)
	}
}
