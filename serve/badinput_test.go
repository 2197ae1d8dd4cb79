package serve

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// syntheticSite builds the synthetic tree's Site.
func syntheticSite(t testing.TB) *Site {
	t.Helper()
	dir := t.TempDir()
	syntheticTree(t, dir)
	return buildSite(t, dir, "")
}

func serveRecorded(h http.Handler, method, host, target string, body []byte, header http.Header) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r := httptest.NewRequest(method, "http://placeholder"+target, rd)
	r.Host = host
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func poxBody(addr, schema string) []byte {
	return []byte(`<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>` +
		addr + `</EMailAddress><AcceptableResponseSchema>` + schema + `</AcceptableResponseSchema></Request></Autodiscover>`)
}

// TestBadInput checks that malformed, hostile or unhosted requests get a
// clear 4xx or the documented error document, never a 500.
func TestBadInput(t *testing.T) {
	var logs bytes.Buffer
	var store Store
	store.Swap(syntheticSite(t))
	h := NewHandler(&store, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	long := strings.Repeat("a", 10000)
	tests := []struct {
		name, method, host, target string
		body                       []byte
		header                     http.Header
		status                     int
		ctype                      string // prefix
		poxCode                    int    // POX error code, 0 for none
		contains                   string // in the body
		allow                      string
	}{
		{name: "invalid address", method: "GET", host: "autoconfig.example.com", target: "/mail/config-v1.1.xml?emailaddress=not-an-address", status: 400, ctype: "text/plain", contains: "emailaddress parameter is not a valid e-mail address: the address has no @"},
		{name: "bad escape", method: "GET", host: "autoconfig.example.com", target: "/mail/config-v1.1.xml?emailaddress=fred%zz", status: 400, ctype: "text/plain", contains: "URL-encoded"},
		{name: "markup in address", method: "GET", host: "autoconfig.example.com", target: "/mail/config-v1.1.xml?emailaddress=%3Cscript%3E@example.com", status: 400, ctype: "text/plain", contains: "'<'"},
		{name: "unhosted", method: "GET", host: "autoconfig.example.com", target: "/mail/config-v1.1.xml?emailaddress=fred@example.net", status: 404, ctype: "text/plain", contains: "example.net"},
		{name: "very long query", method: "GET", host: "autoconfig.example.com", target: "/mail/config-v1.1.xml?emailaddress=" + long + "@example.com&x=" + long, status: 400, ctype: "text/plain", contains: "longer than 64"},
		{name: "long domain", method: "GET", host: "autoconfig.example.com", target: "/mail/config-v1.1.xml?emailaddress=a@" + strings.Repeat("b.", 200) + "com", status: 400, ctype: "text/plain", contains: "longer than 253"},

		{name: "host with port", method: "GET", host: "autoconfig.example.com:443", target: "/mail/config-v1.1.xml", status: 200, ctype: "text/xml"},
		{name: "host trailing dot", method: "GET", host: "autoconfig.example.com.", target: "/mail/config-v1.1.xml", status: 200, ctype: "text/xml"},
		{name: "host upper case", method: "GET", host: "AUTOCONFIG.EXAMPLE.COM", target: "/mail/config-v1.1.xml", status: 200, ctype: "text/xml"},
		{name: "host U-label", method: "GET", host: "autoconfig.bücher.example", target: "/mail/config-v1.1.xml", status: 200, ctype: "text/xml"},
		{name: "host IPv6 literal", method: "GET", host: "[::1]:8470", target: "/mail/config-v1.1.xml", status: 404, ctype: "text/plain", contains: "Host header"},
		{name: "host IPv4", method: "GET", host: "192.0.2.1", target: "/mail/config-v1.1.xml", status: 404, ctype: "text/plain"},
		{name: "host empty", method: "GET", host: "", target: "/mail/config-v1.1.xml", status: 404, ctype: "text/plain"},
		{name: "host garbage", method: "GET", host: "exa mple.com:x:y", target: "/mail/config-v1.1.xml", status: 404, ctype: "text/plain"},
		{name: "host empty with address", method: "GET", host: "", target: "/mail/config-v1.1.xml?emailaddress=fred@example.com", status: 200, ctype: "text/xml"},

		{name: "wrong method", method: "PUT", host: "autoconfig.example.com", target: "/mail/config-v1.1.xml", status: 405, ctype: "text/plain", allow: "GET, HEAD, OPTIONS"},
		{name: "POST on autoconfig", method: "POST", host: "autoconfig.example.com", target: "/mail/config-v1.1.xml", body: []byte("x"), status: 405, ctype: "text/plain", allow: "GET, HEAD, OPTIONS"},
		{name: "DELETE on POX", method: "DELETE", host: "autodiscover.example.com", target: "/autodiscover/autodiscover.xml", status: 405, ctype: "text/plain", allow: "GET, HEAD, POST, OPTIONS"},
		{name: "OPTIONS", method: "OPTIONS", host: "autodiscover.example.com", target: "/Autodiscover/Autodiscover.xml", status: 204, allow: "GET, HEAD, POST, OPTIONS"},
		{name: "unknown path", method: "GET", host: "autoconfig.example.com", target: "/etc/passwd", status: 404, ctype: "text/plain"},
		{name: "dot segments", method: "GET", host: "autoconfig.example.com", target: "/mail/../mail/config-v1.1.xml", status: 404, ctype: "text/plain"},

		{name: "POX invalid address", method: "POST", host: "autodiscover.example.com", target: "/autodiscover/autodiscover.xml", body: poxBody("fred", schemaOutlook), status: 200, ctype: "text/xml", poxCode: 600},
		{name: "POX no address", method: "POST", host: "autodiscover.example.com", target: "/autodiscover/autodiscover.xml", body: poxBody("", schemaOutlook), status: 200, ctype: "text/xml", poxCode: 600},
		{name: "POX unhosted", method: "POST", host: "autodiscover.example.com", target: "/autodiscover/autodiscover.xml", body: poxBody("fred@example.net", schemaOutlook), status: 200, ctype: "text/xml", poxCode: 500},
		{name: "POX oversized", method: "POST", host: "autodiscover.example.com", target: "/autodiscover/autodiscover.xml", body: poxBody(strings.Repeat("x", 70<<10), schemaOutlook), status: 413, ctype: "text/xml", poxCode: 600},
		{name: "POX DOCTYPE", method: "POST", host: "autodiscover.example.com", target: "/autodiscover/autodiscover.xml", body: []byte(`<?xml version="1.0"?><!DOCTYPE Autodiscover [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Autodiscover><Request><EMailAddress>&xxe;</EMailAddress></Request></Autodiscover>`), status: 200, ctype: "text/xml", poxCode: 600},
		{name: "POX billion laughs", method: "POST", host: "autodiscover.example.com", target: "/autodiscover/autodiscover.xml", body: []byte(`<!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><Autodiscover><Request><EMailAddress>&b;@example.com</EMailAddress></Request></Autodiscover>`), status: 200, ctype: "text/xml", poxCode: 600},
		{name: "POX entity", method: "POST", host: "autodiscover.example.com", target: "/autodiscover/autodiscover.xml", body: poxBody("&x;@example.com", schemaOutlook), status: 200, ctype: "text/xml", poxCode: 600},
		{name: "POX latin-1", method: "POST", host: "autodiscover.example.com", target: "/autodiscover/autodiscover.xml", body: poxBody("j\xf6rg@example.com", schemaOutlook), status: 200, ctype: "text/xml", poxCode: 600},
		{name: "POX empty body", method: "POST", host: "autodiscover.example.com", target: "/autodiscover/autodiscover.xml", body: []byte{}, status: 200, ctype: "text/xml", poxCode: 600},
		{name: "POX JSON body", method: "POST", host: "autodiscover.example.com", target: "/autodiscover/autodiscover.xml", body: []byte(`{"EMailAddress":"fred@example.com"}`), status: 200, ctype: "text/xml", poxCode: 600},
		{name: "POX unknown schema", method: "POST", host: "autodiscover.example.com", target: "/autodiscover/autodiscover.xml", body: poxBody("fred@example.com", "urn:other"), status: 200, ctype: "text/xml", poxCode: 601},
		{name: "POX odd case path", method: "POST", host: "autodiscover.example.com", target: "/AutoDiscover/AutoDiscover.XML", body: poxBody("fred@example.com", schemaOutlook), status: 200, ctype: "text/xml"},
		{name: "POX GET unhosted host", method: "GET", host: "autodiscover.example.net", target: "/autodiscover/autodiscover.xml", status: 200, ctype: "text/xml", poxCode: 500},
		{name: "POX GET bad address", method: "GET", host: "autodiscover.example.com", target: "/autodiscover/autodiscover.xml?emailaddress=x", status: 200, ctype: "text/xml", poxCode: 600},
		{name: "POX with Authorization", method: "POST", host: "autodiscover.example.com", target: "/autodiscover/autodiscover.xml", body: poxBody("fred@example.com", schemaOutlook), header: http.Header{"Authorization": {"Basic ZnJlZDpTRUNSRVQtUEFTU1dPUkQ="}}, status: 200, ctype: "text/xml"},

		{name: "JSON no protocol", method: "GET", host: "autodiscover.example.com", target: "/autodiscover/autodiscover.json?Email=fred@example.com", status: 400, ctype: "application/json", contains: "InvalidProtocol"},
		{name: "JSON hostile protocol", method: "GET", host: "autodiscover.example.com", target: "/autodiscover/autodiscover.json?Email=fred@example.com&Protocol=%3Cb%3E%22x'%5C", status: 400, ctype: "application/json", contains: `'bx'`},
		{name: "JSON invalid path address", method: "GET", host: "autodiscover.example.com", target: "/autodiscover/autodiscover.json/v1.0/not-an-address?Protocol=AutodiscoverV1", status: 400, ctype: "application/json", contains: "InvalidUser"},
		{name: "JSON unhosted", method: "GET", host: "autodiscover.example.com", target: "/autodiscover/autodiscover.json/v1.0/fred@example.net?Protocol=AutodiscoverV1", status: 404, ctype: "application/json"},
		{name: "JSON POST", method: "POST", host: "autodiscover.example.com", target: "/autodiscover/autodiscover.json?Protocol=AutodiscoverV1", body: []byte("{}"), status: 405, ctype: "text/plain", allow: "GET, HEAD, OPTIONS"},

		{name: "profile no address", method: "GET", host: "autoconfig.example.com", target: "/mobileconfig", status: 400, ctype: "text/plain", contains: "missing"},
		{name: "profile control in name", method: "GET", host: "autoconfig.example.com", target: "/mobileconfig?emailaddress=fred@example.com&name=a%00b", status: 400, ctype: "text/plain", contains: "control"},
		{name: "profile long name", method: "GET", host: "autoconfig.example.com", target: "/mobileconfig?emailaddress=fred@example.com&name=" + long, status: 400, ctype: "text/plain", contains: "name parameter"},
		{name: "profile non-UTF-8 name", method: "GET", host: "autoconfig.example.com", target: "/mobileconfig?emailaddress=fred@example.com&name=%FF", status: 400, ctype: "text/plain", contains: "UTF-8"},
		{name: "profile unhosted", method: "GET", host: "autoconfig.example.com", target: "/email.mobileconfig?email=fred@example.net", status: 404, ctype: "text/plain"},
		{name: "profile other spelling", method: "GET", host: "autoconfig.example.com", target: "/email.mobileconfig?email=fred@example.com", status: 200, ctype: "application/x-apple-aspen-config"},

		{name: "page invalid", method: "GET", host: "example.com", target: "/?emailaddress=%22unterminated%40example.com", status: 400, ctype: "text/html", contains: "unterminated quote"},
		{name: "page unhosted", method: "GET", host: "example.com", target: "/?emailaddress=fred%40example.net", status: 404, ctype: "text/html", contains: "example.net"},
		{name: "page POST", method: "POST", host: "example.com", target: "/", body: []byte("emailaddress=x"), status: 405, ctype: "text/plain", allow: "GET, HEAD, OPTIONS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serveRecorded(h, tt.method, tt.host, tt.target, tt.body, tt.header)
			res := w.Result()
			body := w.Body.Bytes()
			if res.StatusCode != tt.status {
				t.Fatalf("%s %s (Host %q) = %d, want %d\n%s", tt.method, tt.target, tt.host, res.StatusCode, tt.status, body)
			}
			if got := res.Header.Get("Content-Type"); !strings.HasPrefix(got, tt.ctype) || (tt.ctype == "" && got != "") {
				t.Errorf("Content-Type = %q, want %q", got, tt.ctype)
			}
			if got := res.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
			if tt.contains != "" && !bytes.Contains(body, []byte(tt.contains)) {
				t.Errorf("body lacks %q:\n%s", tt.contains, body)
			}
			if tt.status >= 400 || tt.poxCode != 0 {
				if got := res.Header.Get("Cache-Control"); got != "no-store" {
					t.Errorf("Cache-Control of an error = %q, want no-store", got)
				}
			}
			if strings.Contains(tt.ctype, "xml") {
				var doc poxDoc
				if err := xml.Unmarshal(body, &doc); err != nil && tt.poxCode != 0 {
					t.Fatalf("error document: %v\n%s", err, body)
				}
				if tt.poxCode != 0 && (doc.Response.Error == nil || doc.Response.Error.ErrorCode != tt.poxCode) {
					t.Errorf("POX error = %+v, want code %d\n%s", doc.Response.Error, tt.poxCode, body)
				}
				if tt.poxCode == 0 && doc.Response.Error != nil {
					t.Errorf("unexpected POX error %+v", doc.Response.Error)
				}
			}
		})
	}
	if bytes.Contains(logs.Bytes(), []byte("ZnJlZDpTRUNSRVQtUEFTU1dPUkQ")) || bytes.Contains(logs.Bytes(), []byte("Basic")) {
		t.Errorf("the Authorization header reached the log:\n%s", logs.String())
	}
	if !bytes.Contains(logs.Bytes(), []byte("msg=request")) {
		t.Errorf("no request was logged at debug level:\n%s", logs.String())
	}
}

