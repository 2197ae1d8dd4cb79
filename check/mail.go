package check

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/dnsrecords"
)

// maxLine bounds one line a mail server sends.
const maxLine = 8 << 10

// mailJobs returns a job per advertised endpoint.
func (r *run) mailJobs() []job {
	var jobs []job
	seen := map[string]bool{}
	for _, e := range dnsrecords.Advertised(r.opt.Snapshot) {
		key := endpointKey(e.Protocol, e.Host, e.Port, e.Security)
		if seen[key] {
			continue
		}
		seen[key] = true
		jobs = append(jobs, job{group: "mail", name: endpointName(e), resolves: r.resolves(e.Host, strconv.Itoa(e.Port)), run: func(ctx context.Context) []Result {
			return r.probe(ctx, e)
		}})
	}
	return jobs
}

func endpointName(e discover.Endpoint) string {
	how := "STARTTLS"
	if e.Security == discover.SecurityTLS {
		how = "implicit TLS"
	}
	return fmt.Sprintf("%s %s:%d (%s)", strings.ToUpper(e.Protocol), e.Host, e.Port, how)
}

// A failure is a step of a conversation that went wrong, with what to
// change.
type failure struct{ detail, fix string }

func (f *failure) Error() string { return f.detail }

// A session is one conversation with a mail server.
type session struct {
	r    *run
	ctx  context.Context
	e    discover.Endpoint
	conn net.Conn
	br   *bufio.Reader
	// certs is the chain the server presented once TLS is up.
	certs []*x509.Certificate
	tls   string // the TLS version and cipher, for the detail
}

