package render

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"github.com/mailautoconf/mailautoconf/internal/groupwaretest"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/sources/sqltable"
)

// sogoSnapshot is the handmade corpus set with iRedMail's nginx and SOGo
// (and sogo-activesync's bundle) laid over it, SOGo answering 401 on its
// DAV and ActiveSync paths as it does without credentials: CalDAV,
// CardDAV and ActiveSync are proven.
func sogoSnapshot(t testing.TB) *discover.Snapshot {
	t.Helper()
	s := groupwaretest.Corpus(t, corpusDir+"/handmade-static-domains", nil)
	for _, p := range []string{discover.ServiceCalDAV, discover.ServiceCardDAV, discover.ServiceActiveSync} {
		if _, ok := s.Service(p); !ok {
			t.Fatalf("the SOGo snapshot does not prove %s: %q", p, s.Groupware().Missing)
		}
	}
	return s
}

const (
	sogoEAS = "https://mail.example.net/Microsoft-Server-ActiveSync"
	sogoDAV = "https://mail.example.net/SOGo/dav/"
)

// The mobilesync response as a client decodes it (MS-ASCMD §6.2).
type easResponseDoc struct {
	XMLName  xml.Name
	Response struct {
		XMLName xml.Name
		Culture string
		User    struct {
			DisplayName  *string
			EMailAddress string
		}
		Action struct {
			Redirect *string
			Error    *struct{}
			Settings struct {
				Server []struct {
					Type, Url, Name string
					ServerData      *string
				}
			}
		}
	}
}

// TestGroupwareDocuments renders every document for a host with SOGo:
// the mobilesync settings, autodiscover.json for ActiveSync and the
// settings page are compared with golden files and decoded back; the
// other documents are the same as without SOGo.
func TestGroupwareDocuments(t *testing.T) {
	s := sogoSnapshot(t)
	plain := buildRoot(t, corpusDir+"/handmade-static-domains", sqltable.Options{})
	for _, a := range []Address{
		address(s, "fred", "example.net"),
		address(s, `"a<b>&"`, "example.net"),
		address(s, "Mixed.Case", "example.biz"),
	} {
		first := a.Local == "fred"
		golden := func(name string, b []byte) {
			if first {
				checkGolden(t, name, b)
			}
		}

		eas, ok := MobileSync(s)
		if !ok {
			t.Fatal("MobileSync: not offered with ActiveSync proven")
		}
		b := eas.Append(nil, a)
		golden("sogo.mobilesync.xml", b)
		xmllint(t, b)
		if err := xmllintSchema(t, b); err != nil {
			t.Error(err)
		}
		checkMobileSync(t, b, a)

		js, ok := AutodiscoverJSONActiveSync(s)
		if !ok {
			t.Fatal("AutodiscoverJSONActiveSync: not offered with ActiveSync proven")
		}
		b = js.Append(nil, a)
		golden("sogo.autodiscover-activesync.json", b)
		var m struct {
			Protocol string
			URL      string `json:"Url"`
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil || m.Protocol != "ActiveSync" || m.URL != sogoEAS {
			t.Errorf("autodiscover.json ActiveSync = %s (%v), want Protocol ActiveSync, Url %s", b, err, sogoEAS)
		}

		page, err := PageSettings(s)
		if err != nil {
			t.Fatal(err)
		}
		b = page.Append(nil, a)
		golden("sogo.settings.html", b)
		if first {
			qr, err := ProfileQR(a)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, "sogo.settings-qr.html", page.AppendQR(nil, a, qr))
		}
		checkSettingsPage(t, s, b, a)
		checkGroupwareTable(t, b, []string{
			"CalDAV (calendars)|" + sogoDAV + a.Local + "@" + a.LoginDomain + "/|" + a.Local + "@" + a.LoginDomain,
			"CardDAV (contacts)|" + sogoDAV + a.Local + "@" + a.LoginDomain + "/|" + a.Local + "@" + a.LoginDomain,
			"Exchange ActiveSync|" + sogoEAS + "|" + a.Local + "@" + a.LoginDomain,
		})
		plainPage, err := PageSettings(plain)
		if err != nil {
			t.Fatal(err)
		}
		checkGroupwareTable(t, plainPage.Append(nil, a), nil)

		// What groupware does not concern stays as it is without it.
		for _, f := range []func(*discover.Snapshot) ([]byte, error){
			func(s *discover.Snapshot) ([]byte, error) {
				t, err := Autoconfig(s, nil)
				return appendOrNil(t, a), err
			},
			func(s *discover.Snapshot) ([]byte, error) {
				t, err := AutodiscoverPOX(s)
				return appendOrNil(t, a), err
			},
			PageForm,
		} {
			got, err1 := f(s)
			want, err2 := f(plain)
			if err1 != nil || err2 != nil || !bytes.Equal(got, want) {
				t.Errorf("a document differs with SOGo (%v, %v):\n%s\nwithout:\n%s", err1, err2, got, want)
			}
		}
	}

	// Without groupware: nothing offered, as before.
	if _, ok := MobileSync(plain); ok {
		t.Error("MobileSync offered on a host without ActiveSync")
	}
	if _, ok := AutodiscoverJSONActiveSync(plain); ok {
		t.Error("AutodiscoverJSONActiveSync offered on a host without ActiveSync")
	}
}

