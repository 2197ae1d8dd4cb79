package render

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/html"
	"golang.org/x/net/idna"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

var update = flag.Bool("update", false, "rewrite ../testdata/golden files with current output")

const goldenDir = "../testdata/golden/render"

// TestRender renders every document for every test set, compares the first
// address's documents with the golden files, and parses every document
// back to check what a client would read from it.
func TestRender(t *testing.T) {
	for _, set := range testSets(t) {
		t.Run(set.name, func(t *testing.T) {
			s := set.snap
			for i, a := range set.addrs {
				extra := aliasesOf(s, a)
				golden := func(kind string, b []byte) {
					if i == 0 {
						checkGolden(t, set.name+"."+kind, b)
					}
				}

				ac, err := Autoconfig(s, extra)
				switch {
				case set.noAutoconfig:
					if !errors.Is(err, ErrNoEndpoints) {
						t.Errorf("Autoconfig = %v, want ErrNoEndpoints", err)
					}
				case err != nil:
					t.Fatalf("Autoconfig: %v", err)
				default:
					b := ac.Append(nil, a)
					golden("autoconfig.xml", b)
					xmllint(t, b)
					checkAutoconfig(t, s, b, a, extra)
				}

				pox, err := AutodiscoverPOX(s)
				if err != nil {
					t.Fatalf("AutodiscoverPOX: %v", err)
				}
				b := pox.Append(nil, a)
				golden("autodiscover.xml", b)
				xmllint(t, b)
				checkPOX(t, s, b, a)

				b = AutodiscoverJSON().Append(nil, a)
				golden("autodiscover.json", b)
				checkJSON(t, b, a)

				page, err := PageSettings(s)
				if err != nil {
					t.Fatalf("PageSettings: %v", err)
				}
				b = page.Append(nil, a)
				golden("settings.html", b)
				checkSettingsPage(t, s, b, a)

				form, err := PageForm(s)
				if err != nil {
					t.Fatalf("PageForm: %v", err)
				}
				golden("form.html", form)
				checkForm(t, form)
			}
		})
	}
}

func TestStaticDocuments(t *testing.T) {
	for _, tt := range []struct {
		code int
		msg  string
	}{{600, "Invalid Request"}, {601, "The requested response schema is not offered"}, {603, "Internal server error"}} {
		b := AutodiscoverPOXError(tt.code, tt.msg)
		checkGolden(t, fmt.Sprintf("autodiscover-error-%d.xml", tt.code), b)
		xmllint(t, b)
		var doc struct {
			XMLName  xml.Name
			Response struct {
				XMLName xml.Name
				Error   struct {
					Time      string `xml:"Time,attr"`
					ID        string `xml:"Id,attr"`
					ErrorCode int
					Message   string
					DebugData *string
				}
			}
		}
		if err := xml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("AutodiscoverPOXError(%d) does not parse: %v", tt.code, err)
		}
		e := doc.Response.Error
		if doc.XMLName.Space != NamespaceResponse || doc.Response.XMLName.Space != NamespaceResponse {
			t.Errorf("AutodiscoverPOXError(%d) namespaces = %q, %q, want both %q", tt.code, doc.XMLName.Space, doc.Response.XMLName.Space, NamespaceResponse)
		}
		if e.ErrorCode != tt.code || e.Message != tt.msg || e.DebugData == nil || e.Time == "" || e.ID == "" {
			t.Errorf("AutodiscoverPOXError(%d) = %+v", tt.code, e)
		}
		if !bytes.Equal(b, AutodiscoverPOXError(tt.code, tt.msg)) {
			t.Errorf("AutodiscoverPOXError(%d) differs between calls", tt.code)
		}
	}

	b := MobileSyncNoProvider()
	checkGolden(t, "mobilesync-601.xml", b)
	xmllint(t, b)
	var eas struct {
		XMLName  xml.Name
		Response struct {
			XMLName xml.Name
			Error   struct{ ErrorCode int }
		}
	}
	if err := xml.Unmarshal(b, &eas); err != nil {
		t.Fatal(err)
	}
	if eas.XMLName.Space != NamespaceResponse || eas.Response.XMLName.Space != NamespaceMobileSync || eas.Response.Error.ErrorCode != 601 {
		t.Errorf("MobileSyncNoProvider = %+v, want 601 in a mobilesync Response", eas)
	}

	b = AutodiscoverJSONError("Ews")
	checkGolden(t, "autodiscover-json-error.json", b)
	spec, err := os.ReadFile("../testdata/spec/responses/autodiscover-json-error.json")
	if err == nil && !bytes.Equal(b, bytes.TrimSpace(spec)) {
		t.Errorf("AutodiscoverJSONError(Ews) = %s, want the spec's %s", b, spec)
	}
	for in, want := range map[string]string{
		"Ews":                     "Ews",
		`x"}<script>'&`:           "xscript",
		strings.Repeat("A", 1000): strings.Repeat("A", 64),
		"Rest\u00e9\x00":          "Rest",
	} {
		var m map[string]string
		if err := json.Unmarshal(AutodiscoverJSONError(in), &m); err != nil {
			t.Fatalf("AutodiscoverJSONError(%q) is not JSON: %v", in, err)
		}
		if m["ErrorCode"] != "InvalidProtocol" || !strings.Contains(m["ErrorMessage"], "'"+want+"'") || len(m) != 2 {
			t.Errorf("AutodiscoverJSONError(%q) = %v, want protocol echoed as %q", in, m, want)
		}
	}
}

