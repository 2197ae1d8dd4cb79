package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/mailautoconf/mailautoconf/check"
	"github.com/mailautoconf/mailautoconf/discover"
)

// connectFlags collects repeated --connect values.
type connectFlags map[string]string

func (c connectFlags) String() string {
	var parts []string
	for k, v := range c {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}
func (c connectFlags) Set(v string) error { return check.ParseConnect(c, v) }

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mailautoconf check [flags] [ADDRESS|DOMAIN...]\n\nCheck, as a mail client would, the DNS records, discovery URLs and mail ports of every hosted domain (or each one named), then follow each client's own lookup order (Thunderbird, Thunderbird for Android, Outlook, Apple Mail) and say per client where it finds its settings, or why it finds none and the cheapest fix. Read-only: never logs in.\n\n")
		fs.PrintDefaults()
	}
	var common commonFlags
	common.register(fs)
	resolver := fs.String("resolver", "", "resolve every name with the DNS server at `ADDR` (host[:port]) instead of the system's")
	asJSON := fs.Bool("json", false, "print the results as JSON (documented in README.md)")
	timeout := fs.Duration("timeout", check.DefaultTimeout, "bound each probe (a lookup, a request, a conversation) by this `duration`; the whole run gets 12 times as long")
	caFile := fs.String("ca-file", "", "also trust the CA certificates in this PEM `file` (a private CA, tests)")
	connect := connectFlags{}
	fs.Var(connect, "connect", "dial `HOST[:PORT]=ADDR[:PORT]` instead of HOST:PORT (like curl --resolve); repeatable")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *timeout <= 0 {
		fmt.Fprintln(stderr, "check: --timeout must be positive")
		return usageError{errors.New("bad --timeout")}
	}
	roots, err := trustedRoots(*caFile)
	if err != nil {
		return err
	}
	snap, err := common.build(ctx, common.logger(stderr, slog.LevelWarn))
	if err != nil {
		return err
	}
	defer snap.Close()

	targets, err := checkTargets(ctx, snap, fs.Args())
	if err != nil {
		return err
	}
	results, err := check.Run(ctx, check.Options{
		Snapshot: snap,
		Targets:  targets,
		Resolver: *resolver,
		Roots:    roots,
		Connect:  connect,
		Timeout:  *timeout,
	})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(check.NewReport(results))
	} else {
		err = check.WriteText(stdout, results)
	}
	if err != nil {
		return err
	}
	if _, _, failed := check.Count(results); failed > 0 {
		return fmt.Errorf("check: %d of %d checks failed", failed, len(results))
	}
	return nil
}

// trustedRoots returns the system roots plus the certificates of caFile,
// or nil (the system roots) without one.
func trustedRoots(caFile string) (*x509.CertPool, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read --ca-file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", caFile)
	}
	return pool, nil
}

// checkTargets turns the arguments (addresses or domains) into targets,
// each a hosted domain; nil (every listed domain) without arguments.
func checkTargets(ctx context.Context, snap *discover.Snapshot, args []string) ([]check.Target, error) {
	if len(args) == 0 {
		return nil, nil
	}
	domains, err := hostedDomains(ctx, snap, args)
	if err != nil {
		return nil, err
	}
	var out []check.Target
	for i, d := range domains {
		t := check.Target{Domain: d}
		if strings.Contains(args[i], "@") {
			t.Address = args[i]
		}
		out = append(out, t)
	}
	return out, nil
}
