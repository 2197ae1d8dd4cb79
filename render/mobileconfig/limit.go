package mobileconfig

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/tokenbucket"
)

// Signing budget of a process. An RSA-2048 signature costs about 2 ms of
// a core, a thousand times what any other answer costs, and every new
// address needs one, so a flood of made-up addresses could otherwise keep
// the server's core busy signing while every other client waits its turn
// (280 ms at 24 000 addresses before this bound). So:
//
//   - one signature runs at a time, and at most MaxSignWaiting requests
//     for profiles with an address wait for it (a domain's profile may
//     always wait: its own budget bounds it): other requests never queue
//     behind more than a few signatures;
//   - profiles carrying an address are signed at most AddressSignRate a
//     second (bursts of AddressSignBurst); domain profiles, which carry
//     none and are cached per domain, at most DomainSignRate a second
//     (bursts of DomainSignBurst), so a flood of addresses cannot take
//     their budget.
//
// With an RSA key that is at most 30 × 2 ms, some 6 % of a core, whatever
// the flood. A request over the address budget gets its domain's profile
// (signed, without the address: the device asks for it on installation);
// over both, Sign fails with ErrBusy and the client is told to retry.
const (
	MaxSignWaiting   = 4
	AddressSignRate  = 20
	AddressSignBurst = 40
	DomainSignRate   = 10
	DomainSignBurst  = 20
	signSlots        = 1
)

// A limiter bounds signing work: concurrent signatures, requests waiting
// for one, and signatures a second per kind. It is safe for concurrent use.
type limiter struct {
	slots chan struct{}

	mu       sync.Mutex
	waiting  int
	maxWait  int
	address  tokenbucket.Bucket
	domain   tokenbucket.Bucket
	now      func() time.Time
	signed   atomic.Int64 // signatures started
	running  atomic.Int64 // signatures running now
	peak     atomic.Int64 // the most ever running at once
	refusals atomic.Int64 // acquire calls refused
}

func newLimiter(slots, maxWait int, addrRate, addrBurst, domRate, domBurst float64) *limiter {
	return &limiter{
		slots:   make(chan struct{}, slots),
		maxWait: maxWait,
		address: tokenbucket.New(addrRate, addrBurst),
		domain:  tokenbucket.New(domRate, domBurst),
		now:     time.Now,
	}
}

// processLimiter is the budget every Signer of the process shares: the
// core it protects is the process's.
var processLimiter = newLimiter(signSlots, MaxSignWaiting, AddressSignRate, AddressSignBurst, DomainSignRate, DomainSignBurst)

// acquire takes a token of the kind (withAddress or a domain profile) and
// waits for the signing slot, unless too many already wait or the kind's
// budget is spent: then it reports false at once. Call release after
// signing when it reports true.
func (l *limiter) acquire(withAddress bool) bool {
	l.mu.Lock()
	// A domain's profile may always wait: its own budget bounds it, and
	// requests with addresses must not crowd it out.
	var ok bool
	if withAddress {
		ok = l.waiting < l.maxWait && l.address.Take(l.now())
	} else {
		ok = l.domain.Take(l.now())
	}
	if !ok {
		l.mu.Unlock()
		l.refusals.Add(1)
		return false
	}
	l.waiting++
	l.mu.Unlock()

	l.slots <- struct{}{}

	l.mu.Lock()
	l.waiting--
	l.mu.Unlock()
	l.signed.Add(1)
	if n := l.running.Add(1); n > l.peak.Load() {
		l.peak.Store(n) // only the slot holders write: no lost update beyond slots
	}
	return true
}

func (l *limiter) release() {
	l.running.Add(-1)
	<-l.slots
}