// TestAutodiscoverJSONMatchesSpec compares with the spec's sample for
// example.com.
func TestAutodiscoverJSONMatchesSpec(t *testing.T) {
	spec, err := os.ReadFile("../testdata/spec/responses/autodiscover-json-v1.json")
	if err != nil {
		t.Skipf("spec sample: %v", err)
	}
	got := AutodiscoverJSON().Append(nil, Address{Local: "fred", Domain: "example.com"})
	if !bytes.Equal(got, bytes.TrimSpace(spec)) {
		t.Errorf("AutodiscoverJSON = %s, want %s", got, spec)
	}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(goldenDir, name)
	if *update {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		i := 0
		for i < len(gl) && i < len(wl) && gl[i] == wl[i] {
			i++
		}
		line := func(ls []string) string {
			if i < len(ls) {
				return ls[i]
			}
			return "(end of file)"
		}
		t.Errorf("%s differs from the golden file (go test -update rewrites it) at line %d:\ngot:  %s\nwant: %s", name, i+1, line(gl), line(wl))
	}
}

// xmllint checks b with libxml2's xmllint --noout.
func xmllint(t *testing.T, b []byte) {
	t.Helper()
	path := testtool.Need(t, "xmllint") // Debian libxml2-utils
	cmd := exec.Command(path, "--noout", "--nonet", "-")
	cmd.Stdin = bytes.NewReader(b)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("xmllint --noout: %v\n%s\n%s", err, out, b)
	}
}

// advertisedByHand is what the documents must offer: the snapshot's
// endpoints with TLS, in order.
func advertisedByHand(s *discover.Snapshot) []discover.Endpoint {
	return slices.DeleteFunc(s.Endpoints(), func(e discover.Endpoint) bool {
		return e.Security != discover.SecurityTLS && e.Security != discover.SecuritySTARTTLS
	})
}

// wantLogin is what the client must log in to e with for a.
func wantLogin(e discover.Endpoint, a Address) string {
	if e.Username == discover.UsernameLocalPart {
		return a.Local
	}
	return a.Local + "@" + a.LoginDomain
}

func checkHostname(t *testing.T, what, h string) {
	t.Helper()
	ascii, err := idna.Lookup.ToASCII(h)
	if err != nil || ascii != h || strings.ToLower(h) != h {
		t.Errorf("%s host name %q is not lower-case A-labels (%q, %v)", what, h, ascii, err)
	}
}