// TestOverListener checks what only a real connection shows: the body
// limit with an unknown length, HEAD, the header size limit, and an
// HTTP/1.0 request without Host.
func TestOverListener(t *testing.T) {
	ts := startServer(t, syntheticSite(t))

	// A chunked body (no Content-Length) beyond the limit.
	pr, pw := io.Pipe()
	go func() {
		pw.Write(poxBody(strings.Repeat("x", 80<<10), schemaOutlook))
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", "http://autodiscover.example.com/autodiscover/autodiscover.xml", pr)
	res, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 413 || !bytes.Contains(b, []byte("<ErrorCode>600</ErrorCode>")) {
		t.Errorf("chunked oversized POST = %d\n%s", res.StatusCode, b)
	}

	get := ts.do(t, "GET", "https://autoconfig.example.com/mail/config-v1.1.xml", nil, nil)
	head := ts.do(t, "HEAD", "https://autoconfig.example.com/mail/config-v1.1.xml", nil, nil)
	if head.status != 200 || len(head.body) != 0 || head.header.Get("Content-Length") != get.header.Get("Content-Length") ||
		head.header.Get("Content-Type") != get.header.Get("Content-Type") {
		t.Errorf("HEAD = %d, %d bytes, headers %v; GET headers %v", head.status, len(head.body), head.header, get.header)
	}

	// Raw requests.
	raw := func(req string) (int, string) {
		t.Helper()
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		go io.WriteString(c, req) // the server may answer before reading it all
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%.60q: %v", req, err)
		}
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := raw("GET /mail/config-v1.1.xml HTTP/1.0\r\n\r\n"); code != 404 {
		t.Errorf("HTTP/1.0 without Host = %d %s, want 404", code, body)
	}
	if code, _ := raw("GET /mail/config-v1.1.xml?emailaddress=fred%40example.com HTTP/1.0\r\n\r\n"); code != 200 {
		t.Errorf("HTTP/1.0 with address = %d, want 200", code)
	}
	big := "GET /mail/config-v1.1.xml?emailaddress=" + strings.Repeat("a", 100<<10) + " HTTP/1.1\r\nHost: autoconfig.example.com\r\n\r\n"
	if code, _ := raw(big); code != 431 && code != 414 && code != 400 {
		t.Errorf("100 KiB request line = %d, want 431", code)
	}
	if code, _ := raw("GET /mail/config-v1.1.xml HTTP/1.1\r\nHost: autoconfig.example.com\r\nHost: autoconfig.example.org\r\n\r\n"); code != 400 {
		t.Errorf("two Host headers = %d, want 400", code)
	}
	if code, _ := raw("GET /?emailaddress=" + url.QueryEscape("fred@example.com") + " HTTP/1.1\r\nHost: [::1]\r\n\r\n"); code != 200 {
		t.Errorf("IPv6 Host with address = %d, want 200", code)
	}
}
