package serve

import (
	"encoding/json"
	"encoding/xml"
	"mime"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/internal/mariadbtest"
)

func TestMain(m *testing.M) { mariadbtest.Main(m) }

const corpusDir = "../testdata/corpus"

var sqlSets = []string{"iredmail-mysql-debian12", "postfixadmin-mysql-debian12"}

var loadSQLOnce sync.Once

// sqlSocket returns the socket of the test binary's MariaDB with every SQL
// corpus set's schema and seed loaded (their database names differ).
func sqlSocket(t testing.TB) string {
	db := mariadbtest.Shared(t)
	loadSQLOnce.Do(func() {
		for _, set := range sqlSets {
			db.LoadFile(t, filepath.Join(corpusDir, set, "schema.sql"))
			db.LoadFile(t, filepath.Join(corpusDir, set, "seed.sql"))
		}
	})
	return db.Socket()
}

// e2eCase is one snapshot the spec's requests are sent to.
type e2eCase struct {
	name   string
	site   func(t *testing.T) (*Site, string) // the Site and the CA file its profiles verify against ("" = unchecked chain)
	domain string                             // the spec's example.com becomes this
	hosted bool
	signed bool // profiles must be signed
}

func e2eCases() []e2eCase {
	corpus := func(set string, sql bool) func(t *testing.T) (*Site, string) {
		return func(t *testing.T) (*Site, string) {
			socket := ""
			if sql {
				socket = sqlSocket(t)
			}
			return buildSite(t, filepath.Join(corpusDir, set), socket), ""
		}
	}
	synthetic := func(t *testing.T) (*Site, string) {
		dir := t.TempDir()
		ca := syntheticTree(t, dir)
		caFile := filepath.Join(t.TempDir(), "ca.pem")
		writeFile(t, caFile, ca)
		return buildSite(t, dir, ""), caFile
	}
	return []e2eCase{
		{name: "handmade-static-domains", site: corpus("handmade-static-domains", false), domain: "example.net", hosted: true},
		{name: "handmade-static-domains/unhosted", site: corpus("handmade-static-domains", false), domain: "example.com", hosted: false},
		{name: "debian12-packages-default", site: corpus("debian12-packages-default", false), domain: "example.com", hosted: false},
		{name: "synthetic", site: synthetic, domain: "example.com", hosted: true, signed: true},
		{name: "synthetic/idn", site: synthetic, domain: "xn--bcher-kva.example", hosted: true, signed: true},
		{name: "postfixadmin-mysql-debian12", site: corpus("postfixadmin-mysql-debian12", true), domain: "example.com", hosted: true},
		{name: "postfixadmin-mysql-debian12/alias", site: corpus("postfixadmin-mysql-debian12", true), domain: "alias.example.com", hosted: true},
		{name: "iredmail-mysql-debian12/alias", site: corpus("iredmail-mysql-debian12", true), domain: "alias.example.com", hosted: true},
		{name: "iredmail-mysql-debian12/disabled", site: corpus("iredmail-mysql-debian12", true), domain: "disabled.example.net", hosted: false},
	}
}

// TestSpecRequests sends every request in testdata/spec/requests through a
// real listener and checks status, headers and the decoded documents.
func TestSpecRequests(t *testing.T) {
	reqs := specRequests(t)
	if len(reqs) < 30 {
		t.Fatalf("read only %d requests from the spec", len(reqs))
	}
	for _, c := range e2eCases() {
		t.Run(c.name, func(t *testing.T) {
			site, caFile := c.site(t)
			if c.signed && !site.Signed() {
				t.Fatal("profiles are not signed")
			}
			t.Logf("%d requests; profiles signed: %v", len(reqs), site.Signed())
			ts := startServer(t, site)
			for _, r := range reqs {
				r := r.forDomain(c.domain)
				res := ts.do(t, r.method, r.url, r.bodyFor(t, c.domain), nil)
				checkSpecResponse(t, site, r, res, c.domain, c.hosted, caFile)
			}
		})
	}
}

