package mobileconfig

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/internal/tokenbucket"
	"github.com/mailautoconf/mailautoconf/render"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// ecdsaSigner returns a Signer for the handmade set with a fresh ECDSA
// certificate (randomized signatures: equal bytes mean one signing) and a
// budget of its own, so tests do not share the process's.
func ecdsaSigner(t testing.TB) (*Signer, hostfs.Root, *discover.Snapshot, []byte, []byte) {
	t.Helper()
	now := time.Now()
	pki := newPKI(t, "ecdsa", now.Add(-time.Hour), now.Add(24*time.Hour))
	cert, key := certPEM(pki.leaf, pki.inter), keyPEM(t, pki.leafKey, "pkcs8")
	root, s := handmadeWith(t, cert, key)
	sg, err := NewSigner(root, s)
	if err != nil {
		t.Fatal(err)
	}
	sg.limit = newLimiter(1, 1000, 1e6, 1e6, 1e6, 1e6)
	return sg, root, s, cert, key
}

// signedContent returns the profile inside a signed one.
func signedContent(t testing.TB, der []byte) []byte {
	t.Helper()
	p, err := pkcs7.Parse(der)
	if err != nil {
		t.Fatalf("parse SignedData: %v", err)
	}
	return p.Content
}

func TestSignCache(t *testing.T) {
	sg, root, s, _, _ := ecdsaSigner(t)
	fred := render.Address{Local: "fred", Domain: "example.net"}

	// Concurrent first requests sign once.
	const n = 16
	results := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], _ = sg.Sign(s, fred) })
	}
	wg.Wait()
	for i := range results {
		if results[i] == nil || !bytes.Equal(results[i], results[0]) {
			t.Fatalf("concurrent Sign %d returned different bytes", i)
		}
	}
	if again, err := sg.Sign(s, fred); err != nil || !bytes.Equal(again, results[0]) {
		t.Errorf("second Sign = %v, want the cached bytes", err)
	}
	if got := sg.limit.signed.Load(); got != 1 {
		t.Errorf("%d signatures for one address, want 1", got)
	}

	// The next snapshot of the same host, with the same certificate (a
	// reload, the periodic refresh), keeps the cache...
	s2, err := discover.Build(t.Context(), discover.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	sg2, err := NewSigner(root, s2)
	if err != nil {
		t.Fatal(err)
	}
	sg2.limit = sg.limit
	sg2.Keep(sg)
	if got, err := sg2.Sign(s2, fred); err != nil || !bytes.Equal(got, results[0]) {
		t.Errorf("Sign after Keep with the same certificate = %v, want the cached bytes", err)
	}
	// ...and a snapshot with other servers gets its own entry.
	other := discover.Endpoint{Protocol: "imap", Host: "imap.example.net", Port: 993, Security: discover.SecurityTLS, Auth: []string{"PLAIN"}, Username: discover.UsernameAddress}
	in, err := inputsOf(s2.Hostname(), append([]discover.Endpoint{other}, s2.Endpoints()...))
	if err != nil {
		t.Fatal(err)
	}
	if in.key() == sg2.inputs.key() && sg2.inputsKey != "" {
		t.Error("the cache key does not change with the incoming server")
	}

	// A Signer with another certificate starts afresh.
	sg3, _, s3, _, _ := ecdsaSigner(t)
	sg3.Keep(sg)
	if got, err := sg3.Sign(s3, fred); err != nil || bytes.Equal(got, results[0]) {
		t.Errorf("Sign after Keep with another certificate = %v, same bytes %v; want a new signature", err, bytes.Equal(got, results[0]))
	}

	// Errors are not cached.
	_, s4 := corpusSnapshot(t, "debian12-packages-default")
	sg4, err := NewSigner(hostfsMust(t, "debian12-packages-default"), s4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sg4.Sign(s4, fred); !errors.Is(err, ErrNoServer) {
		t.Errorf("Sign on a host without submission: %v, want ErrNoServer", err)
	}
	if got := sg4.getCache().len(); got != 0 {
		t.Errorf("cache holds %d entries after an error", got)
	}
}

func TestSignCacheBounds(t *testing.T) {
	c := NewCache(1 << 20)
	v := make([]byte, 3000)
	for i := range 2000 {
		c.do(cacheKey{inputs: "k", address: render.Address{Local: fmt.Sprint("u", i), Domain: "example.net"}}, func() ([]byte, error) { return v, nil })
		if c.size > c.maxBytes {
			t.Fatalf("after %d entries the cache holds %d bytes, over its bound %d", i+1, c.size, c.maxBytes)
		}
	}
	if n := c.len(); n < 300 || n > 1<<20/3000 {
		t.Errorf("cache holds %d entries of 3000 bytes in 1 MiB", n)
	}
	big := make([]byte, 600<<10)
	c.do(cacheKey{inputs: "big1"}, func() ([]byte, error) { return big, nil })
	c.do(cacheKey{inputs: "big2"}, func() ([]byte, error) { return big, nil })
	if c.size > c.maxBytes {
		t.Errorf("cache size = %d, over the bound %d", c.size, c.maxBytes)
	}
	if _, ok := c.get(cacheKey{inputs: "big2"}); !ok {
		t.Error("the newest entry was evicted")
	}
	c.do(cacheKey{inputs: "huge"}, func() ([]byte, error) { return make([]byte, 2<<20), nil })
	if _, ok := c.get(cacheKey{inputs: "huge"}); ok || c.size > c.maxBytes {
		t.Error("an entry over the whole bound was cached")
	}
}

// TestSignShowsNoRequestText: what a signed profile shows of the request
// is a plain address, nothing else.
func TestSignShowsNoRequestText(t *testing.T) {
	sg, _, s, _, _ := ecdsaSigner(t)
	for _, tt := range []struct {
		local       string
		withAddress bool
	}{
		{"fred", true},
		{"fred.o'hara+tag", true},
		{"jörg", true},
		{`"IT security update required"`, false},
		{`"fred"`, false},
		{"fred\u202egpj.exe", false}, // ParseAddress refuses it; Sign must not rely on that
		{"a..b", false},
		{"fred\u00a0", false},
	} {
		t.Run(tt.local, func(t *testing.T) {
			a := render.Address{Local: tt.local, Domain: "example.net"}
			der, err := sg.Sign(s, a)
			if err != nil {
				t.Fatal(err)
			}
			content := signedContent(t, der)
			top, mail := mailPayload(t, content)
			if tt.withAddress && mail["EmailAddress"] != tt.local+"@example.net" {
				t.Errorf("EmailAddress = %q, want %q", mail["EmailAddress"], tt.local+"@example.net")
			}
			if needle := strings.Trim(tt.local, `"`); !tt.withAddress && bytes.Contains(content, []byte(needle)) {
				t.Errorf("the profile carries %q:\n%s", needle, content)
			}
			_, hasAddr := mail["EmailAddress"]
			_, hasUser := mail["IncomingMailServerUsername"]
			if hasAddr != tt.withAddress || hasUser != tt.withAddress {
				t.Errorf("EmailAddress present %v, IncomingMailServerUsername present %v; want %v", hasAddr, hasUser, tt.withAddress)
			}
			if _, ok := mail["EmailAccountName"]; ok {
				t.Error("a signed profile has a display name")
			}
			if !tt.withAddress && top["PayloadDisplayName"] != "Mail account at example.net" {
				t.Errorf("domain profile's PayloadDisplayName = %q", top["PayloadDisplayName"])
			}
		})
	}
}

// TestSignBudget: signatures run one at a time, and a flood of addresses
// beyond the budget gets the domain's profile, signed once.
func TestSignBudget(t *testing.T) {
	sg, _, s, _, _ := ecdsaSigner(t)
	now := time.Now()
	lim := newLimiter(1, 1000, 0, 3, 0, 1) // no refill: 3 addresses, 1 domain profile
	lim.now = func() time.Time { return now }
	sg.limit = lim

	const n = 40
	var wg sync.WaitGroup
	withAddr := make([]bool, n)
	for i := range n {
		wg.Go(func() {
			local := fmt.Sprint("user", i)
			der, err := sg.Sign(s, render.Address{Local: local, Domain: "example.net"})
			if err != nil {
				t.Errorf("Sign %d: %v", i, err)
				return
			}
			withAddr[i] = bytes.Contains(signedContent(t, der), []byte(local+"@"))
		})
	}
	wg.Wait()
	addressed := 0
	for _, w := range withAddr {
		if w {
			addressed++
		}
	}
	if addressed != 3 {
		t.Errorf("%d of %d profiles carry their address, want the budget's 3", addressed, n)
	}
	if got := lim.signed.Load(); got != 4 {
		t.Errorf("%d signatures, want 4 (3 addresses and the domain's profile)", got)
	}
	if got := lim.peak.Load(); got != 1 {
		t.Errorf("up to %d signatures at once, want 1", got)
	}
	// Another domain's profile is over the domain budget: ErrBusy.
	if _, err := sg.Sign(s, render.Address{Local: "x", Domain: "example.info"}); !errors.Is(err, ErrBusy) {
		t.Errorf("Sign over both budgets = %v, want ErrBusy", err)
	}
	// A refilled budget signs again (refilling itself is
	// internal/tokenbucket's test).
	lim.address, lim.domain = tokenbucket.New(1, 1), tokenbucket.New(1, 1)
	now = now.Add(2 * time.Second)
	if der, err := sg.Sign(s, render.Address{Local: "late", Domain: "example.info"}); err != nil || !bytes.Contains(signedContent(t, der), []byte("late@example.info")) {
		t.Errorf("Sign after the budget refilled: %v", err)
	}
}

// TestSignWaiters: beyond MaxSignWaiting requests waiting for the signing
// slot, the next is refused at once rather than queued.
func TestSignWaiters(t *testing.T) {
	l := newLimiter(1, 2, 1e6, 1e6, 1e6, 1e6)
	if !l.acquire(true) {
		t.Fatal("first acquire refused")
	}
	got := make(chan bool, 2)
	for range 2 {
		go func() { got <- l.acquire(true) }()
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		l.mu.Lock()
		w := l.waiting
		l.mu.Unlock()
		if w == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiting, want 2", w)
		}
	}
	if l.acquire(true) {
		t.Error("a third waiter was queued")
	}
	l.release()
	for range 2 {
		if !<-got {
			t.Error("a waiter was refused")
		}
		l.release()
	}
}

