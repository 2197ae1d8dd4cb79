package serve

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mailautoconf/mailautoconf/internal/domainname"
	"github.com/mailautoconf/mailautoconf/render"
	"github.com/mailautoconf/mailautoconf/render/mobileconfig"
)

// maxBody bounds a request body: a POX request is a few hundred bytes.
const maxBody = 64 << 10

// Header values shared by every response; net/http only reads them.
var (
	cachePrivate = []string{"private, no-store"}    // the document carries the address (§1.11)
	cachePublic  = []string{"public, max-age=3600"} // the document depends only on the domain
	cacheNone    = []string{"no-store"}             // errors: a domain added later must show at once
	nosniff      = []string{"nosniff"}
	ctypeText    = []string{"text/plain; charset=utf-8"}
	ctypeProfile = []string{mobileconfig.ContentType}
	// Pages need no script, frames or foreign resources; the form submits
	// to this server. Addresses in page URLs are not sent elsewhere.
	htmlCSP        = []string{"default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"}
	noReferrer     = []string{"no-referrer"}
	allowGet       = []string{"GET, HEAD, OPTIONS"}
	allowGetPost   = []string{"GET, HEAD, POST, OPTIONS"}
	locationScheme = "https://autodiscover."
	retrySigning   = []string{"5"} // mobileconfig.ErrBusy: the signing budget refills within seconds
)

// While no Site is published, every request gets 503 with retryUnavailable
// (seconds), and Autodiscover its POX error document (PROTOCOLS.md §3.5).
var (
	retryUnavailable = []string{"60"}
	unavailablePOX   = newDoc(render.ContentTypeXML, render.AutodiscoverPOXError(poxInternal,
		"The server cannot answer now: the mail server's configuration cannot be read. Try again later."))
)

// bufPool holds response buffers; a request appends its document to one.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// maxPooled keeps an unusually large buffer from staying in the pool.
const maxPooled = 256 << 10

// A Handler answers mail-client discovery requests from the Store's
// current Site. See the package documentation for the routes.
type Handler struct {
	store *Store
	log   *slog.Logger
}

// NewHandler returns a Handler serving store's current Site. It logs one
// line per request at debug level (never a header's value).
func NewHandler(store *Store, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{store: store, log: log}
}

// ServeHTTP answers one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Thunderbird sends the user's real password on Autodiscover requests
	// (PROTOCOLS.md §1.4). Nothing here needs it; drop it before anything
	// could look at it.
	delete(r.Header, "Authorization")
	if !h.log.Enabled(r.Context(), slog.LevelDebug) {
		h.serve(w, r)
		return
	}
	sw := &statusWriter{ResponseWriter: w}
	start := time.Now()
	h.serve(sw, r)
	h.log.Debug("request", "method", r.Method, "host", r.Host, "path", r.URL.Path,
		"status", sw.status, "bytes", sw.n, "duration", time.Since(start), "remote", r.RemoteAddr)
}

// route is what a path asks for.
type route uint8

const (
	routeNone       route = iota
	routeAutoconfig       // Mozilla autoconfig (§2)
	routePOX              // Outlook POX Autodiscover and ActiveSync (§3, §4)
	routeJSON             // autodiscover.json (§5)
	routeProfile          // Apple profile (§6)
	routePage             // the HTML page
)