// probe talks to one endpoint the way a client does before logging in.
func (r *run) probe(ctx context.Context, e discover.Endpoint) []Result {
	ctx, cancel := r.probeContext(ctx)
	defer cancel()
	res := Result{Group: "mail", Name: endpointName(e)}
	conn, err := r.dial(ctx, e.Host, strconv.Itoa(e.Port))
	if err != nil {
		msg := describe(err, r.opt.Timeout)
		res.Status, res.Detail, res.Fix = Fail, msg, connectFix(e, msg)
		return []Result{res}
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// The run's end (or the probe's) interrupts any read as a timeout.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	s := &session{r: r, ctx: ctx, e: e, conn: conn, br: bufio.NewReaderSize(conn, 4096)}
	if e.Security == discover.SecurityTLS {
		if err := s.startTLS(); err != nil {
			return []Result{s.failed(res, err)}
		}
	}
	var summary string
	var mechs []string
	switch e.Protocol {
	case "imap":
		summary, mechs, err = s.imap()
	case "pop3":
		summary, mechs, err = s.pop3()
	case "smtp":
		summary, mechs, err = s.smtp()
	default:
		err = &failure{detail: "unknown protocol " + e.Protocol}
	}
	var out []Result
	if s.certs != nil {
		out = append(out, r.certResult("mail", fmt.Sprintf("certificate %s:%d", e.Host, e.Port), e.Host, s.certs, r.certWhere(e)))
	}
	if err != nil {
		return append(out, s.failed(res, err))
	}
	res.Status, res.Detail = OK, summary+"; "+s.tls
	passwords := slices.DeleteFunc(slices.Clone(mechs), func(m string) bool { return !isPassword(m) })
	switch {
	case len(passwords) == 0:
		res.Status = Fail
		res.Detail = summary + "; no password mechanism offered after TLS (" + mechText(mechs) + "): clients cannot log in"
		res.Fix = authFix(e)
	case len(e.Auth) > 0 && !slices.ContainsFunc(e.Auth, func(m string) bool { return slices.Contains(mechs, m) }):
		res.Status = Warn
		res.Detail += fmt.Sprintf("; clients are told %s but the server offers %s", strings.Join(e.Auth, " "), strings.Join(mechs, " "))
		res.Fix = "reload mailautoconf (or the server): its configuration and the running server differ"
	default:
		res.Detail += "; after TLS: " + mechText(mechs)
	}
	return append(out, res)
}

// failed fills res from a conversation error.
func (s *session) failed(res Result, err error) Result {
	res.Status = Fail
	var f *failure
	if errors.As(err, &f) {
		res.Detail, res.Fix = f.detail, f.fix
		return res
	}
	msg := describe(err, s.r.opt.Timeout)
	res.Detail = msg
	res.Fix = fmt.Sprintf("check %s's log for this port (%s)", serverName(s.e), s.e.Source)
	return res
}

// startTLS runs the TLS handshake on the connection as a client does,
// recording the chain (verified separately, so that the conversation can
// still be checked).
func (s *session) startTLS() error {
	tc := tls.Client(s.conn, s.r.tlsConfig(s.e.Host))
	if err := tc.HandshakeContext(s.ctx); err != nil {
		msg := describe(err, s.r.opt.Timeout)
		var rh tls.RecordHeaderError
		if errors.As(err, &rh) {
			if s.e.Security == discover.SecurityTLS {
				return &failure{detail: "TLS handshake failed: the port answers in plain text, not TLS",
					fix: fmt.Sprintf("make port %d implicit TLS (%s) or advertise it as STARTTLS", s.e.Port, implicitHow(s.e))}
			}
			return &failure{detail: "TLS handshake after STARTTLS failed: " + msg, fix: fmt.Sprintf("check %s's TLS settings (%s)", serverName(s.e), s.e.Source)}
		}
		return &failure{detail: "TLS handshake failed: " + msg,
			fix: fmt.Sprintf("check %s's certificate and key settings and its log (%s)", serverName(s.e), s.e.Source)}
	}
	cs := tc.ConnectionState()
	s.certs = cs.PeerCertificates
	s.tls = tls.VersionName(cs.Version)
	s.conn = tc
	s.br = bufio.NewReaderSize(tc, 4096)
	return nil
}

// line reads one line without its CR LF.
func (s *session) line() (string, error) {
	var b []byte
	for {
		chunk, isPrefix, err := s.br.ReadLine()
		if err != nil {
			return "", err
		}
		b = append(b, chunk...)
		if len(b) > maxLine {
			return "", &failure{detail: "the server sent a line longer than 8 KiB", fix: fmt.Sprintf("check what listens on port %d", s.e.Port)}
		}
		if !isPrefix {
			return string(b), nil
		}
	}
}

func (s *session) send(cmd string) error {
	_, err := s.conn.Write([]byte(cmd + "\r\n"))
	return err
}

// greeting reads the first line and checks that it starts with want.
func (s *session) greeting(want string) (string, error) {
	g, err := s.line()
	if err != nil {
		return "", s.noGreeting(err)
	}
	if !strings.HasPrefix(strings.ToUpper(g), want) {
		return "", &failure{detail: fmt.Sprintf("greeting %q, want %q", clip(g), want),
			fix: fmt.Sprintf("check that %s, not another program, listens on port %d (%s)", serverName(s.e), s.e.Port, s.e.Source)}
	}
	return g, nil
}

// noGreeting explains a greeting that did not come: a STARTTLS port that
// stays silent probably waits for a TLS handshake.
func (s *session) noGreeting(err error) error {
	if isTimeout(err) && s.e.Security == discover.SecuritySTARTTLS {
		return &failure{detail: fmt.Sprintf("no greeting within %v: the port seems to wait for a TLS handshake (implicit TLS)", s.r.opt.Timeout),
			fix: fmt.Sprintf("make port %d a STARTTLS port, or advertise it as implicit TLS (%s)", s.e.Port, s.e.Source)}
	}
	return err
}

// noSTARTTLS is the failure of a server that does not offer STARTTLS.
func (s *session) noSTARTTLS(word string) error {
	return &failure{detail: "the server does not offer " + word + " on a port advertised for STARTTLS",
		fix: fmt.Sprintf("enable TLS for port %d in %s (%s), with a certificate and key", s.e.Port, serverName(s.e), s.e.Source)}
}

// imap checks the greeting, STARTTLS when advertised, and the capability
// list after TLS.
func (s *session) imap() (string, []string, error) {
	g, err := s.greeting("* OK")
	if err != nil {
		return "", nil, err
	}
	if s.e.Security == discover.SecuritySTARTTLS {
		caps, _, err := s.imapCommand("a1", "CAPABILITY")
		if err != nil {
			return "", nil, err
		}
		if !slices.Contains(caps, "STARTTLS") {
			return "", nil, s.noSTARTTLS("STARTTLS")
		}
		if _, status, err := s.imapCommand("a2", "STARTTLS"); err != nil {
			return "", nil, err
		} else if !strings.HasPrefix(strings.ToUpper(status), "A2 OK") {
			return "", nil, &failure{detail: fmt.Sprintf("STARTTLS refused: %q", clip(status)), fix: fmt.Sprintf("check Dovecot's ssl settings and log (%s)", s.e.Source)}
		}
		if err := s.startTLS(); err != nil {
			return "", nil, err
		}
	}
	caps, _, err := s.imapCommand("a3", "CAPABILITY")
	if err != nil {
		return "", nil, err
	}
	s.send("a4 LOGOUT")
	var mechs []string
	for _, c := range caps {
		if m, ok := strings.CutPrefix(c, "AUTH="); ok {
			mechs = append(mechs, m)
		}
	}
	if !slices.Contains(caps, "LOGINDISABLED") {
		mechs = append(mechs, "LOGIN-COMMAND")
	}
	return "greeting " + clip(g), mechs, nil
}

// imapCommand sends a tagged command and returns the capabilities of any
// CAPABILITY response and the tagged status line.
func (s *session) imapCommand(tag, cmd string) (caps []string, status string, err error) {
	if err := s.send(tag + " " + cmd); err != nil {
		return nil, "", err
	}
	for {
		l, err := s.line()
		if err != nil {
			return nil, "", err
		}
		upper := strings.ToUpper(l)
		if rest, ok := strings.CutPrefix(upper, "* CAPABILITY "); ok {
			caps = append(caps, strings.Fields(rest)...)
		}
		if strings.HasPrefix(upper, strings.ToUpper(tag)+" ") {
			if !strings.HasPrefix(upper, strings.ToUpper(tag)+" OK") && cmd == "CAPABILITY" {
				return nil, l, &failure{detail: fmt.Sprintf("CAPABILITY refused: %q", clip(l)), fix: "check Dovecot's log"}
			}
			return caps, l, nil
		}
	}
}

// pop3 checks the greeting, STLS when advertised, and CAPA after TLS.
func (s *session) pop3() (string, []string, error) {
	g, err := s.greeting("+OK")
	if err != nil {
		return "", nil, err
	}
	if s.e.Security == discover.SecuritySTARTTLS {
		caps, err := s.pop3Capa()
		if err != nil {
			return "", nil, err
		}
		if !slices.ContainsFunc(caps, func(c string) bool { return c == "STLS" }) {
			return "", nil, s.noSTARTTLS("STLS")
		}
		if err := s.send("STLS"); err != nil {
			return "", nil, err
		}
		l, err := s.line()
		if err != nil {
			return "", nil, err
		}
		if !strings.HasPrefix(l, "+OK") {
			return "", nil, &failure{detail: fmt.Sprintf("STLS refused: %q", clip(l)), fix: fmt.Sprintf("check Dovecot's ssl settings and log (%s)", s.e.Source)}
		}
		if err := s.startTLS(); err != nil {
			return "", nil, err
		}
	}
	caps, err := s.pop3Capa()
	if err != nil {
		return "", nil, err
	}
	s.send("QUIT")
	var mechs []string
	for _, c := range caps {
		if rest, ok := strings.CutPrefix(c, "SASL "); ok {
			mechs = append(mechs, strings.Fields(rest)...)
		}
		if c == "USER" {
			mechs = append(mechs, "USER-COMMAND")
		}
	}
	return "greeting " + clip(g), mechs, nil
}

// pop3Capa returns the CAPA lines, upper case; none when CAPA is refused.
func (s *session) pop3Capa() ([]string, error) {
	if err := s.send("CAPA"); err != nil {
		return nil, err
	}
	l, err := s.line()
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(l, "+OK") {
		return nil, nil
	}
	var caps []string
	for {
		l, err := s.line()
		if err != nil {
			return nil, err
		}
		if l == "." {
			return caps, nil
		}
		caps = append(caps, strings.ToUpper(strings.TrimSpace(l)))
	}
}

// smtp checks the 220 greeting, EHLO, STARTTLS when advertised, and the
// AUTH extension after TLS.
func (s *session) smtp() (string, []string, error) {
	code, lines, err := s.smtpReply()
	if err != nil {
		return "", nil, s.noGreeting(err)
	}
	if code != 220 {
		return "", nil, &failure{detail: fmt.Sprintf("greeting %d %s, want 220", code, clip(strings.Join(lines, " "))),
			fix: fmt.Sprintf("check that %s, not another program, listens on port %d (%s)", serverName(s.e), s.e.Port, s.e.Source)}
	}
	greeting := fmt.Sprintf("greeting 220 %s", clip(lines[0]))
	exts, err := s.ehlo()
	if err != nil {
		return "", nil, err
	}
	if s.e.Security == discover.SecuritySTARTTLS {
		if !slices.Contains(exts, "STARTTLS") {
			return "", nil, s.noSTARTTLS("STARTTLS")
		}
		if err := s.send("STARTTLS"); err != nil {
			return "", nil, err
		}
		code, lines, err := s.smtpReply()
		if err != nil {
			return "", nil, err
		}
		if code != 220 {
			return "", nil, &failure{detail: fmt.Sprintf("STARTTLS refused: %d %s", code, clip(strings.Join(lines, " "))), fix: fmt.Sprintf("check %s's TLS settings and log (%s)", serverName(s.e), s.e.Source)}
		}
		if err := s.startTLS(); err != nil {
			return "", nil, err
		}
		if exts, err = s.ehlo(); err != nil {
			return "", nil, err
		}
	}
	s.send("QUIT")
	var mechs []string
	for _, x := range exts {
		if rest, ok := strings.CutPrefix(x, "AUTH"); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "=")) {
			for _, m := range strings.Fields(rest[1:]) {
				if !slices.Contains(mechs, m) {
					mechs = append(mechs, m)
				}
			}
		}
	}
	return greeting, mechs, nil
}

