package sogotest

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

func TestMain(m *testing.M) { Main(m) }

// client returns an HTTP client that trusts the harness's CA, sends the
// server name, follows no redirects and opens a connection per request
// (sogod closes a connection it has answered on; a reused one is reset).
func client(h *Host) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(h.CACert)
	return &http.Client{
		Transport: &http.Transport{
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: h.ServerName},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// do sends method to url (Host: the server name), with the user's Basic
// credentials when auth, and returns the response with its body read.
func do(t *testing.T, h *Host, method, url string, auth bool) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = h.ServerName
	if auth {
		req.SetBasicAuth(h.User, h.Password)
	}
	if method == "PROPFIND" {
		req.Header.Set("Depth", "0")
	}
	resp, err := client(h).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// probe is one request of the discovery probe and what SOGo 5.8 answers.
type probe struct {
	method, path string
	auth         bool
	status       int
	header       string // a header the answer must have ("" for none)
	noHeader     string // a header the answer must not have
	nginxOnly    bool   // a path of iRedMail's nginx, not of SOGo
}

func checkProbes(t *testing.T, h *Host, probes []probe) {
	t.Helper()
	for _, base := range []string{"http://" + h.Backend, "https://" + h.HTTPS} {
		for _, p := range probes {
			if p.nginxOnly && strings.HasPrefix(base, "http:") {
				continue
			}
			resp := do(t, h, p.method, base+p.path, p.auth)
			if resp.StatusCode != p.status {
				t.Errorf("%s %s%s (auth %v) = %d, want %d", p.method, base, p.path, p.auth, resp.StatusCode, p.status)
			}
			if p.header != "" && resp.Header.Get(p.header) == "" {
				t.Errorf("%s %s%s (auth %v): no %s header in %v", p.method, base, p.path, p.auth, p.header, resp.Header)
			}
			if p.noHeader != "" && resp.Header.Get(p.noHeader) != "" {
				t.Errorf("%s %s%s (auth %v): %s: %s, want none", p.method, base, p.path, p.auth, p.noHeader, resp.Header.Get(p.noHeader))
			}
		}
	}
}

// python returns a python3 that can import caldav (Debian's python3-caldav
// is for /usr/bin/python3, which another python3 in PATH may hide).
func python(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", testtool.Need(t, "python3")} {
		if exec.Command(p, "-c", "import caldav, lxml").Run() == nil {
			return p
		}
	}
	testtool.Missing(t, "no python3 with the caldav module (package python3-caldav)")
	return ""
}

