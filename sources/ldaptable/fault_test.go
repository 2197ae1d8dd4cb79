package ldaptable

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/slapdtest"
)

// corpusTable is the corpus set's virtual_mailbox_domains table with the
// given server_host, bind_dn and bind_pw.
func corpusTable(serverHost, bindPW string) string {
	return "server_host = " + serverHost + "\nversion = 3\nbind = yes\nbind_dn = cn=vmail,dc=example,dc=com\n" +
		"bind_pw = " + bindPW + "\nsearch_base = o=domains,dc=example,dc=com\nscope = one\n" +
		"query_filter = (&(objectClass=mailDomain)(|(domainName=%s)(&(enabledService=domainalias)(domainAliasName=%s)))(!(domainBackupMX=yes))(accountStatus=active)(enabledService=mail))\n" +
		"result_attribute = domainName\n"
}

func TestFaultWrongPassword(t *testing.T) {
	s := slapdtest.Shared(t, slapdtest.Corpus(corpusSet))
	const pw = "Not-The-Secret-42"
	tb := openCF(t, corpusTable(s.URL(), pw), Options{})
	_, err := tb.Lookup(context.Background(), "example.com")
	if err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Fatalf("Lookup with a wrong bind_pw: error %v, want one saying access denied", err)
	}
	if strings.Contains(err.Error(), pw) {
		t.Errorf("error %q holds the password", err)
	}
	if !strings.Contains(err.Error(), s.URL()) || !strings.Contains(err.Error(), "/etc/postfix/ldap/test.cf") {
		t.Errorf("error %q does not name the server and the table", err)
	}
	if strings.Contains(err.Error(), "unreachable") {
		t.Errorf("error %q calls a reachable server unreachable", err)
	}
	if err := tb.EachDomain(context.Background(), func(string, string) {}, func() {}); err == nil || strings.Contains(err.Error(), pw) ||
		!strings.Contains(err.Error(), "access denied") {
		t.Errorf("EachDomain with a wrong bind_pw: error %v", err)
	}
}

func TestFaultServerStoppedAndRestarted(t *testing.T) {
	s := slapdtest.Start(t, slapdtest.Corpus(corpusSet))
	tb := openCF(t, corpusTable(s.URL(), "secret"), Options{ConnectTimeout: time.Second, QueryTimeout: 2 * time.Second})
	ctx := context.Background()
	lookup := func() ([]string, error) { return tb.Lookup(ctx, "alias.example.com") }
	if r, err := lookup(); err != nil || strings.Join(r, ",") != "example.com" {
		t.Fatalf("Lookup = %q, %v", r, err)
	}
	s.Stop(t)
	start := time.Now()
	_, err := lookup()
	if err == nil || !strings.Contains(err.Error(), s.URL()) || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("Lookup with the server stopped: error %v, want one naming %s as unreachable", err, s.URL())
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("failing took %s", d)
	}
	if err := tb.EachDomain(ctx, func(string, string) {}, func() {}); err == nil || !strings.Contains(err.Error(), s.URL()) {
		t.Errorf("EachDomain with the server stopped: error %v", err)
	}
	s.Start(t)
	if r, err := lookup(); err != nil || strings.Join(r, ",") != "example.com" {
		t.Fatalf("Lookup after the restart = %q, %v", r, err)
	}
	// A server that goes away between two calls is reconnected to within
	// the next call, as Postfix does.
	s.Stop(t)
	s.Start(t)
	if r, err := lookup(); err != nil || strings.Join(r, ",") != "example.com" {
		t.Fatalf("Lookup after a restart between calls = %q, %v", r, err)
	}
	got, err := list(t, tb)
	if err != nil || len(got) != 4 {
		t.Errorf("EachDomain after the restart = %v, %v", got, err)
	}
}

