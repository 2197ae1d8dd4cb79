package mobileconfig

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/render"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

var update = flag.Bool("update", false, "rewrite ../../testdata/golden/mobileconfig files with current output")

// corpusSnapshot builds the Snapshot of a corpus set (no database).
func corpusSnapshot(t testing.TB, set string) (hostfs.Root, *discover.Snapshot) {
	t.Helper()
	return buildSnapshot(t, filepath.Join("..", "..", "testdata", "corpus", set))
}

func buildSnapshot(t testing.TB, dir string) (hostfs.Root, *discover.Snapshot) {
	t.Helper()
	root, err := hostfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := discover.Build(context.Background(), discover.Options{Root: root})
	if err != nil {
		t.Fatalf("Build(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return root, s
}

// mailPayload decodes a profile and returns its top-level dict and its one
// Mail payload.
func mailPayload(t *testing.T, data []byte) (top, mail map[string]any) {
	t.Helper()
	v, err := decodePlist(data)
	if err != nil {
		t.Fatalf("decode profile: %v\n%s", err, data)
	}
	top = v.(map[string]any)
	content, _ := top["PayloadContent"].([]any)
	if len(content) != 1 {
		t.Fatalf("PayloadContent = %v, want one payload", top["PayloadContent"])
	}
	return top, content[0].(map[string]any)
}

func TestProfileGolden(t *testing.T) {
	a := render.Address{Local: "fred", Domain: "example.net", LoginDomain: "example.net"}
	for _, set := range []string{"handmade-static-domains", "debian12-packages-default", "postfixadmin-mysql-debian12", "iredmail-mysql-debian12"} {
		t.Run(set, func(t *testing.T) {
			_, s := corpusSnapshot(t, set)
			got, err := Profile(s, a, "Fred Example")
			name := set + ".mobileconfig"
			if err != nil {
				// A host without a TLS submission server gets no
				// profile; the golden file holds the reason.
				if !errors.Is(err, ErrNoServer) {
					t.Fatalf("Profile: %v", err)
				}
				got, name = []byte(err.Error()+"\n"), set+".error"
			}
			golden := filepath.Join("..", "..", "testdata", "golden", "mobileconfig", name)
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("Profile(%s) differs from %s:\n%s", set, golden, got)
			}
		})
	}
}

func TestProfileHandmade(t *testing.T) {
	_, s := corpusSnapshot(t, "handmade-static-domains")
	a := render.Address{Local: "fred", Domain: "example.net"}
	data, err := Profile(s, a, "")
	if err != nil {
		t.Fatal(err)
	}
	top, mail := mailPayload(t, data)
	if py := plistlib(t, data); !reflect.DeepEqual(py, top) {
		t.Errorf("plistlib reads %v,\nencoding/xml reads %v", py, top)
	}
	wantTop := map[string]any{
		"PayloadType": "Configuration", "PayloadVersion": 1, "PayloadRemovalDisallowed": false,
		"PayloadOrganization": "example.net",
	}
	for k, v := range wantTop {
		if top[k] != v {
			t.Errorf("top-level %s = %v, want %v", k, top[k], v)
		}
	}
	// The host offers IMAP on 143 (STARTTLS) only and POP3 on 995: the
	// profile still describes IMAP; submission is 587 (STARTTLS) only.
	wantMail := map[string]any{
		"PayloadType":                            "com.apple.mail.managed",
		"PayloadVersion":                         1,
		"EmailAccountType":                       "EmailTypeIMAP",
		"EmailAddress":                           "fred@example.net",
		"IncomingMailServerHostName":             "mail.example.net",
		"IncomingMailServerPortNumber":           143,
		"IncomingMailServerUseSSL":               true,
		"IncomingMailServerUsername":             "fred@example.net",
		"IncomingMailServerAuthentication":       "EmailAuthPassword",
		"OutgoingMailServerHostName":             "mail.example.net",
		"OutgoingMailServerPortNumber":           587,
		"OutgoingMailServerUseSSL":               true,
		"OutgoingMailServerUsername":             "fred@example.net",
		"OutgoingMailServerAuthentication":       "EmailAuthPassword",
		"OutgoingPasswordSameAsIncomingPassword": true,
	}
	for k, v := range wantMail {
		if mail[k] != v {
			t.Errorf("mail payload %s = %v, want %v", k, mail[k], v)
		}
	}
	for k := range mail {
		if strings.Contains(k, "Password") && k != "OutgoingPasswordSameAsIncomingPassword" {
			t.Errorf("mail payload has %s: no password may be embedded", k)
		}
	}
	if _, ok := mail["EmailAccountName"]; ok {
		t.Errorf("EmailAccountName = %v without a name, want none", mail["EmailAccountName"])
	}
}

func TestProfileServers(t *testing.T) {
	imap993 := discover.Endpoint{Protocol: "imap", Host: "mail.example.org", Port: 993, Security: discover.SecurityTLS, Auth: []string{"PLAIN", "LOGIN"}, Username: discover.UsernameAddress}
	imap143 := discover.Endpoint{Protocol: "imap", Host: "mail.example.org", Port: 143, Security: discover.SecuritySTARTTLS, Auth: []string{"PLAIN"}, Username: discover.UsernameAddress}
	imapPlain := discover.Endpoint{Protocol: "imap", Host: "mail.example.org", Port: 143, Security: discover.SecurityNone, Auth: []string{"PLAIN"}, Username: discover.UsernameAddress}
	pop995 := discover.Endpoint{Protocol: "pop3", Host: "pop.example.org", Port: 995, Security: discover.SecurityTLS, Auth: []string{"PLAIN"}, Username: discover.UsernameLocalPart}
	smtp465 := discover.Endpoint{Protocol: "smtp", Host: "smtp.example.org", Port: 465, Security: discover.SecurityTLS, Auth: []string{"PLAIN", "LOGIN"}, Username: discover.UsernameAddress}
	smtp587 := discover.Endpoint{Protocol: "smtp", Host: "smtp.example.org", Port: 587, Security: discover.SecuritySTARTTLS, Auth: []string{"PLAIN", "LOGIN"}, Username: discover.UsernameAddress}
	cram := imap993
	cram.Auth = []string{"CRAM-MD5"}
	cramAndPlain := smtp465
	cramAndPlain.Auth = []string{"CRAM-MD5", "PLAIN"}
	local := smtp587
	local.Username = discover.UsernameLocalPart

	a := render.Address{Local: "fred", Domain: "alias.example.org", LoginDomain: "example.org"}
	tests := []struct {
		name string
		eps  []discover.Endpoint
		// type, incoming port, incoming user, incoming auth, outgoing port, outgoing user, outgoing auth
		want []any
		err  string
	}{
		{"implicit TLS preferred", []discover.Endpoint{imap993, imap143, pop995, smtp465, smtp587},
			[]any{"EmailTypeIMAP", 993, "fred@example.org", "EmailAuthPassword", 465, "fred@example.org", "EmailAuthPassword"}, ""},
		{"STARTTLS only", []discover.Endpoint{imap143, smtp587},
			[]any{"EmailTypeIMAP", 143, "fred@example.org", "EmailAuthPassword", 587, "fred@example.org", "EmailAuthPassword"}, ""},
		{"IMAP over STARTTLS before POP3 over TLS", []discover.Endpoint{imap143, pop995, smtp587},
			[]any{"EmailTypeIMAP", 143, "fred@example.org", "EmailAuthPassword", 587, "fred@example.org", "EmailAuthPassword"}, ""},
		{"POP3 when no IMAP", []discover.Endpoint{pop995, local},
			[]any{"EmailTypePOP", 995, "fred", "EmailAuthPassword", 587, "fred", "EmailAuthPassword"}, ""},
		{"plain IMAP is never described", []discover.Endpoint{imapPlain, pop995, smtp465},
			[]any{"EmailTypePOP", 995, "fred", "EmailAuthPassword", 465, "fred@example.org", "EmailAuthPassword"}, ""},
		{"CRAM-MD5 only", []discover.Endpoint{cram, cramAndPlain},
			[]any{"EmailTypeIMAP", 993, "fred@example.org", "EmailAuthCRAMMD5", 465, "fred@example.org", "EmailAuthPassword"}, ""},
		{"no incoming", []discover.Endpoint{imapPlain, smtp465}, nil, "no IMAP or POP3 server with TLS"},
		{"no submission", []discover.Endpoint{imap993}, nil, "no SMTP submission server with TLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := profile("mail.example.org", tt.eps, a, "")
			if tt.err != "" {
				if !errors.Is(err, ErrNoServer) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("profile() error = %v, want ErrNoServer with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, m := mailPayload(t, data)
			got := []any{m["EmailAccountType"],
				m["IncomingMailServerPortNumber"], m["IncomingMailServerUsername"], m["IncomingMailServerAuthentication"],
				m["OutgoingMailServerPortNumber"], m["OutgoingMailServerUsername"], m["OutgoingMailServerAuthentication"]}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("profile() = %v, want %v", got, tt.want)
			}
			if m["IncomingMailServerUseSSL"] != true || m["OutgoingMailServerUseSSL"] != true {
				t.Errorf("UseSSL = %v, %v, want true, true", m["IncomingMailServerUseSSL"], m["OutgoingMailServerUseSSL"])
			}
			if m["EmailAddress"] != "fred@alias.example.org" {
				t.Errorf("EmailAddress = %v, want the address as given", m["EmailAddress"])
			}
		})
	}
}

func TestProfileEscapes(t *testing.T) {
	eps := []discover.Endpoint{
		{Protocol: "imap", Host: "mail.example.org", Port: 993, Security: discover.SecurityTLS, Username: discover.UsernameAddress},
		{Protocol: "smtp", Host: "mail.example.org", Port: 465, Security: discover.SecurityTLS, Username: discover.UsernameLocalPart},
	}
	a := render.Address{Local: `"a<b>&'c\" ]]> <!--"`, Domain: "example.org"}
	name := "Fred </string><key>IncomingPassword</key><string>x & \"Co\""
	data, err := profile("mail.example.org", eps, a, name)
	if err != nil {
		t.Fatal(err)
	}
	top, m := mailPayload(t, data)
	for k, want := range map[string]string{
		"EmailAddress":               a.String(),
		"IncomingMailServerUsername": a.String(),
		"OutgoingMailServerUsername": a.Local,
		"EmailAccountName":           name,
		"EmailAccountDescription":    a.String(),
	} {
		if m[k] != want {
			t.Errorf("%s = %q, want %q", k, m[k], want)
		}
	}
	if _, ok := m["IncomingPassword"]; ok {
		t.Error("the name injected an IncomingPassword key")
	}
	if py := plistlib(t, data); !reflect.DeepEqual(py, top) {
		t.Errorf("plistlib reads %v,\nencoding/xml reads %v", py, top)
	}

	// Characters XML 1.0 cannot carry become U+FFFD instead of breaking
	// the document.
	data, err = profile("mail.example.org", eps, a, "x\x01\x1by")
	if err != nil {
		t.Fatal(err)
	}
	if _, m := mailPayload(t, data); m["EmailAccountName"] != "x\uFFFD\uFFFDy" {
		t.Errorf("EmailAccountName = %q, want control characters replaced", m["EmailAccountName"])
	}
}

var uuidPattern = regexp.MustCompile(`^[0-9A-F]{8}-[0-9A-F]{4}-8[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$`)

func TestProfileUUIDsStable(t *testing.T) {
	eps := []discover.Endpoint{
		{Protocol: "imap", Host: "mail.example.org", Port: 993, Security: discover.SecurityTLS},
		{Protocol: "smtp", Host: "mail.example.org", Port: 465, Security: discover.SecurityTLS},
	}
	ids := func(host string, a render.Address, name string) [4]string {
		t.Helper()
		data, err := profile(host, eps, a, name)
		if err != nil {
			t.Fatal(err)
		}
		top, m := mailPayload(t, data)
		for _, u := range []any{top["PayloadUUID"], m["PayloadUUID"]} {
			if s, _ := u.(string); !uuidPattern.MatchString(s) {
				t.Errorf("PayloadUUID %v is not an upper-case version 8 UUID", u)
			}
		}
		return [4]string{top["PayloadUUID"].(string), m["PayloadUUID"].(string), top["PayloadIdentifier"].(string), m["PayloadIdentifier"].(string)}
	}
	fred := render.Address{Local: "fred", Domain: "example.org"}
	base := ids("mail.example.org", fred, "")
	if base[0] == base[1] {
		t.Errorf("configuration and mail payload share UUID %s", base[0])
	}
	if !strings.HasPrefix(base[2], "org.example.mail.mailautoconf.") || base[3] != base[2]+".mail" {
		t.Errorf("PayloadIdentifiers = %s, %s, want org.example.mail.mailautoconf.<id> and <that>.mail", base[2], base[3])
	}
	same := []struct {
		what string
		host string
		a    render.Address
		name string
	}{
		{"same request", "mail.example.org", fred, ""},
		{"other display name", "mail.example.org", fred, "Fred"},
		{"other login domain", "MAIL.example.org.", render.Address{Local: "fred", Domain: "example.org", LoginDomain: "example.com"}, ""},
	}
	for _, tt := range same {
		if got := ids(tt.host, tt.a, tt.name); got != base {
			t.Errorf("%s: ids = %v, want %v", tt.what, got, base)
		}
	}
	other := []struct {
		what string
		host string
		a    render.Address
	}{
		{"other local part", "mail.example.org", render.Address{Local: "Fred", Domain: "example.org"}},
		{"other domain", "mail.example.org", render.Address{Local: "fred", Domain: "example.com"}},
		{"other host", "mx.example.org", fred},
	}
	for _, tt := range other {
		got := ids(tt.host, tt.a, "")
		for i := range got {
			if got[i] == base[i] {
				t.Errorf("%s: id %d = %s, the same as for fred@example.org", tt.what, i, got[i])
			}
		}
	}
}
