package ldaptable

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/postmaptest"
	"github.com/mailautoconf/mailautoconf/internal/slapdtest"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

// TestDeadServerRemembered: with a first server that accepts connections
// and never answers, a lookup within a 2 s deadline still answers from
// the second server, and later ones answer from it at once: the silent
// server is tried last for a while.
func TestDeadServerRemembered(t *testing.T) {
	s := slapdtest.Shared(t, slapdtest.Corpus(corpusSet))
	tb := openCF(t, corpusTable("ldap://"+testtool.SilentListener(t, "tcp")+" "+s.URL(), "secret"), Options{})
	for i := range 4 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		start := time.Now()
		r, err := tb.Lookup(ctx, "example.org")
		d := time.Since(start)
		cancel()
		if err != nil || strings.Join(r, ",") != "example.org" {
			t.Errorf("Lookup %d with a silent first server = %q, %v after %s; want example.org from the second", i, r, err, d)
			continue
		}
		if i > 0 && d > 500*time.Millisecond {
			t.Errorf("Lookup %d with a silent first server took %s: the server was not remembered as dead", i, d)
		}
		t.Logf("Lookup %d: %s", i, d)
	}
}

// A gatedProxy forwards connections to a server; while its gate is held,
// nothing the server sends reaches the client.
type gatedProxy struct {
	l       net.Listener
	gate    sync.Mutex
	accepts atomic.Int32
	sent    atomic.Int64 // bytes from clients to the server
}

func newGatedProxy(t *testing.T, target string) *gatedProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &gatedProxy{l: l}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	// forward copies from src to dst, through the gate when gated.
	forward := func(dst, src net.Conn, gated bool) {
		defer dst.Close()
		buf := make([]byte, 4096)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if gated {
					p.gate.Lock()
					p.gate.Unlock() // only waits for the gate
				} else {
					p.sent.Add(int64(n))
				}
				dst.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.accepts.Add(1)
			srv, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, srv)
			mu.Unlock()
			go forward(srv, c, false)
			go forward(c, srv, true)
		}
	}()
	return p
}

// TestCancelledCallerKeepsConnection: a caller whose context ends while its
// search is pending does not close the connection the table's other
// calls share; a concurrent search on it still answers, without a new
// connection.
func TestCancelledCallerKeepsConnection(t *testing.T) {
	s := slapdtest.Shared(t, slapdtest.Corpus(corpusSet))
	p := newGatedProxy(t, s.Addr())
	tb := openCF(t, corpusTable("ldap://"+p.l.Addr().String(), "secret"), Options{})
	if r, err := tb.Lookup(context.Background(), "example.org"); err != nil || strings.Join(r, ",") != "example.org" {
		t.Fatalf("Lookup = %q, %v", r, err)
	}
	p.gate.Lock()
	before := p.sent.Load()
	ctxA, cancelA := context.WithCancel(context.Background())
	errA := make(chan error, 1)
	go func() {
		_, err := tb.Lookup(ctxA, "example.com")
		errA <- err
	}()
	type answer struct {
		r   []string
		err error
	}
	ansB := make(chan answer, 1)
	go func() {
		r, err := tb.Lookup(context.Background(), "example.org")
		ansB <- answer{r, err}
	}()
	// Both searches reach the server before A's caller gives up.
	for deadline := time.Now().Add(2 * time.Second); p.sent.Load()-before < 2*40 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	cancelA()
	if err := <-errA; !errors.Is(err, context.Canceled) {
		t.Errorf("Lookup with its context cancelled: error %v, want context.Canceled", err)
	}
	time.Sleep(50 * time.Millisecond)
	p.gate.Unlock()
	select {
	case a := <-ansB:
		if a.err != nil || strings.Join(a.r, ",") != "example.org" {
			t.Errorf("concurrent Lookup = %q, %v; want example.org", a.r, a.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("concurrent Lookup did not answer")
	}
	if n := p.accepts.Load(); n != 1 {
		t.Errorf("the table connected %d times, want once: a cancelled caller dropped the shared connection", n)
	}
}

// TestPostmapDifferentialSMTPUTF8Disabled compares Lookup with
// Options.SMTPUTF8Disabled and postmap with a main.cf that sets
// smtputf8_enable = no: only ASCII letters of a key are lower-cased.
func TestPostmapDifferentialSMTPUTF8Disabled(t *testing.T) {
	postmap := postmaptest.Need(t, "ldap")
	s := datasetServer(t)
	dir := t.TempDir()
	writeCF(t, dir, "main.cf", "compatibility_level = 3.6\nsmtputf8_enable = no\n")
	keys := []string{"ÄBC", "äbc", "Äbc", "Straße", "STRASSE", "strasse", "İ", "Ÿ", "ÿ", "Example.COM", "é@É.com", "\xff"}
	for i, body := range []string{
		// slapd's case-insensitive match (with a second entry, so that
		// every key has an answer).
		"search_base = " + keysBase + "\nquery_filter = (|(cn=%s)(cn=user))\nresult_attribute = cn\nresult_format = %s\n",
		// A case-sensitive match of what it searches for.
		"search_base = " + keysBase + "\nquery_filter = (cn:caseExactMatch:=%s)\nresult_attribute = description\n",
	} {
		text := "server_host = " + s.URL() + "\nbind = no\n" + body
		cf := writeCF(t, dir, fmt.Sprintf("t%d.cf", i), text)
		r, err := postmaptest.Query(postmap, "ldap", cf, keys, postmaptest.ConfigDir(dir))
		if err != nil || r.Fatal() {
			t.Fatalf("postmap -c %s: %v\n%s", dir, err, r.Stderr)
		}
		want := r.Found
		tb := openCF(t, text, Options{SMTPUTF8Disabled: true})
		for _, k := range keys {
			if got, err := lookupAnswer(tb, k); got != want[k] {
				t.Errorf("table %d: Lookup(%q) with SMTPUTF8Disabled = %q (%v), postmap -c (smtputf8_enable = no) says %q", i, k, got, err, want[k])
			}
		}
		t.Logf("table %d: postmap says %q", i, want)
	}
}