// ehlo sends EHLO with this side's address literal and returns the
// extension keywords, upper case.
func (s *session) ehlo() ([]string, error) {
	name := "[127.0.0.1]"
	if a, ok := s.conn.LocalAddr().(*net.TCPAddr); ok {
		name = "[" + a.IP.String() + "]"
		if a.IP.To4() == nil {
			name = "[IPv6:" + a.IP.String() + "]"
		}
	}
	if err := s.send("EHLO " + name); err != nil {
		return nil, err
	}
	code, lines, err := s.smtpReply()
	if err != nil {
		return nil, err
	}
	if code != 250 {
		return nil, &failure{detail: fmt.Sprintf("EHLO refused: %d %s", code, clip(strings.Join(lines, " "))), fix: fmt.Sprintf("check Postfix's smtpd_helo_restrictions for this service (%s)", s.e.Source)}
	}
	var exts []string
	for _, l := range lines[1:] {
		exts = append(exts, strings.ToUpper(strings.TrimSpace(l)))
	}
	return exts, nil
}

// smtpReply reads one (possibly multi-line) reply.
func (s *session) smtpReply() (int, []string, error) {
	var lines []string
	for {
		l, err := s.line()
		if err != nil {
			return 0, nil, err
		}
		if len(l) < 3 {
			return 0, nil, &failure{detail: fmt.Sprintf("not an SMTP reply: %q", clip(l)), fix: fmt.Sprintf("check what listens on port %d", s.e.Port)}
		}
		code, err := strconv.Atoi(l[:3])
		if err != nil {
			return 0, nil, &failure{detail: fmt.Sprintf("not an SMTP reply: %q", clip(l)), fix: fmt.Sprintf("check what listens on port %d", s.e.Port)}
		}
		text := ""
		if len(l) > 4 {
			text = l[4:]
		}
		lines = append(lines, text)
		if len(l) == 3 || l[3] != '-' {
			return code, lines, nil
		}
	}
}

