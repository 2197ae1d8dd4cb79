package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/xml"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/mailautoconf/mailautoconf/internal/dnstest"
	"github.com/mailautoconf/mailautoconf/internal/sogotest"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

// sogoMailHost writes a mail host for example.com (mail.example.com) in
// dir with absolute paths into it, for a daemon reading the real file
// system (--root /), so that it probes SOGo as on a real host.
func sogoMailHost(t *testing.T, dir string) (args []string) {
	t.Helper()
	installCert(t, dir, 1)
	live := filepath.Join(dir, "etc/letsencrypt/live/mail.example.com")
	files := map[string]string{
		"etc/postfix/main.cf": `compatibility_level = 3.6
myhostname = mail.example.com
mydestination = localhost
virtual_mailbox_domains = example.com
smtpd_tls_cert_file = ` + live + `/fullchain.pem
smtpd_tls_key_file = ` + live + `/privkey.pem
smtpd_tls_security_level = may
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
`,
		"etc/postfix/master.cf": `smtp      inet  n       -       y       -       -       smtpd
submission inet n       -       y       -       -       smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
`,
		"etc/dovecot/dovecot.conf": strings.ReplaceAll(dovecotConf, "/etc/letsencrypt/live/mail.example.com", live),
	}
	for name, content := range files {
		writeTestFile(t, filepath.Join(dir, name), content)
	}
	return []string{
		"--postfix-dir", filepath.Join(dir, "etc/postfix"),
		"--dovecot-config", filepath.Join(dir, "etc/dovecot/dovecot.conf"),
	}
}

// plistDicts returns every <dict> of an XML property list as key → the
// text of its value (<true/> and <false/> as "true" and "false").
func plistDicts(t *testing.T, doc []byte) []map[string]string {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(string(doc)))
	d.Strict = false
	var out []map[string]string
	var stack []map[string]string
	var key, text string
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			text = ""
			switch tok.Name.Local {
			case "dict":
				stack = append(stack, map[string]string{})
			case "true", "false":
				if len(stack) > 0 && key != "" {
					stack[len(stack)-1][key] = tok.Name.Local
					key = ""
				}
			}
		case xml.CharData:
			text += string(tok)
		case xml.EndElement:
			switch tok.Name.Local {
			case "key":
				key = text
			case "string", "integer":
				if len(stack) > 0 && key != "" {
					stack[len(stack)-1][key] = text
					key = ""
				}
			case "dict":
				out = append(out, stack[len(stack)-1])
				stack = stack[:len(stack)-1]
				key = ""
			}
		}
	}
	return out
}

