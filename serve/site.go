package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/internal/domainname"
	"github.com/mailautoconf/mailautoconf/render"
	"github.com/mailautoconf/mailautoconf/render/mobileconfig"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// lookupTimeout bounds a database query for a domain the snapshot's list
// lacks. Thunderbird gives a request 5 s in all (PROTOCOLS.md §1.6); a
// client that waits longer than this for us has lost more than we could win.
const lookupTimeout = 2 * time.Second

// POX error codes (PROTOCOLS.md §3.5).
const (
	poxNotFound   = 500 // the address cannot be found: its domain is not hosted here
	poxBadRequest = 600 // the request XML is malformed, or the address is invalid
	poxBadSchema  = 601 // no provider for the AcceptableResponseSchema
	poxInternal   = 603 // the domain database failed
)

var poxMessages = map[int]string{
	poxNotFound:   "The e-mail address cannot be found: its domain is not hosted on this server.",
	poxBadRequest: "Invalid Request",
	poxBadSchema:  "The requested response schema is not supported; this server offers outlook/responseschema/2006a.",
	poxInternal:   "Internal server error: the domain database could not be queried. Try again later.",
}

// Protocol values of autodiscover.json whose error answer is prepared
// when the Site is built (PROTOCOLS.md §5); others are rendered when asked.
var knownJSONProtocols = []string{
	"ActiveSync", "Ews", "Rest", "Substrate", "SubstrateSearchService",
	"SubstrateNotificationService", "OutlookMeetingScheduler", "OutlookPay",
	"Actions", "Connectors", "",
}

// A Site is everything the server answers from one snapshot, rendered when
// the snapshot is published so that a request only looks up a domain and
// copies bytes. It is immutable and safe for concurrent use.
type Site struct {
	snap     *discover.Snapshot
	log      *slog.Logger
	hostname string // the mail host's name as a domain ("" when it is not one)

	// The enumerated domains are the snapshot's; nothing is kept per
	// domain here.
	autoconfig      page // for a domain whose users log in at it
	aliasAutoconfig page // for an alias domain: lists it and its target

	pox        page
	poxErrors  map[int]doc
	mobileSync doc  // 601: no ActiveSync
	easSync    page // the mobilesync settings, when ActiveSync is proven
	json       page
	jsonEAS    page           // Protocol=ActiveSync, when ActiveSync is proven
	jsonErrors map[string]doc // by lower-case protocol
	form       doc
	settings   page
	qr         *qrCodes             // the settings page's QR codes, by address; nil: none
	signer     *mobileconfig.Signer // nil: profiles are served unsigned
	unsigned   string               // why signer is nil
	certs      []siteCert           // for the https socket, in the snapshot's order
	misses     *MissGuard           // nil: lookups are not bounded
	gen        uint64               // this Site's generation in misses

	life *siteLife
}

// siteLife tracks who uses a Site, to close its snapshot after the last.
type siteLife struct {
	// refs counts the requests using the Site, plus one while a Store
	// publishes it; closeSnap says to close the snapshot when it drops to
	// zero (see Store.Publish).
	refs      atomic.Int64
	closeSnap atomic.Bool
	closeOnce sync.Once
}

// A SiteOption tunes NewSite.
type SiteOption func(*Site)

// WithMissGuard bounds the database lookups for domains the snapshot does
// not list with g, which the caller shares between successive Sites. The
// hosted domains g remembers for one Site are looked up again by the next.
func WithMissGuard(g *MissGuard) SiteOption {
	return func(s *Site) { s.misses, s.gen = g, g.generation() }
}

// A siteDomain is a hosted domain with what is prepared for it, made for
// each request (on the stack: it costs no allocation). The zero value is
// no domain.
type siteDomain struct {
	name        string
	loginDomain string // the domain its users log in with (the alias target)
	autoconfig  page
}

// ok reports whether sd is a hosted domain.
func (sd siteDomain) ok() bool { return sd.name != "" }