func TestSOGoWithActiveSync(t *testing.T) {
	py := python(t)
	h := Start(t, Options{ActiveSync: true})

	t.Run("DAVListing", func(t *testing.T) {
		_, port, _ := strings.Cut(h.HTTPS, ":")
		url := "https://" + h.ServerName + ":" + port + "/SOGo/dav/" + h.Address + "/"
		out, err := exec.Command(py, filepath.Join("testdata", "davlist.py"), url, h.User, h.Password, h.CAFile,
			h.ServerName+":127.0.0.1").CombinedOutput()
		if err != nil {
			t.Fatalf("davlist.py: %v\n%s", err, out)
		}
		for _, want := range []string{"calendar Personal Calendar ", "addressbook Personal Address Book "} {
			if !strings.Contains(string(out), want) {
				t.Errorf("davlist.py printed no %q:\n%s", want, out)
			}
		}
		t.Logf("davlist.py:\n%s", out)
	})

	t.Run("WrongPassword", func(t *testing.T) {
		_, port, _ := strings.Cut(h.HTTPS, ":")
		url := "https://" + h.ServerName + ":" + port + "/SOGo/dav/" + h.Address + "/"
		out, err := exec.Command(py, filepath.Join("testdata", "davlist.py"), url, h.User, h.Password+"x", h.CAFile,
			h.ServerName+":127.0.0.1").CombinedOutput()
		if err == nil {
			t.Errorf("davlist.py with a wrong password succeeded:\n%s", out)
		}
	})

	t.Run("ActiveSyncOptions", func(t *testing.T) {
		resp := do(t, h, "OPTIONS", "https://"+h.HTTPS+"/Microsoft-Server-ActiveSync", true)
		if v := resp.Header.Get("MS-ASProtocolVersions"); resp.StatusCode != http.StatusOK || v == "" {
			t.Fatalf("OPTIONS /Microsoft-Server-ActiveSync = %d, MS-ASProtocolVersions %q; want 200 with the header", resp.StatusCode, v)
		}
		t.Logf("MS-ASProtocolVersions: %s; Allow: %s", resp.Header.Get("MS-ASProtocolVersions"), resp.Header.Get("Allow"))
	})

	t.Run("Probes", func(t *testing.T) {
		checkProbes(t, h, []probe{
			{"PROPFIND", "/SOGo/dav/", false, 401, "WWW-Authenticate", "", false},
			{"OPTIONS", "/SOGo/Microsoft-Server-ActiveSync", false, 401, "WWW-Authenticate", "MS-ASProtocolVersions", false},
			{"POST", "/SOGo/Microsoft-Server-ActiveSync", false, 403, "", "WWW-Authenticate", false},
			{"GET", "/SOGo/", false, 200, "", "", false},
			{"OPTIONS", "/SOGo/Microsoft-Server-ActiveSync", true, 200, "MS-ASProtocolVersions", "", false},
			{"PROPFIND", "/SOGo/dav/" + h.Address + "/", true, 207, "", "", false},
		})
	})

	t.Run("StopSOGo", func(t *testing.T) {
		h.StopSOGo(t)
		for _, path := range []string{"/SOGo/", "/Microsoft-Server-ActiveSync", "/SOGo/dav/"} {
			if resp := do(t, h, "GET", "https://"+h.HTTPS+path, false); resp.StatusCode != http.StatusBadGateway {
				t.Errorf("GET %s with SOGo stopped = %d, want 502", path, resp.StatusCode)
			}
		}
		h.StartSOGo(t)
		if resp := do(t, h, "GET", "https://"+h.HTTPS+"/SOGo/", false); resp.StatusCode != http.StatusOK {
			t.Errorf("GET /SOGo/ after StartSOGo = %d, want 200", resp.StatusCode)
		}
	})

	t.Run("DisableActiveSyncLocation", func(t *testing.T) {
		h.DisableActiveSyncLocation(t)
		// nginx serves the path from its (empty) root now.
		resp := do(t, h, "OPTIONS", "https://"+h.HTTPS+"/Microsoft-Server-ActiveSync", true)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("MS-ASProtocolVersions") != "" {
			t.Errorf("OPTIONS /Microsoft-Server-ActiveSync without its location = %d %v, want nginx's 405", resp.StatusCode, resp.Header)
		}
		// The /SOGo/ one stays.
		resp = do(t, h, "OPTIONS", "https://"+h.HTTPS+"/SOGo/Microsoft-Server-ActiveSync", true)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("MS-ASProtocolVersions") == "" {
			t.Errorf("OPTIONS /SOGo/Microsoft-Server-ActiveSync = %d %v, want 200 with MS-ASProtocolVersions", resp.StatusCode, resp.Header)
		}
	})
}

// TestSOGoWithoutActiveSync runs SOGo as when sogo-activesync is not
// installed: the EAS path is an ordinary SOGo (WebDAV) object then.
func TestSOGoWithoutActiveSync(t *testing.T) {
	h := Start(t, Options{ActiveSync: false})
	if strings.Contains(h.SOGoLog(), "ActiveSync.SOGo") {
		t.Fatalf("sogod loaded ActiveSync.SOGo:\n%s", h.SOGoLog())
	}
	checkProbes(t, h, []probe{
		{"PROPFIND", "/SOGo/dav/", false, 401, "WWW-Authenticate", "", false},
		{"OPTIONS", "/SOGo/Microsoft-Server-ActiveSync", false, 401, "WWW-Authenticate", "", false},
		{"POST", "/SOGo/Microsoft-Server-ActiveSync", false, 200, "", "WWW-Authenticate", false},
		{"GET", "/SOGo/", false, 200, "", "", false},
		{"OPTIONS", "/SOGo/Microsoft-Server-ActiveSync", true, 200, "DAV", "MS-ASProtocolVersions", false},
		{"OPTIONS", "/Microsoft-Server-ActiveSync", true, 200, "DAV", "MS-ASProtocolVersions", true},
	})
}

func TestCommentOutBlock(t *testing.T) {
	for _, tt := range []struct {
		name, conf, want string
		ok               bool
	}{
		{"nested", "a;\nlocation ^~ /x {\n  if (1) {\n  }\n}\nb;\n", "a;\n#location ^~ /x {\n#  if (1) {\n#  }\n#}\nb;\n", true},
		{"one line", "location ^~ /x { return 404; }\nb;\n", "#location ^~ /x { return 404; }\nb;\n", true},
		{"missing", "b;\n", "", false},
		{"unclosed", "location ^~ /x {\n", "", false},
	} {
		got, err := commentOutBlock(tt.conf, "location ^~ /x {")
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%s: commentOutBlock = %q, %v; want %q (ok %v)", tt.name, got, err, tt.want, tt.ok)
		}
	}
}
