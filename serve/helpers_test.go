package serve

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

const specDir = "../testdata/spec"

// buildSite builds the snapshot of the tree at root and its Site.
func buildSite(t testing.TB, rootDir, mysqlSocket string) *Site {
	t.Helper()
	return buildSiteWith(t, rootDir, mysqlSocket, slog.New(slog.DiscardHandler))
}

// buildSiteLogged is buildSite without a database, logging to log.
func buildSiteLogged(t testing.TB, rootDir string, log *slog.Logger) *Site {
	t.Helper()
	return buildSiteWith(t, rootDir, "", log)
}

func buildSiteWith(t testing.TB, rootDir, mysqlSocket string, log *slog.Logger) *Site {
	t.Helper()
	root, err := hostfs.New(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	opt := discover.Options{Root: root}
	opt.MySQL.Override = mysqlSocket
	snap, err := discover.Build(context.Background(), opt)
	if err != nil {
		t.Fatalf("discover.Build(%s): %v", rootDir, err)
	}
	t.Cleanup(func() { snap.Close() })
	site, err := NewSite(root, snap, log)
	if err != nil {
		t.Fatalf("NewSite(%s): %v", rootDir, err)
	}
	return site
}

// testServer is the server on a loopback port, with a client that sends
// every request there whatever host its URL names, like DNS pointing all
// the names at one host would.
type testServer struct {
	site   *Site
	addr   string
	client *http.Client
}

func startServer(t testing.TB, site *Site) *testServer {
	t.Helper()
	var store Store
	store.Swap(site)
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(NewHandler(&store, nil), nil)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	addr := l.Addr().String()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &testServer{
		site: site,
		addr: addr,
		client: &http.Client{
			Transport: tr,
			Timeout:   10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
}

// response is what the tests look at.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends method on rawURL (any scheme: an https URL is sent as plain
// HTTP with X-Forwarded-Proto: https, as the TLS proxy in front would).
func (ts *testServer) do(t testing.TB, method, rawURL string, body []byte, header http.Header) response {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("parse %q: %v", rawURL, err)
	}
	proto := u.Scheme
	u.Scheme = "http"
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u.String(), rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Forwarded-Proto", proto)
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := ts.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, rawURL, err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// A specRequest is one request line of testdata/spec/requests.
type specRequest struct {
	where  string // file:line
	method string
	url    string
	body   string // request body file, for POST
	expect string // "302 Location: ..." when the file says
}

// specRequests reads every request the spec lists for the daemon. In
// thunderbird-get-urls.txt only the lines marked * are ours.
func specRequests(t testing.TB) []specRequest {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(specDir, "requests", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no request files in %s/requests: %v", specDir, err)
	}
	var out []specRequest
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		marked := strings.Contains(string(data), "\n* ")
		sc := bufio.NewScanner(bytes.NewReader(data))
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if marked {
				var ok bool
				if line, ok = strings.CutPrefix(line, "* "); !ok {
					continue
				}
			}
			fields := strings.Fields(line)
			if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
				continue
			}
			r := specRequest{where: fmt.Sprintf("%s:%d", filepath.Base(f), n), method: "GET"}
			switch fields[0] {
			case "GET", "POST":
				r.method, fields = fields[0], fields[1:]
			case "DNS":
				continue
			}
			if len(fields) == 0 || !strings.Contains(fields[0], "://") {
				continue
			}
			r.url = fields[0]
			rest := strings.Join(fields[1:], " ")
			if _, b, ok := strings.Cut(rest, "body: "); ok {
				r.body = strings.Fields(b)[0]
			}
			if _, e, ok := strings.Cut(rest, "expect: "); ok {
				r.expect = e
			}
			if r.method == "POST" && r.body == "" {
				r.body = "requests/outlook-pox-request.xml"
			}
			out = append(out, r)
			if r.method == "POST" && r.body == "requests/outlook-pox-request.xml" {
				// "ActiveSync devices: same URLs, body requests/activesync-request.xml"
				eas := r
				eas.body = "requests/activesync-request.xml"
				out = append(out, eas)
			}
		}
	}
	return out
}

// forDomain rewrites a spec request for fred@example.com into one for
// fred@domain, filling in Evolution's emailmd5.
func (r specRequest) forDomain(domain string) specRequest {
	r.url = strings.ReplaceAll(r.url, "example.com", domain)
	sum := md5.Sum([]byte("fred@" + domain))
	r.url = strings.ReplaceAll(r.url, "<32 hex>", hex.EncodeToString(sum[:]))
	r.expect = strings.ReplaceAll(r.expect, "example.com", domain)
	return r
}

