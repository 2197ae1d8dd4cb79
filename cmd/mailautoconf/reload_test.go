package main

import (
	"runtime/debug"
	"testing"
)

// TestTightenGC: a large rebuild runs with GOGC 25 and the previous
// setting comes back after it; a lower GOGC (or GC off) set by the admin
// is never raised.
func TestTightenGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, tt := range []struct{ before, during int }{
		{100, rebuildGCPercent},
		{400, rebuildGCPercent},
		{10, 10},
		{-1, rebuildGCPercent},
	} {
		debug.SetGCPercent(tt.before)
		restore := tightenGC()
		if got := debug.SetGCPercent(tt.during); got != tt.during {
			t.Errorf("GOGC %d: %d during the rebuild, want %d", tt.before, got, tt.during)
		}
		restore()
		if got := debug.SetGCPercent(tt.before); got != tt.before {
			t.Errorf("GOGC %d: %d after the rebuild", tt.before, got)
		}
	}
}
