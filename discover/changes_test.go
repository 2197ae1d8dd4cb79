package discover

import (
	"crypto/x509"
	"slices"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/sources/certs"
)

// TestStaleAt: the clock makes a snapshot stale when a certificate comes
// within certExpirySoon of its end and when it ends, whichever comes first
// after the build; a snapshot without certificates never is.
func TestStaleAt(t *testing.T) {
	end := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	soon := end.Add(-certExpirySoon + time.Second)
	later := end.Add(24 * time.Hour)
	cert := func(at time.Time) Certificate { return Certificate{NotAfter: at.Format(time.RFC3339)} }
	for _, tt := range []struct {
		name  string
		certs []Certificate
		since time.Time
		want  time.Time
	}{
		{"no certificate", nil, end.Add(-90 * 24 * time.Hour), time.Time{}},
		{"far from its end", []Certificate{cert(end)}, end.Add(-90 * 24 * time.Hour), soon},
		{"soon already", []Certificate{cert(end)}, end.Add(-time.Hour), end.Add(time.Second)},
		{"expired already", []Certificate{cert(end)}, end.Add(time.Hour), time.Time{}},
		{"the first of two", []Certificate{cert(later), cert(end)}, end.Add(-time.Hour), end.Add(time.Second)},
		{"unparsable date", []Certificate{{NotAfter: "soon"}}, end, time.Time{}},
	} {
		s := &Snapshot{certs: tt.certs}
		if got := s.StaleAt(tt.since); !got.Equal(tt.want) {
			t.Errorf("%s: StaleAt(%v) = %v, want %v", tt.name, tt.since, got, tt.want)
		}
	}
	// Each boundary is the first second at which Problems says something
	// else than a second before.
	c := &certs.Cert{Path: "/etc/ssl/certs/mail.pem", Leaf: &x509.Certificate{NotAfter: end, RawIssuer: []byte("ca"), RawSubject: []byte("mail")}}
	for _, at := range []time.Time{soon, end.Add(time.Second)} {
		before, after := c.Problems(at.Add(-time.Second), certExpirySoon), c.Problems(at, certExpirySoon)
		if slices.Equal(before, after) {
			t.Errorf("Problems at %v and a second before are both %q", at, after)
		}
	}
}
