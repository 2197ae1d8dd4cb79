package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/mailautoconf/mailautoconf/internal/zonetest"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/dnstest"
)

// TestCheckCommand runs check on the handmade corpus set with its DNS on a
// loopback server and nothing listening where the names point: the DNS
// checks pass, every connection is refused, the exit status says so.
func TestCheckCommand(t *testing.T) {
	set := "../../testdata/corpus/handmade-static-domains"
	records := runDNSCommand(t, set, nil, "example.net")
	zone := "example.net. 60 IN SOA ns.example.net. hostmaster.example.net. 1 3600 600 86400 60\n" +
		"example.net. 60 IN NS ns.example.net.\nns.example.net. 60 IN A 127.0.0.1\n" +
		"mail.example.net. 60 IN A 127.0.0.1\nexample.net. 60 IN MX 10 mail.example.net.\n"
	for _, line := range strings.SplitAfter(zonetest.Blocks(string(records))["example.net"], "\n") {
		if !strings.HasPrefix(line, "_imaps._tcp") { // "not offered" left unsaid: a warning
			zone += line
		}
	}
	dns := dnstest.Start(t, zone)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	args := []string{"check", "--root", set, "--resolver", dns.Addr, "--timeout", "2s",
		"--connect", "mail.example.net=" + closed,
		"--connect", "autoconfig.example.net:443=" + closed,
		"--connect", "autodiscover.example.net:443=" + closed,
		"--connect", "example.net:443=" + closed,
		"bob@example.net"}
	var stdout, stderr bytes.Buffer
	start := time.Now()
	err = run(context.Background(), args, &stdout, &stderr)
	t.Logf("check ran in %v:\n%s%s", time.Since(start), stdout.String(), stderr.String())
	if err == nil || !strings.Contains(err.Error(), "checks failed") {
		t.Errorf("check: error %v, want one saying checks failed", err)
	}
	out := stdout.String()
	for _, want := range []string{
		"ok    dns    SRV _imap._tcp.example.net: 0 1 143 mail.example.net.\n",
		"warn  dns    SRV _imaps._tcp.example.net: missing (the service is not offered). Fix: publish",
		"ok    dns    MX example.net: 10 mail.example.net.\n",
		"FAIL  https  GET https://autoconfig.example.net/mail/config-v1.1.xml: connection refused. Fix: make autoconfig.example.net reach a web server on port 443",
		"ok    https  GET https://example.net/.well-known/autoconfig/mail/config-v1.1.xml: not served (connection refused)",
		"FAIL  mail   IMAP mail.example.net:143 (STARTTLS): connection refused. Fix: start Dovecot (systemctl start dovecot)",
		"FAIL  mail   SMTP mail.example.net:587 (STARTTLS): connection refused. Fix: start Postfix (systemctl start postfix)",
		"\nPer client (the first way each one finds its settings):\nCLIENT ",
		"Outlook                  example.net  FAIL    https://autodiscover.example.net/autodiscover/autodiscover.json/v1.0/bob@example.net?Protocol=AutodiscoverV1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q", want)
		}
	}

	stdout.Reset()
	err = run(context.Background(), append([]string{"check", "--json"}, args[1:]...), &stdout, &stderr)
	var report struct {
		OK      bool `json:"ok"`
		Failed  int  `json:"failed"`
		Results []struct {
			Group, Name, Status, Detail, Fix string
			Client, Domain, URL              string
		} `json:"results"`
	}
	if jerr := json.Unmarshal(stdout.Bytes(), &report); jerr != nil {
		t.Fatalf("check --json: %v\n%s", jerr, stdout.String())
	}
	var clients []string
	for _, r := range report.Results {
		if r.Group == "client" && r.Domain == "example.net" && r.URL != "" && r.Status == "FAIL" {
			clients = append(clients, r.Client)
		}
	}
	if want := []string{"Thunderbird", "Thunderbird for Android", "Outlook", "Apple Mail"}; !slices.Equal(clients, want) {
		t.Errorf("check --json: failing client results %q, want %q", clients, want)
	}
	if err == nil || report.OK || report.Failed == 0 || len(report.Results) < 15 {
		t.Errorf("check --json: error %v, ok %v, %d failed of %d; want failures", err, report.OK, report.Failed, len(report.Results))
	}
}

func TestCheckUsage(t *testing.T) {
	set := "../../testdata/corpus/handmade-static-domains"
	tests := []struct {
		args  []string
		usage bool
		want  string
	}{
		{[]string{"check", "--timeout", "0s", "--root", set}, true, "bad --timeout"},
		{[]string{"check", "--connect", "nohost", "--root", set}, true, "want HOST[:PORT]=ADDR[:PORT]"},
		{[]string{"check", "--root", set, "unhosted.example"}, false, "not hosted here"},
		{[]string{"check", "--root", set, "--ca-file", "/nonexistent/ca.pem"}, false, "read --ca-file"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tt.args, &stdout, &stderr)
		var ue usageError
		if err == nil || errors.As(err, &ue) != tt.usage || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run(%q) = %v (usage error: %v), want an error containing %q (usage error: %v)", tt.args, err, errors.As(err, &ue), tt.want, tt.usage)
		}
	}
}
