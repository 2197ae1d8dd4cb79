package main

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/mariadbtest"
	"github.com/mailautoconf/mailautoconf/internal/pgtest"
	"github.com/mailautoconf/mailautoconf/internal/postmaptest"
	"github.com/mailautoconf/mailautoconf/internal/slapdtest"
	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/serve"
)

// The fault suite: the daemon, run as systemd runs it, against the
// failures a mail host sees. Each test is bounded (well under 20 s) and
// stops its load by itself; all traffic is over a unix socket.

// staticHost writes mailHost's tree with the domains listed in main.cf
// instead of MySQL.
func staticHost(t *testing.T, dir string) {
	t.Helper()
	mailHost(t, dir, "unused")
	mainCF := filepath.Join(dir, "etc/postfix/main.cf")
	b, err := os.ReadFile(mainCF)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, mainCF, strings.Replace(string(b), "mysql:/etc/postfix/sql/domains.cf", "example.com, example.net", 1))
}

// dial opens a connection to the daemon's http socket.
func (d *runningDaemon) dial() (net.Conn, error) { return net.Dial("unix", d.sock) }

// vmRSS returns a process's resident memory in KiB (VmRSS, or VmHWM).
func vmRSS(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("%s: %q", field, line)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// loadResult counts what a load loop saw.
type loadResult struct {
	total, failed atomic.Int64
	mu            sync.Mutex
	firstFailure  string
}

func (r *loadResult) fail(msg string) {
	r.failed.Add(1)
	r.mu.Lock()
	if r.firstFailure == "" {
		r.firstFailure = msg
	}
	r.mu.Unlock()
}

// load sends GETs for urls round robin from workers goroutines until stop
// is closed, calling check on each answer (nil: any 200 is fine).
func (d *runningDaemon) load(workers int, urls []string, stop <-chan struct{}, check func(code int, body string) error) (*loadResult, *sync.WaitGroup) {
	res := &loadResult{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				u := urls[i%len(urls)]
				r, err := d.client.Get(u)
				res.total.Add(1)
				if err != nil {
					res.fail(fmt.Sprintf("GET %s: %v", u, err))
					continue
				}
				b, _ := io.ReadAll(r.Body)
				r.Body.Close()
				if check != nil {
					if err := check(r.StatusCode, string(b)); err != nil {
						res.fail(fmt.Sprintf("GET %s: %v", u, err))
					}
				} else if r.StatusCode != 200 {
					res.fail(fmt.Sprintf("GET %s: %d %.200s", u, r.StatusCode, b))
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	return res, &wg
}

// A domainServer is a server Postfix's domain table can live in, for the
// restart fault test: MariaDB, PostgreSQL or slapd, with the domains
// example.com, example.net and example.org.
type domainServer struct {
	name string
	// start starts a private server and writes the domain table into the
	// mail host at root; it returns the daemon's flags for reaching the
	// server, and how to stop and start it and add a domain.
	start func(t *testing.T, root string) (flags []string, stop, restart func(), add func(domain string))
}

var domainServers = []domainServer{
	{"mysql", func(t *testing.T, root string) ([]string, func(), func(), func(string)) {
		db := mariadbtest.Start(t)
		dbName := db.NewDatabase(t)
		db.Exec(t, "CREATE TABLE "+dbName+".domain (domain VARCHAR(255) PRIMARY KEY, active TINYINT NOT NULL DEFAULT 1);"+
			"INSERT INTO "+dbName+".domain (domain) VALUES ('example.com'), ('example.net'), ('example.org')")
		db.GrantUser(t, "vmail", "secret", dbName)
		mailHost(t, root, dbName)
		add := func(d string) { db.Exec(t, "INSERT INTO "+dbName+".domain (domain) VALUES ('"+d+"')") }
		return []string{"--mysql-socket", db.Socket()}, func() { db.Stop(t) }, func() { db.Restart(t) }, add
	}},
	{"pgsql", func(t *testing.T, root string) ([]string, func(), func(), func(string)) {
		db := pgtest.Start(t)
		dbName := db.NewDatabase(t)
		db.ExecDB(t, dbName, "CREATE TABLE domain (domain varchar(255) PRIMARY KEY, active smallint NOT NULL DEFAULT 1);"+
			"INSERT INTO domain (domain) VALUES ('example.com'), ('example.net'), ('example.org')")
		db.CreateUser(t, "vmail", "secret")
		db.GrantRead(t, "vmail", dbName)
		mailHost(t, root, dbName)
		useTable(t, root, "pgsql", "hosts = 127.0.0.1:5432\nuser = vmail\npassword = secret\ndbname = "+dbName+"\n"+
			"query = SELECT domain FROM domain WHERE domain='%s' AND active = 1\n")
		add := func(d string) { db.ExecDB(t, dbName, "INSERT INTO domain (domain) VALUES ('"+d+"')") }
		return []string{"--pgsql-host", db.Addr()}, func() { db.Stop(t) }, func() { db.Restart(t) }, add
	}},
	{"ldap", func(t *testing.T, root string) ([]string, func(), func(), func(string)) {
		entry := func(d string) string {
			return "dn: associatedDomain=" + d + ",ou=domains,dc=example,dc=com\nobjectClass: organizationalUnit\n" +
				"objectClass: domainRelatedObject\nou: " + d + "\nassociatedDomain: " + d + "\n"
		}
		ldif := filepath.Join(t.TempDir(), "domains.ldif")
		writeTestFile(t, ldif, "dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: example\n\n"+
			"dn: ou=domains,dc=example,dc=com\nobjectClass: organizationalUnit\nou: domains\n\n"+
			entry("example.com")+"\n"+entry("example.net")+"\n"+entry("example.org"))
		dir := slapdtest.Start(t, slapdtest.Config{LDIF: []string{ldif}})
		mailHost(t, root, "unused")
		useTable(t, root, "ldap", "server_host = ldap://127.0.0.1:389/\nversion = 3\nbind = yes\n"+
			"bind_dn = "+dir.RootDN()+"\nbind_pw = "+dir.RootPW()+"\nsearch_base = ou=domains,dc=example,dc=com\n"+
			"scope = one\nquery_filter = (associatedDomain=%s)\nresult_attribute = associatedDomain\n")
		add := func(d string) { dir.Add(t, entry(d)) }
		return []string{"--ldap-uri", dir.URL()}, func() { dir.Stop(t) }, func() { dir.Start(t) }, add
	}},
}

// useTable makes mailHost's domain table a typ table with the lookup file
// cf.
func useTable(t *testing.T, root, typ, cf string) {
	t.Helper()
	mainCF := filepath.Join(root, "etc/postfix/main.cf")
	b, err := os.ReadFile(mainCF)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, mainCF, strings.Replace(string(b), "mysql:/etc/postfix/sql/domains.cf", typ+":/etc/postfix/sql/domains.cf", 1))
	writeTestFile(t, filepath.Join(root, "etc/postfix/sql/domains.cf"), cf)
}

// TestFaultDatabaseRestart stops the domain table's server (MariaDB,
// PostgreSQL, slapd) under load and starts it again: the known domains are
// answered all along (from the snapshot, and from the domains carried
// forward by the refreshes during the outage), and once the server is back
// a domain added to it is served.
func TestFaultDatabaseRestart(t *testing.T) {
	testtool.Need(t, "systemd-socket-activate")
	bin := buildDaemon(t)
	for _, server := range domainServers {
		t.Run(server.name, func(t *testing.T) {
			start := time.Now()
			root := t.TempDir()
			flags, stopServer, restartServer, addDomain := server.start(t, root)
			d := startDaemon(t, bin, root, append(flags, "--refresh", "200ms")...)
			if code, body := d.get(t, autoconfigURL); code != 200 {
				t.Fatalf("first request: %d\n%s", code, body)
			}
			_, next := d.notify.wait(t, 0, 5*time.Second, "READY=1", "STATUS=serving 3 domains")

			var urls []string
			for _, dom := range []string{"example.com", "example.net", "example.org"} {
				urls = append(urls, "http://autoconfig."+dom+"/mail/config-v1.1.xml?emailaddress=fred%40"+dom,
					"http://autodiscover."+dom+"/autodiscover/autodiscover.json/v1.0/fred@"+dom+"?Protocol=AutodiscoverV1")
			}
			stop := make(chan struct{})
			res, wg := d.load(4, urls, stop, nil)
			time.Sleep(500 * time.Millisecond)
			stopServer()
			_, next = d.notify.wait(t, next, 5*time.Second, "STATUS=domain table unreachable (", "serving 3 known domains")
			time.Sleep(500 * time.Millisecond) // more refreshes while it is down
			restartServer()
			_, next = d.notify.wait(t, next, 5*time.Second, "STATUS=serving 3 domains")
			time.Sleep(500 * time.Millisecond)
			close(stop)
			wg.Wait()
			if n := res.failed.Load(); n > 0 {
				t.Errorf("%d of %d requests failed; first: %s", n, res.total.Load(), res.firstFailure)
			}
			if res.total.Load() < 200 {
				t.Errorf("only %d requests were made", res.total.Load())
			}
			// The server is used again: a domain added now is found.
			addDomain("new.example")
			if code, body := d.get(t, "http://autoconfig.new.example/mail/config-v1.1.xml?emailaddress=a%40new.example"); code != 200 {
				t.Errorf("a domain added after the restart: %d\n%s", code, body)
			}
			t.Logf("%d requests, %d failed, in %v", res.total.Load(), res.failed.Load(), time.Since(start).Round(time.Millisecond))
		})
	}
}

var portRE = regexp.MustCompile(`<port>(\d+)</port>`)

// ports lists the ports an autoconfig document names, sorted.
func ports(body string) string {
	var ps []string
	for _, m := range portRE.FindAllStringSubmatch(body, -1) {
		ps = append(ps, m[1])
	}
	slices.Sort(ps)
	return strings.Join(slices.Compact(ps), ",")
}

// TestFaultTruncatedConfig writes master.cf half-way (as a crashed editor
// or a full disk would leave it), waits, and then completes it: clients
// get the old answers until the complete file parses, then the new ones,
// and never a mix of the two.
func TestFaultTruncatedConfig(t *testing.T) {
	testtool.Need(t, "systemd-socket-activate")
	start := time.Now()
	bin := buildDaemon(t)
	root := t.TempDir()
	staticHost(t, root)
	d := startDaemon(t, bin, root)
	const oldPorts, newPorts = "465,587,993", "2465,2587,993"
	if code, body := d.get(t, autoconfigURL); code != 200 || ports(body) != oldPorts {
		t.Fatalf("first request: %d ports %q\n%s", code, ports(body), body)
	}
	_, next := d.notify.wait(t, 0, 5*time.Second, "READY=1")

	masterCF := filepath.Join(root, "etc/postfix/master.cf")
	old, err := os.ReadFile(masterCF)
	if err != nil {
		t.Fatal(err)
	}
	complete := strings.Replace(strings.Replace(string(old), "submission inet", "2587 inet", 1), "smtps     inet", "2465     inet", 1)
	// Cut inside the 2465 line: the submission change is in, the smtps
	// one half-written.
	cut := strings.Index(complete, "2465     inet") + len("2465     inet  n")

	seen := map[string]int{}
	var seenMu sync.Mutex
	stop := make(chan struct{})
	res, wg := d.load(3, []string{autoconfigURL}, stop, func(code int, body string) error {
		p := ports(body)
		seenMu.Lock()
		seen[p]++
		seenMu.Unlock()
		if code != 200 || (p != oldPorts && p != newPorts) {
			return fmt.Errorf("%d with ports %q: neither the old (%s) nor the new (%s) configuration", code, p, oldPorts, newPorts)
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	if err := os.WriteFile(masterCF, []byte(complete[:cut]), 0o644); err != nil { // in place, not renamed
		t.Fatal(err)
	}
	msg, next := d.notify.wait(t, next, 5*time.Second, "STATUS=reload failed, serving previous snapshot: ")
	if !strings.Contains(msg, "/etc/postfix/master.cf:") {
		t.Errorf("the failed reload does not name master.cf:line: %q", msg)
	}
	time.Sleep(500 * time.Millisecond)
	if code, body := d.get(t, autoconfigURL); code != 200 || ports(body) != oldPorts {
		t.Errorf("with master.cf half-written: ports %q, want the old %s", ports(body), oldPorts)
	}
	if err := os.WriteFile(masterCF, []byte(complete), 0o644); err != nil {
		t.Fatal(err)
	}
	d.notify.wait(t, next, 5*time.Second, "READY=1", "STATUS=serving 2 domains")
	d.eventually(t, autoconfigURL, 3*time.Second, "the completed master.cf served", func(code int, body string) bool {
		return code == 200 && ports(body) == newPorts
	})
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if n := res.failed.Load(); n > 0 {
		t.Errorf("%d of %d answers were wrong; first: %s", n, res.total.Load(), res.firstFailure)
	}
	if seen[oldPorts] == 0 || seen[newPorts] == 0 {
		t.Errorf("answers seen: %v, want both configurations", seen)
	}
	t.Logf("answers: %v in %v", seen, time.Since(start).Round(time.Millisecond))
}

// slowConns is how many idle and slow-loris connections
// TestFaultSlowClients opens, and maxSlowRSS the daemon's resident memory
// it allows meanwhile (README.md, "Performance": some 10 KiB a connection
// on top of the daemon's own 15 MiB; 60 MiB measured for 5,000).
const (
	slowConns  = 5000
	maxSlowRSS = 128 << 10 // KiB
)

// TestFaultSlowClients opens 5,000 connections that send nothing or
// dribble a header a byte at a time: the daemon's memory stays bounded,
// new clients are served meanwhile, and the server drops the slow ones
// after serve.ReadHeaderTimeout.
func TestFaultSlowClients(t *testing.T) {
	testtool.Need(t, "systemd-socket-activate")
	start := time.Now()
	bin := buildDaemon(t)
	root := t.TempDir()
	staticHost(t, root)
	d := startDaemon(t, bin, root)
	if code, body := d.get(t, autoconfigURL); code != 200 {
		t.Fatalf("first request: %d\n%s", code, body)
	}
	pid := d.cmd.Process.Pid // systemd-socket-activate execs the daemon
	before := vmRSS(t, pid, "VmRSS")

	var conns []net.Conn
	closed := make(chan time.Duration, slowConns)
	opened := time.Now()
	for i := range slowConns {
		c, err := d.dial()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		go func() { // notes when the server hangs up
			io.Copy(io.Discard, c)
			closed <- time.Since(opened)
		}()
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	t.Logf("%d connections open after %v", slowConns, time.Since(opened).Round(time.Millisecond))

	// Half of them dribble a header, a byte every 100 ms each.
	stop := make(chan struct{})
	var dribble sync.WaitGroup
	dribble.Add(1)
	go func() {
		defer dribble.Done()
		header := "GET /mail/config-v1.1.xml HTTP/1.1\r\nHost: autoconfig.example.com\r\nX-Slow: " + strings.Repeat("a", 1000)
		for i := 0; ; i++ {
			for j := 0; j < len(conns); j += 2 {
				conns[j].SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
				conns[j].Write([]byte{header[i%len(header)]})
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()

	// New clients are served meanwhile.
	var worst time.Duration
	for range 20 {
		t0 := time.Now()
		if code, body := d.get(t, autoconfigURL); code != 200 {
			t.Errorf("a new client during the storm: %d\n%s", code, body)
		}
		worst = max(worst, time.Since(t0))
		time.Sleep(50 * time.Millisecond)
	}
	during := vmRSS(t, pid, "VmRSS")
	if worst > time.Second {
		t.Errorf("a new client waited %v during the storm", worst)
	}
	if during > maxSlowRSS {
		t.Errorf("daemon RSS %d KiB with %d slow connections, want at most %d KiB", during, slowConns, maxSlowRSS)
	}

	// The server hangs up on all of them once the header timeout passes.
	deadline := time.After(serve.ReadHeaderTimeout + 3*time.Second)
	var n int
	var last time.Duration
wait:
	for n < slowConns {
		select {
		case d := <-closed:
			n++
			last = d
		case <-deadline:
			break wait
		}
	}
	close(stop)
	dribble.Wait()
	if n < slowConns {
		t.Errorf("%d of %d slow connections still open %v after they were opened", slowConns-n, slowConns, serve.ReadHeaderTimeout+3*time.Second)
	}
	if code, _ := d.get(t, autoconfigURL); code != 200 {
		t.Errorf("after the storm: %d", code)
	}
	t.Logf("RSS %d KiB before, %d KiB with %d slow connections (%.1f KiB each), HWM %d KiB; slowest new client %v; all closed by the server after %v; test %v",
		before, during, slowConns, float64(during-before)/slowConns, vmRSS(t, pid, "VmHWM"), worst.Round(time.Millisecond),
		last.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// TestFaultUnknownDomainFlood asks for random unhosted domains as fast as
// it can: the lookups the database sees stay within the documented rate
// limit (serve.DefaultMissBurst, then serve.DefaultMissRate a second),
// counted by MariaDB itself (Com_select).
func TestFaultUnknownDomainFlood(t *testing.T) {
	testtool.Need(t, "systemd-socket-activate")
	start := time.Now()
	bin := buildDaemon(t)
	db := mariadbtest.Start(t) // private: Com_select counts only this test
	dbName := db.NewDatabase(t)
	db.Exec(t, "CREATE TABLE "+dbName+".domain (domain VARCHAR(255) PRIMARY KEY, active TINYINT NOT NULL DEFAULT 1);"+
		"INSERT INTO "+dbName+".domain (domain) VALUES ('example.com')")
	db.GrantUser(t, "vmail", "secret", dbName)
	root := t.TempDir()
	mailHost(t, root, dbName)
	d := startDaemon(t, bin, root, "--mysql-socket", db.Socket(), "--refresh", "0")
	if code, body := d.get(t, autoconfigURL); code != 200 {
		t.Fatalf("first request: %d\n%s", code, body)
	}
	selects := func() int {
		rows := db.Query(t, "SHOW GLOBAL STATUS LIKE 'Com_select'")
		n, err := strconv.Atoi(rows[0][1])
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := selects()
	floodStart := time.Now()
	var codes sync.Map
	stop := make(chan struct{})
	var urls []string
	for range 200 {
		urls = append(urls, fmt.Sprintf("http://autoconfig.example.com/mail/config-v1.1.xml?emailaddress=a%%40r%d.flood.example", rand.Uint64()))
	}
	res, wg := d.load(8, urls, stop, func(code int, body string) error {
		v, _ := codes.LoadOrStore(code, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
		if code != 404 && code != 503 {
			return fmt.Errorf("%d, want 404 or 503", code)
		}
		return nil
	})
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	elapsed := time.Since(floodStart)
	after := selects()
	// The bucket starts full (the burst) and refills at the rate; the
	// counting query is a SHOW, not a SELECT. Slack of 2 for the clock
	// edges of the measured interval.
	allowed := serve.DefaultMissBurst + int(elapsed.Seconds()*serve.DefaultMissRate) + 2
	if got := after - before; got > allowed {
		t.Errorf("%d database lookups for %d requests in %v, want at most %d", got, res.total.Load(), elapsed.Round(time.Millisecond), allowed)
	}
	if n := res.failed.Load(); n > 0 {
		t.Errorf("%d answers were neither 404 nor 503; first: %s", n, res.firstFailure)
	}
	if code, body := d.get(t, autoconfigURL+"?emailaddress=a%40example.com"); code != 200 {
		t.Errorf("a hosted domain after the flood: %d\n%s", code, body)
	}
	var summary []string
	codes.Range(func(k, v any) bool {
		summary = append(summary, fmt.Sprintf("%v×%d", v.(*atomic.Int64).Load(), k))
		return true
	})
	t.Logf("%d requests (%s) in %v: %d database lookups (limit %d); test %v", res.total.Load(), strings.Join(summary, ", "),
		elapsed.Round(time.Millisecond), after-before, allowed, time.Since(start).Round(time.Millisecond))
}

// unlistedHost starts the daemon on a mail host whose domain table holds
// hostedDomain but whose lookup query (the key inside SUBSTRING_INDEX()) cannot be turned into a
// listing: the snapshot lists no domain, and every request is answered
// by a per-domain lookup. It uses a private MariaDB, so that Com_select
// counts only this test's lookups, and returns it with the daemon.
func unlistedHost(t *testing.T) (*runningDaemon, *mariadbtest.Server) {
	t.Helper()
	bin := buildDaemon(t)
	db := mariadbtest.Start(t)
	dbName := db.NewDatabase(t)
	db.Exec(t, "CREATE TABLE "+dbName+".domain (domain VARCHAR(255) PRIMARY KEY, active TINYINT NOT NULL DEFAULT 1);"+
		"INSERT INTO "+dbName+".domain (domain) VALUES ('"+hostedDomain+"')")
	db.GrantUser(t, "vmail", "secret", dbName)
	root := t.TempDir()
	mailHost(t, root, dbName)
	writeTestFile(t, filepath.Join(root, "etc/postfix/sql/domains.cf"), "user = vmail\npassword = secret\nhosts = localhost\ndbname = "+dbName+"\n"+
		"query = SELECT domain FROM domain WHERE domain = SUBSTRING_INDEX('%s', '@', -1) AND active = 1\n")
	d := startDaemon(t, bin, root, "--mysql-socket", db.Socket(), "--refresh", "0")
	// The first request starts the daemon; it asks for a name that is not
	// hosted, so that the hosted domain is still unknown to it.
	if code, body := d.get(t, "http://autoconfig.unhosted.example/mail/config-v1.1.xml"); code != 404 {
		t.Fatalf("first request: %d, want 404\n%s", code, body)
	}
	d.notify.wait(t, 0, 5*time.Second, "READY=1", "STATUS=serving 0 domains")
	return d, db
}

// hostedDomain is the one domain unlistedHost's database hosts.
const hostedDomain = "hosted.example"

// comSelect returns how many SELECTs the server has run (the counting
// query itself is a SHOW).
func comSelect(t *testing.T, db *mariadbtest.Server) int {
	t.Helper()
	rows := db.Query(t, "SHOW GLOBAL STATUS LIKE 'Com_select'")
	n, err := strconv.Atoi(rows[0][1])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// codeCount counts answers by status code.
type codeCount struct {
	mu sync.Mutex
	n  map[int]int
}

func (c *codeCount) add(code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[int]int{}
	}
	c.n[code]++
}

func (c *codeCount) get(code int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[code]
}

func (c *codeCount) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for code, n := range c.n {
		out = append(out, fmt.Sprintf("%d×%d", n, code))
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// TestFaultHostedDomainBurst asks 400 times for a hosted domain that only
// a per-domain lookup finds, from 8 clients at once: every answer is a
// 200, and the database is asked once (the first requests share one
// lookup, the others are answered from what it found).
func TestFaultHostedDomainBurst(t *testing.T) {
	testtool.Need(t, "systemd-socket-activate")
	start := time.Now()
	d, db := unlistedHost(t)
	const requests, clients = 400, 8
	url := "http://autoconfig." + hostedDomain + "/mail/config-v1.1.xml?emailaddress=fred%40" + hostedDomain
	before := comSelect(t, db)
	var codes codeCount
	var sent atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sent.Add(1) <= requests {
				r, err := d.client.Get(url)
				if err != nil {
					codes.add(0)
					continue
				}
				io.Copy(io.Discard, r.Body)
				r.Body.Close()
				codes.add(r.StatusCode)
			}
		}()
	}
	wg.Wait()
	lookups := comSelect(t, db) - before
	if n := codes.get(200); n != requests {
		t.Errorf("%d requests for %s from %d clients: %s; want %d×200", requests, hostedDomain, clients, &codes, requests)
	}
	if lookups > 1 {
		t.Errorf("%d database lookups for one hosted domain, want 1", lookups)
	}
	t.Logf("%d requests from %d clients: %s; %d database lookups; test %v", requests, clients, &codes, lookups,
		time.Since(start).Round(time.Millisecond))
}

// TestFaultHostedDomainUnderFlood asks for about 100 random unhosted
// domains a second for 3 s while another client asks for a hosted domain
// that only a per-domain lookup finds, every 20 ms from the flood's first
// second on: the hosted domain is answered (at most its very first
// request is refused: a name never seen waits for the budget of new names,
// which the flood has used up; asked again, it draws on the budget kept
// for names asked again), and the database sees no more lookups than the
// documented bound (serve.DefaultMissBurst, then serve.DefaultMissRate a
// second, plus the hosted domain's one).
func TestFaultHostedDomainUnderFlood(t *testing.T) {
	testtool.Need(t, "systemd-socket-activate")
	start := time.Now()
	d, db := unlistedHost(t)
	const floodRate, floodFor, flooders = 100, 3 * time.Second, 4
	before := comSelect(t, db)
	floodStart := time.Now()

	// The flood: one name every 10 ms, sent by whichever of 4 clients is free.
	names := make(chan string)
	go func() {
		defer close(names)
		tick := time.NewTicker(time.Second / floodRate)
		defer tick.Stop()
		for range int(floodFor.Seconds() * floodRate) {
			<-tick.C
			names <- fmt.Sprintf("r%d.flood.example", rand.Uint64())
		}
	}()
	var flood codeCount
	var wg sync.WaitGroup
	for range flooders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range names {
				r, err := d.client.Get("http://autoconfig." + n + "/mail/config-v1.1.xml?emailaddress=a%40" + n)
				if err != nil {
					flood.add(0)
					continue
				}
				io.Copy(io.Discard, r.Body)
				r.Body.Close()
				flood.add(r.StatusCode)
			}
		}()
	}

	// The hosted domain, from the flood's first second to its end.
	time.Sleep(time.Second)
	url := "http://autoconfig." + hostedDomain + "/mail/config-v1.1.xml?emailaddress=fred%40" + hostedDomain
	var hosted codeCount
	var answers []int
	for time.Since(floodStart) < floodFor {
		code, _ := d.get(t, url)
		hosted.add(code)
		answers = append(answers, code)
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	elapsed := time.Since(floodStart)
	lookups := comSelect(t, db) - before

	refused := hosted.get(503)
	if hosted.get(200)+refused != len(answers) || refused > 1 || (refused == 1 && answers[0] != 503) {
		t.Errorf("%s during the flood: %s (answers in order: %v); want 200s, at most the first one 503", hostedDomain, &hosted, answers)
	}
	if n := flood.get(404) + flood.get(503); n != int(floodFor.Seconds()*floodRate) {
		t.Errorf("flood answers: %s; want only 404 and 503", &flood)
	}
	if flood.get(503) == 0 {
		t.Errorf("flood answers: %s; no lookup refused: the flood did not reach the limit it tests", &flood)
	}
	// The bound of the unknown names' lookups, the hosted domain's one, and
	// a slack of 2 for the clock edges of the measured interval.
	allowed := serve.DefaultMissBurst + int(elapsed.Seconds()*serve.DefaultMissRate) + 1 + 2
	if lookups > allowed {
		t.Errorf("%d database lookups in %v, want at most %d", lookups, elapsed.Round(time.Millisecond), allowed)
	}
	t.Logf("flood: %s; %s: %s; %d database lookups (limit %d) in %v; test %v", &flood, hostedDomain, &hosted,
		lookups, allowed, elapsed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// brokenDovecot is dovecotConf with a syntax error at its end: a section
// that is never closed.
const brokenDovecot = dovecotConf + "service imap {\n"

// poxRequestBody is Outlook's Autodiscover request for alice@example.com.
const poxRequestBody = `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
<Request><EMailAddress>alice@example.com</EMailAddress>
<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
</Request></Autodiscover>`

// interruptDaemon stops d as systemctl stop does and waits for a clean
// exit.
func interruptDaemon(t *testing.T, d *runningDaemon) {
	t.Helper()
	if err := d.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
		if d.err != nil {
			t.Errorf("exit: %v", d.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit within 10 s of SIGINT")
	}
}

// firstDaemonLine returns the daemon's first log line (not
// systemd-socket-activate's).
func firstDaemonLine(log string) string {
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "msg=") {
			return line
		}
	}
	return ""
}

// TestFaultBrokenConfigRestart: a daemon serving a host keeps the last good
// snapshot in its state directory (written once: refreshes that change
// nothing leave the file alone). dovecot.conf then gets a syntax error and
// the daemon is restarted, as systemctl restart or an upgrade's postinst
// does: the new one answers its first request at once with the previous
// domains, says READY=1 with the error (file:line) in STATUS, signs
// profiles, and publishes the fixed configuration within the watcher's
// delay once dovecot.conf is repaired.
func TestFaultBrokenConfigRestart(t *testing.T) {
	testtool.Need(t, "systemd-socket-activate")
	bin := buildDaemon(t)
	start := time.Now()
	root := t.TempDir()
	staticHost(t, root)
	state := t.TempDir()
	saved := filepath.Join(state, "snapshot")
	dovecotPath := filepath.Join(root, "etc/dovecot/dovecot.conf")
	netURL := "http://autoconfig.example.net/mail/config-v1.1.xml"

	d := startDaemon(t, bin, root, "--state-dir", state, "--refresh", "100ms")
	code, before := d.get(t, autoconfigURL)
	if code != 200 || ports(before) != "465,587,993" {
		t.Fatalf("first daemon: %d, ports %q\n%s", code, ports(before), before)
	}
	_, beforeNet := d.get(t, netURL)
	if !d.logged(5*time.Second, "snapshot saved") {
		t.Fatalf("the snapshot was not saved\n%s", d.stderr.String())
	}
	st1, err := os.Stat(saved)
	if err != nil {
		t.Fatal(err)
	}
	if st1.Mode().Perm() != 0o600 {
		t.Errorf("saved snapshot mode %v, want 0600", st1.Mode().Perm())
	}
	time.Sleep(700 * time.Millisecond) // some refreshes that change nothing
	st2, err := os.Stat(saved)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(d.stderr.String(), "snapshot saved"); n != 1 || !os.SameFile(st1, st2) || !st2.ModTime().Equal(st1.ModTime()) {
		t.Errorf("the saved snapshot was rewritten by refreshes that changed nothing (%d saves)", n)
	}

	writeTestFile(t, dovecotPath, brokenDovecot)
	d.notify.wait(t, 0, 5*time.Second, "STATUS=reload failed, serving previous snapshot: ")
	interruptDaemon(t, d)

	// The restart, with dovecot.conf broken.
	d = startDaemon(t, bin, root, "--state-dir", state)
	restartAt := time.Now()
	code, body := d.get(t, autoconfigURL)
	firstAnswer := time.Since(restartAt)
	if code != 200 || body != before {
		t.Errorf("first answer after the restart: %d, want the previous 200 answer:\n%s", code, body)
	}
	if code, body := d.get(t, netURL); code != 200 || body != beforeNet {
		t.Errorf("example.net after the restart: %d\n%s", code, body)
	}
	if code, _ := d.get(t, "http://autoconfig.example.org/mail/config-v1.1.xml"); code != 404 {
		t.Errorf("an unknown domain after the restart: %d, want 404", code)
	}
	msg, next := d.notify.wait(t, 0, 5*time.Second, "READY=1", "STATUS=configuration error, serving the snapshot saved ")
	if !strings.Contains(msg, "/etc/dovecot/dovecot.conf:") || !strings.Contains(msg, "(2 domains)") || !strings.Contains(msg, "(mailautoconf ") {
		t.Errorf("STATUS does not name dovecot.conf:line, the saved domains and the version: %q", msg)
	}
	if !d.logged(2*time.Second, "configuration error; serving the saved snapshot", "/etc/dovecot/dovecot.conf:") {
		t.Errorf("the log does not name the error")
	}
	if first := firstDaemonLine(d.stderr.String()); !strings.Contains(first, "mailautoconf starting") || !strings.Contains(first, "version=") {
		t.Errorf("first log line %q, want the version", first)
	}
	d.profileSigner(t) // signed from the saved snapshot's certificate

	// The fix (with another IMAP port, to tell the new snapshot apart).
	fixAt := time.Now()
	writeTestFile(t, dovecotPath, strings.Replace(dovecotConf, "port = 993", "port = 9993", 1))
	d.notify.wait(t, next, 5*time.Second, "READY=1", "STATUS=serving 2 domains")
	d.eventually(t, autoconfigURL, 3*time.Second, "the fixed configuration served", func(code int, body string) bool {
		return code == 200 && ports(body) == "465,587,9993"
	})
	fixed := time.Since(fixAt)
	if !d.logged(3*time.Second, "configuration fixed: snapshot published", "snapshot saved") {
		t.Errorf("the fix was not logged or not saved")
	}
	if b, err := os.ReadFile(saved); err != nil || !strings.Contains(string(b), `"port":9993`) {
		t.Errorf("the saved snapshot is not the fixed one (%v)", err)
	}
	select {
	case <-d.done:
		t.Errorf("the daemon exited: %v", d.err)
	default:
	}
	t.Logf("restart with a broken dovecot.conf: first answer %d (%d bytes, ports %s, the saved snapshot) %v after the request that started the daemon; fix served %v after the write; test %v",
		code, len(body), ports(body), firstAnswer.Round(time.Microsecond), fixed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// TestFaultBrokenConfigNoSaved: a start with a broken dovecot.conf and no
// usable saved snapshot (none, or a damaged one) still starts: READY=1
// with the error in STATUS, every request answered at once with 503 and
// Retry-After (Autodiscover with its POX error document), and the fixed
// configuration served within the watcher's delay.
func TestFaultBrokenConfigNoSaved(t *testing.T) {
	testtool.Need(t, "systemd-socket-activate")
	bin := buildDaemon(t)
	for _, tc := range []struct{ name, saved, status string }{
		{"none", "", "STATUS=configuration error, no saved snapshot, answering 503: "},
		{"damaged", "mailautoconf snapshot 1\n{\"saved\":\"2025-", "STATUS=configuration error, saved snapshot damaged ("},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			staticHost(t, root)
			dovecotPath := filepath.Join(root, "etc/dovecot/dovecot.conf")
			writeTestFile(t, dovecotPath, brokenDovecot)
			state := t.TempDir()
			if tc.saved != "" {
				writeTestFile(t, filepath.Join(state, "snapshot"), tc.saved)
			}
			d := startDaemon(t, bin, root, "--state-dir", state)
			startAt := time.Now()
			res, err := d.client.Get(autoconfigURL)
			if err != nil {
				t.Fatalf("first request: %v\n%s", err, d.stderr.String())
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			firstAnswer := time.Since(startAt)
			if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" {
				t.Errorf("first answer: %d, Retry-After %q; want 503 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
			}
			res, err = d.client.Post("http://autodiscover.example.com/autodiscover/autodiscover.xml", "text/xml", strings.NewReader(poxRequestBody))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "<ErrorCode>603</ErrorCode>") {
				t.Errorf("Autodiscover: %d, Retry-After %q, want 503 with the POX error document:\n%s", res.StatusCode, res.Header.Get("Retry-After"), b)
			}
			if code, body := d.get(t, "http://autoconfig.example.com/"); code != 503 {
				t.Errorf("settings page: %d\n%s", code, body)
			}
			msg, next := d.notify.wait(t, 0, 5*time.Second, "READY=1", tc.status)
			if !strings.Contains(msg, "/etc/dovecot/dovecot.conf:") {
				t.Errorf("STATUS does not name dovecot.conf:line: %q", msg)
			}
			if tc.saved != "" && !d.logged(2*time.Second, "cannot use the saved snapshot") {
				t.Errorf("no warning about the damaged saved snapshot")
			}

			fixAt := time.Now()
			writeTestFile(t, dovecotPath, dovecotConf)
			d.notify.wait(t, next, 5*time.Second, "READY=1", "STATUS=serving 2 domains")
			d.eventually(t, autoconfigURL, 3*time.Second, "the fixed configuration served", func(code int, body string) bool {
				return code == 200 && ports(body) == "465,587,993"
			})
			fixed := time.Since(fixAt)
			if !d.logged(3*time.Second, "snapshot saved") {
				t.Errorf("the fixed configuration's snapshot was not saved")
			}
			if b, err := os.ReadFile(filepath.Join(state, "snapshot")); err != nil || !strings.HasPrefix(string(b), "mailautoconf snapshot 1\n") {
				t.Errorf("saved snapshot after the fix: %v", err)
			}
			t.Logf("no usable saved snapshot (%s): first answer 503 %v after the request that started the daemon; fix served %v after the write",
				tc.name, firstAnswer.Round(time.Microsecond), fixed.Round(time.Millisecond))
		})
	}
}

// TestFaultDatabaseDownAtStart: a daemon that starts while the domain
// table's server is down (a reboot where MariaDB comes up late, a restart
// during an outage) serves the domains the saved snapshot had from that
// table, as a rebuild during an outage carries them forward, instead of
// forgetting them until the server is back.
func TestFaultDatabaseDownAtStart(t *testing.T) {
	testtool.Need(t, "systemd-socket-activate")
	bin := buildDaemon(t)
	server := domainServers[0]
	root := t.TempDir()
	state := t.TempDir()
	flags, stopServer, restartServer, _ := server.start(t, root)
	args := append(flags, "--state-dir", state)
	d := startDaemon(t, bin, root, args...)
	code, before := d.get(t, autoconfigURL)
	if code != 200 {
		t.Fatalf("first daemon: %d\n%s", code, before)
	}
	if !d.logged(5*time.Second, "snapshot saved") {
		t.Fatalf("the snapshot was not saved\n%s", d.stderr.String())
	}
	interruptDaemon(t, d)
	stopServer()

	d = startDaemon(t, bin, root, args...)
	for _, dom := range []string{"example.com", "example.net", "example.org"} {
		if code, body := d.get(t, "http://autoconfig."+dom+"/mail/config-v1.1.xml?emailaddress=fred%40"+dom); code != 200 {
			t.Errorf("%s with the %s server down at start: %d\n%s", dom, server.name, code, body)
		}
	}
	d.notify.wait(t, 0, 5*time.Second, "READY=1", "STATUS=domain table unreachable (", "serving 3 known domains")
	if !d.logged(2*time.Second, "tables unreachable at start") {
		t.Errorf("the log does not say the saved domains are served")
	}
	restartServer()
}

// startAsService starts the daemon under systemd-socket-activate as the
// service user (uid and gid serviceUID), with the supplementary groups
// gids only, and lets that user reach the NOTIFY_SOCKET: as root the test
// could read any file, and a mode would prove nothing.
func startAsService(t *testing.T, bin, root string, gids []int, args ...string) *runningDaemon {
	t.Helper()
	d := startDaemonWrapped(t, testtool.AsUser(t, serviceUID, gids...), bin, root, args...)
	// The daemon starts at the first request, after this.
	for p := filepath.Dir(d.notify.path); len(p) > len(os.TempDir()); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(d.notify.path, 0o666); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestFaultUnreadableTable: the daemon, run as an unprivileged service
// user, serves a host whose virtual_mailbox_domains is a texthash: or
// hash: file of 3 domains. Under load from 4 clients the file becomes
// unreadable to it: chmod 0600 (root's), or (group) the file is
// root:G 0640 and the daemon restarts without G, as after the service
// user was taken out of G. No request fails: the 3 domains are still
// answered, STATUS says the table is unreachable, the log names the file
// with the permission hint. A domain added meanwhile is not known until
// the file is readable again (chmod 0644), then it is served and STATUS
// is back to "serving".
func TestFaultUnreadableTable(t *testing.T) {
	testtool.NeedRoot(t, "a table the service user cannot read")
	testtool.Need(t, "setpriv")
	testtool.Need(t, "systemd-socket-activate")
	bin := buildDaemon(t)
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	const (
		tablePath = "/etc/postfix/vdomains"
		group     = 4242 // a group the service user reads the table through
	)
	for _, tc := range []struct {
		name, typ string
		group     bool // lose the group across a restart, not chmod 0600
	}{
		{"chmod-texthash", "texthash", false},
		{"chmod-hash", "hash", false},
		{"group-texthash", "texthash", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			postmap := ""
			if tc.typ == "hash" {
				postmap = postmaptest.Need(t, "hash")
			}
			start := time.Now()
			root, err := os.MkdirTemp("", "mailautoconf-unreadable-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(root) })
			if err := os.Chmod(root, 0o755); err != nil {
				t.Fatal(err)
			}
			mailHost(t, root, "unused")
			mainCF := filepath.Join(root, "etc/postfix/main.cf")
			b, err := os.ReadFile(mainCF)
			if err != nil {
				t.Fatal(err)
			}
			writeTestFile(t, mainCF, strings.Replace(string(b), "mysql:/etc/postfix/sql/domains.cf", tc.typ+":"+tablePath, 1))
			// The certificate is not what this test is about: let the
			// service user read it.
			archive := filepath.Join(root, "etc/letsencrypt/archive/mail.example.com")
			for _, f := range []string{"fullchain1.pem", "privkey1.pem"} {
				if err := os.Chmod(filepath.Join(archive, f), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			table := filepath.Join(root, tablePath)
			files := []string{table}
			if postmap != "" {
				files = append(files, table+".db")
			}
			// setTable writes the table in place (its owner and mode
			// stay) and compiles it as an admin does.
			setTable := func(domains ...string) {
				t.Helper()
				var text strings.Builder
				for _, dom := range domains {
					text.WriteString(dom + " OK\n")
				}
				if err := os.WriteFile(table, []byte(text.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				if postmap != "" {
					if out, err := exec.Command(postmap, tc.typ+":"+table).CombinedOutput(); err != nil {
						t.Fatalf("postmap: %v\n%s", err, out)
					}
				}
			}
			setMode := func(gid int, mode os.FileMode) {
				t.Helper()
				for _, f := range files {
					if err := errors.Join(os.Chown(f, 0, gid), os.Chmod(f, mode)); err != nil {
						t.Fatal(err)
					}
				}
			}
			setTable("example.com", "example.net", "example.org")

			var d *runningDaemon
			var next int
			if !tc.group {
				setMode(0, 0o644)
				// No refresh timer: the watcher alone must see the
				// file made unreadable and readable again.
				d = startAsService(t, bin, root, nil, "--refresh", "0")
				if code, body := d.get(t, autoconfigURL); code != 200 {
					t.Fatalf("first request: %d\n%s", code, body)
				}
				_, next = d.notify.wait(t, 0, 5*time.Second, "READY=1", "STATUS=serving 3 domains")
			} else {
				// The first daemon reads the table through the group and
				// saves its snapshot; the restarted one has lost the group.
				setMode(group, 0o640)
				state, err := os.MkdirTemp("", "mailautoconf-unreadable-state-")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.RemoveAll(state) })
				if err := os.Chown(state, serviceUID, serviceUID); err != nil {
					t.Fatal(err)
				}
				first := startAsService(t, bin, root, []int{group}, "--state-dir", state)
				if code, body := first.get(t, autoconfigURL); code != 200 {
					t.Fatalf("first daemon, with the group: %d\n%s", code, body)
				}
				first.notify.wait(t, 0, 5*time.Second, "READY=1", "STATUS=serving 3 domains")
				if !first.logged(5*time.Second, "snapshot saved") {
					t.Fatalf("the snapshot was not saved\n%s", first.stderr.String())
				}
				interruptDaemon(t, first)
				d = startAsService(t, bin, root, nil, "--state-dir", state, "--refresh", "200ms")
				restartAt := time.Now()
				if code, body := d.get(t, autoconfigURL); code != 200 {
					t.Fatalf("first request after the restart without the group: %d\n%s", code, body)
				}
				t.Logf("restart without the group: first answer 200 in %v", time.Since(restartAt).Round(time.Millisecond))
			}

			var urls []string
			for _, dom := range []string{"example.com", "example.net", "example.org"} {
				urls = append(urls, "http://autoconfig."+dom+"/mail/config-v1.1.xml?emailaddress=fred%40"+dom,
					"http://autodiscover."+dom+"/autodiscover/autodiscover.json/v1.0/fred@"+dom+"?Protocol=AutodiscoverV1")
			}
			stop := make(chan struct{})
			res, wg := d.load(4, urls, stop, nil)
			var stopOnce sync.Once
			stopLoad := func() {
				stopOnce.Do(func() { close(stop) })
				wg.Wait()
			}
			t.Cleanup(func() { // before the daemon's cleanup: a failure stops the load too
				stopLoad()
				if t.Failed() {
					t.Logf("load: %d requests, %d failed; first: %s", res.total.Load(), res.failed.Load(), res.firstFailure)
				}
			})
			time.Sleep(500 * time.Millisecond)

			lostAt := time.Now()
			if !tc.group {
				setMode(0, 0o600)
			}
			_, next = d.notify.wait(t, next, 5*time.Second, "STATUS=domain table unreachable (", "serving 3 known domains")
			degraded := time.Since(lostAt)
			if !d.logged(2*time.Second, tablePath+": permission denied", "run it with those supplementary groups") {
				t.Errorf("the log does not name %s with the permission hint", tablePath)
			}
			if !tc.group && !d.logged(2*time.Second, "serving the 3 domains it listed before until it can be read") {
				t.Errorf("the log does not say the 3 domains are kept")
			}
			if tc.group && !d.logged(2*time.Second, "tables unreachable at start") {
				t.Errorf("the log does not say the saved domains are served")
			}

			// A domain added while the table cannot be read is not known,
			// and the 3 others are still answered.
			setTable("example.com", "example.net", "example.org", "new.example")
			time.Sleep(500 * time.Millisecond) // the watcher's rebuild, and refreshes
			newURL := "http://autoconfig.new.example/mail/config-v1.1.xml?emailaddress=a%40new.example"
			if code, _ := d.get(t, newURL); code != 404 {
				t.Errorf("a domain added to the unreadable table: %d, want 404 (does the daemon run as root?)", code)
			}
			if msg := d.notify.all(); !strings.Contains(msg[len(msg)-1], "serving 3 known domains") {
				t.Errorf("STATUS while unreadable: %q", msg[len(msg)-1])
			}

			readableAt := time.Now()
			setMode(0, 0o644)
			d.notify.wait(t, next, 5*time.Second, "STATUS=serving 4 domains")
			d.eventually(t, newURL, 3*time.Second, "the added domain served", func(code int, _ string) bool { return code == 200 })
			recovered := time.Since(readableAt)
			time.Sleep(300 * time.Millisecond)
			stopLoad()
			if n := res.failed.Load(); n > 0 {
				t.Errorf("%d of %d requests failed; first: %s", n, res.total.Load(), res.firstFailure)
			}
			if res.total.Load() < 200 {
				t.Errorf("only %d requests were made", res.total.Load())
			}
			how := fmt.Sprintf("STATUS degraded %v after the chmod 0600", degraded.Round(time.Millisecond))
			if tc.group {
				how = "STATUS degraded from the restart on"
			}
			t.Logf("%s: %d requests, %d failed; %s, the added domain served %v after chmod 0644; test %v",
				tc.name, res.total.Load(), res.failed.Load(), how, recovered.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		})
	}
}
