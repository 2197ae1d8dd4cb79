package serve

import (
	"sync"
	"time"

	"github.com/mailautoconf/mailautoconf/render"
)

// The settings page shows the QR code of the address's profile link
// (render.ProfileQR). Encoding one costs some 300 µs, a hundred times
// what the rest of the page costs, so a Site keeps the codes it made for
// its snapshot (at most maxQRCodes, random eviction), and the process
// makes at most qrPerSecond new ones a second (qrBurst at once): beyond,
// the page is served without the code, never later.
const (
	maxQRCodes  = 1024
	qrPerSecond = 20
	qrBurst     = 20
)

// processQRBudget bounds new QR codes for every Site of the process.
var processQRBudget = newTokenBucket(qrPerSecond, qrBurst)

// qrCodes holds a Site's QR codes by address.
type qrCodes struct {
	mu     sync.Mutex
	m      map[string][]byte
	budget *tokenBucket // nil: processQRBudget
}

// profileQR returns the QR code HTML for a's profile link, or nil when the
// budget for new codes is spent (or the link cannot be encoded).
func (s *Site) profileQR(a render.Address) []byte {
	c := s.qr
	if c == nil {
		return nil
	}
	key := a.String()
	c.mu.Lock()
	b, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return b
	}
	budget := c.budget
	if budget == nil {
		budget = processQRBudget
	}
	if !budget.take(time.Now()) {
		return nil
	}
	b, err := render.ProfileQR(a)
	if err != nil {
		s.log.Debug("no QR code for the profile link", "err", err)
		return nil
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string][]byte{}
	}
	if len(c.m) >= maxQRCodes {
		for k := range c.m { // a random entry
			delete(c.m, k)
			break
		}
	}
	c.m[key] = b
	c.mu.Unlock()
	return b
}

// A tokenBucket allows rate events a second on average, burst at once.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate, burst float64) *tokenBucket {
	return &tokenBucket{rate: rate, burst: burst, tokens: burst}
}

// take spends a token if one is left at now.
func (b *tokenBucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
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
