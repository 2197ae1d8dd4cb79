package serve

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/render/mobileconfig"
)

// lockedBuffer collects log output written from the server's goroutines.
type lockedBuffer struct {
	ch chan struct{}
	b  bytes.Buffer
}

func newLockedBuffer() *lockedBuffer {
	l := &lockedBuffer{ch: make(chan struct{}, 1)}
	l.ch <- struct{}{}
	return l
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	<-l.ch
	defer func() { l.ch <- struct{}{} }()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	<-l.ch
	defer func() { l.ch <- struct{}{} }()
	return l.b.String()
}

// TestFaultHostileRequests sends what an attacker or a broken client
// would, over a real connection: every answer is a 4xx, or a 200 carrying
// the documented POX error document, never a 5xx, and the server never
// panics (net/http would log "panic serving").
func TestFaultHostileRequests(t *testing.T) {
	start := time.Now()
	logs := newLockedBuffer()
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var store Store
	store.Swap(syntheticSite(t))
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(NewHandler(&store, log), log)
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	addr := l.Addr().String()

	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(poxBody("fred@example.com", schemaOutlook))
	zw.Write(make([]byte, 50<<20)) // 50 MiB of zeros: a few KiB compressed
	zw.Close()
	laughs := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">` +
		`<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
		`<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]>` +
		`<Autodiscover><Request><EMailAddress>&lol2;</EMailAddress></Request></Autodiscover>`
	const pox = "/autodiscover/autodiscover.xml"
	type req struct {
		name         string
		method, path string
		host         string
		header       string // extra raw header lines
		body         []byte
		want         int    // 0: any 4xx
		poxCode      string // for 200 answers: the POX error code
	}
	reqs := []req{
		{name: "oversized body", method: "POST", path: pox, host: "autodiscover.example.com", body: bytes.Repeat([]byte("<a>"), 1<<20), want: 413},
		{name: "deeply nested", method: "POST", path: pox, host: "autodiscover.example.com",
			body: []byte("<Autodiscover>" + strings.Repeat("<a>", 5000) + strings.Repeat("</a>", 5000) + "</Autodiscover>"), want: 200, poxCode: "600"},
		{name: "entity expansion", method: "POST", path: pox, host: "autodiscover.example.com", body: []byte(laughs), want: 200, poxCode: "600"},
		{name: "external entity", method: "POST", path: pox, host: "autodiscover.example.com",
			body: []byte(`<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><Autodiscover><Request><EMailAddress>&x;</EMailAddress></Request></Autodiscover>`), want: 200, poxCode: "600"},
		{name: "gzip bomb", method: "POST", path: pox, host: "autodiscover.example.com", header: "Content-Encoding: gzip\r\n", body: gz.Bytes(), want: 200, poxCode: "600"},
		{name: "latin-1 body", method: "POST", path: pox, host: "autodiscover.example.com",
			body: poxBody("j\xf6rg@example.com", schemaOutlook), want: 200, poxCode: "600"},
		{name: "utf-16 body", method: "POST", path: pox, host: "autodiscover.example.com", body: []byte("\xff\xfe<\x00A\x00u\x00"), want: 200, poxCode: "600"},
		{name: "NUL in body", method: "POST", path: pox, host: "autodiscover.example.com", body: poxBody("fred\x00@example.com", schemaOutlook), want: 200, poxCode: "600"},
		{name: "long address in POX", method: "POST", path: pox, host: "autodiscover.example.com", body: poxBody(strings.Repeat("a", 60000)+"@example.com", schemaOutlook), want: 200, poxCode: "600"},
		{name: "long address", method: "GET", path: "/mail/config-v1.1.xml?emailaddress=" + strings.Repeat("a", 20000) + "%40example.com", host: "autoconfig.example.com", want: 400},
		{name: "long domain", method: "GET", path: "/mail/config-v1.1.xml?emailaddress=a%40" + strings.Repeat("b.", 3000) + "com", host: "autoconfig.example.com", want: 400},
		{name: "two @", method: "GET", path: "/mail/config-v1.1.xml?emailaddress=a%40b%40example.com", host: "autoconfig.example.com", want: 400},
		{name: "bad escape", method: "GET", path: "/mail/config-v1.1.xml?emailaddress=%zz", host: "autoconfig.example.com", want: 400},
		{name: "non-UTF-8 address", method: "GET", path: "/mail/config-v1.1.xml?emailaddress=%ff%fe%40example.com", host: "autoconfig.example.com", want: 400},
		{name: "control characters", method: "GET", path: "/?emailaddress=a%0d%0aX-Injected:%201%40example.com", host: "example.com", want: 400},
		{name: "query of 30 KiB", method: "GET", path: "/mail/config-v1.1.xml?" + strings.Repeat("x=1&", 7500), host: "autoconfig.example.com", want: 200}, // unknown parameters are ignored
		{name: "query over the header limit", method: "GET", path: "/mail/config-v1.1.xml?" + strings.Repeat("x=1&", 20000), host: "autoconfig.example.com", want: 431},
		{name: "long Host", method: "GET", path: "/mail/config-v1.1.xml", host: strings.Repeat("a", 20000) + ".example.com", want: 404},
		{name: "Host with underscore and port", method: "GET", path: "/mail/config-v1.1.xml", host: "autoconfig.ex_ample.com:99999", want: 0},
		{name: "Host IP literal", method: "GET", path: "/mail/config-v1.1.xml", host: "[::1]:80", want: 404},
		{name: "Host with space", method: "GET", path: "/mail/config-v1.1.xml", host: "example .com", want: 400},
		{name: "Host non-UTF-8", method: "GET", path: "/mail/config-v1.1.xml", host: "b\xfccher.example", want: 400},
		{name: "JSON long protocol", method: "GET", path: "/autodiscover/autodiscover.json?Email=a%40example.com&Protocol=" + strings.Repeat("%00", 5000), host: "autodiscover.example.com", want: 400},
		{name: "path traversal", method: "GET", path: "/autodiscover/autodiscover.json/v1.0/../../../etc/passwd?Protocol=AutodiscoverV1", host: "autodiscover.example.com", want: 400},
		{name: "profile name with a bidi override", method: "GET", path: "/mobileconfig?emailaddress=a%40example.com&name=%E2%80%AEexe.pdf", host: "example.com", want: 400},
		{name: "profile name with a line separator", method: "GET", path: "/mobileconfig?emailaddress=a%40example.com&name=a%E2%80%A8b", host: "example.com", want: 400},
		{name: "Forwarded with an unterminated quote", method: "GET", path: "/autodiscover/autodiscover.xml", host: "autodiscover.example.com", header: "Forwarded: for=\"a;proto=http\r\n", want: 200},
		{name: "profile name too long", method: "GET", path: "/mobileconfig?emailaddress=a%40example.com&name=" + strings.Repeat("%E2%82%AC", 500), host: "example.com", want: 400},
	}
	for _, r := range reqs {
		var raw bytes.Buffer
		fmt.Fprintf(&raw, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s", r.method, r.path, r.host, r.header)
		if r.body != nil {
			fmt.Fprintf(&raw, "Content-Type: text/xml\r\nContent-Length: %d\r\n", len(r.body))
		}
		raw.WriteString("\r\n")
		raw.Write(r.body)

		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() { c.Write(raw.Bytes()) }() // the server may answer before reading it all
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			c.Close()
			t.Errorf("%s: %v", r.name, err)
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		c.Close()
		switch {
		case res.StatusCode >= 500:
			t.Errorf("%s: %d, want no 5xx\n%.300s", r.name, res.StatusCode, body)
		case r.want == 0 && (res.StatusCode < 400 || res.StatusCode > 499):
			t.Errorf("%s: %d, want a 4xx\n%.300s", r.name, res.StatusCode, body)
		case r.want != 0 && res.StatusCode != r.want:
			t.Errorf("%s: %d, want %d\n%.300s", r.name, res.StatusCode, r.want, body)
		case r.poxCode != "" && !bytes.Contains(body, []byte("<ErrorCode>"+r.poxCode+"</ErrorCode>")):
			t.Errorf("%s: %d without POX error %s\n%.300s", r.name, res.StatusCode, r.poxCode, body)
		}
	}
	if strings.Contains(logs.String(), "panic") {
		t.Errorf("the server panicked:\n%s", logs.String())
	}
	t.Logf("%d hostile requests in %v", len(reqs), time.Since(start).Round(time.Millisecond))
}

// TestFaultCertificateRemoved takes the mail host's certificates away one
// by one, as a botched renewal would: the answers stay the same, each
// loss is a warning, and Apple profiles are signed while any usable key
// remains (Dovecot's, once Postfix's is gone) and unsigned only after.
func TestFaultCertificateRemoved(t *testing.T) {
	dir := t.TempDir()
	syntheticTree(t, dir)
	// Dovecot gets a certificate of its own.
	_, chain, key := testCertificates(t, "mail.example.com")
	writeFile(t, filepath.Join(dir, "etc/ssl/dovecot/fullchain.pem"), chain)
	writeFile(t, filepath.Join(dir, "etc/ssl/dovecot/key.pem"), key)
	conf := filepath.Join(dir, "etc/dovecot/dovecot.conf")
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, conf, bytes.ReplaceAll(b, []byte("/etc/ssl/mail/"), []byte("/etc/ssl/dovecot/")))

	answers := func(site *Site) map[string]string {
		var store Store
		store.Swap(site)
		h := NewHandler(&store, nil)
		out := map[string]string{}
		for _, u := range []struct{ method, host, target string }{
			{"GET", "autoconfig.example.com", "/mail/config-v1.1.xml?emailaddress=fred%40example.com"},
			{"POST", "autodiscover.example.com", "/autodiscover/autodiscover.xml"},
			{"GET", "autodiscover.example.com", "/autodiscover/autodiscover.json/v1.0/fred@example.com?Protocol=AutodiscoverV1"},
			{"GET", "example.com", "/?emailaddress=fred%40example.com"},
		} {
			var body []byte
			if u.method == "POST" {
				body = poxBody("fred@example.com", schemaOutlook)
			}
			w := serveRecorded(h, u.method, u.host, u.target, body, nil)
			out[u.target] = fmt.Sprintf("%d %s", w.Code, w.Body.String())
		}
		w := serveRecorded(h, "GET", "example.com", "/mobileconfig?emailaddress=fred%40example.com", nil, nil)
		if w.Code != 200 {
			t.Fatalf("profile: %d\n%s", w.Code, w.Body.String())
		}
		return out
	}
	build := func(what string) (*Site, string) {
		logs := newLockedBuffer()
		root := dir
		site := buildSiteLogged(t, root, slog.New(slog.NewTextHandler(logs, nil)))
		t.Logf("%s: signed=%v", what, site.Signed())
		return site, logs.String()
	}

	site, _ := build("both certificates")
	if !site.Signed() {
		t.Fatal("not signed with two usable keys")
	}
	want := answers(site)

	// Postfix's key removed, its certificate made unreadable garbage.
	os.Remove(filepath.Join(dir, "etc/ssl/mail/key.pem"))
	writeFile(t, filepath.Join(dir, "etc/ssl/mail/fullchain.pem"), []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"))
	site, logs := build("postfix's certificate gone")
	if !site.Signed() {
		t.Errorf("profiles unsigned although Dovecot's key is usable; log:\n%s", logs)
	}
	if got := answers(site); !equalMaps(got, want) {
		t.Errorf("answers changed after Postfix's certificate was removed:\n%v\nwant\n%v", got, want)
	}
	if sw := site.Snapshot().Warnings(); !containsAny(sw, "/etc/ssl/mail/") {
		t.Errorf("no warning names the broken certificate: %q", sw)
	}

	// Dovecot's key unreadable too (garbage: root reads any file).
	writeFile(t, filepath.Join(dir, "etc/ssl/dovecot/key.pem"), []byte("not a key"))
	site, logs = build("no usable key")
	if site.Signed() {
		t.Error("profiles signed without a usable key")
	}
	if !strings.Contains(logs, "unsigned") {
		t.Errorf("no warning that profiles are unsigned:\n%s", logs)
	}
	if got := answers(site); !equalMaps(got, want) {
		t.Errorf("answers changed after every key was lost:\n%v\nwant\n%v", got, want)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func containsAny(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// TestFaultSigningFlood asks for Apple profiles for thousands of made-up
// addresses as fast as 32 clients can, over a real connection, while
// another client asks for autoconfig: signatures run one at a time and
// within the documented budget (counted by mobileconfig.Stats, not timed),
// every profile is signed (with its address while the budget lasts, else
// the domain's), the cache stays within its bound, the other client is
// always answered, and a new snapshot keeps the signed profiles.
func TestFaultSigningFlood(t *testing.T) {
	dir := t.TempDir()
	syntheticTree(t, dir)
	site := buildSite(t, dir, "")
	if !site.Signed() {
		t.Fatal("the synthetic site does not sign profiles")
	}
	var store Store
	store.Publish(site)
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(NewHandler(&store, nil), nil)
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	base := "http://" + l.Addr().String()
	get := func(c *http.Client, host, target string) (int, []byte, error) {
		req, _ := http.NewRequest("GET", base+target, nil)
		req.Host = host
		res, err := c.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res.StatusCode, b, err
	}

	const (
		workers = 32
		flood   = 6000
	)
	before := mobileconfig.Stats()
	start := time.Now()
	var next, withAddress, busy atomic.Int64
	var failures atomic.Int64
	var firstFailure atomic.Value
	fail := func(msg string) {
		failures.Add(1)
		firstFailure.CompareAndSwap(nil, msg)
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			c := &http.Client{Timeout: 10 * time.Second}
			for {
				i := next.Add(1)
				if i > flood {
					return
				}
				local := fmt.Sprintf("user%d", i)
				code, body, err := get(c, "autoconfig.example.com", "/mobileconfig?emailaddress="+local+"%40example.com")
				switch {
				case err != nil:
					fail(err.Error())
				case code == http.StatusServiceUnavailable:
					busy.Add(1)
				case code != 200 || len(body) == 0 || body[0] != 0x30:
					fail(fmt.Sprintf("%d %.100q", code, body))
				case bytes.Contains(body, []byte(local+"@example.com")):
					withAddress.Add(1)
				}
			}
		})
	}
	// Another client meanwhile.
	stop := make(chan struct{})
	var other sync.WaitGroup
	var otherN, otherFailed atomic.Int64
	var worst atomic.Int64
	other.Go(func() {
		c := &http.Client{Timeout: 10 * time.Second}
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			t0 := time.Now()
			code, _, err := get(c, "autoconfig.example.com", "/mail/config-v1.1.xml?emailaddress=probe%40example.com")
			if d := int64(time.Since(t0)); d > worst.Load() {
				worst.Store(d)
			}
			otherN.Add(1)
			if err != nil || code != 200 {
				otherFailed.Add(1)
			}
		}
	})
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	other.Wait()

	st := mobileconfig.Stats()
	signed := st.Signed - before.Signed
	// The budget, with one second of slack for the refill between reads.
	secs := elapsed.Seconds() + 1
	maxSigned := int64(mobileconfig.AddressSignBurst + mobileconfig.DomainSignBurst +
		(mobileconfig.AddressSignRate+mobileconfig.DomainSignRate)*secs)
	if signed > maxSigned {
		t.Errorf("%d signatures in %v, over the budget %d", signed, elapsed, maxSigned)
	}
	if st.Peak > 1 {
		t.Errorf("up to %d signatures ran at once, want 1", st.Peak)
	}
	if maxAddr := int64(mobileconfig.AddressSignBurst + mobileconfig.AddressSignRate*secs); withAddress.Load() > maxAddr {
		t.Errorf("%d profiles carry their address, over the address budget %d", withAddress.Load(), maxAddr)
	}
	if n := failures.Load(); n > 0 {
		t.Errorf("%d of %d profile requests failed; first: %v", n, flood, firstFailure.Load())
	}
	if n := busy.Load(); n > flood/100 {
		t.Errorf("%d of %d profile requests got 503: the domain's profile should be signed once and cached", n, flood)
	}
	if n := otherFailed.Load(); n > 0 || otherN.Load() == 0 {
		t.Errorf("the other client: %d of %d requests failed", n, otherN.Load())
	}
	if b := store.Load().signer.CacheBytes(); b > mobileconfig.DefaultCacheBytes {
		t.Errorf("the profile cache holds %d bytes, over its bound %d", b, mobileconfig.DefaultCacheBytes)
	}

	// A new snapshot of the same host keeps the cache: a profile signed
	// before is not signed again. (Half a second refills the address
	// budget by 10.)
	time.Sleep(500 * time.Millisecond)
	before = mobileconfig.Stats()
	c := &http.Client{Timeout: 10 * time.Second}
	code, first, err := get(c, "autoconfig.example.com", "/mobileconfig?emailaddress=kept%40example.com")
	if err != nil || code != 200 || !bytes.Contains(first, []byte("kept@example.com")) {
		t.Fatalf("profile before the reload: %d %v, with the address %v", code, err, bytes.Contains(first, []byte("kept@example.com")))
	}
	if n := mobileconfig.Stats().Signed - before.Signed; n != 1 {
		t.Fatalf("%d signatures for one profile", n)
	}
	store.Publish(buildSite(t, dir, ""))
	code, again, err := get(c, "autoconfig.example.com", "/mobileconfig?emailaddress=kept%40example.com")
	if err != nil || code != 200 || !bytes.Equal(again, first) || mobileconfig.Stats().Signed-before.Signed != 1 {
		t.Errorf("after a new snapshot: %d %v, same bytes %v, %d signatures; want the cached profile", code, err, bytes.Equal(again, first), mobileconfig.Stats().Signed-before.Signed)
	}
	t.Logf("%d profile requests in %v: %d signatures (%d with the address, at most %d at once), %d answered 503; "+
		"the other client: %d requests, slowest %v; cache %d bytes; %d signed for one address across a reload",
		flood, elapsed.Round(time.Millisecond), signed, withAddress.Load(), st.Peak, busy.Load(),
		otherN.Load(), time.Duration(worst.Load()).Round(time.Microsecond), store.Load().signer.CacheBytes(),
		mobileconfig.Stats().Signed-before.Signed)
}

// TestFaultIdleConnections opens keep-alive connections that each ask
// one question and then idle, 2.5 times as many as the server's limit:
// the server keeps at most its limit of them (the longest idle are closed
// first, at once), and a new client is answered. The limit is 16 here;
// cmd/mailautoconf's TestFaultIdleKeepAlive does it with 5 000
// connections against the daemon's MaxConns and measures the memory.
func TestFaultIdleConnections(t *testing.T) {
	var store Store
	store.Swap(syntheticSite(t))
	const limit, n = 16, 40
	srv, lim := newServer(NewHandler(&store, nil), nil, limit)
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	addr := l.Addr().String()

	req := "GET /mail/config-v1.1.xml?emailaddress=a%40example.com HTTP/1.1\r\nHost: autoconfig.example.com\r\n\r\n"
	start := time.Now()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, req)
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("connection %d: %d", i, res.StatusCode)
		}
	}
	st := lim.stats()
	if st.open > limit {
		t.Errorf("%d connections open, over the limit %d", st.open, limit)
	}
	if st.evictedIdle < n-limit || st.refused > 0 {
		t.Errorf("stats %+v: want at least %d idle connections closed and none refused", st, n-limit)
	}
	// The server really closed them: count the ones still open.
	open := 0
	buf := make([]byte, 1)
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				open++
			}
		}
	}
	if open > limit {
		t.Errorf("%d connections still open on the client side, want at most %d", open, limit)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	res, err := c.Get("http://" + addr + "/mail/config-v1.1.xml?emailaddress=new%40example.com")
	if err != nil {
		t.Fatalf("a new client: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("a new client: %d", res.StatusCode)
	}
	t.Logf("%d keep-alive connections in %v: %d kept open, %d idle ones closed by the server", n,
		time.Since(start).Round(time.Millisecond), open, st.evictedIdle)
}
