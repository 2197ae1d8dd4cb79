package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/serve"
)

// defaultListen is where serve listens without --listen: loopback, for the
// web server in front to proxy to.
const defaultListen = "127.0.0.1:8470"

// shutdownTimeout bounds how long in-flight requests may take to finish
// after SIGINT or SIGTERM.
const shutdownTimeout = 5 * time.Second

// listenFlags collects repeated --listen values.
type listenFlags []string

func (l *listenFlags) String() string { return strings.Join(*l, ", ") }
func (l *listenFlags) Set(v string) error {
	if v == "" {
		return errors.New("empty address")
	}
	*l = append(*l, v)
	return nil
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var common commonFlags
	common.register(fs)
	var listen, listenTLS listenFlags
	fs.Var(&listen, "listen", "without socket activation, serve plain HTTP on `ADDR`: host:port, or unix:/path for a unix socket (mode 0660); repeat for several (default "+defaultListen+")")
	fs.Var(&listenTLS, "listen-tls", "without socket activation, also serve HTTPS on `ADDR` with the mail host's certificates; repeatable")
	refresh := fs.Duration("refresh", defaultRefresh, "ask each database table whether its domain list changed this often, and re-read it when it did (hourly anyway; 0: only on file changes and SIGHUP)")
	idle := fs.Duration("exit-idle-after", 0, "exit after no request for this `duration`, for socket activation to start it again on demand (0: never)")
	noWatch := fs.Bool("no-watch", false, "do not watch the configuration files; reload only on SIGHUP and --refresh")
	stateFlag := fs.String("state-dir", "", "keep the last good snapshot in `DIR`, to serve it when a start meets a broken configuration (default $STATE_DIRECTORY, which systemd's StateDirectory= sets; without either nothing is kept)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "serve: unexpected argument %q\n", fs.Arg(0))
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	log := common.logger(stderr, slog.LevelInfo)
	state := stateDir(*stateFlag)
	log.Info("mailautoconf starting", "version", version, "state_dir", state)
	if os.Getenv("GOMAXPROCS") == "" {
		// One thread while requests come one at a time, all the runtime's
		// default (the CPUs this process may use) under concurrent load.
		serve.AdaptProcs(runtime.GOMAXPROCS(0))
	}
	opt, err := common.options(log)
	if err != nil {
		return err
	}
	opt.Serving = true // STATUS tells what this process signs with

	// SIGHUP must not kill us from here on; it asks for a reload.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	socks, err := activatedSockets()
	if err != nil {
		return err
	}
	defer socks.close()

	var watcher *discover.Watcher
	if !*noWatch {
		if watcher, err = discover.NewWatcher(opt.Root, watchQuiet, log); err != nil {
			log.Warn("cannot watch the configuration files; reload with SIGHUP", "err", err)
			watcher = nil
		} else {
			defer watcher.Close()
		}
	}
	var store serve.Store
	defer store.Close() // after the server's Shutdown (deferred later, run earlier)
	guard := serve.NewMissGuard(serve.DefaultMissRate, serve.DefaultMissBurst, serve.DefaultMissTTL, serve.DefaultMissCacheCap)
	rl := newReloader(opt, &store, guard, watcher, log)
	rl.savePath = savedPath(state)
	// A broken configuration does not fail the start: the last good
	// snapshot is served, or 503, until the configuration is fixed.
	rl.first(ctx)

	if !socks.activated {
		if len(listen) == 0 && len(listenTLS) == 0 {
			listen = listenFlags{defaultListen}
		}
		if socks, err = listenSockets(listen, listenTLS); err != nil {
			return err
		}
		defer socks.close()
	}

	act := &activity{}
	act.touch()
	srv := serve.NewServer(act.wrap(serve.NewHandler(&store, log)), log)
	srv.TLSConfig = store.TLSConfig()

	bg, stopBG := context.WithCancel(ctx)
	defer stopBG()
	go rl.run(bg)
	if watcher != nil {
		go watcher.Run(bg, rl.Kick)
	}
	go watchdog(bg, log)
	// Reloading Postfix or Dovecot opens ports without a file changing.
	go discover.WatchListening(bg, discover.ListeningPoll, func() *discover.Snapshot {
		if site := store.Load(); site != nil {
			return site.Snapshot()
		}
		return nil
	}, rl.Kick)
	if *refresh > 0 {
		go every(bg, *refresh, rl.Refresh)
	}
	idleC := make(chan struct{})
	if *idle > 0 {
		go act.exitWhenIdle(bg, *idle, idleC)
	}
	err = serveUntilDone(ctx, log, srv, socks, rl, hup, idleC, *idle)
	stopBG()
	<-rl.done // a rebuild in progress must not publish after store.Close
	return err
}

// defaultRefresh is how often each database table's change check is
// asked whether its domain list changed (reloader.refreshDue).
const defaultRefresh = 60 * time.Second

// watchQuiet is how long the configuration files must stay unchanged
// before a change reloads: an editor's save or a postmap run is many
// events in a few milliseconds.
const watchQuiet = 300 * time.Millisecond

// serveUntilDone serves on every socket until ctx ends (SIGINT, SIGTERM),
// the server has been idle for idle, or a socket fails, then shuts down
// gracefully: no new connections, in-flight requests get shutdownTimeout
// to finish. SIGHUP reloads meanwhile.
func serveUntilDone(ctx context.Context, log *slog.Logger, srv *http.Server, socks *sockets,
	rl *reloader, hup <-chan os.Signal, idleC <-chan struct{}, idle time.Duration) error {
	serveErr := make(chan error, len(socks.all()))
	for _, l := range socks.http {
		// Plain HTTP/1.1: one write per response, no wake-up of the
		// runtime's monitor thread per request (serve.Listener).
		go func() { serveErr <- srv.Serve(serve.Listener(l)) }()
	}
	for _, l := range socks.https {
		go func() { serveErr <- srv.ServeTLS(l, "", "") }()
	}
	if snap := rl.current(); snap != nil {
		log.Info("serving", "listen", socks.describe(), "socket_activation", socks.activated,
			"host", snap.Hostname(), "domains", snap.NumDomains())
	} else {
		log.Info("answering 503 until the configuration is fixed", "listen", socks.describe(), "socket_activation", socks.activated)
	}
	notify(log, daemon.SdNotifyReady+"\nSTATUS="+rl.status(nil))

	var err error
wait:
	for {
		select {
		case <-hup:
			log.Info("SIGHUP: reloading")
			rl.Kick()
		case err = <-serveErr:
			err = fmt.Errorf("serve: %w", err)
			break wait
		case <-idleC:
			log.Info("exiting: no request", "for", idle)
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	notify(log, daemon.SdNotifyStopping)
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(shutdownCtx); serr != nil && err == nil {
		err = fmt.Errorf("shutdown: %w", serr)
	}
	return err
}

// every calls f every d until ctx ends.
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}
