package serve

import (
	"sync"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/tokenbucket"
	"github.com/mailautoconf/mailautoconf/render"
)

// The settings page shows the QR code of the address's profile link
// (render.ProfileQR). Encoding one costs some 250 µs, a hundred times
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
var processQRBudget = newQRBudget(qrPerSecond, qrBurst)

// qrCodes holds a Site's QR codes by address.
type qrCodes struct {
	mu     sync.Mutex
	m      map[string][]byte
	budget *qrBudget // nil: processQRBudget
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

// A qrBudget is a token bucket (internal/tokenbucket) with its lock.
type qrBudget struct {
	mu sync.Mutex
	b  tokenbucket.Bucket
}

func newQRBudget(rate, burst float64) *qrBudget {
	return &qrBudget{b: tokenbucket.New(rate, burst)}
}

// take spends a token if one is left at now.
func (q *qrBudget) take(now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.b.Take(now)
}
