package postfix

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// TestFixtures checks the effective settings of this package's hand-written
// sets; TestPostconfDifferential checks their parameters against postconf.
func TestFixtures(t *testing.T) {
	old := hostname
	hostname = func() (string, error) { return "vm", nil }
	defer func() { hostname = old }()
	tests := []struct {
		set, conf string
		want      []string // "name host port command tls sasl loopback proxy reason"
	}{
		{"braces", "/etc/postfix", []string{
			"smtp - 25 smtpd starttls-optional false false - port 25",
			"submission - 587 smtpd starttls-required true false - ok",
			"[::1]:587 ::1 587 smtpd starttls-optional true true - bound to loopback",
			"127.0.0.1:smtps 127.0.0.1 465 smtpd implicit true true - bound to loopback",
			"mail.example.org:submission mail.example.org 587 smtpd starttls-optional false false - SASL off",
			"2525 - 2525 smtpd starttls-optional true false - ok",
		}},
		{"loopback-legacy", "/etc/postfix", []string{
			"smtp - 25 smtpd starttls-optional true true - port 25",
			"submission - 587 smtpd starttls-required true true - bound to loopback",
			"465 - 465 smtpd implicit true true - bound to loopback",
			"10.0.0.1:587 10.0.0.1 587 smtpd none true false - no TLS",
		}},
		{"mailcow-like", "/opt/postfix/conf", []string{
			"smtp - 25 postscreen starttls-optional true false haproxy command is postscreen",
			"10465 - 10465 smtpd implicit true false haproxy behind proxy protocol",
			"smtps - 465 smtpd implicit true false - ok",
			"10587 - 10587 smtpd starttls-required true false haproxy behind proxy protocol",
			"submission - 587 smtpd starttls-required true false - ok",
			"588 - 588 smtpd starttls-optional true false - SASL only inherited from main.cf",
			"mailcowsub - 2587 smtpd starttls-optional true false - ok",
			"[::]:10025 :: 10025 smtpd starttls-optional false false - SASL off",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.set, func(t *testing.T) {
			root, err := hostfs.New("testdata/" + tt.set)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Load(root, tt.conf)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			var got []string
			for _, s := range c.Services() {
				st := c.Settings(s)
				host, proxy, reason := s.Host, st.UpstreamProxy, st.Reason
				if host == "" {
					host = "-"
				}
				if proxy == "" {
					proxy = "-"
				}
				if st.ClientSubmission {
					reason = "ok"
				}
				got = append(got, fmt.Sprintf("%s %s %d %s %s %v %v %s %s", s.Name, host, s.Port, s.Command, st.TLS, st.SASL, st.LoopbackOnly, proxy, reason))
			}
			if g, w := strings.Join(got, "\n"), strings.Join(tt.want, "\n"); g != w {
				t.Errorf("services of %s:\n%s\nwant\n%s", tt.set, g, w)
			}
		})
	}
}
