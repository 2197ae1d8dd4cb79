package main

// Fault tests for issue 11 item 7 (bounded under abuse), in their own file
// of the fault suite: the daemon's memory under a flood of profile
// requests for made-up addresses, and with thousands of idle keep-alive
// connections.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
	"github.com/mailautoconf/mailautoconf/render/mobileconfig"
	"github.com/mailautoconf/mailautoconf/serve"
)

// Memory bounds of the abuse tests, in KiB of VmHWM over the whole run.
// Measured (docs in the test logs): about 25 MiB after a flood of 8 000
// profiles and 45 MiB with 5 000 idle connections; before the bounds, 60
// and 115 MiB. The bounds leave room for a slower machine's garbage
// collector without letting the old behaviour pass.
const (
	maxFloodHWM = 48 << 10
	maxIdleHWM  = 80 << 10
)

// keepAliveClient returns a client that reuses up to n connections to
// the daemon's http socket.
func (d *runningDaemon) keepAliveClient(n int) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "unix", d.sock)
		},
		MaxIdleConnsPerHost: n,
	}}
}

// TestFaultSigningFloodMemory asks the daemon for Apple profiles for
// 8 000 made-up addresses from 32 clients: its peak memory stays under
// maxFloodHWM, at most the address budget of profiles carry their address
// (the rest get the domain's profile, signed once), every answer is a
// signed profile, and another client is answered throughout.
func TestFaultSigningFloodMemory(t *testing.T) {
	testtool.Need(t, "systemd-socket-activate")
	bin := buildDaemon(t)
	root := t.TempDir()
	staticHost(t, root)
	d := startDaemon(t, bin, root)
	if code, body := d.get(t, "http://autoconfig.example.com/mobileconfig?emailaddress=first%40example.com"); code != 200 || body == "" || body[0] != 0x30 {
		t.Fatalf("first profile: %d, signed %v", code, body != "" && body[0] == 0x30)
	}
	pid := d.cmd.Process.Pid
	before := vmRSS(t, pid, "VmRSS")

	const flood, workers = 8000, 32
	c := d.keepAliveClient(workers)
	var next, withAddress, failed atomic.Int64
	var first atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > flood {
					return
				}
				local := fmt.Sprintf("user%d", i)
				res, err := c.Get("http://autoconfig.example.com/mobileconfig?emailaddress=" + local + "%40example.com")
				if err != nil {
					failed.Add(1)
					first.CompareAndSwap(nil, err.Error())
					continue
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				switch {
				case res.StatusCode != 200 || len(b) == 0 || b[0] != 0x30:
					failed.Add(1)
					first.CompareAndSwap(nil, fmt.Sprintf("%d %.100q", res.StatusCode, b))
				case bytes.Contains(b, []byte(local+"@example.com")):
					withAddress.Add(1)
				}
			}
		})
	}
	stop := make(chan struct{})
	other, _ := d.load(1, []string{autoconfigURL}, stop, nil)
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)

	hwm := vmRSS(t, pid, "VmHWM")
	if hwm > maxFloodHWM {
		t.Errorf("daemon VmHWM %d KiB after %d profile requests, want at most %d KiB", hwm, flood, maxFloodHWM)
	}
	if max := int64(mobileconfig.AddressSignBurst + mobileconfig.AddressSignRate*(elapsed.Seconds()+1)); withAddress.Load() > max {
		t.Errorf("%d profiles signed with their address in %v, over the budget %d", withAddress.Load(), elapsed, max)
	}
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d profile requests failed; first: %v", n, flood, first.Load())
	}
	if n := other.failed.Load(); n > 0 || other.total.Load() == 0 {
		t.Errorf("the other client: %d of %d requests failed; first: %s", n, other.total.Load(), other.firstFailure)
	}
	t.Logf("%d profile requests in %v (%d with the address); RSS %d KiB before, %d KiB after, VmHWM %d KiB; the other client: %d requests",
		flood, elapsed.Round(time.Millisecond), withAddress.Load(), before, vmRSS(t, pid, "VmRSS"), hwm, other.total.Load())
}

// TestFaultIdleKeepAlive opens 5 000 connections that each ask one
// question and then stay open, as idle keep-alive connections: the daemon
// keeps at most serve.MaxConns of them, closing the longest idle at once,
// its peak memory stays under maxIdleHWM, and a new client is answered.
func TestFaultIdleKeepAlive(t *testing.T) {
	testtool.Need(t, "systemd-socket-activate")
	bin := buildDaemon(t)
	root := t.TempDir()
	staticHost(t, root)
	d := startDaemon(t, bin, root)
	if code, body := d.get(t, autoconfigURL); code != 200 {
		t.Fatalf("first request: %d\n%s", code, body)
	}
	pid := d.cmd.Process.Pid
	before := vmRSS(t, pid, "VmRSS")

	const n = 5000
	req := "GET /mail/config-v1.1.xml HTTP/1.1\r\nHost: autoconfig.example.com\r\n\r\n"
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	start := time.Now()
	for i := range n {
		c, err := d.dial()
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
		c.SetDeadline(time.Time{})
	}
	opened := time.Since(start)
	during := vmRSS(t, pid, "VmRSS")
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
	if open > serve.MaxConns {
		t.Errorf("%d idle connections still open, want at most serve.MaxConns = %d", open, serve.MaxConns)
	}
	t0 := time.Now()
	if code, body := d.get(t, autoconfigURL); code != 200 {
		t.Errorf("a new client with %d idle connections open: %d\n%s", open, code, body)
	}
	newClient := time.Since(t0)
	hwm := vmRSS(t, pid, "VmHWM")
	if hwm > maxIdleHWM {
		t.Errorf("daemon VmHWM %d KiB with %d keep-alive connections, want at most %d KiB", hwm, n, maxIdleHWM)
	}
	t.Logf("%d keep-alive connections in %v, %d left open by the daemon; RSS %d KiB before, %d KiB with them, VmHWM %d KiB; a new client answered in %v",
		n, opened.Round(time.Millisecond), open, before, during, hwm, newClient.Round(time.Microsecond))
}
