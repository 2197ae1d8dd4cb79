package discover

import (
	"cmp"
	"slices"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/postfix"
)

// buildEndpoints collects what clients can reach: Dovecot's IMAP, POP3 and
// submission listeners and Postfix's submission services. It leaves out
// whatever a client outside cannot use: disabled or loopback-only
// listeners, listeners that expect an HAProxy header, port 25, any port
// that would take a password in clear when the server refuses that anyway,
// and a port nothing listens on yet (holdBackUnlistened).
func (b *builder) buildEndpoints() {
	var eps []Endpoint
	if b.dc != nil {
		eps = append(eps, b.dovecotEndpoints()...)
	}
	eps = append(eps, b.postfixEndpoints(eps)...)
	eps = b.holdBackUnlistened(eps)
	slices.SortStableFunc(eps, func(x, y Endpoint) int {
		return cmp.Or(
			cmp.Compare(protocolRank[x.Protocol], protocolRank[y.Protocol]),
			cmp.Compare(securityRank[x.Security], securityRank[y.Security]),
			cmp.Compare(x.Port, y.Port),
		)
	})
	b.snap.endpoints = eps
	for _, p := range []string{"imap", "smtp"} {
		if !slices.ContainsFunc(eps, func(e Endpoint) bool { return e.Protocol == p }) {
			b.warn("no %s endpoint to advertise: clients cannot set up %s", strings.ToUpper(p), map[string]string{"imap": "incoming mail", "smtp": "sending"}[p])
		}
	}
}

var protocolRank = map[string]int{"imap": 0, "pop3": 1, "smtp": 2}
var securityRank = map[Security]int{SecurityTLS: 0, SecuritySTARTTLS: 1, SecurityNone: 2}

func (b *builder) dovecotEndpoints() []Endpoint {
	eff := b.dc.Effective()
	auth := upper(eff.AuthMechanisms)
	username := usernameForm(eff.AuthUsernameFormat)
	var eps []Endpoint
	for _, l := range b.dc.Listeners() {
		protocol, server := l.Protocol, "dovecot"
		switch l.Protocol {
		case "imap", "pop3":
		case "submission":
			protocol, server = "smtp", "dovecot-submission"
		default:
			continue
		}
		// A built-in listener is enabled by the protocols line.
		where := l.Pos
		if where.IsZero() {
			where = eff.ProtocolsPos
		}
		switch {
		case !l.ProtocolEnabled || l.Port == 0:
			continue // not offered; nothing to say
		case l.HAProxy:
			b.warn("Dovecot %s listener %s (%s) expects an HAProxy PROXY header: not advertised; publish the proxy's port instead", l.Service, l.Name, where)
			continue
		case l.LoopbackOnly:
			continue
		}
		sec := dovecotSecurity(l.TLS)
		if sec == SecurityTLS && eff.SSL == "no" {
			// "ssl = no: SSL/TLS is completely disabled" (Dovecot's
			// documentation): an ssl = yes listener cannot do TLS.
			b.warn("Dovecot %s listener %s (%s) is for implicit TLS but ssl = no (%s) disables TLS: not advertised", l.Service, l.Name, where, eff.SSLPos)
			continue
		}
		if sec == SecurityNone && !eff.PlaintextAuthAllowed {
			b.warn("Dovecot %s port %d (%s) has no TLS and Dovecot refuses passwords without it: not advertised", l.Protocol, l.Port, where)
			continue
		}
		if sec == SecurityNone {
			b.warn("Dovecot %s port %d (%s) takes passwords without TLS: set ssl = required", l.Protocol, l.Port, where)
		}
		eps = append(eps, Endpoint{
			Protocol: protocol,
			Host:     b.dcHost,
			Port:     l.Port,
			Security: sec,
			Auth:     auth,
			Username: username,
			Server:   server,
			Source:   where.String(),
		})
	}
	return eps
}

func dovecotSecurity(tls string) Security {
	switch tls {
	case "implicit":
		return SecurityTLS
	case "starttls-required", "starttls-optional":
		return SecuritySTARTTLS
	}
	return SecurityNone
}

