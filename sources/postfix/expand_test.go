package postfix

import (
	"strings"
	"testing"
)

// The expectations below were checked with "postconf -x" of Postfix 3.7.
func TestExpand(t *testing.T) {
	const main = `a = x
n = 10
empty =
level = 3.6
selfref = $selfref
loop1 = $loop2
loop2 = ${loop1}
`
	tests := []struct {
		in, want string
		bad      bool
	}{
		{"$a", "x", false},
		{"${a}", "x", false},
		{"$(a)", "x", false},
		{"pre${a}post$(n)_", "prexpost10_", false},
		{"$a.b $a-c", "x.b x-c", false},
		{"$a_d|", "|", false}, // "a_d" is one (undefined) name
		{"$$ $${a}", "$ ${a}", false},
		{"${a?yes}", "yes", false},
		{"${nope?yes}", "", false},
		{"${a:no}", "", false},
		{"${nope:{n o}}", "n o", false},
		{"${empty?E}|${empty:E}", "|E", false},
		{"${a?{ yes }}", "yes", false},
		{"${a?$a$a}", "xx", false},
		{"${a?x:y}", "x:y", false},
		{"${b:x?y}", "x?y", false},
		{"${a?{one}:{two}}", "one", false},
		{"${b?{one}:{two}}", "two", false},
		{"${b?{one}:two}", "two", false},
		{"${b?{one} : two }", "two", false},
		{"$(a?(b))", "(b)", false},
		{"${a?{${n}}}", "10", false},
		{"${{$n} > {9} ? {gt} : {le}}", "gt", false},
		{"${{$n}>{9}?{gt}:{le}}", "gt", false},
		{"${{a} == {a} ? {eq}}", "eq", false},
		{"${{a} == {b} ? {eq}}", "", false},
		{"${{a} != {b} : {ne}}", "", false},
		{"${{a} == {b} ? {eq} : ne}", "ne", false},
		{"${{a}=={a}?eq:ne}", "eq:ne", false},
		{"${{3.10} <level {3.9} ? {lt} : {ge}}", "ge", false},
		{"${{3.10} < {3.9} ? {lt} : {ge}}", "lt", false},
		{"${{10} < {9} ? {lt} : {ge}}", "ge", false},
		{"${{2} == {02} ?{eq}:{ne}}", "eq", false},
		{"${{2} ==level {2.0} ?{eq}:{ne}}", "eq", false},
		{"${{$level} <level {2} ? {old} : {new}}", "new", false},
		{"${{$a}=={x}?{$n}:{bad}}", "10", false},
		// Errors postconf reports as "macro processing error".
		{"$", "$", true},
		{"$ x", "$ x", true},
		{"${a", "${a", true},
		{"$(a ${a?{}}", "", true},
		{"${a?{x}y}", "", true},
		{"${a?{x}:{y}:{z}}", "", true},
		{"${{a}?{x}}", "", true},
		{"${{a} =x {b} ?{x}}", "", true},
		{"${{2} ==number {02} ?{eq}:{ne}}", "", true},
		{"${{a} == {b}}", "", true},
		{"${ a }", "", true},
		{"$selfref", "", true},
		{"$loop1", "", true},
	}
	c := testConfig(t, main, "")
	for _, tt := range tests {
		got, err := c.Expand(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("Expand(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || collapseSpace(got) != tt.want {
			t.Errorf("Expand(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestExpandBlowup(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 40; i++ {
		b.WriteString("p" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + " = ")
		next := "p" + string(rune('a'+(i+1)%26)) + string(rune('a'+(i+1)/26))
		b.WriteString("$" + next + "$" + next + "\n")
	}
	b.WriteString("pob = xxxxxxxxxxxxxxxx\n") // the 41st name
	c := testConfig(t, b.String(), "")
	got, err := c.Expand("$paa")
	if err == nil || len(got) > 4*maxExpandBytes {
		t.Errorf("Expand(2^40 bytes) = %d bytes, %v, want an error and a bounded result", len(got), err)
	}
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		main string
		name string
		want string
	}{
		{"", "myhostname", "vm.localdomain"},
		{"", "mydomain", "localdomain"},
		{"", "myorigin", "vm.localdomain"},
		{"", "mydestination", "vm.localdomain, localhost.localdomain, localhost"},
		{"mydomain = foo.test", "myhostname", "vm.foo.test"},
		{"myhostname = vm", "mydomain", "localdomain"},
		{"myhostname = example.com", "mydomain", "com"},
		{"myhostname = Host.Example.ORG.", "mydomain", "Example.ORG."},
		{"myhostname = mail.example.org", "mydestination", "mail.example.org, localhost.example.org, localhost"},
		{"", "config_directory", "/etc/postfix"},
		{"", "smtpd_banner", "vm.localdomain ESMTP Postfix"},
		{"", "relay_domains", "vm.localdomain, localhost.localdomain, localhost"},
		{"compatibility_level = 2", "relay_domains", ""},
		{"compatibility_level = 3.6", "relay_domains", ""},
		{"", "inet_interfaces", "all"},
		{"", "smtpd_tls_security_level", ""},
		{"smtpd_tls_cert_file = /c.pem", "smtpd_tls_key_file", "/c.pem"},
		{"virtual_maps = hash:/v", "virtual_alias_domains", "hash:/v"},
		{"virtual_mailbox_maps = hash:/m", "virtual_mailbox_domains", "hash:/m"},
		{"", "smtpd_sasl_type", "cyrus"},
		{"", "smtpd_sasl_path", "smtpd"},
		{"", "syslog_name", "postfix"},
		{"multi_instance_name = postfix-out", "syslog_name", "postfix-out"},
		{"config_directory = /elsewhere\nx = $config_directory/y", "x", "/elsewhere/y"},
		{"x = $config_directory/y", "x", "/etc/postfix/y"},
	}
	for _, tt := range tests {
		c := testConfig(t, tt.main, "")
		if got, _ := c.Param(tt.name); got != tt.want {
			t.Errorf("main.cf %q: Param(%q) = %q, want %q", tt.main, tt.name, got, tt.want)
		}
	}
}

func TestParamErr(t *testing.T) {
	c := testConfig(t, "a = $b\nb = ${a}\nok = $mail_name\n", "")
	if _, _, err := c.ParamErr("a"); err == nil || err.Error() != `main.cf:1: expand a: unreasonable macro call nesting: "a"` {
		t.Errorf("ParamErr(a) error = %v", err)
	}
	if v, pos, err := c.ParamErr("ok"); v != "Postfix" || pos.Line != 3 || err != nil {
		t.Errorf("ParamErr(ok) = %q, %s, %v, want Postfix, main.cf:3, nil", v, pos, err)
	}
}
