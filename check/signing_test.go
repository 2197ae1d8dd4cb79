package check

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestUnsignedProfiles: when no key can sign Apple profiles, check says so
// and why, as a warning (discovery still works); when one can, it says
// nothing.
func TestUnsignedProfiles(t *testing.T) {
	pki := newPKI(t)
	chain, key, _ := pki.leaf(t, 90*24*time.Hour, allNames...)
	_, otherKey, _ := pki.leaf(t, 90*24*time.Hour, allNames...)
	for _, tt := range []struct {
		name   string
		key    []byte
		detail string // "" : no result
	}{
		{"signable", key, ""},
		{"key of another certificate", otherKey, "it does not match the certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeRoot(t, dir, chain, tt.key)
			snap, _ := buildSnapshot(t, dir)
			results, err := Run(context.Background(), Options{Snapshot: snap, Resolver: closedPort(t), Timeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			var got *Result
			for i, r := range results {
				if r.Name == "Apple profile signature" {
					got = &results[i]
				}
			}
			switch {
			case tt.detail == "" && got != nil:
				t.Errorf("signable key, yet %+v", *got)
			case tt.detail != "" && (got == nil || got.Status != Warn || !strings.Contains(got.Detail, tt.detail) || !strings.Contains(got.Detail, "served unsigned")):
				t.Errorf("result = %+v, want WARN saying unsigned and %q", got, tt.detail)
			}
		})
	}
}