// match returns the route for a (decoded) path, matched without regard to
// case (PROTOCOLS.md §1.3), and for the path form of autodiscover.json
// the address it carries.
func match(path string) (route, string) {
	switch {
	case path == "/":
		return routePage, ""
	case strings.EqualFold(path, "/mail/config-v1.1.xml"),
		strings.EqualFold(path, "/.well-known/autoconfig/mail/config-v1.1.xml"),
		strings.EqualFold(path, "/.well-known/mail-v1.xml"):
		return routeAutoconfig, ""
	case strings.EqualFold(path, "/autodiscover/autodiscover.xml"):
		return routePOX, ""
	case strings.EqualFold(strings.TrimSuffix(path, "/"), "/autodiscover/autodiscover.json"):
		return routeJSON, ""
	case strings.EqualFold(strings.TrimSuffix(path, "/"), "/mobileconfig"),
		strings.EqualFold(path, "/email.mobileconfig"):
		return routeProfile, ""
	}
	// /autodiscover/autodiscover.json/v1.0/<address>
	const jsonPrefix = "/autodiscover/autodiscover.json/v"
	if len(path) > len(jsonPrefix) && strings.EqualFold(path[:len(jsonPrefix)], jsonPrefix) {
		version, addr, ok := strings.Cut(path[len(jsonPrefix):], "/")
		if ok && version != "" && addr != "" && !strings.Contains(version, "..") {
			return routeJSON, addr
		}
	}
	return routeNone, ""
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) {
	rt, pathAddr := match(r.URL.Path)
	if rt == routeNone {
		writeText(w, http.StatusNotFound, "404 not found: this server answers mail client discovery requests only (see / for the settings page)")
		return
	}
	allow := allowGet
	if rt == routePOX {
		allow = allowGetPost
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		if rt == routePOX {
			break
		}
		fallthrough
	default:
		w.Header()["Allow"] = allow
		writeText(w, http.StatusMethodNotAllowed, "405 method not allowed: use "+allow[0])
		return
	case http.MethodOptions:
		w.Header()["Allow"] = allow
		w.Header()["Cache-Control"] = cachePublic
		w.WriteHeader(http.StatusNoContent)
		return
	}
	site := h.store.acquire()
	if site != nil {
		defer site.release()
	}
	if site == nil {
		// No snapshot at all (a start with a broken configuration and
		// nothing saved): answer at once, never leave a client waiting.
		w.Header()["Retry-After"] = retryUnavailable
		if rt == routePOX {
			writeDoc(w, http.StatusServiceUnavailable, unavailablePOX, cacheNone)
			return
		}
		writeText(w, http.StatusServiceUnavailable, "503 service unavailable: the mail server's configuration cannot be read yet; try again later")
		return
	}
	switch rt {
	case routeAutoconfig:
		site.serveAutoconfig(w, r)
	case routePOX:
		if r.Method == http.MethodPost {
			site.servePOX(w, r)
		} else {
			site.servePOXGet(w, r)
		}
	case routeJSON:
		site.serveJSON(w, r, pathAddr)
	case routeProfile:
		site.serveProfile(w, r)
	case routePage:
		site.servePage(w, r)
	}
}

// addressParam reads the address in the first of keys present in the
// query. An empty value counts as absent (a form submitted blank).
func addressParam(rawQuery string, keys ...string) (a render.Address, present bool, err error) {
	for _, k := range keys {
		raw, ok := queryParam(rawQuery, k)
		if !ok {
			continue
		}
		v, err := unescapeParam(raw)
		if err != nil {
			return render.Address{}, true, fmt.Errorf("the %s parameter is not properly URL-encoded", k)
		}
		if v == "" {
			return render.Address{}, false, nil
		}
		a, err := ParseAddress(v)
		if err != nil && strings.IndexByte(raw, '+') >= 0 {
			// A client that did not encode the '+' of a sub-address
			// (fred+tag@): a space is invalid there anyway, so read it
			// as a plus.
			if v2, err2 := url.PathUnescape(raw); err2 == nil {
				if a2, err2 := ParseAddress(strings.TrimSpace(v2)); err2 == nil {
					return a2, true, nil
				}
			}
		}
		if err != nil {
			return render.Address{}, true, fmt.Errorf("the %s parameter is not a valid e-mail address: %w", k, err)
		}
		return a, true, nil
	}
	return render.Address{}, false, nil
}

