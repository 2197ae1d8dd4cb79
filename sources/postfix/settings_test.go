package postfix

import (
	"strings"
	"testing"
)

func TestSettings(t *testing.T) {
	const master = `smtp inet n - y - - smtpd
127.0.0.2:smtp inet n - y - - postscreen
submission inet n - y - - smtpd -o smtpd_sasl_auth_enable=yes -o smtpd_tls_security_level=encrypt
465 inet n - y - - smtpd -o smtpd_tls_wrappermode=yes -o smtpd_sasl_auth_enable=yes
127.0.0.1:587 inet n - y - - smtpd -o smtpd_sasl_auth_enable=yes
[::1]:588 inet n - y - - smtpd -o smtpd_sasl_auth_enable=yes
588 inet n - y - - smtpd
589 inet n - y - - smtpd -o smtpd_sasl_auth_enable=$enable_it
590 inet n - y - - smtpd -o smtpd_sasl_auth_enable=yes -o smtpd_upstream_proxy_protocol=haproxy
591 inet n - y - - smtpd -o smtpd_sasl_auth_enable=yes -o smtpd_tls_security_level=none
592 inet n - y - - smtpd -o smtpd_sasl_auth_enable=yes -o smtpd_tls_security_level= -o smtpd_use_tls=YES
593 inet n - y - - smtpd -o smtpd_sasl_auth_enable=yes -o smtpd_tls_security_level= -o smtpd_enforce_tls=yes -o smtpd_use_tls=yes
594 inet n - y - - smtpd -o smtpd_sasl_auth_enable=yes -o smtpd_tls_security_level=
595 inet n - y - - smtpd -o smtpd_tls_wrappermode=$wrap
596 inet n - y - - spawn
localhost:597 inet n - y - - smtpd -o smtpd_sasl_auth_enable=yes
`
	const main = `smtpd_tls_security_level = may
smtpd_sasl_auth_enable = yes
enable_it = yes
wrap = yes
`
	tests := []struct {
		name     string
		tls      TLS
		tlsLine  int
		sasl     bool
		loopback bool
		proxy    string
		reason   string
	}{
		{"smtp", TLSOptional, 1, true, false, "", "port 25"},
		{"127.0.0.2:smtp", TLSOptional, 0, true, true, "", "command is postscreen"},
		{"submission", TLSRequired, 3, true, false, "", ""},
		{"465", TLSImplicit, 4, true, false, "", ""},
		{"127.0.0.1:587", TLSOptional, 1, true, true, "", "bound to loopback"},
		{"[::1]:588", TLSOptional, 1, true, true, "", "bound to loopback"},
		{"588", TLSOptional, 1, true, false, "", "SASL only inherited from main.cf"},
		{"589", TLSOptional, 1, true, false, "", ""},
		{"590", TLSOptional, 1, true, false, "haproxy", "behind proxy protocol"},
		{"591", TLSNone, 10, true, false, "", "no TLS"},
		{"592", TLSOptional, 11, true, false, "", ""},
		{"593", TLSRequired, 12, true, false, "", ""},
		{"594", TLSNone, 0, true, false, "", "no TLS"},
		{"595", TLSImplicit, 14, true, false, "", ""},
		{"596", TLSOptional, 1, true, false, "", "command is spawn"},
		{"localhost:597", TLSOptional, 1, true, true, "", "bound to loopback"},
	}
	c := testConfig(t, main, master)
	svcs := c.Services()
	if len(svcs) != len(tests) {
		t.Fatalf("Services() = %d services, want %d", len(svcs), len(tests))
	}
	for i, tt := range tests {
		s := svcs[i]
		st := c.Settings(s)
		if s.Name != tt.name || st.TLS != tt.tls || st.TLSPos.Line != tt.tlsLine || st.SASL != tt.sasl ||
			st.LoopbackOnly != tt.loopback || st.UpstreamProxy != tt.proxy || st.Reason != tt.reason ||
			st.ClientSubmission != (tt.reason == "") {
			t.Errorf("Settings(%s) = %+v, want TLS %v at line %d, SASL %v, loopback %v, proxy %q, reason %q",
				s.Name, st, tt.tls, tt.tlsLine, tt.sasl, tt.loopback, tt.proxy, tt.reason)
		}
	}
}

