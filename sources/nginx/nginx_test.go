package nginx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// Differential tests: the real nginx (Debian's) reads the same files, and
// what it reports must be what Read and Parse found.

// nginxT runs "nginx -T" (or -t) with the prefix and error log in dir and
// returns its standard output, standard error and error.
func nginxT(t *testing.T, dir, conf string, flag string, extra ...string) (string, string, error) {
	t.Helper()
	bin := testtool.Need(t, "nginx")
	args := append([]string{flag, "-q", "-p", dir + "/", "-c", conf, "-e", "stderr"}, extra...)
	cmd := exec.Command(bin, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// hostPaths matches the host paths the iRedMail fixture names, at the
// start of a word; copyForNginx moves them under the copy.
var hostPaths = regexp.MustCompile(`(^|[\s"'])/(etc|var|run|usr)/`)

// copyForNginx copies the fixture root src to dst, with every host path in
// the files and in absolute links moved under dst, so that nginx, which
// has no --root, reads the copy as the host's files. Lines keep their
// numbers; mapping dst back to "" restores the fixture's text.
func copyForNginx(t *testing.T, src, dst string) {
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
		b = hostPaths.ReplaceAll(b, []byte("${1}"+dst+"/${2}/"))
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReadMatchesNginxIRedMail reads iRedMail's tree with SOGo under
// --root and compares the files, in order and byte for byte, with what
// "nginx -T" dumps from a copy of the tree.
func TestReadMatchesNginxIRedMail(t *testing.T) {
	const fixture = "../../testdata/groupware/iredmail-sogo"
	root, err := hostfs.New(fixture)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Read(root, DefaultConf)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	copyForNginx(t, fixture, dir)
	for _, d := range []string{"run", "var/log/nginx", "var/lib/nginx", "etc/ssl"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Throwaway certificate, key and DH parameters of the shared corpus.
	copyForNginx(t, "../../testdata/corpus/iredmail-mysql-debian12/etc/ssl", filepath.Join(dir, "etc/ssl"))
	out, stderr, err := nginxT(t, dir, dir+DefaultConf, "-T")
	if err != nil {
		t.Fatalf("nginx -T: %v\n%s", err, stderr)
	}
	got, want := cfg.Dump(), strings.ReplaceAll(out, dir, "")
	if got != want {
		t.Errorf("Read(%s).Dump() differs from nginx -T:\n%s", fixture, firstDiff(got, want))
	}
	// Every file nginx read is one Read found, and only those.
	var names []string
	for _, f := range cfg.Files {
		names = append(names, f.Path)
	}
	t.Logf("%d files: %s", len(names), strings.Join(names, " "))
	for _, unread := range []string{"/etc/nginx/conf-available/cache.conf", "/etc/nginx/templates/sogo-subdomain.tmpl"} {
		if strings.Contains(want, "# configuration file "+unread+":") {
			t.Errorf("nginx read %s, which nothing includes", unread)
		}
	}
}

// TestReadMatchesNginxIncludes covers include resolution in a tree of its
// own: relative paths from the conf prefix (not from the including file),
// globs that match nothing, hidden files, character classes, a file
// included twice (dumped once), a directory reached through a link, and
// comments and strings that look like includes.
func TestReadMatchesNginxIncludes(t *testing.T) {
	dir := t.TempDir()
	testtool.WriteFiles(t, dir, map[string]string{
		"conf/nginx.conf": "events {}\n# include nope.conf;\nhttp {\n" +
			"    client_body_temp_path conf/tmp/body;\n    proxy_temp_path conf/tmp/proxy;\n    fastcgi_temp_path conf/tmp/fcgi;\n" +
			"    uwsgi_temp_path conf/tmp/uwsgi;\n    scgi_temp_path conf/tmp/scgi;\n    access_log off;\n" +
			"    include conf.d/*.conf;\n    include empty/*.conf;\n    include sites/[ab]*.conf;\n" +
			"    include linked/x.conf;\n    add_header X \"include y.conf;\";\n}\n",
		"conf/conf.d/10-first.conf":   "include snippets/common.conf;\n",
		"conf/conf.d/20-second.conf":  "include snippets/common.conf;\nmap $host $x { default 1; }\n",
		"conf/conf.d/.hidden.conf":    "this would fail {\n",
		"conf/conf.d/notconf.txt":     "this would fail {\n",
		"conf/snippets/common.conf":   "# relative to the conf prefix, not to conf.d/\nadd_header X-Common 1;\n",
		"conf/sites/a.conf":           "server { listen 127.0.0.1:8081; }\n",
		"conf/sites/b.conf":           "server {\n    listen 127.0.0.1:8082;\n    location / { return 200 'x;y'; }\n}\n",
		"conf/sites/c.conf":           "this would fail {\n",
		"conf/real/x.conf":            "server { listen 127.0.0.1:8083; }",
		"conf/tmp/.keep":              "",
		"conf/empty/.keep":            "",
		"conf/snippets/never.conf":    "this would fail {\n",
		"conf/conf.d/sub/inner.conf":  "this would fail {\n",
		"conf/conf.d/z-last.conf.bak": "this would fail {\n",
	})
	if err := os.Symlink("real", filepath.Join(dir, "conf/linked")); err != nil {
		t.Fatal(err)
	}
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Read(root, "/conf/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, err := nginxT(t, dir, dir+"/conf/nginx.conf", "-T", "-g", "pid "+dir+"/nginx.pid;")
	if err != nil {
		t.Fatalf("nginx -T: %v\n%s", err, stderr)
	}
	if got, want := cfg.Dump(), strings.ReplaceAll(out, dir, ""); got != want {
		t.Errorf("Read().Dump() differs from nginx -T:\n%s", firstDiff(got, want))
	}
	// The include directives are replaced by what they include.
	d := Dump(cfg.Directives)
	for _, want := range []string{
		"/conf/snippets/common.conf:2:   add_header X-Common 1;",
		"/conf/sites/b.conf:3:     location / {...}",
		`/conf/nginx.conf:14:   add_header X "include y.conf;";`,
	} {
		if !strings.Contains(d, want+"\n") {
			t.Errorf("Dump(directives) lacks %q:\n%s", want, d)
		}
	}
	if strings.Contains(d, " include ") {
		t.Errorf("Dump(directives) still has an include:\n%s", d)
	}
}

// TestReadErrors: problems with includes name the including file:line.
func TestReadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"missing include", map[string]string{"n.conf": "events {}\n\ninclude missing.conf;\n"},
			"/n.conf:3: include: read /missing.conf: no such file or directory"},
		{"error inside include", map[string]string{"n.conf": "include a.conf;\n", "a.conf": "\nhttp {\n"},
			`/a.conf:3: unexpected end of file, expecting "}"`},
		{"braces balance per file", map[string]string{"n.conf": "http {\ninclude a.conf;\n}\n", "a.conf": "}\n"},
			`/a.conf:1: unexpected "}"`},
		{"include arguments", map[string]string{"n.conf": "include a.conf b.conf;\n"},
			`/n.conf:1: invalid number of arguments in "include" directive`},
		{"include block", map[string]string{"n.conf": "include a.conf {\n}\n"},
			`/n.conf:1: directive "include" is not terminated by ";"`},
		{"include loop", map[string]string{"n.conf": "include n.conf;\n"},
			"/n.conf:1: include n.conf: more than 64 nested includes"},
		{"missing main file", map[string]string{}, "no nginx configuration: read /n.conf: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			testtool.WriteFiles(t, dir, tt.files)
			root, err := hostfs.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Read(root, "/n.conf")
			if err == nil || err.Error() != tt.want {
				t.Errorf("Read() error = %v, want %s", err, tt.want)
			}
			// An absent nginx is "not configured" to the caller.
			if absent := len(tt.files) == 0; errors.Is(err, ErrNoConfig) != absent {
				t.Errorf("errors.Is(%v, ErrNoConfig) = %t, want %t", err, !absent, absent)
			}
		})
	}
}

// TestNginxErrorLines: for each malformed input of TestParseErrors, nginx
// -t fails with the same message at the same line.
func TestNginxErrorLines(t *testing.T) {
	dir := t.TempDir()
	for i, tt := range parseErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			conf := filepath.Join(dir, fmt.Sprintf("t%d.conf", i))
			if err := os.WriteFile(conf, []byte(tt.in), 0o644); err != nil {
				t.Fatal(err)
			}
			_, stderr, err := nginxT(t, dir, conf, "-t", "-g", "pid "+dir+"/nginx.pid;")
			if err == nil {
				t.Fatalf("nginx -t accepted %q", tt.in)
			}
			file, msg, _ := strings.Cut(tt.want, ": ")
			line := strings.TrimPrefix(file, "t.conf:")
			if want := msg + " in " + conf + ":" + line; !strings.Contains(stderr, want) {
				t.Errorf("nginx -t on %q: %s\nwant it to say %s", tt.in, stderr, want)
			}
		})
	}
}