// loginDomain is where users of domain log in (the alias target).
func loginDomain(s *discover.Snapshot, domain string) string {
	for _, d := range s.Domains() {
		if d.Name == domain && d.AliasOf != "" {
			return d.AliasOf
		}
	}
	return domain
}

// aliasGroup is what an autoconfig document for domain lists: the domain,
// and for an alias domain its target; never the target's other aliases.
func aliasGroup(s *discover.Snapshot, domain string) []string {
	if target := loginDomain(s, domain); target != domain {
		return []string{domain, target}
	}
	return []string{domain}
}

func checkSpecResponse(t *testing.T, site *Site, r specRequest, res response, domain string, hosted bool, caFile string) {
	t.Helper()
	what := r.where + " " + r.method + " " + r.url
	u, err := url.Parse(r.url)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	path := strings.ToLower(u.Path)
	withAddr := r.method == "POST" || q.Has("emailaddress") || q.Has("Email") || strings.Contains(path, "/v1.0/")
	snap := site.Snapshot()
	address := "fred@" + domain
	login := "fred@" + loginDomain(snap, domain)

	if got := res.header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options = %q, want nosniff", what, got)
	}
	ctype := res.header.Get("Content-Type")
	if strings.Contains(ctype, "xml") {
		xmllint(t, what, res.body)
	}
	wantStatus := func(status int, ctypePrefix, cache string) bool {
		t.Helper()
		ok := true
		if res.status != status {
			t.Errorf("%s: status %d, want %d\n%s", what, res.status, status, res.body)
			ok = false
		}
		if !strings.HasPrefix(ctype, ctypePrefix) {
			t.Errorf("%s: Content-Type %q, want %s", what, ctype, ctypePrefix)
			ok = false
		}
		if got := res.header.Get("Cache-Control"); got != cache {
			t.Errorf("%s: Cache-Control %q, want %q", what, got, cache)
		}
		return ok
	}
	okCache := "public, max-age=3600"
	if withAddr {
		okCache = "private, no-store"
	}

	switch {
	case r.expect != "":
		// Outlook's plain-HTTP probe: 302 to HTTPS.
		f := strings.Fields(r.expect)
		if !hosted {
			if wantStatus(200, "text/xml", "no-store") {
				checkPOXError(t, what, res.body, nsResponse, 500)
			}
			return
		}
		if res.status != 302 || res.header.Get("Location") != f[2] {
			t.Errorf("%s: %d Location %q, want %s", what, res.status, res.header.Get("Location"), r.expect)
		}

	case strings.HasSuffix(path, "/config-v1.1.xml") || strings.HasSuffix(path, "/mail-v1.xml"):
		if !hosted || !site.domainsOK() {
			wantStatus(404, "text/plain", "no-store")
			return
		}
		if !wantStatus(200, "text/xml", okCache) {
			return
		}
		var doc autoconfigDoc
		if err := xml.Unmarshal(res.body, &doc); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, res.body)
		}
		checkAutoconfig(t, what, doc, snap, domain)

	case path == "/autodiscover/autodiscover.xml":
		if r.body == "requests/activesync-request.xml" {
			if wantStatus(200, "text/xml", "no-store") {
				checkPOXError(t, what, res.body, nsMobileSync, 601)
			}
			return
		}
		if !hosted {
			if wantStatus(200, "text/xml", "no-store") {
				checkPOXError(t, what, res.body, nsResponse, 500)
			}
			return
		}
		if !wantStatus(200, "text/xml", okCache) {
			return
		}
		wantLogin := login
		if !withAddr {
			wantLogin = "%EMAILLOCALPART%@" + loginDomain(snap, domain) // domain-level answer (Delta Chat)
		}
		checkPOX(t, what, res.body, snap, wantLogin)

	case strings.HasPrefix(path, "/autodiscover/autodiscover.json"):
		proto := q.Get("Protocol")
		if !strings.EqualFold(proto, "AutodiscoverV1") {
			if wantStatus(400, "application/json", "no-store") {
				var e struct{ ErrorCode, ErrorMessage string }
				if err := json.Unmarshal(res.body, &e); err != nil || e.ErrorCode != "InvalidProtocol" || !strings.Contains(e.ErrorMessage, "'"+proto+"'") {
					t.Errorf("%s: %s (%v), want InvalidProtocol naming %q", what, res.body, err, proto)
				}
			}
			return
		}
		if !hosted {
			wantStatus(404, "application/json", "no-store")
			return
		}
		if wantStatus(200, "application/json", okCache) {
			var v struct{ Protocol, Url string }
			if err := json.Unmarshal(res.body, &v); err != nil || v.Protocol != "AutodiscoverV1" || v.Url != "https://autodiscover."+domain+"/Autodiscover/Autodiscover.xml" {
				t.Errorf("%s: %s (%v)", what, res.body, err)
			}
		}

	case path == "/mobileconfig":
		if !hosted {
			wantStatus(404, "text/plain", "no-store")
			return
		}
		if !wantStatus(200, "application/x-apple-aspen-config", "private, no-store") {
			return
		}
		checkProfile(t, what, res, site, domain, address, login, q.Get("name"), caFile)

	default:
		t.Errorf("%s: the test does not know this path", what)
	}
}

