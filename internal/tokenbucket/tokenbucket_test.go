package tokenbucket

import (
	"testing"
	"time"
)

func TestTake(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name        string
		rate, burst float64
		at          []time.Duration // times of the takes, from t0
		want        []bool
	}{
		{"burst then empty", 1, 3, []time.Duration{0, 0, 0, 0}, []bool{true, true, true, false}},
		{"refills at rate", 2, 1, []time.Duration{0, 100 * time.Millisecond, 500 * time.Millisecond, 600 * time.Millisecond}, []bool{true, false, true, false}},
		{"never above burst", 100, 2, []time.Duration{0, 0, 0, time.Hour, time.Hour, time.Hour}, []bool{true, true, false, true, true, false}},
		{"zero rate", 0, 1, []time.Duration{0, time.Hour}, []bool{true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := New(tc.rate, tc.burst)
			for i, d := range tc.at {
				if got := b.Take(t0.Add(d)); got != tc.want[i] {
					t.Errorf("take %d at %v: %v, want %v", i, d, got, tc.want[i])
				}
			}
		})
	}
	var zero Bucket
	if zero.Take(t0) {
		t.Error("the zero Bucket gave a token")
	}
}