// TestFaultFailover lists a dead server first: every call goes on with the
// next one.
func TestFaultFailover(t *testing.T) {
	s := slapdtest.Shared(t, slapdtest.Corpus(corpusSet))
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "ldap://" + dead.Addr().String()
	dead.Close() // nothing listens there now
	tb := openCF(t, corpusTable(deadURL+" "+s.LDAPI(), "secret"), Options{})
	if got := tb.Endpoints(); len(got) != 2 || got[0] != deadURL || got[1] != s.LDAPI() {
		t.Errorf("Endpoints = %q", got)
	}
	for range 2 {
		if r, err := tb.Lookup(context.Background(), "example.org"); err != nil || strings.Join(r, ",") != "example.org" {
			t.Fatalf("Lookup = %q, %v", r, err)
		}
	}
	got, err := list(t, tb)
	if err != nil || len(got) != 4 {
		t.Errorf("EachDomain = %v, %v", got, err)
	}
	// Both dead: the error names both.
	tb2 := openCF(t, corpusTable(deadURL+", ldapi://%2Fnonexistent%2Fsock", "secret"), Options{})
	_, err = tb2.Lookup(context.Background(), "example.org")
	if err == nil || !strings.Contains(err.Error(), deadURL) || !strings.Contains(err.Error(), "ldapi://%2Fnonexistent%2Fsock") {
		t.Errorf("Lookup with every server dead: error %v, want one naming both", err)
	}
}

// TestFaultConcurrent runs lookups from many goroutines on one table while
// the server restarts under them: every call either answers right or fails
// naming the server, and calls after the restart answer.
func TestFaultConcurrent(t *testing.T) {
	s := slapdtest.Start(t, slapdtest.Corpus(corpusSet))
	tb := openCF(t, corpusTable(s.URL(), "secret"), Options{ConnectTimeout: time.Second})
	ctx := context.Background()
	want := map[string]string{"example.com": "example.com", "alias.example.com": "example.com", "shop.example.net": "Shop.Example.NET", "oldalias.example.org": ""}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	stop := make(chan struct{})
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := []string{"example.com", "alias.example.com", "shop.example.net", "oldalias.example.org"}[(g+i)%4]
				r, err := tb.Lookup(ctx, k)
				switch {
				case err != nil && !strings.Contains(err.Error(), s.URL()):
					mu.Lock()
					bad = append(bad, err.Error())
					mu.Unlock()
				case err == nil && strings.Join(r, ",") != want[k]:
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%s = %q", k, r))
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	s.Stop(t)
	time.Sleep(100 * time.Millisecond)
	s.Start(t)
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("%d bad answers, first %s", len(bad), bad[0])
	}
	for k, w := range want {
		if r, err := tb.Lookup(ctx, k); err != nil || strings.Join(r, ",") != w {
			t.Errorf("after the restart: Lookup(%s) = %q, %v", k, r, err)
		}
	}
}

func TestFaultClosed(t *testing.T) {
	s := slapdtest.Shared(t, slapdtest.Corpus(corpusSet))
	tb := openCF(t, corpusTable(s.URL(), "secret"), Options{})
	if _, err := tb.Lookup(context.Background(), "example.com"); err != nil {
		t.Fatal(err)
	}
	tb.Close()
	if _, err := tb.Lookup(context.Background(), "example.com"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Lookup after Close: %v", err)
	}
}

// TestFaultSlowServer points the table at a listener that accepts and then
// says nothing: the bind must time out within ConnectTimeout.
func TestFaultSlowServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	url := "ldap://" + l.Addr().String()
	tb := openCF(t, corpusTable(url, "secret"), Options{ConnectTimeout: 300 * time.Millisecond})
	start := time.Now()
	_, err = tb.Lookup(context.Background(), "example.com")
	if err == nil || !strings.Contains(err.Error(), url) || strings.Contains(err.Error(), "secret") {
		t.Errorf("Lookup on a mute server: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Lookup on a mute server took %s", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := tb.Lookup(ctx, "example.com"); !errors.Is(err, context.DeadlineExceeded) && (err == nil || !strings.Contains(err.Error(), "timeout")) {
		t.Errorf("Lookup with a short context: %v", err)
	}
}