// domainsOK reports whether the Site could render autoconfig at all.
func (s *Site) domainsOK() bool { return s.autoconfig.ok() }

func checkAutoconfig(t *testing.T, what string, doc autoconfigDoc, snap *discover.Snapshot, domain string) {
	t.Helper()
	p := doc.Provider
	if doc.Version != "1.1" || p.ID != domain || p.DisplayName == "" {
		t.Errorf("%s: version %q, id %q, displayName %q; want 1.1, %s", what, doc.Version, p.ID, p.DisplayName, domain)
	}
	if want := aliasGroup(snap, domain); !slices.Equal(p.Domains, want) {
		t.Errorf("%s: domains %q, want %q", what, p.Domains, want)
	}
	var wantIn, wantOut, gotIn, gotOut []string
	for _, e := range snap.Endpoints() {
		if e.Security == discover.SecurityNone {
			continue
		}
		k := e.Protocol + "/" + map[discover.Security]string{discover.SecurityTLS: "SSL", discover.SecuritySTARTTLS: "STARTTLS"}[e.Security] + "/" + strings.ToLower(e.Host) + "/" + itoa(e.Port)
		if e.Protocol == "smtp" {
			wantOut = append(wantOut, k)
		} else {
			wantIn = append(wantIn, k)
		}
	}
	login := loginDomain(snap, domain)
	for i, list := range [][]acServer{p.Incoming, p.Outgoing} {
		for _, s := range list {
			k := s.Type + "/" + s.SocketType + "/" + s.Hostname + "/" + itoa(s.Port)
			if i == 0 {
				gotIn = append(gotIn, k)
			} else {
				gotOut = append(gotOut, k)
			}
			if len(s.Auth) == 0 || s.Auth[0] != "password-cleartext" {
				t.Errorf("%s: %s authentication %q, want password-cleartext first (Dovecot offers PLAIN)", what, k, s.Auth)
			}
			okUser := s.Username == "%EMAILADDRESS%" || s.Username == "%EMAILLOCALPART%" || s.Username == "%EMAILLOCALPART%@"+login
			if login != domain {
				okUser = s.Username == "%EMAILLOCALPART%@"+login
			}
			if !okUser {
				t.Errorf("%s: %s username %q", what, k, s.Username)
			}
		}
	}
	if !slices.Equal(gotIn, wantIn) || !slices.Equal(gotOut, wantOut) {
		t.Errorf("%s: servers in %q out %q, want in %q out %q", what, gotIn, gotOut, wantIn, wantOut)
	}
}

