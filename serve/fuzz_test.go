package serve

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

var fuzzMethods = []string{"GET", "HEAD", "POST", "PUT", "OPTIONS", "DELETE", "PATCH", "PROPFIND"}

// FuzzRoute sends arbitrary host, path, query and body to the handler:
// it must never panic, answer only with the statuses the package documents,
// and every XML or JSON body must be well-formed.
func FuzzRoute(f *testing.F) {
	var store Store
	store.Swap(syntheticSite(f))
	h := NewHandler(&store, nil)
	seeds := []struct {
		method      uint8
		host, path  string
		query, body string
	}{
		{0, "autoconfig.example.com", "/mail/config-v1.1.xml", "emailaddress=fred%40example.com", ""},
		{0, "example.com:443", "/.well-known/autoconfig/mail/config-v1.1.xml", "", ""},
		{0, "[::1]", "/mail/config-v1.1.xml", "emailaddress=%22a%3Cb%22@example.com", ""},
		{2, "autodiscover.example.com", "/AutoDiscover/AutoDiscover.xml", "", string(poxBody("fred@example.com", schemaOutlook))},
		{2, "autodiscover.example.com", "/autodiscover/autodiscover.xml", "", string(poxBody("fred@example.com", schemaMobileSync))},
		{2, "autodiscover.example.com", "/autodiscover/autodiscover.xml", "", `<!DOCTYPE a><Autodiscover/>`},
		{0, "autodiscover.example.com", "/autodiscover/autodiscover.xml", "", ""},
		{0, "autodiscover.example.com", "/autodiscover/autodiscover.json/v1.0/fred@example.com", "Protocol=AutodiscoverV1", ""},
		{0, "autodiscover.example.com", "/autodiscover/autodiscover.json", "Email=fred%40example.com&Protocol=Ews", ""},
		{0, "autoconfig.example.com", "/mobileconfig", "emailaddress=fred%40example.com&name=Fred%20Example", ""},
		{0, "autoconfig.example.com", "/email.mobileconfig", "email=fred%40xn--bcher-kva.example", ""},
		{0, "example.com", "/", "emailaddress=fred%40example.com", ""},
		{0, "example.com", "/", "emailaddress=%E2%80%8B", ""},
		{3, "", "/", "", "x"},
		{4, "autodiscover.example.com", "/autodiscover/autodiscover.xml", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.host, s.path, s.query, s.body)
	}
	allowed := map[int]bool{200: true, 204: true, 302: true, 400: true, 404: true, 405: true, 413: true}
	f.Fuzz(func(t *testing.T, method uint8, host, path, query, body string) {
		r := &http.Request{
			Method:        fuzzMethods[int(method)%len(fuzzMethods)],
			URL:           &url.URL{Path: path, RawQuery: query},
			Proto:         "HTTP/1.1",
			ProtoMajor:    1,
			ProtoMinor:    1,
			Host:          host,
			Header:        http.Header{},
			Body:          io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)),
			RemoteAddr:    "192.0.2.1:1234",
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if !allowed[w.Code] {
			t.Fatalf("%s %q ? %q (Host %q) = %d\n%s", r.Method, path, query, host, w.Code, w.Body.Bytes())
		}
		ctype := w.Header().Get("Content-Type")
		b := w.Body.Bytes()
		switch {
		case strings.Contains(ctype, "xml"):
			dec := xml.NewDecoder(bytes.NewReader(b))
			for {
				_, err := dec.Token()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s %q ? %q: malformed XML: %v\n%s", r.Method, path, query, err, b)
				}
			}
		case strings.Contains(ctype, "json"):
			if !json.Valid(b) {
				t.Fatalf("%s %q ? %q: malformed JSON\n%s", r.Method, path, query, b)
			}
		}
		if w.Header().Get("Cache-Control") == "" && w.Code != 204 {
			t.Fatalf("%s %q: no Cache-Control", r.Method, path)
		}
	})
}