// A page is a template with its Content-Type header value prepared.
type page struct {
	t     *render.Template
	ctype []string
}

// A doc is a static response body with its headers prepared.
type doc struct {
	body  []byte
	ctype []string
	clen  []string
}

// newPage prepares t; a nil t (a document the snapshot cannot make) gives
// a page whose ok method is false.
func newPage(t *render.Template) page {
	if t == nil {
		return page{}
	}
	return page{t: t, ctype: []string{t.ContentType}}
}

func (p page) ok() bool { return p.t != nil }

func newDoc(contentType string, body []byte) doc {
	return doc{body: body, ctype: []string{contentType}, clen: []string{strconv.Itoa(len(body))}}
}

// NewSite renders everything that depends only on snap: the documents for
// every hosted domain, the static error documents, the HTML pages, and the
// profile signer (the mail host's certificate and key read through root).
// Without a usable key it serves profiles unsigned (see Unsigned), and
// logs why as a warning when the reason is new (see unsignedLogged).
func NewSite(root hostfs.Root, snap *discover.Snapshot, log *slog.Logger, opts ...SiteOption) (*Site, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Site{snap: snap, log: log, life: &siteLife{}, qr: &qrCodes{}}
	s.life.refs.Store(1)
	for _, o := range opts {
		o(s)
	}
	if h, err := domainname.Normalize(snap.Hostname()); err == nil {
		s.hostname = h
	}

	// A host with nothing to advertise (no SMTP with TLS, say) still
	// serves: the documents it cannot make answer "not found", and show
	// already warns the admin why.
	noEndpoints := func(what string, err error) error {
		if errors.Is(err, render.ErrNoEndpoints) {
			log.Warn("not serving "+what, "err", err)
			return nil
		}
		return fmt.Errorf("render %s: %w", what, err)
	}
	generic, err := render.Autoconfig(snap, nil)
	if err != nil {
		if err := noEndpoints("autoconfig", err); err != nil {
			return nil, err
		}
	}
	s.autoconfig = newPage(generic)
	if generic != nil {
		// An alias domain's document names the domain and the one its
		// users log in at (which its user names show anyway), never the
		// target's other aliases: a client asking about one domain learns
		// nothing about the others hosted here.
		t, err := render.Autoconfig(snap, []string{render.Marker(render.FieldLoginDomain)})
		if err != nil {
			return nil, fmt.Errorf("render autoconfig for alias domains: %w", err)
		}
		s.aliasAutoconfig = newPage(t)
	}

	t, err := render.AutodiscoverPOX(snap)
	if err != nil {
		if err := noEndpoints("Autodiscover", err); err != nil {
			return nil, err
		}
	}
	s.pox = newPage(t)
	s.poxErrors = map[int]doc{}
	for code, msg := range poxMessages {
		s.poxErrors[code] = newDoc(render.ContentTypeXML, render.AutodiscoverPOXError(code, msg))
	}
	s.mobileSync = newDoc(render.ContentTypeXML, render.MobileSyncNoProvider())
	if t, ok := render.MobileSync(snap); ok {
		s.easSync = newPage(t)
	}

	s.json = newPage(render.AutodiscoverJSON())
	if t, ok := render.AutodiscoverJSONActiveSync(snap); ok {
		s.jsonEAS = newPage(t)
	}
	s.jsonErrors = map[string]doc{}
	for _, p := range knownJSONProtocols {
		s.jsonErrors[domainname.LowerASCII(p)] = newDoc(render.ContentTypeJSON, render.AutodiscoverJSONError(p))
	}

	form, err := render.PageForm(snap)
	if err != nil {
		return nil, fmt.Errorf("render form page: %w", err)
	}
	s.form = newDoc(render.ContentTypeHTML, form)
	if t, err = render.PageSettings(snap); err != nil {
		if err := noEndpoints("the settings page", err); err != nil {
			return nil, err
		}
	}
	s.settings = newPage(t)

	s.signer, err = mobileconfig.NewSigner(root, snap)
	if err != nil {
		s.signer = nil
		s.unsigned = err.Error()
		if nk, ok := errors.AsType[*mobileconfig.NoSigningKeyError](err); ok {
			s.unsigned = nk.Reason
		}
	}
	unsignedLogged.log(log, s.unsigned)
	s.certs = loadCerts(root, snap, log)
	return s, nil
}