func checkPOX(t *testing.T, what string, body []byte, snap *discover.Snapshot, login string) {
	t.Helper()
	var doc poxDoc
	if err := xml.Unmarshal(body, &doc); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, body)
	}
	if doc.XMLName.Space != nsResponse || doc.Response.XMLName.Space != nsOutlook || doc.Response.Error != nil {
		t.Fatalf("%s: namespaces %q/%q or an error:\n%s", what, doc.XMLName.Space, doc.Response.XMLName.Space, body)
	}
	acct := doc.Response.Account
	if acct.AccountType != "email" || acct.Action != "settings" || len(acct.Protocols) == 0 {
		t.Errorf("%s: account %+v", what, acct)
	}
	for _, p := range acct.Protocols {
		var ep *discover.Endpoint
		for _, e := range snap.Endpoints() {
			if strings.ToUpper(e.Protocol) == p.Type && e.Port == p.Port {
				ep = &e
				break
			}
		}
		if ep == nil {
			t.Errorf("%s: protocol %s port %d is not a snapshot endpoint", what, p.Type, p.Port)
			continue
		}
		wantEnc := map[discover.Security]string{discover.SecurityTLS: "SSL", discover.SecuritySTARTTLS: "TLS"}[ep.Security]
		if p.Server != strings.ToLower(ep.Host) || p.SSL != "on" || p.Encryption != wantEnc || p.SPA != "off" ||
			p.AuthRequired != "on" || p.DomainRequired != "off" || p.LoginName != login {
			t.Errorf("%s: %+v, want server %s, SSL on, Encryption %s, SPA off, AuthRequired on, DomainRequired off, LoginName %q", what, p, ep.Host, wantEnc, login)
		}
		if p.Type == "SMTP" && (p.UsePOPAuth != "off" || p.SMTPLast != "off") {
			t.Errorf("%s: SMTP UsePOPAuth %q SMTPLast %q, want off", what, p.UsePOPAuth, p.SMTPLast)
		}
	}
}

func checkProfile(t *testing.T, what string, res response, site *Site, domain, address, login, name, caFile string) {
	t.Helper()
	_, params, err := mime.ParseMediaType(res.header.Get("Content-Disposition"))
	if err != nil || params["filename"] != domain+".mobileconfig" {
		t.Errorf("%s: Content-Disposition %q (%v), want attachment with filename %s.mobileconfig", what, res.header.Get("Content-Disposition"), err, domain)
	}
	body := res.body
	if site.Signed() {
		if len(body) == 0 || body[0] != 0x30 {
			t.Fatalf("%s: the site signs, but the profile is not DER", what)
		}
		body = cmsContent(t, body, caFile)
	} else if len(body) == 0 || body[0] != '<' {
		t.Fatalf("%s: unsigned profile is not XML", what)
	}
	xmllint(t, what+" (plist)", body)
	v, err := decodePlist(body)
	if err != nil {
		t.Fatalf("%s: plist: %v\n%s", what, err, body)
	}
	top, _ := v.(map[string]any)
	content, _ := top["PayloadContent"].([]any)
	if top["PayloadType"] != "Configuration" || len(content) != 1 {
		t.Fatalf("%s: top-level %v", what, top)
	}
	mail, _ := content[0].(map[string]any)
	host := strings.ToLower(site.Snapshot().Hostname())
	if site.Signed() {
		// A signed profile carries no request text but a plain address:
		// never the name; for a quoted local part, the domain's profile
		// without address or user names (mobileconfig.Signer.Sign).
		name = ""
		if _, ok := mail["EmailAccountName"]; ok {
			t.Errorf("%s: a signed profile has EmailAccountName %v", what, mail["EmailAccountName"])
		}
		if strings.HasPrefix(address, `"`) {
			address, login = "", ""
			for k, v := range mail {
				if s, ok := v.(string); ok && strings.Contains(s, "@") {
					t.Errorf("%s: the domain's profile has %s = %q", what, k, s)
				}
			}
		}
	}
	str := func(k string) string { s, _ := mail[k].(string); return s }
	if mail["PayloadType"] != "com.apple.mail.managed" || str("EmailAddress") != address ||
		str("IncomingMailServerUsername") != login || str("OutgoingMailServerUsername") != login ||
		mail["IncomingMailServerHostName"] != host || mail["OutgoingMailServerHostName"] != host {
		t.Errorf("%s: mail payload %v, want address %s, login %s, host %s", what, mail, address, login, host)
	}
	if name != "" && mail["EmailAccountName"] != name {
		t.Errorf("%s: EmailAccountName %v, want %q", what, mail["EmailAccountName"], name)
	}
}