// isPassword reports whether a mechanism (or a plain login command) takes
// the user's password.
func isPassword(m string) bool {
	switch m {
	case "PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "LOGIN-COMMAND", "USER-COMMAND":
		return true
	}
	return strings.HasPrefix(m, "SCRAM-")
}

// mechText lists the mechanisms for a person: SASL names, then the plain
// login commands.
func mechText(mechs []string) string {
	var sasl, cmds []string
	for _, m := range mechs {
		switch m {
		case "LOGIN-COMMAND":
			cmds = append(cmds, "the LOGIN command")
		case "USER-COMMAND":
			cmds = append(cmds, "USER/PASS")
		default:
			sasl = append(sasl, m)
		}
	}
	out := strings.Join(sasl, " ")
	if len(cmds) > 0 {
		if out != "" {
			out += ", "
		}
		out += strings.Join(cmds, ", ")
	}
	if out == "" {
		return "none"
	}
	return out
}

// clip shortens what a server said for a message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

func serverName(e discover.Endpoint) string {
	if strings.HasPrefix(e.Server, "dovecot") {
		return "Dovecot"
	}
	return "Postfix"
}

// implicitHow says how the server makes a port implicit TLS.
func implicitHow(e discover.Endpoint) string {
	if serverName(e) == "Dovecot" {
		return "ssl = yes in its inet_listener, " + e.Source
	}
	return "-o smtpd_tls_wrappermode=yes, " + e.Source
}

