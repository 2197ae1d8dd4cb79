package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/serve"
)

// notify sends state to systemd (sd_notify); without NOTIFY_SOCKET it does
// nothing. NOTIFY_SOCKET stays set: every reload notifies again.
func notify(log *slog.Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		log.Debug("sd_notify", "state", state, "err", err)
	}
}

// statusLine is the one-line STATUS= of systemctl status: what is served,
// or why it is degraded, and the release. site is what is served (nil:
// nothing), err the last reload's error (nil after a successful one), fb
// set while the configuration the daemon started with is broken. Whether
// profiles are signed is the site's own finding, not its snapshot's: a
// restored snapshot says what was true when it was saved.
func statusLine(site *serve.Site, err error, fb *fallback) string {
	var snap *discover.Snapshot
	if site != nil {
		snap = site.Snapshot()
	}
	var s string
	switch {
	case fb != nil && fb.saved != nil:
		s = fmt.Sprintf("configuration error, serving the snapshot saved %s (%d domains): %s",
			fb.saved.Saved.UTC().Format(time.RFC3339), fb.saved.Domains, oneLine(fb.err.Error()))
	case fb != nil && fb.savedErr != nil:
		s = fmt.Sprintf("configuration error, saved snapshot damaged (%s), answering 503: %s",
			oneLine(fb.savedErr.Error()), oneLine(fb.err.Error()))
	case fb != nil:
		s = "configuration error, no saved snapshot, answering 503: " + oneLine(fb.err.Error())
	case err != nil:
		s = "reload failed, serving previous snapshot: " + oneLine(err.Error())
	case len(snap.Unreachable()) > 0:
		// A database that is down, or a lookup file that cannot be read.
		s = fmt.Sprintf("domain table unreachable (%s), serving %d known domains, %d endpoints",
			strings.Join(snap.Unreachable(), ", "), snap.NumDomains(), len(snap.Endpoints()))
	default:
		s = fmt.Sprintf("serving %d domains, %d endpoints", snap.NumDomains(), len(snap.Endpoints()))
	}
	if site != nil {
		if why := site.Unsigned(); why != "" {
			s += "; Apple profiles unsigned: " + oneLine(why)
		}
	}
	return s + " (mailautoconf " + version + ")"
}

// oneLine flattens errors.Join output and bounds the length: STATUS= is
// one line, and systemctl status shows only its start anyway.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
	const max = 400
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// watchdog pings systemd's watchdog at half its interval when the unit
// sets WatchdogSec= (WATCHDOG_USEC), until ctx ends.
func watchdog(ctx context.Context, log *slog.Logger) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("watchdog", "err", err)
		return
	}
	if interval <= 0 {
		return
	}
	every(ctx, interval/2, func() { notify(log, daemon.SdNotifyWatchdog) })
}