// TestAddressEscaped sends an address full of XML, JSON and HTML
// metacharacters (a valid quoted local part) to every endpoint and checks
// it comes back intact after decoding.
func TestAddressEscaped(t *testing.T) {
	dir := t.TempDir()
	syntheticTree(t, dir)
	site := buildSite(t, dir, "")
	ts := startServer(t, site)
	local := `"a<b>&'c\"d/"`
	addr := local + "@example.com"
	q := url.QueryEscape(addr)

	res := ts.do(t, "GET", "https://autoconfig.example.com/mail/config-v1.1.xml?emailaddress="+q, nil, nil)
	if res.status != 200 {
		t.Fatalf("autoconfig: %d %s", res.status, res.body)
	}
	xmllint(t, "autoconfig", res.body)

	body := []byte(`<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>` +
		xmlEscape(addr) + `</EMailAddress><AcceptableResponseSchema>` + schemaOutlook + `</AcceptableResponseSchema></Request></Autodiscover>`)
	res = ts.do(t, "POST", "https://autodiscover.example.com/Autodiscover/Autodiscover.xml", body, nil)
	xmllint(t, "POX", res.body)
	checkPOX(t, "POX with "+addr, res.body, site.Snapshot(), addr)
	var doc poxDoc
	if err := xml.Unmarshal(res.body, &doc); err != nil || doc.Response.User.DisplayName != addr {
		t.Errorf("POX DisplayName = %q (%v), want %q", doc.Response.User.DisplayName, err, addr)
	}

	res = ts.do(t, "GET", "https://example.com/?emailaddress="+q, nil, nil)
	if res.status != 200 || !strings.HasPrefix(res.header.Get("Content-Type"), "text/html") {
		t.Fatalf("page: %d %s", res.status, res.header.Get("Content-Type"))
	}
	if strings.Contains(string(res.body), "a<b>") || !strings.Contains(string(res.body), "a&lt;b&gt;&amp;") {
		t.Errorf("settings page does not escape the address:\n%s", res.body)
	}
	if res.header.Get("Cache-Control") != "private, no-store" || res.header.Get("Content-Security-Policy") == "" {
		t.Errorf("settings page headers: %v", res.header)
	}

	res = ts.do(t, "GET", "https://autoconfig.example.com/mobileconfig?emailaddress="+q+"&name="+url.QueryEscape(`<Fred & "Co">`), nil, nil)
	if res.status != 200 {
		t.Fatalf("profile: %d %s", res.status, res.body)
	}
	checkProfile(t, "profile with "+addr, res, site, "example.com", addr, addr, `<Fred & "Co">`, "")
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// TestHostRouting checks the domain taken from Host when the request has
// no address, and that an address wins over Host.
func TestHostRouting(t *testing.T) {
	dir := t.TempDir()
	syntheticTree(t, dir)
	site := buildSite(t, dir, "")
	ts := startServer(t, site)
	tests := []struct {
		url, wantDomain string // "" = 404
	}{
		{"https://autoconfig.example.com/mail/config-v1.1.xml", "example.com"},
		{"https://AUTOCONFIG.Example.COM/mail/config-v1.1.xml", "example.com"},
		{"https://autoconfig.example.org./mail/config-v1.1.xml", "example.org"},
		{"https://example.org:8443/.well-known/autoconfig/mail/config-v1.1.xml", "example.org"},
		{"https://autoconfig.xn--bcher-kva.example/.well-known/mail-v1.xml", "xn--bcher-kva.example"},
		{"https://autodiscover.example.com/mail/config-v1.1.xml", "example.com"},
		{"https://mail.example.com/mail/config-v1.1.xml", "example.com"},            // the mail host's own name
		{"https://autoconfig.mail.example.com/mail/config-v1.1.xml", "example.com"}, // MX-derived
		{"https://autoconfig.example.net/mail/config-v1.1.xml", ""},
		{"https://autoconfig.sub.example.com/mail/config-v1.1.xml", ""},
		{"https://127.0.0.1/mail/config-v1.1.xml", ""},
		{"https://[::1]:8443/mail/config-v1.1.xml", ""},
		{"https://autoconfig.example.net/mail/config-v1.1.xml?emailaddress=fred%40example.org", "example.org"},
		{"https://autoconfig.provider.example/mail/config-v1.1.xml?emailaddress=fred@EXAMPLE.com", "example.com"},
		{"https://autoconfig.example.com/mail/config-v1.1.xml?emailaddress=fred@b%C3%BCcher.example", "xn--bcher-kva.example"},
		{"https://autoconfig.example.com/mail/config-v1.1.xml?emailaddress=fred+tag@example.org", "example.org"}, // '+' not encoded
		{"https://autoconfig.example.com/mail/config-v1.1.xml?emailaddress=", "example.com"},                     // empty = absent
	}
	for _, tt := range tests {
		res := ts.do(t, "GET", tt.url, nil, nil)
		if tt.wantDomain == "" {
			if res.status != 404 {
				t.Errorf("GET %s = %d, want 404", tt.url, res.status)
			}
			continue
		}
		var doc autoconfigDoc
		if res.status != 200 || xml.Unmarshal(res.body, &doc) != nil || doc.Provider.ID != tt.wantDomain {
			t.Errorf("GET %s = %d id %q, want 200 for %s\n%s", tt.url, res.status, doc.Provider.ID, tt.wantDomain, res.body)
		}
	}
}

// TestPages checks the HTML pages and the profile link.
func TestPages(t *testing.T) {
	dir := t.TempDir()
	syntheticTree(t, dir)
	site := buildSite(t, dir, "")
	ts := startServer(t, site)
	res := ts.do(t, "GET", "https://autoconfig.example.com/", nil, nil)
	if res.status != 200 || !strings.Contains(string(res.body), `name="emailaddress"`) || res.header.Get("Cache-Control") != "public, max-age=3600" {
		t.Errorf("GET / = %d %v\n%s", res.status, res.header, res.body)
	}
	res = ts.do(t, "GET", "https://autoconfig.example.com/?emailaddress=fred%2Btag%40example.com", nil, nil)
	if res.status != 200 || !strings.Contains(string(res.body), "mail.example.com") ||
		!strings.Contains(string(res.body), "/mobileconfig?emailaddress=fred%2Btag%40example.com") {
		t.Errorf("settings page = %d\n%s", res.status, res.body)
	}
	for _, tt := range []struct {
		query string
		code  int
	}{{"emailaddress=nobody", 400}, {"emailaddress=fred%40example.net", 404}} {
		res = ts.do(t, "GET", "https://autoconfig.example.com/?"+tt.query, nil, nil)
		if res.status != tt.code || !strings.HasPrefix(res.header.Get("Content-Type"), "text/html") || !strings.Contains(string(res.body), "<h1>") {
			t.Errorf("GET /?%s = %d %s, want an HTML %d page", tt.query, res.status, res.header.Get("Content-Type"), tt.code)
		}
	}
	if os.Getenv("MAILAUTOCONF_SAVE_PAGES") != "" {
		os.WriteFile(filepath.Join(os.Getenv("MAILAUTOCONF_SAVE_PAGES"), "error.html"), res.body, 0o644)
	}
}
func itoa(i int) string { return strconv.Itoa(i) }

func checkPOXError(t *testing.T, what string, body []byte, responseNS string, code int) {
	t.Helper()
	var doc poxDoc
	if err := xml.Unmarshal(body, &doc); err != nil {
		t.Errorf("%s: %v\n%s", what, err, body)
		return
	}
	if doc.XMLName.Space != nsResponse || doc.Response.XMLName.Space != responseNS || doc.Response.Error == nil || doc.Response.Error.ErrorCode != code {
		t.Errorf("%s: want error %d in Response of namespace %s, got\n%s", what, code, responseNS, body)
	}
}
