package webroute

import "testing"

func TestWithPortIsLoopback(t *testing.T) {
	tests := []struct {
		addr, withPort string
		loopback       bool
	}{
		{"127.0.0.1", "127.0.0.1:80", true},
		{"127.0.0.1:20000", "127.0.0.1:20000", true},
		{"127.1.2.3:8", "127.1.2.3:8", true},
		{"localhost", "localhost:80", true},
		{"LocalHost:20000", "LocalHost:20000", true},
		{"[::1]", "[::1]:80", true},
		{"[::1]:20000", "[::1]:20000", true},
		{"unix:/run/sogo.sock", "unix:/run/sogo.sock", true},
		{"192.0.2.1", "192.0.2.1:80", false},
		{"sogo.example.com:20000", "sogo.example.com:20000", false},
		{"[2001:db8::1]", "[2001:db8::1]:80", false},
	}
	for _, tt := range tests {
		if got := WithPort(tt.addr, "80"); got != tt.withPort {
			t.Errorf("WithPort(%q) = %q, want %q", tt.addr, got, tt.withPort)
		}
		if got := IsLoopback(WithPort(tt.addr, "80")); got != tt.loopback {
			t.Errorf("IsLoopback(%q) = %v, want %v", tt.addr, got, tt.loopback)
		}
	}
}