// unsignedLogged is the last reason for unsigned profiles that NewSite
// logged as a warning. The Snapshot's own warning (discover) already tells
// why, and the reloader logs that once; a Site is made at every refresh,
// so NewSite warns only when the reason changes (the Site may also find
// what its Snapshot did not: a restored snapshot's staged copy gone).
var unsignedLogged lastReason

// A lastReason logs a reason at warning level the first time in a row it
// is given, at debug level after; "" (signed) logs nothing and ends the
// row.
type lastReason struct {
	mu   sync.Mutex
	last string
}

func (r *lastReason) log(log *slog.Logger, why string) {
	r.mu.Lock()
	again := why == r.last
	r.last = why
	r.mu.Unlock()
	if why == "" {
		return
	}
	level := slog.LevelWarn
	if again {
		level = slog.LevelDebug
	}
	log.Log(context.Background(), level, "Apple profiles are served unsigned: iOS and macOS will show them as not verified", "reason", why)
}

// siteDomain returns what is served for the hosted domain name, whose
// users log in at aliasOf when that is set.
func (s *Site) siteDomain(name, aliasOf string) siteDomain {
	sd := siteDomain{name: name, loginDomain: name, autoconfig: s.autoconfig}
	if aliasOf != "" && aliasOf != name {
		sd.loginDomain = aliasOf
		sd.autoconfig = s.aliasAutoconfig
	}
	return sd
}

// Snapshot returns the snapshot the Site was built from.
func (s *Site) Snapshot() *discover.Snapshot { return s.snap }

// Signed reports whether Apple profiles are signed.
func (s *Site) Signed() bool { return s.signer != nil }

// Unsigned says why Apple profiles are served unsigned; "" when they are
// signed. It is what the Site found loading the key, which may differ
// from what its Snapshot says (a restored snapshot's staged copy gone).
func (s *Site) Unsigned() string { return s.unsigned }

// errLookup marks a failed domain lookup (the database is down): the
// client should try again later.
var errLookup = errors.New("domain lookup failed")

// errThrottled is the reason of a lookup the MissGuard refused.
var errThrottled = errors.New("too many lookups of unlisted domains; try again later")

// lookupFailed logs a failed lookup; refused ones, and those whose client
// went away while it waited for another request's lookup, only at debug
// level, since a flood of them is what the MissGuard is for.
func (s *Site) lookupFailed(err error) {
	if errors.Is(err, errThrottled) || errors.Is(err, context.Canceled) {
		s.log.Debug("domain lookup refused", "err", err)
		return
	}
	s.log.Warn("domain lookup failed", "err", err)
}

// domain returns the hosted domain name (lower-case A-labels), nil when it
// is not hosted, or an error wrapping errLookup when that cannot be known.
// A name the snapshot does not list is looked up in the database tables
// (a domain added since the snapshot was built, or a table that cannot be
// listed), within the MissGuard's bounds and from what it remembers.
func (s *Site) domain(ctx context.Context, name string) (siteDomain, error) {
	if name == "" {
		return siteDomain{}, nil
	}
	if aliasOf, ok := s.snap.ListedDomain(name); ok {
		return s.siteDomain(name, aliasOf), nil
	}
	if !s.snap.CanLookup() {
		return siteDomain{}, nil // no source to ask
	}
	var d discover.Domain
	var ok bool
	var err error
	if s.misses != nil {
		d, ok, err = s.misses.lookup(ctx, s.gen, name, s.lookup)
	} else {
		d, ok, err = s.lookup(ctx, name)
	}
	switch {
	case err != nil:
		return siteDomain{}, fmt.Errorf("%w: %s: %w", errLookup, name, err)
	case !ok:
		return siteDomain{}, nil
	}
	return s.siteDomain(d.Name, d.AliasOf), nil
}