// placeholder is the address a domain-level document is rendered with:
// clients substitute the user's local part (PROTOCOLS.md §2.3).
func placeholder(sd siteDomain) render.Address {
	return render.Address{Local: "%EMAILLOCALPART%", Domain: sd.name, LoginDomain: sd.loginDomain}
}

func (s *Site) serveAutoconfig(w http.ResponseWriter, r *http.Request) {
	a, present, err := addressParam(r.URL.RawQuery, "emailaddress")
	if err != nil {
		writeText(w, http.StatusBadRequest, "400 bad request: "+err.Error())
		return
	}
	sd, cache := siteDomain{}, cachePrivate
	if present {
		sd, err = s.domain(r.Context(), a.Domain)
	} else {
		sd, err = s.hostDomain(r.Context(), r.Host)
		cache = cachePublic
	}
	if !s.found(w, sd, err, present, a.Domain) {
		return
	}
	if !sd.autoconfig.ok() {
		writeText(w, http.StatusNotFound, "404 not found: this mail server has no IMAP or POP3 and SMTP server with TLS to tell clients about")
		return
	}
	if present {
		a.LoginDomain = sd.loginDomain
	} else {
		a = placeholder(sd)
	}
	writePage(w, http.StatusOK, sd.autoconfig, a, cache)
}

// found writes the plain-text 404 or 503 answer when sd is not a hosted
// domain, and reports whether it is.
func (s *Site) found(w http.ResponseWriter, sd siteDomain, err error, fromAddress bool, domain string) bool {
	switch {
	case err != nil:
		s.lookupFailed(err)
		w.Header()["Retry-After"] = []string{"30"}
		writeText(w, http.StatusServiceUnavailable, "503 service unavailable: the domain database cannot be queried; try again later")
		return false
	case !sd.ok() && fromAddress:
		writeText(w, http.StatusNotFound, "404 not found: this server does not host mail for "+domain)
		return false
	case !sd.ok():
		writeText(w, http.StatusNotFound, "404 not found: the Host header names no domain hosted here; add ?emailaddress=you@your.domain")
		return false
	}
	return true
}

func (s *Site) servePOX(w http.ResponseWriter, r *http.Request) {
	bp := bufPool.Get().(*[]byte)
	body, err := readBody(w, r, (*bp)[:0])
	var req poxRequest
	if err == nil {
		req, err = decodePOXRequest(body)
	}
	putBuf(bp, body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeDoc(w, http.StatusRequestEntityTooLarge, s.poxErrors[poxBadRequest], cacheNone)
		return
	case err != nil:
		writeDoc(w, http.StatusOK, s.poxErrors[poxBadRequest], cacheNone)
		return
	case strings.EqualFold(req.Schema, schemaMobileSync) && !s.easSync.ok():
		writeDoc(w, http.StatusOK, s.mobileSync, cacheNone)
		return
	case !strings.EqualFold(req.Schema, schemaOutlook) && !strings.EqualFold(req.Schema, schemaMobileSync):
		writeDoc(w, http.StatusOK, s.poxErrors[poxBadSchema], cacheNone)
		return
	}
	a, err := ParseAddress(req.EMailAddress)
	if err != nil {
		writeDoc(w, http.StatusOK, s.poxErrors[poxBadRequest], cacheNone)
		return
	}
	sd, err := s.domain(r.Context(), a.Domain)
	if !s.poxFound(w, sd, err) {
		return
	}
	a.LoginDomain = sd.loginDomain
	if strings.EqualFold(req.Schema, schemaMobileSync) {
		// ActiveSync is proven (easSync is ok): its settings.
		writePage(w, http.StatusOK, s.easSync, a, cachePrivate)
		return
	}
	if !s.pox.ok() {
		writeDoc(w, http.StatusOK, s.poxErrors[poxInternal], cacheNone)
		return
	}
	writePage(w, http.StatusOK, s.pox, a, cachePrivate)
}