// TestNginxWords has the real nginx answer "return 200 WORD" for tricky
// words, so the body is nginx's own reading of WORD, and compares it with
// Parse's.
func TestNginxWords(t *testing.T) {
	words := []string{
		`plain`, `"double quoted; {x}"`, `'single "quoted"'`, `"esc \" \\ \' \t \r \n"`,
		`back\;slash`, `\{brace`, `"MSIE [1-6]\."`, `a#b`, `"#not comment"`, `''`,
		`"multi
line"`, `x\ y`, `"\x\y"`, `'tab	in'`, `"a\\"`,
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "n.sock")
	var locs strings.Builder
	for i, w := range words {
		fmt.Fprintf(&locs, "        location = /%d { return 200 %s; }\n", i, w)
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
events {}
http {
    access_log off;
    default_type text/plain;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    server {
        listen unix:%[2]s;
%[3]s    }
}
`, dir, sock, locs.String())
	ds, err := Parse("w.conf", []byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	var server *Directive
	Walk(ds, func(d *Directive, _ []*Directive) bool {
		if d.Name == "server" {
			server = d
		}
		return true
	})
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := testtool.Need(t, "nginx")
	cmd := exec.Command(bin, "-p", dir+"/", "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	defer func() {
		cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("nginx does not listen")
		}
	}
	for i, w := range words {
		res, err := client.Get(fmt.Sprintf("http://x/%d", i))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		loc := server.Block[len(server.Block)-len(words)+i]
		if got := loc.Block[0].Args[1]; got != string(body) {
			t.Errorf("word %s: Parse reads %q, nginx %q", w, got, body)
		}
	}
}

// firstDiff shows where two texts first differ.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n got: %q\nwant: %q", i+1, gl, wl)
		}
	}
	return "(equal)"
}