func (r specRequest) bodyFor(t testing.TB, domain string) []byte {
	if r.body == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(specDir, r.body))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(b, []byte("fred@example.com"), []byte("fred@"+domain))
}

// The documents, decoded by element names as clients read them.

type autoconfigDoc struct {
	XMLName  xml.Name `xml:"clientConfig"`
	Version  string   `xml:"version,attr"`
	Provider struct {
		ID          string     `xml:"id,attr"`
		Domains     []string   `xml:"domain"`
		DisplayName string     `xml:"displayName"`
		Incoming    []acServer `xml:"incomingServer"`
		Outgoing    []acServer `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

type acServer struct {
	Type       string   `xml:"type,attr"`
	Hostname   string   `xml:"hostname"`
	Port       int      `xml:"port"`
	SocketType string   `xml:"socketType"`
	Auth       []string `xml:"authentication"`
	Username   string   `xml:"username"`
}

const (
	nsResponse   = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
	nsOutlook    = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
	nsMobileSync = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
)

type poxDoc struct {
	XMLName  xml.Name `xml:"Autodiscover"`
	Response struct {
		XMLName xml.Name
		User    struct {
			DisplayName string
		}
		Account struct {
			AccountType string
			Action      string
			Protocols   []poxProto `xml:"Protocol"`
		}
		Error *struct {
			ErrorCode int
			Message   string
		}
	} `xml:"Response"`
}

type poxProto struct {
	Type, Server                        string
	Port                                int
	LoginName, DomainRequired, SPA, SSL string
	Encryption, AuthRequired            string
	UsePOPAuth, SMTPLast                string
}

// decodePlist decodes an XML property list into Go values: map[string]any,
// []any, string, int64, bool.
func decodePlist(data []byte) (any, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "plist" {
				return nil, fmt.Errorf("root element %s, want plist", se.Name.Local)
			}
			return plistValue(dec, nil)
		}
	}
}

func plistValue(dec *xml.Decoder, start *xml.StartElement) (any, error) {
	if start == nil {
		for {
			tok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			if se, ok := tok.(xml.StartElement); ok {
				start = &se
				break
			}
		}
	}
	switch start.Name.Local {
	case "dict":
		m := map[string]any{}
		for {
			tok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			switch t := tok.(type) {
			case xml.EndElement:
				return m, nil
			case xml.StartElement:
				if t.Name.Local != "key" {
					return nil, fmt.Errorf("dict has <%s> where a key belongs", t.Name.Local)
				}
				var k string
				if err := dec.DecodeElement(&k, &t); err != nil {
					return nil, err
				}
				v, err := plistValue(dec, nil)
				if err != nil {
					return nil, err
				}
				m[k] = v
			}
		}
	case "array":
		var a []any
		for {
			tok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			switch t := tok.(type) {
			case xml.EndElement:
				return a, nil
			case xml.StartElement:
				v, err := plistValue(dec, &t)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
		}
	case "string":
		var s string
		err := dec.DecodeElement(&s, start)
		return s, err
	case "integer":
		var s string
		if err := dec.DecodeElement(&s, start); err != nil {
			return nil, err
		}
		return strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	case "true", "false":
		return start.Name.Local == "true", dec.Skip()
	}
	return nil, fmt.Errorf("unknown plist element <%s>", start.Name.Local)
}

// xmllint checks that every XML document is well-formed with xmllint.
func xmllint(t testing.TB, what string, doc []byte) {
	t.Helper()
	path := testtool.Need(t, "xmllint")
	cmd := exec.Command(path, "--noout", "--nonet", "-")
	cmd.Stdin = bytes.NewReader(doc)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("xmllint --noout on %s: %v\n%s\n%s", what, err, out, doc)
	}
}

// cmsContent verifies a signed profile with openssl cms -verify (against
// caFile, or without chain verification when caFile is "") and returns the
// signed content.
func cmsContent(t testing.TB, der []byte, caFile string) []byte {
	t.Helper()
	path := testtool.Need(t, "openssl")
	args := []string{"cms", "-verify", "-inform", "DER", "-binary"}
	if caFile == "" {
		args = append(args, "-noverify")
	} else {
		args = append(args, "-CAfile", caFile, "-purpose", "any")
	}
	cmd := exec.Command(path, args...)
	cmd.Stdin = bytes.NewReader(der)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}