// servePOXGet answers a body-less GET on the POX URL (PROTOCOLS.md §3.6):
// Outlook's plain-HTTP probe gets a 302 to the HTTPS URL when the proxy in
// front says the request came over plain HTTP (X-Forwarded-Proto: http, or
// Forwarded: proto=http; see forwardedProto);
// otherwise (Delta Chat) the domain-level settings for the Host, or for an
// emailaddress parameter if one is given.
func (s *Site) servePOXGet(w http.ResponseWriter, r *http.Request) {
	a, present, err := addressParam(r.URL.RawQuery, "emailaddress")
	if err != nil {
		writeDoc(w, http.StatusOK, s.poxErrors[poxBadRequest], cacheNone)
		return
	}
	var sd siteDomain
	if present {
		sd, err = s.domain(r.Context(), a.Domain)
	} else {
		sd, err = s.hostDomain(r.Context(), r.Host)
	}
	if !s.poxFound(w, sd, err) {
		return
	}
	if forwardedProto(r.Header) == "http" {
		w.Header()["Location"] = []string{locationScheme + sd.name + "/Autodiscover/Autodiscover.xml"}
		writeText(w, http.StatusFound, "302 found: use HTTPS")
		return
	}
	if !s.pox.ok() {
		writeDoc(w, http.StatusOK, s.poxErrors[poxInternal], cacheNone)
		return
	}
	cache := cachePrivate
	if present {
		a.LoginDomain = sd.loginDomain
	} else {
		a, cache = placeholder(sd), cachePublic
	}
	writePage(w, http.StatusOK, s.pox, a, cache)
}

// poxFound writes the POX error document when sd is not a hosted domain.
func (s *Site) poxFound(w http.ResponseWriter, sd siteDomain, err error) bool {
	switch {
	case err != nil:
		s.lookupFailed(err)
		writeDoc(w, http.StatusOK, s.poxErrors[poxInternal], cacheNone)
		return false
	case !sd.ok():
		writeDoc(w, http.StatusOK, s.poxErrors[poxNotFound], cacheNone)
		return false
	}
	return true
}

func (s *Site) serveJSON(w http.ResponseWriter, r *http.Request, pathAddr string) {
	rawProto, _ := queryParam(r.URL.RawQuery, "Protocol")
	proto, err := unescapeParam(rawProto)
	answer := s.json
	switch {
	case err == nil && strings.EqualFold(proto, "AutodiscoverV1"):
	case err == nil && strings.EqualFold(proto, "ActiveSync") && s.jsonEAS.ok():
		answer = s.jsonEAS
	default:
		writeDoc(w, http.StatusBadRequest, s.jsonError(proto), cacheNone)
		return
	}
	var (
		a       render.Address
		present bool
	)
	if pathAddr != "" {
		present = true
		a, err = ParseAddress(strings.TrimSpace(pathAddr))
		if err != nil {
			err = fmt.Errorf("the address in the path is not a valid e-mail address: %w", err)
		}
	} else {
		a, present, err = addressParam(r.URL.RawQuery, "Email", "emailaddress")
	}
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "InvalidUser", err.Error())
		return
	}
	var sd siteDomain
	cache := cachePrivate
	if present {
		sd, err = s.domain(r.Context(), a.Domain)
	} else {
		sd, err = s.hostDomain(r.Context(), r.Host)
		cache = cachePublic
	}
	switch {
	case err != nil:
		s.lookupFailed(err)
		w.Header()["Retry-After"] = []string{"30"}
		writeJSONError(w, http.StatusServiceUnavailable, "InternalServerError", "The domain database cannot be queried; try again later.")
		return
	case !sd.ok():
		writeJSONError(w, http.StatusNotFound, "NotFound", "This server does not host mail for the domain.")
		return
	}
	if present {
		a.LoginDomain = sd.loginDomain
	} else {
		a = placeholder(sd)
	}
	writePage(w, http.StatusOK, answer, a, cache)
}