// postfixEndpoints returns Postfix's client submission services. have holds
// the endpoints found so far, so that a port Dovecot's submission service
// also claims is reported rather than advertised twice.
func (b *builder) postfixEndpoints(have []Endpoint) []Endpoint {
	var eps []Endpoint
	for _, s := range b.pf.Services() {
		st := b.pf.Settings(s)
		if b.pf.Disabled(s) {
			continue // master_service_disable turns it off
		}
		if !st.ClientSubmission {
			if (s.Port == 587 || s.Port == 465) && s.Command == "smtpd" && !st.LoopbackOnly {
				b.warn("Postfix service %s (%s) on port %d is not advertised for submission: %s", s.Name, s.Pos, s.Port, st.Reason)
			}
			continue
		}
		sec := SecuritySTARTTLS
		if st.TLS == postfix.TLSImplicit {
			sec = SecurityTLS
		}
		if i := slices.IndexFunc(have, func(e Endpoint) bool { return e.Protocol == "smtp" && e.Port == s.Port }); i >= 0 {
			b.warn("Postfix service %s (%s) and Dovecot's submission listener (%s) both claim port %d", s.Name, s.Pos, have[i].Source, s.Port)
			continue
		}
		eps = append(eps, Endpoint{
			Protocol: "smtp",
			Host:     b.pfHost,
			Port:     s.Port,
			Security: sec,
			Auth:     b.postfixMechanisms(s),
			Username: b.postfixUsername(s),
			Server:   "postfix",
			Source:   s.Pos.String(),
		})
	}
	return eps
}

// postfixMechanisms returns the SASL mechanisms Postfix's smtpd offers on s
// once TLS is up. With Dovecot SASL they are Dovecot's; with Cyrus they are
// the mech_list of its smtpd.conf.
func (b *builder) postfixMechanisms(s postfix.Service) []string {
	var mechs []string
	switch typ, pos := b.pf.ServiceParam(s, "smtpd_sasl_type"); typ {
	case "dovecot":
		if b.dc == nil {
			b.warn("Postfix uses Dovecot SASL (%s) but there is no Dovecot configuration: assuming PLAIN LOGIN", pos)
			mechs = []string{"PLAIN", "LOGIN"}
		} else {
			mechs = upper(b.dc.Effective().AuthMechanisms)
		}
	default:
		mechs = b.cyrusMechanisms()
	}
	// smtpd_sasl_tls_security_options = noplaintext hides PLAIN and LOGIN
	// even under TLS.
	if opts, _ := b.pf.ServiceParam(s, "smtpd_sasl_tls_security_options"); slices.Contains(splitList(strings.ToLower(opts)), "noplaintext") {
		mechs = slices.DeleteFunc(slices.Clone(mechs), func(m string) bool { return m == "PLAIN" || m == "LOGIN" })
	}
	return mechs
}

// cyrusMechanisms reads mech_list from Cyrus SASL's smtpd.conf, in the
// places Debian's and Red Hat's Postfix look.
func (b *builder) cyrusMechanisms() []string {
	for _, p := range []string{b.pf.Dir() + "/sasl/smtpd.conf", "/etc/sasl2/smtpd.conf", "/usr/lib/sasl2/smtpd.conf"} {
		data, err := b.opt.Root.ReadFile(p)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "mech_list:"); ok {
				return upper(strings.Fields(v))
			}
		}
	}
	b.warn("Postfix uses Cyrus SASL but no smtpd.conf with a mech_list was found: assuming PLAIN LOGIN")
	return []string{"PLAIN", "LOGIN"}
}

// postfixUsername: with Dovecot SASL the login is what Dovecot expects;
// otherwise the whole address, as virtual-domain setups use.
func (b *builder) postfixUsername(s postfix.Service) string {
	if typ, _ := b.pf.ServiceParam(s, "smtpd_sasl_type"); typ == "dovecot" && b.dc != nil {
		return usernameForm(b.dc.Effective().AuthUsernameFormat)
	}
	return UsernameAddress
}

// usernameForm tells from Dovecot's auth_username_format whether users log
// in with the local part only (%n, %Ln, %{user | username}) or with the
// whole address (the default %Lu, or anything that keeps the domain).
func usernameForm(format string) string {
	f := strings.ReplaceAll(strings.ToLower(format), " ", "")
	keepsDomain := strings.Contains(f, "%u") || strings.Contains(f, "%lu") || strings.Contains(f, "%d") || strings.Contains(f, "%ld") ||
		strings.Contains(f, "%{user}") || strings.Contains(f, "%{user|lower}") || strings.Contains(f, "%{domain") || strings.Contains(f, "%{user|domain")
	localOnly := strings.Contains(f, "%n") || strings.Contains(f, "%ln") || strings.Contains(f, "%{username") || strings.Contains(f, "%{user|username") ||
		strings.Contains(f, "%{user|lower|username") || strings.Contains(f, "%{user|username|lower")
	if localOnly && !keepsDomain {
		return UsernameLocalPart
	}
	return UsernameAddress
}

func upper(ss []string) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		if s = strings.ToUpper(strings.TrimSpace(s)); s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
