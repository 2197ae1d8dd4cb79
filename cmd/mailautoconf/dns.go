package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"golang.org/x/net/idna"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/dnsrecords"
)

func runDNS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dns", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mailautoconf dns [flags] [DOMAIN...]\n\nPrint the DNS records every hosted domain (or each DOMAIN) should publish, and the names the TLS certificates must cover.\n\n")
		fs.PrintDefaults()
	}
	var common commonFlags
	common.register(fs)
	format := fs.String("format", "zone", "output `format`: zone (zone-file text) or json (documented in README.md)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *format != "zone" && *format != "json" {
		fmt.Fprintf(stderr, "dns: --format must be zone or json, not %q\n", *format)
		return usageError{fmt.Errorf("bad --format %q", *format)}
	}
	snap, err := common.build(ctx, common.logger(stderr, slog.LevelWarn))
	if err != nil {
		return err
	}
	defer snap.Close()
	// The records cover the domains the snapshot lists: say what kept
	// others from being listed.
	for _, w := range snap.DomainWarnings() {
		fmt.Fprintf(stderr, "dns: warning: %s\n", w)
	}

	domains, err := hostedDomains(ctx, snap, fs.Args())
	if err != nil {
		return err
	}
	plan, err := dnsrecords.For(snap, domains)
	if err != nil {
		return err
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(plan)
	}
	return plan.WriteZone(stdout)
}

// hostedDomains returns the named domains as lower-case A-labels, or nil
// (every listed domain) when none is named. A domain the host does not
// receive mail for is an error, as is one that cannot be looked up.
func hostedDomains(ctx context.Context, snap *discover.Snapshot, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	var out, unhosted []string
	var errs []error
	for _, n := range names {
		d, err := domainArg(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_, ok, err := snap.Lookup(ctx, d)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("look up %s: %w", d, err))
		case !ok:
			unhosted = append(unhosted, d)
		default:
			out = append(out, d)
		}
	}
	if len(unhosted) > 0 {
		errs = append(errs, fmt.Errorf("not hosted here (not a virtual mailbox or alias domain of Postfix): %s", strings.Join(unhosted, ", ")))
	}
	return out, errors.Join(errs...)
}

// domainArg turns a command-line domain (or address: its domain) into
// lower-case A-labels.
func domainArg(s string) (string, error) {
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[i+1:]
	}
	s = strings.TrimSuffix(strings.TrimSpace(s), ".")
	a, err := idna.Lookup.ToASCII(s)
	if err != nil || a == "" || !strings.Contains(a, ".") {
		return "", fmt.Errorf("%q is not a domain name", s)
	}
	return strings.ToLower(a), nil
}
