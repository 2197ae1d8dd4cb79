package serve

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// benchWriter is a ResponseWriter that keeps nothing, so a benchmark
// measures the handler, not a recorder.
type benchWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(code int)        { w.code = code }
func (w *benchWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }

// rewindBody is a request body that can be read again.
type rewindBody struct{ bytes.Reader }

func (*rewindBody) Close() error { return nil }

func benchHandler(b *testing.B, signed bool) http.Handler {
	b.Helper()
	site := syntheticSite(b)
	if !site.Signed() {
		b.Fatal("the synthetic site does not sign profiles")
	}
	if !signed {
		unsigned := *site
		unsigned.signer = nil
		site = &unsigned
	}
	var store Store
	store.Swap(site)
	return NewHandler(&store, nil)
}

func runBench(b *testing.B, h http.Handler, method, host, target string, body []byte, wantType string) {
	r := httptest.NewRequest(method, target, nil)
	r.Host = host
	var rb *rewindBody
	if body != nil {
		rb = &rewindBody{}
		r.Body = rb
		r.ContentLength = int64(len(body))
	}
	w := &benchWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if rb != nil {
			rb.Reset(body)
		}
		clear(w.h)
		w.n = 0
		h.ServeHTTP(w, r)
	}
	b.StopTimer()
	if w.code != 200 || w.h.Get("Content-Type") != wantType {
		b.Fatalf("%s %s = %d %q, want 200 %s", method, target, w.code, w.h.Get("Content-Type"), wantType)
	}
	b.SetBytes(int64(w.n))
}

func BenchmarkAutoconfig(b *testing.B) {
	runBench(b, benchHandler(b, true), "GET", "autoconfig.example.com", "/mail/config-v1.1.xml?emailaddress=fred%40example.com", nil, "text/xml; charset=utf-8")
}

func BenchmarkAutoconfigNoAddress(b *testing.B) {
	runBench(b, benchHandler(b, true), "GET", "autoconfig.example.com", "/mail/config-v1.1.xml", nil, "text/xml; charset=utf-8")
}

func BenchmarkPOX(b *testing.B) {
	runBench(b, benchHandler(b, true), "POST", "autodiscover.example.com", "/autodiscover/autodiscover.xml", poxBody("fred@example.com", schemaOutlook), "text/xml; charset=utf-8")
}

func BenchmarkJSON(b *testing.B) {
	runBench(b, benchHandler(b, true), "GET", "autodiscover.example.com", "/autodiscover/autodiscover.json/v1.0/fred@example.com?Protocol=AutodiscoverV1", nil, "application/json")
}

func BenchmarkProfileUnsigned(b *testing.B) {
	runBench(b, benchHandler(b, false), "GET", "autoconfig.example.com", "/mobileconfig?emailaddress=fred%40example.com&name=Fred", nil, "application/x-apple-aspen-config")
}

func BenchmarkProfileSignedCached(b *testing.B) {
	runBench(b, benchHandler(b, true), "GET", "autoconfig.example.com", "/mobileconfig?emailaddress=fred%40example.com&name=Fred", nil, "application/x-apple-aspen-config")
}

func BenchmarkSettingsPage(b *testing.B) {
	runBench(b, benchHandler(b, true), "GET", "example.com", "/?emailaddress=fred%40example.com", nil, "text/html; charset=utf-8")
}
