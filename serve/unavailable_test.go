package serve

import (
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestNoSite: with no Site published (a start with a broken configuration
// and no saved snapshot), every route answers at once with 503 and
// Retry-After; Autodiscover with its POX error document, the others with
// plain text.
func TestNoSite(t *testing.T) {
	h := NewHandler(&Store{}, nil)
	tests := []struct {
		method, target, body string
		pox                  bool
	}{
		{"GET", "http://autoconfig.example.com/mail/config-v1.1.xml?emailaddress=a%40example.com", "", false},
		{"POST", "http://autodiscover.example.com/autodiscover/autodiscover.xml", `<?xml version="1.0"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>a@example.com</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>`, true},
		{"GET", "http://autodiscover.example.com/autodiscover/autodiscover.xml?emailaddress=a%40example.com", "", true},
		{"GET", "http://autodiscover.example.com/autodiscover/autodiscover.json/v1.0/a@example.com?Protocol=AutodiscoverV1", "", false},
		{"GET", "http://example.com/email.mobileconfig?emailaddress=a%40example.com", "", false},
		{"GET", "http://example.com/", "", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		res := w.Result()
		if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s: %d, Retry-After %q; want 503 with Retry-After", tt.method, tt.target, res.StatusCode, res.Header.Get("Retry-After"))
		}
		body := w.Body.String()
		if !tt.pox {
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("%s %s: Content-Type %q, want text/plain", tt.method, tt.target, ct)
			}
			continue
		}
		var doc struct {
			Response struct {
				Error struct {
					ErrorCode int    `xml:"ErrorCode"`
					Message   string `xml:"Message"`
				} `xml:"Error"`
			} `xml:"Response"`
		}
		if err := xml.Unmarshal([]byte(body), &doc); err != nil || doc.Response.Error.ErrorCode != poxInternal {
			t.Errorf("%s %s: not a POX error document with code %d (%v):\n%s", tt.method, tt.target, poxInternal, err, body)
		}
	}
}
