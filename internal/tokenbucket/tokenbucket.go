// Package tokenbucket is the token bucket the daemon's budgets share: the
// database lookups for names the snapshot lacks and the QR codes of the
// settings page (serve), and the profile signatures (render/mobileconfig). It keeps no clock and no lock of its
// own: callers pass the time and hold their own mutex.
package tokenbucket

import "time"

// A Bucket refills Rate tokens a second up to Burst. Make a full one with
// New; the zero Bucket never has a token.
type Bucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time // when tokens was last refilled
}

// New returns a full bucket that refills rate tokens a second up to burst.
func New(rate, burst float64) Bucket {
	return Bucket{rate: rate, burst: burst, tokens: burst}
}

// Take refills the bucket up to now and takes a token if one is left.
func (b *Bucket) Take(now time.Time) bool {
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