// jsonError returns the InvalidProtocol answer for a Protocol value,
// echoing only its letters and digits (PROTOCOLS.md §5).
func (s *Site) jsonError(proto string) doc {
	clean := make([]byte, 0, min(len(proto), 64))
	for i := 0; i < len(proto) && len(clean) < 64; i++ {
		if c := proto[i]; c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			clean = append(clean, c)
		}
	}
	if d, ok := s.jsonErrors[domainname.LowerASCII(string(clean))]; ok && strings.EqualFold(string(clean), proto) {
		return d
	}
	return newDoc(render.ContentTypeJSON, render.AutodiscoverJSONError(string(clean)))
}

func (s *Site) serveProfile(w http.ResponseWriter, r *http.Request) {
	a, present, err := addressParam(r.URL.RawQuery, "emailaddress", "email")
	if err == nil && !present {
		err = errors.New("the emailaddress parameter is missing: ask for /mobileconfig?emailaddress=you@your.domain")
	}
	if err != nil {
		writeText(w, http.StatusBadRequest, "400 bad request: "+err.Error())
		return
	}
	name, err := nameParam(r.URL.RawQuery)
	if err != nil {
		writeText(w, http.StatusBadRequest, "400 bad request: "+err.Error())
		return
	}
	sd, err := s.domain(r.Context(), a.Domain)
	if !s.found(w, sd, err, true, a.Domain) {
		return
	}
	a.LoginDomain = sd.loginDomain
	var body []byte
	if s.signer != nil {
		// Signed: the address only when it is plain, never the name
		// (mobileconfig.Signer.Sign), within the signing budget.
		body, err = s.signer.Sign(s.snap, a)
		switch {
		case errors.Is(err, mobileconfig.ErrBusy):
			w.Header()["Retry-After"] = retrySigning
			writeText(w, http.StatusServiceUnavailable, "503 service unavailable: too many profiles to sign right now; try again in a few seconds")
			return
		case err != nil && !errors.Is(err, mobileconfig.ErrNoServer):
			s.log.Error("cannot sign Apple profile; serving it unsigned", "err", err)
		}
		if err != nil {
			body = nil
		}
	}
	if body == nil {
		body, err = mobileconfig.Profile(s.snap, a, name)
		if errors.Is(err, mobileconfig.ErrNoServer) {
			writeText(w, http.StatusNotFound, "404 not found: this mail server has no incoming and outgoing server with TLS a profile could describe")
			return
		}
		if err != nil {
			s.log.Error("cannot render Apple profile", "err", err)
			writeText(w, http.StatusInternalServerError, "500 internal server error: the profile could not be made")
			return
		}
	}
	h := w.Header()
	// A domain name is lower-case letters, digits, '-' and '.': a token,
	// which needs no quoting in the header.
	h["Content-Disposition"] = []string{"attachment; filename=" + sd.name + ".mobileconfig"}
	writeBytes(w, http.StatusOK, ctypeProfile, cachePrivate, body)
}

// maxNameLen bounds the profile's display name, in characters.
const maxNameLen = 128

// nameParam returns the optional display name of a profile request.
func nameParam(rawQuery string) (string, error) {
	raw, ok := queryParam(rawQuery, "name")
	if !ok {
		return "", nil
	}
	name, err := unescapeParam(raw)
	switch {
	case err != nil:
		return "", errors.New("the name parameter is not properly URL-encoded")
	case !utf8.ValidString(name):
		return "", errors.New("the name parameter is not valid UTF-8")
	case utf8.RuneCountInString(name) > maxNameLen:
		return "", fmt.Errorf("the name parameter is longer than %d characters", maxNameLen)
	}
	for _, r := range name {
		if !isNameRune(r) {
			return "", fmt.Errorf("the name parameter contains %s", domainname.DescribeRune(r))
		}
	}
	return name, nil
}

