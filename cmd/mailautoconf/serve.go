package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

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
	var listen listenFlags
	fs.Var(&listen, "listen", "serve plain HTTP on `ADDR`: host:port, or unix:/path for a unix socket (mode 0660); repeat for several (default "+defaultListen+")")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "serve: unexpected argument %q\n", fs.Arg(0))
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if len(listen) == 0 {
		listen = listenFlags{defaultListen}
	}
	level := slog.LevelInfo
	if common.verbose {
		level = slog.LevelDebug
	}
	log := newLogger(stderr, level)
	opt, err := common.options(log)
	if err != nil {
		return err
	}

	snap, err := discover.Build(ctx, opt)
	if err != nil {
		return err
	}
	defer snap.Close()
	for _, w := range snap.Warnings() {
		log.Warn(w)
	}
	site, err := serve.NewSite(opt.Root, snap, log)
	if err != nil {
		return err
	}
	var store serve.Store
	store.Swap(site)

	listeners := make([]net.Listener, 0, len(listen))
	defer func() {
		for _, l := range listeners {
			l.Close() // already closed after Shutdown: harmless
		}
	}()
	for _, addr := range listen {
		l, err := serve.Listen(addr)
		if err != nil {
			return err
		}
		listeners = append(listeners, l)
	}
	return serveUntilDone(ctx, log, serve.NewServer(serve.NewHandler(&store, log), log), listeners, snap)
}

// serveUntilDone serves on every listener until ctx ends (SIGINT, SIGTERM)
// or one fails, then shuts down gracefully: no new connections, in-flight
// requests get shutdownTimeout to finish.
func serveUntilDone(ctx context.Context, log *slog.Logger, srv *http.Server, listeners []net.Listener, snap *discover.Snapshot) error {
	serveErr := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() { serveErr <- srv.Serve(l) }()
	}
	log.Info("serving", "listen", listenAddrs(listeners), "host", snap.Hostname(), "domains", len(snap.Domains()))

	var err error
	select {
	case err = <-serveErr:
		err = fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(shutdownCtx); serr != nil && err == nil {
		err = fmt.Errorf("shutdown: %w", serr)
	}
	return err
}

func listenAddrs(ls []net.Listener) string {
	var addrs []string
	for _, l := range ls {
		a := l.Addr()
		if a.Network() == "unix" {
			addrs = append(addrs, "unix:"+a.String())
		} else {
			addrs = append(addrs, a.String())
		}
	}
	return strings.Join(addrs, " ")
}