// acDocument is how a client reads config-v1.1.xml.
type acDocument struct {
	XMLName  xml.Name `xml:"clientConfig"`
	Version  string   `xml:"version,attr"`
	Provider struct {
		ID               string     `xml:"id,attr"`
		Domains          []string   `xml:"domain"`
		DisplayName      string     `xml:"displayName"`
		DisplayShortName string     `xml:"displayShortName"`
		Incoming         []acServer `xml:"incomingServer"`
		Outgoing         []acServer `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

type acServer struct {
	Type           string   `xml:"type,attr"`
	Hostname       string   `xml:"hostname"`
	Port           int      `xml:"port"`
	SocketType     []string `xml:"socketType"`
	Authentication []string `xml:"authentication"`
	Username       string   `xml:"username"`
	Password       *string  `xml:"password"`
}

// substitute replaces placeholders the way Thunderbird does: the first
// occurrence of each only.
func substitute(v string, a Address) string {
	v = strings.Replace(v, "%EMAILADDRESS%", a.String(), 1)
	v = strings.Replace(v, "%EMAILLOCALPART%", a.Local, 1)
	return strings.Replace(v, "%EMAILDOMAIN%", a.Domain, 1)
}

func checkAutoconfig(t *testing.T, s *discover.Snapshot, b []byte, a Address, extra []string) {
	t.Helper()
	var doc acDocument
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("autoconfig for %s does not parse: %v\n%s", a, err, b)
	}
	p := doc.Provider
	if doc.Version != "1.1" || p.ID != a.Domain || p.DisplayName == "" || p.DisplayShortName == "" {
		t.Errorf("autoconfig for %s: version %q, id %q, displayName %q, want 1.1, %s and a name", a, doc.Version, p.ID, p.DisplayName, a.Domain)
	}
	if want := append([]string{a.Domain}, extra...); !slices.Equal(p.Domains, want) {
		t.Errorf("autoconfig for %s: domains = %q, want %q", a, p.Domains, want)
	}
	if len(p.Incoming) == 0 || len(p.Outgoing) == 0 {
		t.Errorf("autoconfig for %s: %d incoming and %d outgoing servers, want both", a, len(p.Incoming), len(p.Outgoing))
	}
	want := advertisedByHand(s)
	got := append(slices.Clone(p.Incoming), p.Outgoing...)
	if len(got) != len(want) {
		t.Fatalf("autoconfig for %s lists %d servers, want the %d with TLS", a, len(got), len(want))
	}
	for i, e := range want {
		g := got[i]
		what := fmt.Sprintf("autoconfig %s server %d", a, i)
		wantSocket := map[discover.Security]string{discover.SecurityTLS: "SSL", discover.SecuritySTARTTLS: "STARTTLS"}[e.Security]
		if g.Type != e.Protocol || g.Hostname != e.Host || g.Port != e.Port || !slices.Equal(g.SocketType, []string{wantSocket}) {
			t.Errorf("%s = %s %s:%d %v, want %s %s:%d %s", what, g.Type, g.Hostname, g.Port, g.SocketType, e.Protocol, e.Host, e.Port, wantSocket)
		}
		checkHostname(t, what, g.Hostname)
		if g.Password != nil {
			t.Errorf("%s has a password element", what)
		}
		cleartext := slices.Contains(e.Auth, "PLAIN") || slices.Contains(e.Auth, "LOGIN")
		encrypted := slices.ContainsFunc(e.Auth, func(m string) bool {
			return m == "CRAM-MD5" || m == "DIGEST-MD5" || strings.HasPrefix(m, "SCRAM-")
		})
		if slices.Contains(g.Authentication, "password-cleartext") != cleartext || slices.Contains(g.Authentication, "password-encrypted") != encrypted {
			t.Errorf("%s authentication = %q for mechanisms %q", what, g.Authentication, e.Auth)
		}
		if cleartext && g.Authentication[0] != "password-cleartext" {
			t.Errorf("%s authentication = %q, want password-cleartext first", what, g.Authentication)
		}
		for _, ph := range []string{"%EMAILADDRESS%", "%EMAILLOCALPART%", "%EMAILDOMAIN%"} {
			if strings.Count(g.Username, ph) > 1 {
				t.Errorf("%s username %q repeats %s", what, g.Username, ph)
			}
		}
		if u := substitute(g.Username, a); u != wantLogin(e, a) {
			t.Errorf("%s username %q becomes %q, want %q", what, g.Username, u, wantLogin(e, a))
		}
	}
	if bytes.Contains(b, []byte(">plain<")) {
		t.Errorf("autoconfig for %s mentions plain", a)
	}
}

// poxDoc is how Outlook reads the POX response.
type poxDoc struct {
	XMLName  xml.Name
	Response struct {
		XMLName xml.Name
		User    struct{ DisplayName string }
		Account struct {
			AccountType, Action string
			Protocol            []struct {
				Type, Server                                   string
				Port                                           int
				DomainRequired, LoginName, SPA, SSL            string
				Encryption, AuthRequired, UsePOPAuth, SMTPLast string
			}
		}
	}
}

func checkPOX(t *testing.T, s *discover.Snapshot, b []byte, a Address) {
	t.Helper()
	var doc poxDoc
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("POX for %s does not parse: %v\n%s", a, err, b)
	}
	if doc.XMLName.Space != NamespaceResponse || doc.Response.XMLName.Space != NamespaceOutlook {
		t.Errorf("POX namespaces = %q, %q, want %q, %q", doc.XMLName.Space, doc.Response.XMLName.Space, NamespaceResponse, NamespaceOutlook)
	}
	acct := doc.Response.Account
	if acct.AccountType != "email" || acct.Action != "settings" || doc.Response.User.DisplayName != a.String() {
		t.Errorf("POX for %s: account %q/%q, display name %q", a, acct.AccountType, acct.Action, doc.Response.User.DisplayName)
	}
	var want []discover.Endpoint
	for _, e := range advertisedByHand(s) {
		if !slices.ContainsFunc(want, func(w discover.Endpoint) bool { return w.Protocol == e.Protocol }) {
			want = append(want, e)
		}
	}
	if len(acct.Protocol) != len(want) {
		t.Fatalf("POX for %s has %d Protocols, want %d (one per type)", a, len(acct.Protocol), len(want))
	}
	for i, e := range want {
		p := acct.Protocol[i]
		what := fmt.Sprintf("POX %s Protocol %s", a, p.Type)
		if p.Type != strings.ToUpper(e.Protocol) || p.Server != e.Host || p.Port != e.Port {
			t.Errorf("%s = %s:%d, want %s %s:%d", what, p.Server, p.Port, e.Protocol, e.Host, e.Port)
		}
		checkHostname(t, what, p.Server)
		wantEnc := map[discover.Security]string{discover.SecurityTLS: "SSL", discover.SecuritySTARTTLS: "TLS"}[e.Security]
		if p.SSL != "on" || p.Encryption != wantEnc {
			t.Errorf("%s: SSL %q Encryption %q for %s, want on and %s", what, p.SSL, p.Encryption, e.Security, wantEnc)
		}
		if p.SPA != "off" || p.DomainRequired != "off" || p.AuthRequired != "on" {
			t.Errorf("%s: SPA %q DomainRequired %q AuthRequired %q, want off, off, on", what, p.SPA, p.DomainRequired, p.AuthRequired)
		}
		if p.LoginName != wantLogin(e, a) {
			t.Errorf("%s: LoginName %q, want %q", what, p.LoginName, wantLogin(e, a))
		}
		if e.Protocol == "smtp" && (p.UsePOPAuth != "off" || p.SMTPLast != "off") {
			t.Errorf("%s: UsePOPAuth %q SMTPLast %q, want off", what, p.UsePOPAuth, p.SMTPLast)
		}
	}
}

func checkJSON(t *testing.T, b []byte, a Address) {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("autodiscover.json for %s: %v", a, err)
	}
	want := "https://autodiscover." + a.Domain + "/Autodiscover/Autodiscover.xml"
	if len(m) != 2 || m["Protocol"] != "AutodiscoverV1" || m["Url"] != want {
		t.Errorf("autodiscover.json for %s = %v, want Url %s", a, m, want)
	}
}

// nodes returns the elements of n's tree with the tag name.
func nodes(n *html.Node, tag string) []*html.Node {
	var out []*html.Node
	for d := range n.Descendants() {
		if d.Type == html.ElementNode && d.Data == tag {
			out = append(out, d)
		}
	}
	return out
}

func text(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return strings.TrimSpace(b.String())
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func checkForm(t *testing.T, b []byte) {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if s := nodes(doc, "script"); len(s) > 0 {
		t.Errorf("page has %d script elements", len(s))
	}
	forms := nodes(doc, "form")
	if len(forms) != 1 || !strings.EqualFold(attr(forms[0], "method"), "get") || attr(forms[0], "action") != "/" {
		t.Fatalf("page forms = %d, want one GET form to /", len(forms))
	}
	if !slices.ContainsFunc(nodes(forms[0], "input"), func(n *html.Node) bool { return attr(n, "name") == "emailaddress" }) {
		t.Errorf("form has no emailaddress field")
	}
}

func checkSettingsPage(t *testing.T, s *discover.Snapshot, b []byte, a Address) {
	t.Helper()
	checkForm(t, b)
	doc, _ := html.Parse(bytes.NewReader(b))
	if h := nodes(doc, "h1"); len(h) != 1 || !strings.Contains(text(h[0]), a.String()) {
		t.Errorf("settings page for %s: heading does not show the address", a)
	}
	var link string
	for _, n := range nodes(doc, "a") {
		if strings.HasPrefix(attr(n, "href"), "/mobileconfig?") {
			link = attr(n, "href")
		}
	}
	u, err := url.Parse(link)
	if err != nil || u.Path != "/mobileconfig" || u.Query().Get("emailaddress") != a.String() || len(u.Query()) != 1 {
		t.Errorf("settings page for %s: profile link %q, want /mobileconfig?emailaddress=<address>", a, link)
	}
	var rows [][]string
	for _, tr := range nodes(doc, "tr") {
		if tr.Parent != nil && attr(tr.Parent, "class") == "groupware" {
			continue // checked by checkGroupwareTable
		}
		var cells []string
		for _, td := range nodes(tr, "td") {
			cells = append(cells, text(td))
		}
		if cells != nil {
			rows = append(rows, cells)
		}
	}
	want := advertisedByHand(s)
	// Incoming rows come first, then outgoing; each in snapshot order.
	slices.SortStableFunc(want, func(x, y discover.Endpoint) int {
		return boolInt(x.Protocol == "smtp") - boolInt(y.Protocol == "smtp")
	})
	if len(rows) != len(want) {
		t.Fatalf("settings page for %s has %d rows, want %d", a, len(rows), len(want))
	}
	for i, e := range want {
		r := rows[i]
		sec := map[discover.Security]string{discover.SecurityTLS: "SSL/TLS", discover.SecuritySTARTTLS: "STARTTLS"}[e.Security]
		if len(r) != 6 || r[0] != strings.ToUpper(e.Protocol) || r[1] != e.Host || r[2] != strconv.Itoa(e.Port) || r[3] != sec || r[4] != wantLogin(e, a) {
			t.Errorf("settings page for %s row %d = %q, want %s %s %d %s %s", a, i, r, e.Protocol, e.Host, e.Port, sec, wantLogin(e, a))
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