func TestSettingsLegacyAndInterfaces(t *testing.T) {
	const master = "submission inet n - y - - smtpd -o smtpd_sasl_auth_enable=yes\n"
	tests := []struct {
		main     string
		tls      TLS
		loopback bool
		reason   string
	}{
		{"smtpd_use_tls = yes", TLSOptional, false, ""},
		{"smtpd_use_tls = yes\nsmtpd_enforce_tls = yes", TLSRequired, false, ""},
		{"smtpd_enforce_tls = yes", TLSRequired, false, ""},
		{"smtpd_use_tls = yes\nsmtpd_tls_security_level = none", TLSNone, false, "no TLS"},
		{"smtpd_use_tls = true", TLSNone, false, "no TLS"}, // Postfix booleans are yes/no only
		{"", TLSNone, false, "no TLS"},
		{"smtpd_use_tls = yes\ninet_interfaces = loopback-only", TLSOptional, true, "bound to loopback"},
		{"smtpd_use_tls = yes\ninet_interfaces = 127.0.0.1, [::1]", TLSOptional, true, "bound to loopback"},
		{"smtpd_use_tls = yes\ninet_interfaces = localhost", TLSOptional, true, "bound to loopback"},
		{"smtpd_use_tls = yes\ninet_interfaces = 127.0.0.1 192.0.2.1", TLSOptional, false, ""},
		{"smtpd_use_tls = yes\nlo = 127.0.0.1\ninet_interfaces = $lo", TLSOptional, true, "bound to loopback"},
		{"smtpd_use_tls = yes\nsmtpd_tls_wrappermode = yes", TLSImplicit, false, ""},
	}
	for _, tt := range tests {
		c := testConfig(t, tt.main, master)
		st := c.Settings(c.Services()[0])
		if st.TLS != tt.tls || st.LoopbackOnly != tt.loopback || st.Reason != tt.reason {
			t.Errorf("main.cf %q: Settings = %+v, want TLS %v, loopback %v, reason %q", tt.main, st, tt.tls, tt.loopback, tt.reason)
		}
	}
}

func TestServiceParam(t *testing.T) {
	const main = `smtpd_tls_cert_file = /main.pem
restrictions = permit_sasl_authenticated, reject
x = [$myhostname]
`
	const master = `smtp inet n - y - - smtpd -o a=$myhostname -o myhostname=svc.example -o smtpd_tls_cert_file=/svc.pem -o b=$smtpd_tls_key_file -o c=$restrictions -o { d = $x and spaces }
`
	c := testConfig(t, main, master)
	s := c.Services()[0]
	tests := []struct{ name, want string }{
		{"a", "svc.example"},
		{"b", "/svc.pem"},
		{"c", "permit_sasl_authenticated, reject"},
		{"d", "[svc.example] and spaces"},
		{"smtpd_tls_key_file", "/svc.pem"},
		{"x", "[svc.example]"},
		{"restrictions", "permit_sasl_authenticated, reject"},
	}
	for _, tt := range tests {
		if got, _ := c.ServiceParam(s, tt.name); got != tt.want {
			t.Errorf("ServiceParam(smtp, %q) = %q, want %q", tt.name, got, tt.want)
		}
	}
	if got, _ := c.Param("smtpd_tls_key_file"); got != "/main.pem" {
		t.Errorf("Param(smtpd_tls_key_file) = %q, want /main.pem", got)
	}
	if _, pos := c.ServiceParam(s, "restrictions"); pos.String() != "main.cf:2" {
		t.Errorf("ServiceParam(restrictions) pos = %s, want main.cf:2", pos)
	}
	if _, pos := c.ServiceParam(s, "a"); pos.String() != "master.cf:1" {
		t.Errorf("ServiceParam(a) pos = %s, want master.cf:1", pos)
	}
}

func TestDisabled(t *testing.T) {
	const master = "smtp inet n - y - - smtpd\nsubmission inet n - y - - smtpd\npickup unix n - y 60 1 pickup\n"
	tests := []struct {
		main string
		want string // disabled services
	}{
		{"", ""},
		{"master_service_disable = inet", "smtp submission"},
		{"master_service_disable = !submission/inet, inet", "smtp"},
		{"master_service_disable = submission/inet unix", "submission pickup"},
	}
	for _, tt := range tests {
		c := testConfig(t, tt.main, master)
		var got []string
		for _, s := range c.AllServices() {
			if c.Disabled(s) {
				got = append(got, s.Name)
			}
		}
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("main.cf %q: disabled = %q, want %q", tt.main, g, tt.want)
		}
	}
}