// lookup asks the snapshot's database tables about name, for at most
// lookupTimeout.
func (s *Site) lookup(ctx context.Context, name string) (discover.Domain, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	return s.snap.Lookup(ctx, name)
}

// hostDomain returns the hosted domain a Host header names (PROTOCOLS.md
// §1.1). When the Host is the mail host's own name (an SRV or MX target),
// with or without an autoconfig./autodiscover. label, it answers for the
// nearest hosted parent domain: mail.example.com serves example.com.
func (s *Site) hostDomain(ctx context.Context, host string) (siteDomain, error) {
	name := hostDomain(host)
	sd, err := s.domain(ctx, name)
	if sd.ok() || err != nil || name == "" || name != s.hostname {
		return sd, err
	}
	for parent := parentDomain(name); parent != ""; parent = parentDomain(parent) {
		if sd, err := s.domain(ctx, parent); sd.ok() || err != nil {
			return sd, err
		}
	}
	return siteDomain{}, nil
}

// parentDomain drops the first label, returning "" when fewer than two
// labels would remain.
func parentDomain(name string) string {
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			p := name[i+1:]
			for j := 0; j < len(p); j++ {
				if p[j] == '.' {
					return p
				}
			}
			return ""
		}
	}
	return ""
}

// A Store publishes the current Site. The zero value is ready to use and
// answers 503 until the first Swap or Publish.
type Store struct {
	cur atomic.Pointer[Site]
}

// Load returns the current Site, or nil before the first Swap.
func (st *Store) Load() *Site { return st.cur.Load() }

// Swap publishes next and returns the Site it replaces (nil the first
// time). Requests already running finish on the Site they loaded; the
// caller closes the old Site's snapshot once they are done (Publish does
// that itself).
func (st *Store) Swap(next *Site) *Site { return st.cur.Swap(next) }

// Publish makes next the current Site. The Site it replaces closes its
// snapshot (the database connections) when the last request using it
// ends, or at once when none does: a request holds the Site it started
// with, acquired in the handler, to its end.
//
// Before next is visible, its profile signer keeps the replaced Site's
// cache of signed profiles when both sign with the same certificate
// (mobileconfig.Signer.Keep): a reload or the periodic refresh does not
// make every profile be signed again.
func (st *Store) Publish(next *Site) {
	if prev := st.cur.Load(); next != nil && prev != nil && next.signer != nil {
		next.signer.Keep(prev.signer)
	}
	if old := st.cur.Swap(next); old != nil {
		old.life.closeSnap.Store(true)
		old.release() // the Store's reference
	}
}

// Close retires the current Site as Publish retires a replaced one; the
// Store then answers 503. For the end of the process, after the server
// has shut down.
func (st *Store) Close() {
	if old := st.cur.Swap(nil); old != nil {
		old.life.closeSnap.Store(true)
		old.release()
	}
}

// acquire returns the current Site with a reference taken for a request,
// or nil; release the reference when the request ends.
func (st *Store) acquire() *Site {
	for {
		s := st.cur.Load()
		if s == nil || s.life == nil {
			return s
		}
		s.life.refs.Add(1)
		if st.cur.Load() == s {
			return s
		}
		// Replaced between the two loads: it may already be closing, and
		// is no longer what a new request should see.
		s.release()
	}
}

// release drops one reference; the last one of a retired Site closes its
// snapshot.
func (s *Site) release() {
	if s.life == nil {
		return // not made by NewSite
	}
	if s.life.refs.Add(-1) <= 0 && s.life.closeSnap.Load() {
		s.life.closeOnce.Do(func() {
			if err := s.snap.Close(); err != nil {
				s.log.Warn("closing the previous snapshot's database connections", "err", err)
			}
		})
	}
}