func TestPlainLocal(t *testing.T) {
	for _, tt := range []struct {
		local string
		want  bool
	}{
		{"fred", true}, {"fred.flintstone", true}, {"o'hara+tag", true}, {"{x}|~", true}, {"jörg", true}, {"用户", true},
		{"", false}, {".fred", false}, {"fred.", false}, {"a..b", false}, {`"fred"`, false}, {"a b", false},
		{"a\u202eb", false}, {"a\u200bb", false}, {"a\u2028b", false}, {"a\u00a0b", false}, {"a\x00b", false},
		{"a\ue000b", false}, {"a\xffb", false}, {"a(b)", false}, {"a@b", false}, {"a,b", false},
	} {
		if got := plainLocal(tt.local); got != tt.want {
			t.Errorf("plainLocal(%q) = %v, want %v", tt.local, got, tt.want)
		}
	}
}

// TestDomainProfileGolden: the profile served signed for an address whose
// local part is not plain, or beyond the address budget. The iRedMail
// set's alias domain logs in at its target.
func TestDomainProfileGolden(t *testing.T) {
	for _, tt := range []struct{ set, domain, login string }{
		{"handmade-static-domains", "example.net", ""},
		{"iredmail-mysql-debian12", "alias.example.com", "example.com"},
	} {
		t.Run(tt.set, func(t *testing.T) {
			_, s := corpusSnapshot(t, tt.set)
			in, err := inputsOf(s.Hostname(), s.Endpoints())
			if err != nil {
				t.Fatal(err)
			}
			got, err := in.profile(render.Address{Domain: tt.domain, LoginDomain: tt.login}, "")
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("..", "..", "testdata", "golden", "mobileconfig", tt.set+".domain.mobileconfig")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("domain profile (%s) differs from %s:\n%s", tt.set, golden, got)
			}
		})
	}
}