// connectFix says what to change when an endpoint cannot be reached.
func connectFix(e discover.Endpoint, msg string) string {
	switch {
	case strings.Contains(msg, "does not resolve"):
		return fmt.Sprintf("publish A/AAAA records for %s", e.Host)
	case strings.HasPrefix(msg, "looking up"):
		return "make the resolver answer (or name one with --resolver), then check again"
	case strings.Contains(msg, "refused"):
		return fmt.Sprintf("start %s (systemctl start %s) and check that it listens on port %d (%s)", serverName(e), strings.ToLower(serverName(e)), e.Port, e.Source)
	}
	return fmt.Sprintf("open port %d in the firewall and check that %s listens on it (%s)", e.Port, serverName(e), e.Source)
}

// authFix says how to offer a password mechanism after TLS.
func authFix(e discover.Endpoint) string {
	if serverName(e) == "Dovecot" {
		return "set auth_mechanisms = plain login in Dovecot"
	}
	return fmt.Sprintf("set -o smtpd_sasl_auth_enable=yes for this service in master.cf (%s), with smtpd_sasl_type = dovecot", e.Source)
}

// certWhere names the certificate a server presents for e.
func (r *run) certWhere(e discover.Endpoint) string {
	want := "postfix"
	if strings.HasPrefix(e.Server, "dovecot") {
		want = "dovecot"
	}
	var paths []string
	for _, c := range r.opt.Snapshot.Certificates() {
		if c.Server == want && !slices.Contains(paths, c.Path) {
			paths = append(paths, c.Path)
		}
	}
	if len(paths) == 0 {
		return "the certificate " + serverName(e) + " presents"
	}
	return "the certificate " + serverName(e) + " presents (" + strings.Join(paths, ", ") + ")"
}
