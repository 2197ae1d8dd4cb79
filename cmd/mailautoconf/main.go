// Command mailautoconf tells mail clients how to reach the mail server it
// runs next to, from nothing but that server's own Postfix and Dovecot
// configuration and the domain tables Postfix queries (MySQL, PostgreSQL,
// SQLite, LDAP).
//
// Usage:
//
//	mailautoconf show [--root DIR] [--json] [--mysql-socket PATH] [--pgsql-host H] [--ldap-uri URI]
//	mailautoconf serve [--root DIR] [--listen ADDR]... [--listen-tls ADDR]...
//	                   [--mysql-socket PATH] [--pgsql-host H] [--ldap-uri URI]
//	                   [--refresh 60s] [--exit-idle-after D]
//	mailautoconf dns [--root DIR] [--format zone|json] [DOMAIN...]
//	mailautoconf check [--root DIR] [--resolver ADDR] [--json] [ADDRESS|DOMAIN...]
//
// show prints the snapshot the daemon would serve: the host name, the hosted
// domains, the IMAP/POP3/SMTP endpoints with the file:line each came from,
// and every warning.
//
// serve answers mail clients' discovery requests (Mozilla autoconfig,
// Outlook Autodiscover, autodiscover.json, Apple profiles, a settings page)
// over plain HTTP, for a web server or TLS proxy in front, and optionally
// over HTTPS with the mail host's certificates. Under systemd it takes its
// sockets from socket activation ("http" and "https" by
// FileDescriptorName=), reports through sd_notify, reloads when a file it
// read changes or on SIGHUP, and re-reads the domain list when the change
// check of each database table, asked every --refresh, sees a change;
// without systemd it listens on --listen and --listen-tls.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var ue usageError
	switch {
	case errors.As(err, &ue):
		os.Exit(2) // the usage was already printed
	case err != nil:
		fmt.Fprintln(os.Stderr, "mailautoconf:", err)
		os.Exit(1)
	}
}

// usageError is a command-line mistake; the flag package already printed it.
type usageError struct{ error }

const usage = `usage: mailautoconf <command> [flags]

commands:
  show    print what mail clients would be told (--json for programs)
  serve   answer mail clients' discovery requests over HTTP
  dns     print the DNS records each hosted domain should publish
  check   test DNS, discovery URLs and mail ports as a client would
  version print the release (also --version)

Run "mailautoconf <command> -h" for a command's flags.
`

// version is the release, set at link time (make: -X main.version=...).
var version = "dev"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{errors.New("no command")}
	}
	switch args[0] {
	case "show":
		return runShow(ctx, args[1:], stdout, stderr)
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "dns":
		return runDNS(ctx, args[1:], stdout, stderr)
	case "check":
		return runCheck(ctx, args[1:], stdout, stderr)
	case "stage-keys": // the unit's privileged step; not in the usage
		return runStageKeys(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "version", "--version":
		fmt.Fprintf(stdout, "mailautoconf %s\n", version)
		return nil
	}
	fmt.Fprintf(stderr, "mailautoconf: unknown command %q\n\n%s", args[0], usage)
	return usageError{fmt.Errorf("unknown command %q", args[0])}
}

// newLogger logs to stderr in the form systemd's journal or a terminal wants.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if os.Getenv("JOURNAL_STREAM") != "" {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{} // the journal stamps every line itself
			}
			return a
		}
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
