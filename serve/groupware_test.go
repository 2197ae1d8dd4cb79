package serve

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"github.com/mailautoconf/mailautoconf/internal/groupwaretest"
	"log/slog"
	"net/http"
	"os"
	"testing"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/render"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// sogoSite is the Site of the handmade corpus set with iRedMail's nginx
// and SOGo laid over it, SOGo answering 401 on its DAV and ActiveSync
// paths as it does without credentials: CalDAV, CardDAV and ActiveSync
// are proven.
func sogoSite(t testing.TB) *Site {
	t.Helper()
	dir := t.TempDir()
	testtool.CopyTree(t, "../testdata/corpus/handmade-static-domains", dir)
	snap := groupwaretest.Snapshot(t, dir, nil)
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := snap.Service(discover.ServiceActiveSync); !ok {
		t.Fatalf("ActiveSync not proven: %q", snap.Groupware().Missing)
	}
	site, err := NewSite(root, snap, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return site
}

// TestGroupwareServed: a host with SOGo answers the ActiveSync
// Autodiscover request with its settings, autodiscover.json's ActiveSync
// protocol with its URL, and puts CalDAV and CardDAV in the profile and
// the URLs on the settings page; the host without SOGo answers as before.
func TestGroupwareServed(t *testing.T) {
	const eas = "https://mail.example.net/Microsoft-Server-ActiveSync"
	easReq, err := os.ReadFile(specDir + "/requests/activesync-request.xml")
	if err != nil {
		t.Fatal(err)
	}
	easReq = bytes.ReplaceAll(easReq, []byte("example.com"), []byte("example.net"))
	sogo := startServer(t, sogoSite(t))
	plain := startServer(t, buildSite(t, "../testdata/corpus/handmade-static-domains", ""))
	post := func(ts *testServer, body []byte) response {
		return ts.do(t, "POST", "https://autodiscover.example.net/autodiscover/autodiscover.xml", body, http.Header{"Content-Type": {"text/xml"}})
	}

	// ActiveSync Autodiscover.
	res := post(sogo, easReq)
	var doc struct {
		XMLName  xml.Name
		Response struct {
			XMLName xml.Name
			User    struct{ EMailAddress string }
			Action  struct {
				Settings struct {
					Server []struct{ Type, Url, Name string }
				}
			}
		}
	}
	if err := xml.Unmarshal(res.body, &doc); err != nil || res.status != 200 {
		t.Fatalf("mobilesync: %d %v\n%s", res.status, err, res.body)
	}
	srv := doc.Response.Action.Settings.Server
	if doc.Response.XMLName.Space != nsMobileSync || doc.Response.User.EMailAddress != "fred@example.net" ||
		len(srv) != 1 || srv[0].Type != "MobileSync" || srv[0].Url != eas || srv[0].Name != eas {
		t.Errorf("mobilesync answer:\n%s", res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != "text/xml; charset=utf-8" {
		t.Errorf("mobilesync Content-Type %q", ct)
	}
	res = post(plain, easReq)
	checkPOXError(t, "mobilesync without SOGo", res.body, nsMobileSync, 601)
	// An address of a domain not hosted here: the POX "not found" error.
	res = post(sogo, bytes.ReplaceAll(easReq, []byte("example.net"), []byte("example.invalid")))
	checkPOXError(t, "mobilesync for an unhosted domain", res.body, nsResponse, 500)
	// The Outlook schema is answered as before.
	res = post(sogo, poxBody("fred@example.net", schemaOutlook))
	if res.status != 200 || !bytes.Contains(res.body, []byte("<AccountType>email</AccountType>")) {
		t.Errorf("Outlook POX with SOGo: %d\n%s", res.status, res.body)
	}

	// autodiscover.json?Protocol=ActiveSync.
	for _, u := range []string{
		"https://autodiscover.example.net/autodiscover/autodiscover.json?Email=fred@example.net&Protocol=ActiveSync",
		"https://autodiscover.example.net/autodiscover/autodiscover.json/v1.0/fred@example.net?Protocol=activesync",
	} {
		res = sogo.do(t, "GET", u, nil, nil)
		var m map[string]string
		if err := json.Unmarshal(res.body, &m); err != nil || res.status != 200 || len(m) != 2 || m["Protocol"] != "ActiveSync" || m["Url"] != eas {
			t.Errorf("GET %s = %d %s", u, res.status, res.body)
		}
		res = plain.do(t, "GET", u, nil, nil)
		if err := json.Unmarshal(res.body, &m); err != nil || res.status != 400 || m["ErrorCode"] != "InvalidProtocol" {
			t.Errorf("without SOGo: GET %s = %d %s", u, res.status, res.body)
		}
	}
	res = sogo.do(t, "GET", "https://autodiscover.example.net/autodiscover/autodiscover.json?Email=fred@example.invalid&Protocol=ActiveSync", nil, nil)
	if res.status != 404 {
		t.Errorf("ActiveSync for an unhosted domain: %d %s", res.status, res.body)
	}

	// The profile and the settings page.
	res = sogo.do(t, "GET", "https://autoconfig.example.net/mobileconfig?emailaddress=fred@example.net", nil, nil)
	for _, want := range []string{"com.apple.caldav.account", "com.apple.carddav.account", "https://mail.example.net/SOGo/dav/fred@example.net/"} {
		if res.status != 200 || !bytes.Contains(res.body, []byte(want)) {
			t.Errorf("profile with SOGo lacks %s: %d", want, res.status)
		}
	}
	res = plain.do(t, "GET", "https://autoconfig.example.net/mobileconfig?emailaddress=fred@example.net", nil, nil)
	if res.status != 200 || bytes.Contains(res.body, []byte("caldav")) {
		t.Errorf("profile without SOGo: %d, has CalDAV: %v", res.status, bytes.Contains(res.body, []byte("caldav")))
	}
	res = sogo.do(t, "GET", "https://autoconfig.example.net/?emailaddress=fred@example.net", nil, nil)
	for _, want := range []string{"https://mail.example.net/SOGo/dav/fred@example.net/", eas} {
		if res.status != 200 || !bytes.Contains(res.body, []byte(want)) {
			t.Errorf("settings page with SOGo lacks %s: %d", want, res.status)
		}
	}
}

// TestSettingsPageQR: the settings page carries the QR code of its
// profile link, made once per Site and address, and within the budget:
// beyond it the page comes without the code.
func TestSettingsPageQR(t *testing.T) {
	site := buildSite(t, "../testdata/corpus/handmade-static-domains", "")
	site.qr.budget = newQRBudget(0, 1) // one code, never more
	ts := startServer(t, site)
	page := func(addr string) []byte {
		t.Helper()
		res := ts.do(t, "GET", "https://autoconfig.example.net/?emailaddress="+addr, nil, nil)
		if res.status != 200 {
			t.Fatalf("settings page for %s: %d %s", addr, res.status, res.body)
		}
		return res.body
	}
	fred := render.Address{Local: "fred", Domain: "example.net", LoginDomain: "example.net"}
	qr, err := render.ProfileQR(fred)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // the second and third from the Site's codes
		if b := page("fred@example.net"); !bytes.Contains(b, qr) {
			t.Fatalf("settings page for fred has no QR code of %s:\n%s", render.ProfileURL(fred), b)
		}
	}
	b := page("barney@example.net")
	if bytes.Contains(b, []byte("<svg")) {
		t.Error("a QR code beyond the budget")
	}
	barney := render.Address{Local: "barney", Domain: "example.net", LoginDomain: "example.net"}
	if want := site.settings.t.Append(nil, barney); !bytes.Equal(b, want) {
		t.Errorf("the page beyond the budget is not the page without the code:\n%s", b)
	}
	if n := len(site.qr.m); n != 1 {
		t.Errorf("the Site holds %d QR codes, want 1", n)
	}
}
