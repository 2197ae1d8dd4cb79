package serve

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/mariadbtest"
)

// TestPublishClosesAfterLastRequest publishes a new Site while a request
// holds the old one: the old snapshot's database connections stay open
// until that request ends, and close then.
func TestPublishClosesAfterLastRequest(t *testing.T) {
	socket := sqlSocket(t)
	dir := filepath.Join(corpusDir, "postfixadmin-mysql-debian12")
	old, next := buildSite(t, dir, socket), buildSite(t, dir, socket)
	var st Store
	st.Publish(old)

	held := st.acquire() // a request in flight
	st.Publish(next)
	ctx := context.Background()
	if _, _, err := old.Snapshot().Lookup(ctx, "unlisted.example"); err != nil {
		t.Fatalf("old snapshot closed while a request uses it: %v", err)
	}
	held.release()
	if _, _, err := old.Snapshot().Lookup(ctx, "unlisted.example"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("old snapshot after its last request: Lookup error = %v, want a closed database", err)
	}
	if got := st.acquire(); got != next {
		t.Errorf("acquire = %p, want the new Site %p", got, next)
	} else {
		got.release()
	}
	if _, _, err := next.Snapshot().Lookup(ctx, "unlisted.example"); err != nil {
		t.Errorf("current snapshot closed: %v", err)
	}
}

// TestDomainAddedSinceSnapshot adds a domain to the database after the
// snapshot listed the domains: the next request finds it, and a name that
// is not there is asked about once per negative-cache period.
func TestDomainAddedSinceSnapshot(t *testing.T) {
	socket := sqlSocket(t)
	db := mariadbtest.Shared(t)
	site := buildSite(t, filepath.Join(corpusDir, "postfixadmin-mysql-debian12"), socket)
	if !site.Snapshot().DomainsListed() {
		t.Fatalf("the corpus set's domains are not listed: %v", site.Snapshot().Warnings())
	}
	c := &fakeClock{t: time.Unix(1e9, 0)}
	site.misses = newGuard(c, 20, 40, time.Minute, 100)

	const added = "added-since.example.net"
	ctx := context.Background()
	if sd, err := site.domain(ctx, "never-added.example.net"); sd.ok() || err != nil {
		t.Fatalf("domain(never-added) = %v, %v; want not hosted", sd, err)
	}
	db.Exec(t, "INSERT INTO postfix.domain (domain, description, transport, created, modified, active) VALUES ('"+added+"', '', 'virtual', NOW(), NOW(), 1)")
	t.Cleanup(func() { db.Exec(t, "DELETE FROM postfix.domain WHERE domain = '"+added+"'") })
	sd, err := site.domain(ctx, added)
	if err != nil || !sd.ok() || sd.name != added {
		t.Fatalf("domain(%s) after INSERT = %v, %v; want it hosted", added, sd, err)
	}
	// The negative cache answers for a name found unhosted.
	before := len(site.misses.miss)
	if sd, err := site.domain(ctx, "never-added.example.net"); sd.ok() || err != nil || len(site.misses.miss) != before {
		t.Errorf("second ask for an unhosted name: %v, %v (cache %d → %d)", sd, err, before, len(site.misses.miss))
	}
	// A refused lookup is a 503 for the client, not a "not hosted".
	site.misses = newGuard(c, 1, 1, time.Minute, 100)
	site.domain(ctx, "one.example.net")
	if _, err := site.domain(ctx, "two.example.net"); err == nil || !strings.Contains(err.Error(), "too many lookups") {
		t.Errorf("over the rate: error %v, want too many lookups", err)
	}
}

// TestTLSCertificateBySNI serves the https socket's certificate: the
// mail host's, for its own name and for names no certificate covers.
func TestTLSCertificateBySNI(t *testing.T) {
	dir := t.TempDir()
	syntheticTree(t, dir)
	var st Store
	if _, err := st.TLSConfig().GetCertificate(&tls.ClientHelloInfo{ServerName: "mail.example.com"}); err == nil {
		t.Errorf("GetCertificate before the first Site: no error")
	}
	st.Publish(buildSite(t, dir, ""))
	ts := httptest.NewUnstartedServer(NewHandler(&st, nil))
	ts.TLS = st.TLSConfig()
	ts.StartTLS()
	defer ts.Close()
	for _, name := range []string{"mail.example.com", "autoconfig.example.org", ""} {
		conn, err := tls.Dial("tcp", ts.Listener.Addr().String(), &tls.Config{ServerName: name, InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("handshake for %q: %v", name, err)
		}
		leaf := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		if leaf.VerifyHostname("mail.example.com") != nil {
			t.Errorf("SNI %q: certificate for %v, want mail.example.com's", name, leaf.DNSNames)
		}
	}
	client := ts.Client()
	client.Transport.(*http.Transport).TLSClientConfig.InsecureSkipVerify = true
	res, err := client.Get(ts.URL + "/mail/config-v1.1.xml?emailaddress=fred%40example.com")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("autoconfig over TLS: %d", res.StatusCode)
	}
}