// isNameRune reports whether r may appear in a display name: a letter,
// mark, digit, punctuation, symbol or space (U+0020 and the other Zs
// spaces). Controls, format characters (the bidi overrides and isolates
// such as U+202E, zero-width joiners), line and paragraph separators,
// private-use characters, surrogates, noncharacters and U+FFFD (a decoding
// error) are refused: they can make a name display as something else.
func isNameRune(r rune) bool {
	return r != utf8.RuneError && unicode.IsGraphic(r) && !unicode.Is(unicode.Noncharacter_Code_Point, r)
}

func (s *Site) servePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["Content-Security-Policy"] = htmlCSP
	h["Referrer-Policy"] = noReferrer
	a, present, err := addressParam(r.URL.RawQuery, "emailaddress")
	if err != nil {
		writeErrorPage(w, http.StatusBadRequest, "Not a valid e-mail address", capitalize(err.Error())+".")
		return
	}
	if !present {
		writeDoc(w, http.StatusOK, s.form, cachePublic)
		return
	}
	sd, err := s.domain(r.Context(), a.Domain)
	switch {
	case err != nil:
		s.lookupFailed(err)
		writeErrorPage(w, http.StatusServiceUnavailable, "Try again later", "The domain database cannot be queried right now.")
		return
	case !sd.ok():
		writeErrorPage(w, http.StatusNotFound, "Domain not hosted here", "This server does not host mail for "+a.Domain+".")
		return
	}
	if !s.settings.ok() {
		writeErrorPage(w, http.StatusNotFound, "No settings to show", "This mail server has no IMAP or POP3 and SMTP server with TLS to tell mail programs about.")
		return
	}
	a.LoginDomain = sd.loginDomain
	qr := s.profileQR(a)
	bp := bufPool.Get().(*[]byte)
	b := s.settings.t.AppendQR((*bp)[:0], a, qr)
	writeBytes(w, http.StatusOK, s.settings.ctype, cachePrivate, b)
	putBuf(bp, b)
}

func capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// readBody reads the request body into buf, at most maxBody bytes.
func readBody(w http.ResponseWriter, r *http.Request, buf []byte) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return buf, nil
	}
	if r.ContentLength > maxBody {
		return buf, &http.MaxBytesError{Limit: maxBody}
	}
	rd := http.MaxBytesReader(w, r.Body, maxBody)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			if errors.Is(err, io.EOF) {
				return buf, nil
			}
			return buf, err
		}
	}
}

func putBuf(bp *[]byte, b []byte) {
	if cap(b) <= maxPooled {
		*bp = b[:0]
		bufPool.Put(bp)
	}
}

// writePage appends p's document for a to a pooled buffer and writes it.
func writePage(w http.ResponseWriter, status int, p page, a render.Address, cache []string) {
	bp := bufPool.Get().(*[]byte)
	b := p.t.Append((*bp)[:0], a)
	writeBytes(w, status, p.ctype, cache, b)
	putBuf(bp, b)
}

func writeDoc(w http.ResponseWriter, status int, d doc, cache []string) {
	h := w.Header()
	h["Content-Type"] = d.ctype
	h["Content-Length"] = d.clen
	h["Cache-Control"] = cache
	h["X-Content-Type-Options"] = nosniff
	w.WriteHeader(status)
	w.Write(d.body)
}

func writeBytes(w http.ResponseWriter, status int, ctype, cache []string, body []byte) {
	h := w.Header()
	h["Content-Type"] = ctype
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	h["Cache-Control"] = cache
	h["X-Content-Type-Options"] = nosniff
	w.WriteHeader(status)
	w.Write(body)
}

// writeText writes a one-line plain-text answer, for errors.
func writeText(w http.ResponseWriter, status int, msg string) {
	writeBytes(w, status, ctypeText, cacheNone, []byte(msg+"\n"))
}

// statusWriter records the status and size of a response for the log.
type statusWriter struct {
	http.ResponseWriter
	status int
	n      int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