// TestCacheCountsInputsOnce: the entries of one Signer share its inputs
// string, so the bound counts it once, not once per entry; it is no
// longer counted once its last entry is evicted.
func TestCacheCountsInputsOnce(t *testing.T) {
	c := NewCache(64 << 10)
	shared := strings.Repeat("x", 4000)
	v := make([]byte, 100)
	want := inputsOverhead + len(shared)
	for i := range 100 {
		k := cacheKey{inputs: strings.Clone(shared), address: render.Address{Local: fmt.Sprint("u", i), Domain: "example.net"}}
		c.do(k, func() ([]byte, error) { return v, nil })
		want += k.cost() + len(v)
	}
	if c.len() != 100 || c.Bytes() != want {
		t.Fatalf("100 entries of one Signer: %d entries, %d bytes, want 100 and %d", c.len(), c.Bytes(), want)
	}
	// Another Signer's entries push most of those out (a random entry
	// goes each time): an inputs string is counted while, and only
	// while, entries use it.
	other := strings.Repeat("y", 4000)
	for i := range 1000 {
		c.do(cacheKey{inputs: other, address: render.Address{Local: fmt.Sprint("w", i), Domain: "example.net"}}, func() ([]byte, error) { return v, nil })
	}
	uses := map[string]int{}
	for k := range c.entries {
		uses[k.inputs]++
	}
	for s, r := range c.inputs {
		if r.n != uses[s] || r.n == 0 {
			t.Errorf("inputs %.8q… counted for %d entries, %d use it", s, r.n, uses[s])
		}
	}
	if len(c.inputs) != len(uses) {
		t.Errorf("%d inputs counted, %d in use", len(c.inputs), len(uses))
	}
	sum := 0
	for k, v := range c.entries {
		sum += k.cost() + len(v)
	}
	for s := range c.inputs {
		sum += inputsOverhead + len(s)
	}
	if c.Bytes() != sum || sum > c.maxBytes {
		t.Errorf("cache counts %d bytes, its entries and inputs add up to %d (bound %d)", c.Bytes(), sum, c.maxBytes)
	}
}
