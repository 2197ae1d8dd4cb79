package postfix

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestParseMasterCF(t *testing.T) {
	const in = `# service type private unpriv chroot wakeup maxproc command
smtp      inet  n       -       y       -       -       smtpd
#smtps     inet  n       -       y       -       -       smtpd
#  -o smtpd_tls_wrappermode=yes
submission inet n       -       y       -       -       smtpd
# a comment inside the -o list
  -o syslog_name=postfix/submission
  -o { smtpd_client_restrictions = $a b  c }
  -o smtpd_tls_wrappermode=yes
  { -o } {x=1}
  -v { arg with space } -o w=$myhostname
  -osmtpd_sasl_auth_enable=yes
[::1]:587 inet n - y - - smtpd -o smtpd_sasl_auth_enable=yes
127.0.0.1:smtps inet n - y - - smtpd
*:2525 inet n - y - - smtpd
mail.example.org:submission inet n - y - - smtpd
::1:smtp inet n - y - - smtpd
pickup    unix  n       -       y       60      1       pickup
tlsmgr    unix  -       -       y       1000?   1       tlsmgr
10025 inet n - n - - smtpd -o old=1
10025 inet n - n - - smtpd -o new=1
`
	got, err := ParseMasterCF("master.cf", strings.NewReader(in))
	if err != nil {
		t.Fatalf("ParseMasterCF: %v", err)
	}
	type svc struct {
		name, typ, host string
		port            int
		command         string
		args            []string
		overrides       string
		line            int
	}
	want := []svc{
		{"smtp", "inet", "", 25, "smtpd", nil, "", 2},
		{"submission", "inet", "", 587, "smtpd", []string{"-v", "arg with space"},
			"syslog_name=postfix/submission@7 smtpd_client_restrictions=$a b  c@8 smtpd_tls_wrappermode=yes@9 x=1@10 w=$myhostname@11 smtpd_sasl_auth_enable=yes@12", 5},
		{"[::1]:587", "inet", "::1", 587, "smtpd", nil, "smtpd_sasl_auth_enable=yes@13", 13},
		{"127.0.0.1:smtps", "inet", "127.0.0.1", 465, "smtpd", nil, "", 14},
		{"*:2525", "inet", "", 2525, "smtpd", nil, "", 15},
		{"mail.example.org:submission", "inet", "mail.example.org", 587, "smtpd", nil, "", 16},
		{"::1:smtp", "inet", "::1", 25, "smtpd", nil, "", 17},
		{"pickup", "unix", "", 0, "pickup", nil, "", 18},
		{"tlsmgr", "unix", "", 0, "tlsmgr", nil, "", 19},
		{"10025", "inet", "", 10025, "smtpd", nil, "new=1@21", 21},
	}
	var gotSvc []svc
	for _, s := range got {
		var ov []string
		for _, o := range s.Overrides {
			ov = append(ov, o.Name+"="+o.Value+"@"+strconv.Itoa(o.Pos.Line))
		}
		gotSvc = append(gotSvc, svc{s.Name, s.Type, s.Host, s.Port, s.Command, s.Args, strings.Join(ov, " "), s.Pos.Line})
	}
	if len(gotSvc) != len(want) {
		t.Fatalf("ParseMasterCF: got %d services, want %d:\n%+v", len(gotSvc), len(want), gotSvc)
	}
	for i := range want {
		if !reflect.DeepEqual(gotSvc[i], want[i]) {
			t.Errorf("service %d = %+v, want %+v", i, gotSvc[i], want[i])
		}
	}
}

func TestParseMasterCFErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"too few fields", "smtp inet n - y - -\n", `master.cf:1: expected 8 fields (service type private unpriv chroot wakeup maxproc command), got 7: "smtp inet n - y - -"`},
		{"unknown port name", "ok inet n - y - - smtpd\n", `master.cf:1: service "ok": unknown port name "ok" (not in /etc/services)`},
		{"port out of range", "70000 inet n - y - - smtpd\n", `master.cf:1: service "70000": bad port "70000"`},
		{"port zero", "0 inet n - y - - smtpd\n", `master.cf:1: service "0": bad port "0"`},
		{"empty port", "127.0.0.1: inet n - y - - smtpd\n", `master.cf:1: service "127.0.0.1:": missing port`},
		{"bracket without port", "[::1] inet n - y - - smtpd\n", `master.cf:1: service "[::1]": missing ':port' after ']'`},
		{"unknown type", "smtp tcp n - y - - smtpd\n", `master.cf:1: unknown service type "tcp"`},
		{"bad private", "smtp inet x - y - - smtpd\n", `master.cf:1: bad private field "x": want y, n or -`},
		{"bad wakeup", "smtp inet n - y 1x - smtpd\n", `master.cf:1: bad wakeup time field "1x"`},
		{"unbalanced brace", "smtp inet n - y - - smtpd -o { a = b\n", `master.cf:1: missing '}' in "{ a = b"`},
		{"dangling -o", "smtp inet n - y - - smtpd\n  -o\n", `master.cf:1: -o without a name=value`},
		{"-o without equals", "smtp inet n - y - - smtpd -o name\n", `master.cf:1: -o "name": want name=value`},
		{"every bad line", "a inet n - y - - smtpd\nsmtp inet n - y - - smtpd\nb inet n - y - - smtpd\n",
			"master.cf:1: service \"a\": unknown port name \"a\" (not in /etc/services)\nmaster.cf:3: service \"b\": unknown port name \"b\" (not in /etc/services)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMasterCF("master.cf", strings.NewReader(tt.in))
			if err == nil || err.Error() != tt.want {
				t.Errorf("ParseMasterCF(%q) error = %v, want %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestParseServices(t *testing.T) {
	ports := parseServices("# comment\nsmtp\t\t25/tcp\t\tmail\nsubmissions\t465/tcp\t\tssmtp smtps urd # TLS\nsmtp 26/udp\nweird 99999/tcp\nsubmission 588/tcp\n")
	want := map[string]int{"smtp": 25, "mail": 25, "submissions": 465, "ssmtp": 465, "smtps": 465, "urd": 465, "submission": 588}
	if !reflect.DeepEqual(ports, want) {
		t.Errorf("parseServices = %v, want %v", ports, want)
	}
}
