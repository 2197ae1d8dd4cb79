package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/mailautoconf/mailautoconf/discover"
)

// notify sends state to systemd (sd_notify); without NOTIFY_SOCKET it does
// nothing. NOTIFY_SOCKET stays set: every reload notifies again.
func notify(log *slog.Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		log.Debug("sd_notify", "state", state, "err", err)
	}
}

// statusLine is the one-line STATUS= of systemctl status: what is served,
// or why it is degraded. err is the last reload's error, nil after a
// successful one.
func statusLine(snap *discover.Snapshot, err error) string {
	if err != nil {
		return "reload failed, serving previous snapshot: " + oneLine(err.Error())
	}
	domains, endpoints := snap.NumDomains(), len(snap.Endpoints())
	if len(snap.Unreachable()) > 0 {
		return fmt.Sprintf("database unreachable, serving %d known domains, %d endpoints", domains, endpoints)
	}
	return fmt.Sprintf("serving %d domains, %d endpoints", domains, endpoints)
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
