package serve

import (
	"net/http"
	"testing"
)

func TestForwardedProto(t *testing.T) {
	for _, tt := range []struct {
		name   string
		header http.Header
		want   string
	}{
		{"none", http.Header{}, ""},
		{"x-forwarded-proto http", http.Header{"X-Forwarded-Proto": {"http"}}, "http"},
		{"x-forwarded-proto upper case", http.Header{"X-Forwarded-Proto": {"HTTP"}}, "http"},
		// Each proxy appends: the last value is the proxy in front.
		{"x-forwarded-proto list, last https", http.Header{"X-Forwarded-Proto": {"http, https"}}, "https"},
		{"x-forwarded-proto list, last http", http.Header{"X-Forwarded-Proto": {"https,http"}}, "http"},
		{"x-forwarded-proto two lines", http.Header{"X-Forwarded-Proto": {"http", "https"}}, "https"},
		{"x-forwarded-proto trailing comma", http.Header{"X-Forwarded-Proto": {"http, "}}, "http"},
		{"forwarded", http.Header{"Forwarded": {"for=192.0.2.60;proto=http;by=203.0.113.43"}}, "http"},
		{"forwarded quoted, case", http.Header{"Forwarded": {`For="[2001:db8:cafe::17]:4711";PROTO="HTTP"`}}, "http"},
		{"forwarded two elements, last https", http.Header{"Forwarded": {"proto=http, for=192.0.2.43;proto=https"}}, "https"},
		{"forwarded two lines", http.Header{"Forwarded": {"proto=https", "for=192.0.2.43;proto=http"}}, "http"},
		// The last element says nothing about the scheme: earlier ones
		// may be the client's own and are not believed.
		{"forwarded last without proto", http.Header{"Forwarded": {"proto=http, for=192.0.2.43"}}, ""},
		{"forwarded comma in quotes", http.Header{"Forwarded": {`for="a,b";proto=http`}}, "http"},
		{"forwarded semicolon in quotes", http.Header{"Forwarded": {`for="a;proto=https";proto=http`}}, "http"},
		{"forwarded escaped quote", http.Header{"Forwarded": {`for="a\",proto=https";proto=http`}}, "http"},
		{"forwarded unterminated quote", http.Header{"Forwarded": {`for="a;proto=http`}}, ""},
		{"forwarded unterminated quote, earlier line", http.Header{"Forwarded": {`for="a, proto=https`, "proto=http"}}, ""},
		{"forwarded empty elements", http.Header{"Forwarded": {"proto=http,,"}}, "http"},
		{"x-forwarded-proto wins over forwarded", http.Header{"X-Forwarded-Proto": {"https"}, "Forwarded": {"proto=http"}}, "https"},
	} {
		if got := forwardedProto(tt.header); got != tt.want {
			t.Errorf("%s: forwardedProto(%v) = %q, want %q", tt.name, tt.header, got, tt.want)
		}
	}
}

// TestPOXGetBehindProxy: Outlook's plain-HTTP probe is redirected only
// when the proxy in front says it came over plain HTTP.
func TestPOXGetBehindProxy(t *testing.T) {
	var store Store
	store.Swap(syntheticSite(t))
	h := NewHandler(&store, nil)
	for _, tt := range []struct {
		header http.Header
		want   int
	}{
		{http.Header{"X-Forwarded-Proto": {"http"}}, http.StatusFound},
		{http.Header{"X-Forwarded-Proto": {"http, https"}}, http.StatusOK},
		{http.Header{"X-Forwarded-Proto": {"https, http"}}, http.StatusFound},
		{http.Header{"Forwarded": {`for=192.0.2.1;proto="http"`}}, http.StatusFound},
		{http.Header{"Forwarded": {"proto=http, proto=https"}}, http.StatusOK},
		{http.Header{}, http.StatusOK},
	} {
		w := serveRecorded(h, "GET", "autodiscover.example.com", "/autodiscover/autodiscover.xml", nil, tt.header)
		if w.Code != tt.want {
			t.Errorf("GET with %v: %d, want %d\n%s", tt.header, w.Code, tt.want, w.Body.String())
		}
	}
}