// TestMobileSyncSchemaCheckFails: the schema check refuses what MS-ASCMD
// §6.2 does not allow: an unknown element, Type after Url.
func TestMobileSyncSchemaCheckFails(t *testing.T) {
	eas, ok := MobileSync(sogoSnapshot(t))
	if !ok {
		t.Fatal("MobileSync not offered")
	}
	good := eas.Append(nil, Address{Local: "fred", Domain: "example.net"})
	if err := xmllintSchema(t, good); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{
		bytes.Replace(good, []byte("<Culture>"), []byte("<Language>x</Language><Culture>"), 1),
		bytes.Replace(bytes.Replace(good, []byte("<Type>MobileSync</Type>"), nil, 1), []byte("</Url>"), []byte("</Url><Type>MobileSync</Type>"), 1),
	} {
		if bytes.Equal(bad, good) {
			t.Fatal("the mutation changed nothing")
		}
		if xmllintSchema(t, bad) == nil {
			t.Errorf("xmllint --schema accepts:\n%s", bad)
		}
	}
}

// xmllintSchema validates an Autodiscover response with xmllint against
// MS-ASCMD's schemas (§6.4 AutodiscoverResponse.xsd importing §6.2
// AutodiscoverMobileSync.xsd, in testdata/ms-ascmd).
func xmllintSchema(t *testing.T, b []byte) error {
	t.Helper()
	path := testtool.Need(t, "xmllint") // Debian libxml2-utils
	cmd := exec.Command(path, "--noout", "--nonet", "--schema", "testdata/ms-ascmd/AutodiscoverResponse.xsd", "-")
	cmd.Stdin = bytes.NewReader(b)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("xmllint --schema (MS-ASCMD §6.2, §6.4): %v\n%s\n%s", err, out, b)
	}
	return nil
}

func appendOrNil(t *Template, a Address) []byte {
	if t == nil {
		return nil
	}
	return t.Append(nil, a)
}

// checkMobileSync decodes a mobilesync settings response and checks its
// elements and their order against MS-ASCMD §6.2's schema: Autodiscover
// (2006) / Response (mobilesync) / Culture, User (DisplayName?,
// EMailAddress), Action / Settings / Server (Type, Url, Name).
func checkMobileSync(t *testing.T, b []byte, a Address) {
	t.Helper()
	var doc easResponseDoc
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("mobilesync response does not decode: %v\n%s", err, b)
	}
	r := doc.Response
	if doc.XMLName.Space != NamespaceResponse || doc.XMLName.Local != "Autodiscover" ||
		r.XMLName.Space != NamespaceMobileSync || r.XMLName.Local != "Response" {
		t.Errorf("mobilesync response root %v / %v, want Autodiscover (2006) / Response (mobilesync)", doc.XMLName, r.XMLName)
	}
	if r.Culture != "en:us" || r.User.EMailAddress != a.String() || r.User.DisplayName != nil ||
		r.Action.Redirect != nil || r.Action.Error != nil || len(r.Action.Settings.Server) != 1 {
		t.Fatalf("mobilesync response for %s = %+v", a, r)
	}
	srv := r.Action.Settings.Server[0]
	if srv.Type != "MobileSync" || srv.Url != sogoEAS || srv.Name != sogoEAS || srv.ServerData != nil {
		t.Errorf("mobilesync Server = %+v, want MobileSync at %s", srv, sogoEAS)
	}
	// Every element, in document order, with its namespace.
	var got []string
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		if se, ok := tok.(xml.StartElement); ok {
			ns := "ms"
			if se.Name.Space == NamespaceResponse {
				ns = "2006"
			} else if se.Name.Space != NamespaceMobileSync {
				ns = se.Name.Space
			}
			got = append(got, ns+":"+se.Name.Local)
		}
	}
	want := "2006:Autodiscover ms:Response ms:Culture ms:User ms:EMailAddress ms:Action ms:Settings ms:Server ms:Type ms:Url ms:Name"
	if strings.Join(got, " ") != want {
		t.Errorf("mobilesync elements:\n%s\nwant:\n%s", strings.Join(got, " "), want)
	}
}

// checkGroupwareTable compares the settings page's groupware rows
// (cells joined by "|") with want; nil: the page has no such table.
func checkGroupwareTable(t *testing.T, b []byte, want []string) {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	tables := 0
	for _, tb := range nodes(doc, "tbody") {
		if attr(tb, "class") != "groupware" {
			continue
		}
		tables++
		for _, tr := range nodes(tb, "tr") {
			var cells []string
			for _, td := range nodes(tr, "td") {
				cells = append(cells, text(td))
			}
			got = append(got, strings.Join(cells, "|"))
		}
	}
	if want == nil {
		if tables != 0 || bytes.Contains(b, []byte("Calendars")) {
			t.Errorf("settings page without groupware has a groupware table: %q", got)
		}
		return
	}
	if tables != 1 || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("groupware rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
