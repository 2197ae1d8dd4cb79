package mobileconfig

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/render"
)

// ErrBusy is returned by Sign when the process's signing budget (see
// MaxSignWaiting) is spent for both the address and its domain's profile:
// the client should try again in a few seconds.
var ErrBusy = errors.New("mobileconfig: too many profiles to sign right now")

// Sign returns the signed profile for the address, from the cache when it
// was signed before. The bytes are shared with other callers: do not
// modify them.
//
// A signed profile shows as "Verified" with the mail host's name, so it
// carries nothing from the request that could pass for the host's own
// words: never a display name, and the address only when its local part
// is plain (an RFC 5322 dot-atom, as ParseAddress in serve accepts: no
// quotes, spaces, controls or format characters). For any other address,
// and when the budget for signing profiles with an address is spent (a
// flood of made-up addresses), it returns the domain's profile: the same
// servers, no address and no user name, which Mail asks for on
// installation. An address of another domain than its LoginDomain keeps
// that distinction in the domain's profile's hint.
func (sg *Signer) Sign(s *discover.Snapshot, a render.Address) ([]byte, error) {
	in, prefix, err := sg.inputsFor(s)
	if err != nil {
		return nil, err
	}
	cache := sg.getCache()
	lim := sg.limiter()
	if plainLocal(a.Local) {
		body, err := cache.do(cacheKey{prefix, a}, func() ([]byte, error) {
			return sg.signLimited(lim, true, in, a)
		})
		if !errors.Is(err, ErrBusy) {
			return body, err
		}
	}
	d := render.Address{Domain: a.Domain, LoginDomain: loginDomain(a)}
	return cache.do(cacheKey{prefix, d}, func() ([]byte, error) {
		return sg.signLimited(lim, false, in, d)
	})
}

// signLimited renders and signs a's profile within lim's budget; over it,
// it fails at once, without rendering.
func (sg *Signer) signLimited(lim *limiter, withAddress bool, in profileInputs, a render.Address) ([]byte, error) {
	if !lim.acquire(withAddress) {
		return nil, ErrBusy
	}
	defer lim.release()
	body, err := in.profile(a, "")
	if err != nil {
		return nil, err
	}
	return sg.sign(body)
}

// inputsFor returns what a profile for s shows, and the cache key prefix
// for it and the Signer's certificate; computed once for the Signer's own
// snapshot.
func (sg *Signer) inputsFor(s *discover.Snapshot) (profileInputs, string, error) {
	if s != sg.snap {
		in, err := snapshotInputs(s)
		return in, string(sg.fingerprint[:]) + in.key(), err
	}
	sg.inputsOnce.Do(func() {
		sg.inputs, sg.inputsErr = snapshotInputs(s)
		sg.inputsKey = string(sg.fingerprint[:]) + sg.inputs.key()
	})
	return sg.inputs, sg.inputsKey, sg.inputsErr
}

// getCache returns the Signer's Cache, making one on first use.
func (sg *Signer) getCache() *Cache {
	if c := sg.cache.Load(); c != nil {
		return c
	}
	sg.cache.CompareAndSwap(nil, NewCache(0))
	return sg.cache.Load()
}

func (sg *Signer) limiter() *limiter {
	if sg.limit != nil {
		return sg.limit
	}
	return processLimiter
}

// Keep makes sg use prev's Cache when both sign with the same certificate,
// so that profiles signed for the previous snapshot are not signed again:
// entries whose servers changed are keyed differently and age out. Call it
// before sg signs anything (serve does when it publishes a new snapshot).
// With another certificate, or a nil prev, sg keeps a Cache of its own.
func (sg *Signer) Keep(prev *Signer) {
	if prev == nil || prev == sg || prev.fingerprint != sg.fingerprint {
		return
	}
	if c := prev.cache.Load(); c != nil {
		sg.cache.Store(c)
	}
}

// CacheBytes is what the Signer's Cache holds, counted as its bound counts
// (DefaultCacheBytes).
func (sg *Signer) CacheBytes() int { return sg.getCache().Bytes() }

// SigningStats counts the process's signatures: started, the most that
// ever ran at once, and the requests refused for the budget (each then
// got its domain's profile, or ErrBusy).
type SigningStats struct {
	Signed, Peak, Refused int64
}

// Stats returns the process's SigningStats, for tests and logs.
func Stats() SigningStats {
	l := processLimiter
	return SigningStats{Signed: l.signed.Load(), Peak: l.peak.Load(), Refused: l.refusals.Load()}
}

// plainLocal reports whether l is an RFC 5322 dot-atom (with RFC 6531's
// UTF-8): atoms of atext separated by single dots, nothing quoted. Beyond
// ASCII only letters, marks, digits, punctuation and symbols count: no
// space, control, format (bidi) or private-use character.
func plainLocal(l string) bool {
	if l == "" || l[0] == '.' || l[len(l)-1] == '.' || !utf8.ValidString(l) {
		return false
	}
	prevDot := false
	for _, r := range l {
		switch {
		case r == '.':
			if prevDot {
				return false
			}
			prevDot = true
			continue
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r < utf8.RuneSelf:
			if !isASCIIAtextSymbol(r) {
				return false
			}
		case r == utf8.RuneError || !unicode.IsGraphic(r) || unicode.IsSpace(r):
			return false
		}
		prevDot = false
	}
	return true
}

func isASCIIAtextSymbol(r rune) bool {
	switch r {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '/', '=', '?', '^', '_', '`', '{', '|', '}', '~':
		return true
	}
	return false
}

// String is for logs.
func (st SigningStats) String() string {
	return fmt.Sprintf("%d signed, at most %d at once, %d refused", st.Signed, st.Peak, st.Refused)
}
