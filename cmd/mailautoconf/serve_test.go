package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServe runs the serve command on a unix socket (over a stale socket
// file left behind) and on TCP, answers a request on each, and stops it
// with the context as SIGTERM would.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "mailautoconf.sock")
	// A socket file nobody listens on, as a killed earlier run leaves.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpAddr := tcp.Addr().String()
	tcp.Close() // free it for serve; a race with another process is unlikely in a test

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--root", "../../testdata/corpus/handmade-static-domains",
			"--listen", "unix:" + sock, "--listen", tcpAddr, "-v"}, io.Discard, &stderr)
	}()

	unixClient := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	get := func(c *http.Client, url string) (int, string) {
		t.Helper()
		var lastErr error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			res, err := c.Get(url)
			if err != nil {
				lastErr = err
				continue
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			return res.StatusCode, string(b)
		}
		t.Fatalf("GET %s: %v\n%s", url, lastErr, stderr.String())
		return 0, ""
	}
	if code, body := get(unixClient, "http://autoconfig.example.net/mail/config-v1.1.xml"); code != 200 || !strings.Contains(body, `<emailProvider id="example.net">`) {
		t.Errorf("unix socket: %d\n%s", code, body)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v, %v; want 0660", fi.Mode(), err)
	}
	req, _ := http.NewRequest("GET", "http://"+tcpAddr+"/mail/config-v1.1.xml?emailaddress=alice%40example.net", nil)
	req.Header.Set("Authorization", "Basic c2VjcmV0LXBhc3N3b3Jk")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Cache-Control") != "private, no-store" {
		t.Errorf("TCP: %d %v", res.StatusCode, res.Header)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop within 10 s of the signal")
	}
	logs := stderr.String()
	for _, want := range []string{"msg=serving", "msg=request", "msg=\"shutting down\""} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "c2VjcmV0") || strings.Contains(logs, "Basic") {
		t.Errorf("the Authorization header was logged:\n%s", logs)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file left after shutdown: %v", err)
	}
}

func TestServeRefusesNonSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "not-a-socket")
	if err := os.WriteFile(path, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"serve", "--root", "../../testdata/corpus/handmade-static-domains", "--listen", "unix:" + path}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("serve on a regular file: %v, want a 'not a socket' error", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Errorf("the file was changed")
	}
}