// TestGroupwareSOGo is issue 12's proof on a real SOGo behind the real
// nginx with iRedMail's sogo.tmpl: the daemon finds it with nothing
// configured, advertises CalDAV, CardDAV and ActiveSync, a real DAV client
// lists the user's calendar and address book at the principal taken from
// the signed Apple profile, the advertised ActiveSync URL answers OPTIONS
// with MS-ASProtocolVersions; disabling the ActiveSync location, stopping
// SOGo and starting it again change the answers without a restart.
func TestGroupwareSOGo(t *testing.T) {
	h := sogotest.Start(t, sogotest.Options{ActiveSync: true})
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		py = testtool.Need(t, "python3")
	}
	davlist, err := filepath.Abs("../../internal/sogotest/testdata/davlist.py")
	if err != nil {
		t.Fatal(err)
	}
	bin := buildDaemon(t)
	dir := t.TempDir()
	args := append(sogoMailHost(t, dir), "--nginx-config", h.NginxConf)
	d := startDaemon(t, bin, "/", append(args, "--state-dir", filepath.Join(dir, "state"))...)
	const base = "http://autoconfig.example.com"
	const addr = "alice@example.com"
	if h.Address != addr {
		t.Fatalf("the harness's user is %s, the test expects %s", h.Address, addr)
	}
	// The harness's nginx listens with TLS on its own port, not 443, so
	// that is the port advertised (the vhost's listen).
	_, nginxPort, _ := strings.Cut(h.HTTPS, ":")
	origin := "https://" + h.ServerName + ":" + nginxPort
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(h.CACert)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: h.ServerName},
		DialContext:     dialTo(h.HTTPS),
	}}

	// 1. The signed Apple profile carries CalDAV and CardDAV.
	profile := func() (caldav, carddav map[string]string) {
		code, body := d.get(t, base+"/mobileconfig?emailaddress="+addr)
		if code != 200 {
			t.Fatalf("profile: %d\n%s", code, body)
		}
		p7, err := pkcs7.Parse([]byte(body))
		if err != nil {
			t.Fatalf("profile is not signed: %v", err)
		}
		for _, p := range plistDicts(t, p7.Content) {
			switch p["PayloadType"] {
			case "com.apple.caldav.account":
				caldav = p
			case "com.apple.carddav.account":
				carddav = p
			}
		}
		return caldav, carddav
	}
	caldav, carddav := profile()
	if caldav == nil || carddav == nil {
		t.Fatalf("the profile lacks CalDAV (%v) or CardDAV (%v)\n%s", caldav, carddav, d.stderr.String())
	}
	for _, p := range []struct {
		m      map[string]string
		prefix string
	}{{caldav, "CalDAV"}, {carddav, "CardDAV"}} {
		if p.m[p.prefix+"HostName"] != h.ServerName || p.m[p.prefix+"Port"] != nginxPort || p.m[p.prefix+"UseSSL"] != "true" ||
			p.m[p.prefix+"Username"] != addr || p.m[p.prefix+"PrincipalURL"] == "" {
			t.Errorf("%s payload: %v", p.prefix, p.m)
		}
		if _, ok := p.m[p.prefix+"Password"]; ok {
			t.Errorf("%s payload carries a password", p.prefix)
		}
	}
	// A real DAV client, at the principal the profile names.
	principal := caldav["CalDAVPrincipalURL"]
	if !strings.HasPrefix(principal, "https://") {
		principal = origin + principal
	}
	out, err := exec.Command(py, davlist, principal, h.User, h.Password, h.CAFile, h.ServerName+":127.0.0.1").CombinedOutput()
	if err != nil {
		t.Fatalf("python3-caldav at the profile's principal %s: %v\n%s", principal, err, out)
	}
	if !strings.Contains(string(out), "calendar ") || !strings.Contains(string(out), "addressbook ") {
		t.Errorf("python3-caldav listed no calendar or no address book:\n%s", out)
	}
	t.Logf("python3-caldav at %s:\n%s", principal, out)

	// 2. ActiveSync: the mobilesync answer and autodiscover.json.
	mobilesync := func() (int, string) {
		req := `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006"><Request>
<EMailAddress>` + addr + `</EMailAddress>
<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006</AcceptableResponseSchema>
</Request></Autodiscover>`
		res, err := d.client.Post(base+"/autodiscover/autodiscover.xml", "text/xml", strings.NewReader(req))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	easURL := origin + "/Microsoft-Server-ActiveSync"
	code, body := mobilesync()
	if code != 200 || !strings.Contains(body, "<Url>"+easURL+"</Url>") || !strings.Contains(body, "<Type>MobileSync</Type>") {
		t.Fatalf("mobilesync answer: %d\n%s", code, body)
	}
	code, body = d.get(t, base+"/autodiscover/autodiscover.json?Email="+addr+"&Protocol=ActiveSync")
	var js struct{ Protocol, Url string }
	if err := json.Unmarshal([]byte(body), &js); code != 200 || err != nil || js.Protocol != "ActiveSync" || js.Url != easURL {
		t.Fatalf("autodiscover.json ActiveSync: %d %v\n%s", code, err, body)
	}
	req, _ := http.NewRequest("OPTIONS", easURL, nil)
	req.SetBasicAuth(h.User, h.Password)
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("OPTIONS at the advertised ActiveSync URL: %v", err)
	}
	res.Body.Close()
	if v := res.Header.Get("MS-ASProtocolVersions"); res.StatusCode != 200 || v == "" {
		t.Errorf("OPTIONS %s: %d, MS-ASProtocolVersions %q", easURL, res.StatusCode, v)
	}

	// 3. The settings page shows both URLs; dns has the SRV and TXT records.
	_, page := d.get(t, base+"/?emailaddress="+addr)
	for _, want := range []string{easURL, "/SOGo/dav/"} {
		if !strings.Contains(page, want) {
			t.Errorf("the settings page lacks %s", want)
		}
	}
	zone, err := exec.Command(bin, append([]string{"dns", "--root", "/"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("dns: %v\n%s", err, zone)
	}
	for _, want := range []string{"_caldavs._tcp.example.com.", "_carddavs._tcp.example.com.", `"path=/SOGo/dav/"`} {
		if !strings.Contains(string(zone), want) {
			t.Errorf("dns lacks %s:\n%s", want, zone)
		}
	}

	// 3b. check probes the real SOGo at the advertised URLs and finds
	// CalDAV and CardDAV the way Thunderbird does, through DNS made from
	// dns's own records.
	zoneText := "example.com. 60 IN SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 60\n" +
		"example.com. 60 IN NS ns.example.com.\nns.example.com. 60 IN A 127.0.0.1\n" +
		"mail.example.com. 60 IN A 127.0.0.1\nexample.com. 60 IN MX 10 mail.example.com.\n"
	for _, line := range strings.SplitAfter(string(zone), "\n") {
		if strings.HasPrefix(line, "_caldavs.") || strings.HasPrefix(line, "_carddavs.") {
			zoneText += line
		}
	}
	ns := dnstest.Start(t, zoneText)
	checkArgs := append([]string{"check", "--root", "/"}, args...)
	checkArgs = append(checkArgs, "--resolver", ns.Addr, "--timeout", "3s", "--ca-file", h.CAFile,
		"--connect", h.ServerName+":"+nginxPort+"="+h.HTTPS, addr)
	report, _ := exec.Command(bin, checkArgs...).CombinedOutput()
	for _, want := range []string{
		"ok    https  PROPFIND " + origin + "/SOGo/dav/",
		"ok    https  OPTIONS " + easURL,
		"ok    dns    SRV _caldavs._tcp.example.com",
		"Thunderbird (CalDAV)",
	} {
		if !strings.Contains(string(report), want) {
			t.Errorf("check lacks %q", want)
		}
	}
	if t.Failed() {
		t.Fatalf("check on the SOGo host:\n%s", report)
	}
	t.Logf("check on the SOGo host:\n%s", report)

	// 4. The ActiveSync location disabled: the watcher sees sogo.tmpl
	// change, and mobilesync gets 601 again; DAV stays.
	h.DisableActiveSyncLocation(t)
	waitFor(t, 10*time.Second, "mobilesync 601 once the ActiveSync location is disabled", func() bool {
		_, body := mobilesync()
		return strings.Contains(body, "<ErrorCode>601</ErrorCode>")
	})
	if caldav, _ := profile(); caldav == nil {
		t.Error("CalDAV left the profile with the ActiveSync location")
	}

	// 5. SOGo stopped: after a reload nothing is advertised.
	h.StopSOGo(t)
	d.signal(t, syscall.SIGHUP)
	waitFor(t, 10*time.Second, "CalDAV gone from the profile once SOGo is stopped", func() bool {
		caldav, carddav := profile()
		return caldav == nil && carddav == nil
	})
	if _, page := d.get(t, base+"/?emailaddress="+addr); strings.Contains(page, "/SOGo/dav/") {
		t.Error("the settings page still shows the DAV URL with SOGo stopped")
	}

	// 6. SOGo started again: advertised again without a reload (the
	// daemon waits for the backend's port).
	if t.Failed() {
		return
	}
	show, _ := exec.Command(bin, append([]string{"show", "--root", "/"}, args...)...).CombinedOutput()
	if !strings.Contains(string(show), "connection refused") {
		t.Fatalf("show with SOGo stopped does not say its connection is refused:\n%s", show)
	}
	h.StartSOGo(t)
	waitFor(t, 15*time.Second, "CalDAV back in the profile once SOGo listens again", func() bool {
		caldav, _ := profile()
		return caldav != nil
	})
}

// waitFor polls cond until it holds, failing t after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
	}
}

// dialTo returns a DialContext that reaches addr whatever the URL names.
func dialTo(addr string) func(ctx context.Context, network, _ string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}
