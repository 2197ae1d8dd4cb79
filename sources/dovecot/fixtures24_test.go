package dovecot

import (
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// lis abbreviates a listener for the tables below:
// "service/name port ssl haproxy enabled loopback tls".
var zeroPos hostfs.Pos

func lis(l Listener) string {
	return fmt.Sprintf("%s/%s %d ssl=%v haproxy=%v enabled=%v loopback=%v %s %q",
		l.Service, l.Name, l.Port, l.SSL, l.HAProxy, l.ProtocolEnabled, l.LoopbackOnly, l.TLS, l.Address)
}

// TestFixtures24 checks the 2.4 fixtures against expectations derived from
// the Dovecot 2.4 documentation and confirmed by Debian 13's doveconf 2.4.1
// (TestDoveconf24Differential, which needs it fetched; this test does not).
func TestFixtures24(t *testing.T) {
	tests := []struct {
		set       string
		effective Effective
		listeners []string
		settings  map[string]string
	}{
		{
			set: "dovecot24-debian13-default",
			effective: Effective{
				Protocols: []string{"imap", "pop3"}, Listen: []string{"*", "::"}, SSL: "yes",
				AuthMechanisms: []string{"plain"}, AuthUsernameFormat: "%{user | lower}",
				CertFile: "/etc/dovecot/private/dovecot.pem", KeyFile: "/etc/dovecot/private/dovecot.key",
				SubmissionRelayPort: 25,
			},
			listeners: []string{
				`imap-login/imap 143 ssl=false haproxy=false enabled=true loopback=false starttls-optional ["*" "::"]`,
				`imap-login/imaps 993 ssl=true haproxy=false enabled=true loopback=false implicit ["*" "::"]`,
				`managesieve-login/sieve 4190 ssl=false haproxy=false enabled=false loopback=false starttls-optional ["*" "::"]`,
				`pop3-login/pop3 110 ssl=false haproxy=false enabled=true loopback=false starttls-optional ["*" "::"]`,
				`pop3-login/pop3s 995 ssl=true haproxy=false enabled=true loopback=false implicit ["*" "::"]`,
				`submission-login/submission 587 ssl=false haproxy=false enabled=false loopback=false starttls-optional ["*" "::"]`,
				`submission-login/submissions 465 ssl=true haproxy=false enabled=false loopback=false implicit ["*" "::"]`,
			},
			settings: map[string]string{"auth_allow_cleartext": "no", "dovecot_storage_version": "2.4.0"},
		},
		{
			set: "dovecot24-mailhost",
			effective: Effective{
				Protocols: []string{"imap", "lmtp", "sieve", "submission"}, Listen: []string{"*"}, SSL: "required",
				AuthMechanisms: []string{"plain", "login"}, AuthUsernameFormat: "%{user | lower}",
				CertFile: "/etc/letsencrypt/live/mail.example.com/fullchain.pem", KeyFile: "/etc/letsencrypt/live/mail.example.com/privkey.pem",
				LocalNameCerts: []NamedCert{{Names: []string{"imap.example.net"},
					CertFile: "/etc/letsencrypt/live/imap.example.net/fullchain.pem", KeyFile: "/etc/letsencrypt/live/imap.example.net/privkey.pem"}},
				SubmissionRelayHost: "127.0.0.1", SubmissionRelayPort: 10025,
				Filters: []Filter{
					{Kind: "local_name", Arg: "imap.example.net", Settings: map[string]string{
						"ssl_server_cert_file": "/etc/letsencrypt/live/imap.example.net/fullchain.pem",
						"ssl_server_key_file":  "/etc/letsencrypt/live/imap.example.net/privkey.pem"}},
					{Kind: "remote", Arg: "192.0.2.0/24", Settings: map[string]string{"auth_allow_cleartext": "yes"}},
				},
			},
			listeners: []string{
				`imap-login/imap 0 ssl=false haproxy=false enabled=true loopback=false starttls-required ["*"]`,
				`imap-login/imaps 993 ssl=true haproxy=false enabled=true loopback=false implicit ["*"]`,
				`managesieve-login/sieve 4190 ssl=false haproxy=false enabled=true loopback=true starttls-required ["127.0.0.1" "::1"]`,
				`pop3-login/pop3 110 ssl=false haproxy=false enabled=false loopback=false starttls-required ["*"]`,
				`pop3-login/pop3s 995 ssl=true haproxy=false enabled=false loopback=false implicit ["*"]`,
				`submission-login/submission 10587 ssl=false haproxy=true enabled=true loopback=false starttls-required ["*"]`,
				`submission-login/submissions 465 ssl=true haproxy=false enabled=true loopback=false implicit ["*"]`,
			},
			settings: map[string]string{
				"login_log_format_elements": "user=<%{user}> method=%{mechanism}",
				"submission_relay_trusted":  "yes",
			},
		},
		{
			set: "dovecot24-tricky",
			effective: Effective{
				Protocols: []string{"imap", "submission", "pop3"}, Listen: []string{"192.0.2.10", "[2001:db8::10]"}, SSL: "required",
				AuthMechanisms: []string{"plain", "login"}, AuthUsernameFormat: "%{user | username | lower}",
				CertFile: "/etc/ssl/mail/default.crt", KeyFile: "/etc/ssl/mail/default.key",
				LocalNameCerts: []NamedCert{
					{Names: []string{"mail.example.org"}, CertFile: "/etc/ssl/mail/org.crt", KeyFile: "/etc/ssl/mail/org.key"},
					{Names: []string{"imap.example.net"}, CertFile: "/etc/ssl/mail/net.crt", KeyFile: "/etc/ssl/mail/net.key"},
				},
				SubmissionRelayPort: 25,
				Filters: []Filter{
					{Kind: "local_name", Arg: "mail.example.org", Settings: map[string]string{
						"ssl_server_cert_file": "/etc/ssl/mail/org.crt", "ssl_server_key_file": "/etc/ssl/mail/org.key"}},
					{Kind: "local_name", Arg: "imap.example.net", Settings: map[string]string{
						"ssl_server_cert_file": "/etc/ssl/mail/net.crt", "ssl_server_key_file": "/etc/ssl/mail/net.key"}},
					{Kind: "protocol", Arg: "imap", Settings: map[string]string{"auth_mechanisms": "plain"}},
					{Kind: "protocol", Arg: "submission", Settings: map[string]string{"auth_allow_cleartext": "yes", "ssl": "yes"}},
				},
			},
			listeners: []string{
				`imap-login/imap 143 ssl=false haproxy=false enabled=true loopback=false starttls-required ["192.0.2.10" "[2001:db8::10]"]`,
				`imap-login/imap_internal 1143 ssl=false haproxy=false enabled=true loopback=false starttls-required ["10.0.0.1"]`,
				`imap-login/imaps 10993 ssl=true haproxy=true enabled=true loopback=false implicit ["192.0.2.10" "[2001:db8::10]"]`,
				`managesieve-login/sieve 4190 ssl=false haproxy=false enabled=false loopback=false starttls-required ["192.0.2.10" "[2001:db8::10]"]`,
				`pop3-login/pop3 0 ssl=false haproxy=false enabled=true loopback=true starttls-required ["127.0.0.1"]`,
				`pop3-login/pop3s 995 ssl=true haproxy=false enabled=true loopback=true implicit ["127.0.0.1"]`,
				`submission-login/submission 587 ssl=false haproxy=false enabled=true loopback=false starttls-optional ["192.0.2.10" "[2001:db8::10]"]`,
				`submission-login/submissions 465 ssl=false haproxy=false enabled=true loopback=false starttls-optional ["192.0.2.10" "[2001:db8::10]"]`,
			},
			settings: map[string]string{"@tls": "strict", "ssl": "required"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.set, func(t *testing.T) {
			c := loadSet(t, filepath.Join("testdata", tt.set))
			if v := c.Version(); v != "2.4" {
				t.Errorf("Version() = %q, want 2.4", v)
			}
			got := c.Effective()
			// Positions are checked elsewhere; compare values only.
			got.ProtocolsPos, got.SSLPos, got.PlaintextPos, got.AuthMechanismsPos = zeroPos, zeroPos, zeroPos, zeroPos
			got.AuthUsernameFormatPos, got.CertPos = zeroPos, zeroPos
			for i := range got.LocalNameCerts {
				got.LocalNameCerts[i].Pos = zeroPos
			}
			for i := range got.Filters {
				got.Filters[i].Pos = zeroPos
			}
			if !reflect.DeepEqual(got, tt.effective) {
				t.Errorf("Effective() =\n%+v\nwant\n%+v", got, tt.effective)
			}
			ls := c.Listeners()
			if len(ls) != len(tt.listeners) {
				t.Errorf("Listeners() has %d, want %d", len(ls), len(tt.listeners))
			}
			for i := 0; i < len(ls) && i < len(tt.listeners); i++ {
				if s := lis(ls[i]); s != tt.listeners[i] {
					t.Errorf("Listeners()[%d] = %s, want %s", i, s, tt.listeners[i])
				}
			}
			for k, want := range tt.settings {
				if got, _ := c.Setting(k); got != want {
					t.Errorf("Setting(%q) = %q, want %q", k, got, want)
				}
			}
		})
	}
}
