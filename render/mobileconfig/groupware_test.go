package mobileconfig

import (
	"github.com/mailautoconf/mailautoconf/internal/groupwaretest"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/render"
)

// sogoSnapshot is the handmade corpus set with iRedMail's nginx and SOGo
// laid over it, SOGo answering 401 on its DAV and ActiveSync paths (its
// answer without credentials): CalDAV, CardDAV and ActiveSync are proven.
func sogoSnapshot(t testing.TB) *discover.Snapshot {
	t.Helper()
	return groupwaretest.Corpus(t, "../../testdata/corpus/handmade-static-domains", nil)
}

// TestProfileGroupware: a host with SOGo gets a CalDAV and a CardDAV
// payload besides Mail, for the address's user name and principal; the
// Mail payload is the one the host without SOGo gets.
func TestProfileGroupware(t *testing.T) {
	s := sogoSnapshot(t)
	_, plain := corpusSnapshot(t, "handmade-static-domains")
	a := render.Address{Local: "fred", Domain: "example.net", LoginDomain: "example.net"}
	got, err := Profile(s, a, "Fred Example")
	if err != nil {
		t.Fatal(err)
	}
	// The golden file is render's (this task adds no mobileconfig ones).
	golden := filepath.Join("..", "..", "testdata", "golden", "render", "sogo.mobileconfig")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want, err := os.ReadFile(golden); err != nil || string(want) != string(got) {
		t.Errorf("Profile(sogo) differs from %s (%v):\n%s", golden, err, got)
	}
	top := decodeProfile(t, got)
	if py := plistlib(t, got); !reflect.DeepEqual(py, top) {
		t.Errorf("plistlib reads %v,\nencoding/xml reads %v", py, top)
	}
	content := top["PayloadContent"].([]any)
	if len(content) != 3 {
		t.Fatalf("PayloadContent has %d payloads, want Mail, CalDAV, CardDAV", len(content))
	}
	plainTop := decodeProfile(t, must(Profile(plain, a, "Fred Example")))
	if !reflect.DeepEqual(content[0], plainTop["PayloadContent"].([]any)[0]) {
		t.Errorf("Mail payload differs with SOGo:\n%v\nwithout:\n%v", content[0], plainTop["PayloadContent"])
	}
	for i, k := range []string{"CalDAV", "CardDAV"} {
		p := content[i+1].(map[string]any)
		typ := map[string]string{"CalDAV": "com.apple.caldav.account", "CardDAV": "com.apple.carddav.account"}[k]
		want := map[string]any{
			k + "HostName":     "mail.example.net",
			k + "Port":         443,
			k + "UseSSL":       true,
			k + "Username":     "fred@example.net",
			k + "PrincipalURL": "https://mail.example.net/SOGo/dav/fred@example.net/",
			"PayloadType":      typ,
			"PayloadVersion":   1,
		}
		for key, v := range want {
			if p[key] != v {
				t.Errorf("%s payload %s = %v, want %v", k, key, p[key], v)
			}
		}
		if _, ok := p[k+"Password"]; ok {
			t.Errorf("%s payload has a password", k)
		}
		if p[k+"AccountDescription"] == "" || p["PayloadUUID"] == "" || p["PayloadIdentifier"] == "" {
			t.Errorf("%s payload = %v", k, p)
		}
	}

	// The domain's profile: no user name and no principal (the device
	// asks for the one and finds the other).
	dom := decodeProfile(t, must(Profile(s, render.Address{Domain: "example.net"}, "")))
	for i, k := range []string{"CalDAV", "CardDAV"} {
		p := dom["PayloadContent"].([]any)[i+1].(map[string]any)
		_, user := p[k+"Username"]
		_, principal := p[k+"PrincipalURL"]
		if user || principal || p[k+"HostName"] != "mail.example.net" {
			t.Errorf("domain profile's %s payload = %v", k, p)
		}
	}

	// A change of the groupware changes the signed profiles' cache key;
	// no groupware leaves it as it was.
	in, err := snapshotInputs(s)
	if err != nil {
		t.Fatal(err)
	}
	pin, err := snapshotInputs(plain)
	if err != nil {
		t.Fatal(err)
	}
	old, err := inputsOf(plain.Hostname(), plain.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	if pin.key() != old.key() || in.key() == pin.key() {
		t.Error("the profile key does not follow the groupware")
	}
	moved := in
	moved.dav = append([]discover.Service(nil), in.dav...)
	moved.dav[0].Port = 8443
	if moved.key() == in.key() {
		t.Error("the profile key ignores the CalDAV port")
	}
}

func decodeProfile(t *testing.T, b []byte) map[string]any {
	t.Helper()
	v, err := decodePlist(b)
	if err != nil {
		t.Fatalf("decode profile: %v\n%s", err, b)
	}
	return v.(map[string]any)
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
