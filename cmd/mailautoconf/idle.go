package main

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"
)

// activity tracks requests for --exit-idle-after.
type activity struct {
	inflight atomic.Int64
	last     atomic.Int64 // UnixNano of the last request's start or end
}

func (a *activity) touch() { a.last.Store(time.Now().UnixNano()) }

// wrap counts h's requests.
func (a *activity) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.inflight.Add(1)
		a.touch()
		defer func() {
			a.touch()
			a.inflight.Add(-1)
		}()
		h.ServeHTTP(w, r)
	})
}

// exitWhenIdle closes idle once no request has run for d, checking a few
// times per d, until ctx ends.
func (a *activity) exitWhenIdle(ctx context.Context, d time.Duration, idle chan<- struct{}) {
	t := time.NewTicker(min(max(d/4, 10*time.Millisecond), time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if a.inflight.Load() == 0 && time.Since(time.Unix(0, a.last.Load())) >= d {
				close(idle)
				return
			}
		}
	}
}
