package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"

	"github.com/mailautoconf/mailautoconf/discover"
	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// commonFlags are the flags every command that reads the mail server takes.
type commonFlags struct {
	root          string
	postfixDir    string
	dovecotConfig string
	nginxConfig   string
	mysqlSocket   string
	pgsqlHost     string
	ldapURI       string
	verbose       bool
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.root, "root", "", "read the mail server's files under `DIR` as if it were / (a copy of a host's /etc, a test set)")
	fs.StringVar(&c.postfixDir, "postfix-dir", "", "Postfix configuration `directory` (default /etc/postfix, or /opt/postfix/conf when only that exists)")
	fs.StringVar(&c.dovecotConfig, "dovecot-config", "", "Dovecot's main configuration `file` (default /etc/dovecot/dovecot.conf)")
	fs.StringVar(&c.nginxConfig, "nginx-config", "", "nginx's main configuration `file`, read for the groupware it proxies (default /etc/nginx/nginx.conf)")
	fs.StringVar(&c.mysqlSocket, "mysql-socket", "", "reach every MySQL host of Postfix's lookup files through this unix socket `path` instead (testing and inspection aid)")
	fs.StringVar(&c.pgsqlHost, "pgsql-host", "", "reach every PostgreSQL host of Postfix's lookup files at this `host:port`, socket directory or postgresql:// URI instead (testing and inspection aid)")
	fs.StringVar(&c.ldapURI, "ldap-uri", "", "reach every LDAP server of Postfix's lookup files at this `URI` instead, e.g. ldap://127.0.0.1:3389/ (testing and inspection aid)")
	fs.BoolVar(&c.verbose, "v", false, "log debug messages")
}

func (c *commonFlags) options(log *slog.Logger) (discover.Options, error) {
	root, err := hostfs.New(c.root)
	if err != nil {
		return discover.Options{}, err
	}
	opt := discover.Options{
		Root:          root,
		PostfixDir:    c.postfixDir,
		DovecotConfig: c.dovecotConfig,
		Nginx:         c.nginxConfig,
		Log:           log,
	}
	opt.MySQL.Override = c.mysqlSocket
	opt.PgSQL.Override = c.pgsqlHost
	opt.LDAP.Override = c.ldapURI
	return opt, nil
}

// logger returns the command's logger: level, or debug with -v.
func (c *commonFlags) logger(stderr io.Writer, level slog.Level) *slog.Logger {
	if c.verbose {
		level = slog.LevelDebug
	}
	return newLogger(stderr, level)
}

// build reads the mail server as the flags say and returns its snapshot;
// the caller closes it.
func (c *commonFlags) build(ctx context.Context, log *slog.Logger) (*discover.Snapshot, error) {
	opt, err := c.options(log)
	if err != nil {
		return nil, err
	}
	return discover.Build(ctx, opt)
}

func runShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var common commonFlags
	common.register(fs)
	asJSON := fs.Bool("json", false, "print the snapshot as JSON (documented in README.md)")
	stateFlag := fs.String("state-dir", "", "report on the daemon's saved snapshot in `DIR` (default $STATE_DIRECTORY, else "+defaultStateDir+" unless --root is given)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "show: unexpected argument %q\n", fs.Arg(0))
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	saved := savedPath(stateDir(*stateFlag))
	if saved == "" && common.root == "" {
		saved = savedPath(defaultStateDir)
	}
	snap, err := common.build(ctx, common.logger(stderr, slog.LevelWarn))
	if err != nil {
		if saved != "" {
			return fmt.Errorf("%w\n%s", err, brokenNote(saved))
		}
		return err
	}
	defer snap.Close()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(snap)
	}
	if err := printSnapshot(stdout, snap); err != nil {
		return err
	}
	footer := "\nVersion: mailautoconf " + version + "\n"
	if saved != "" {
		footer += "Saved snapshot: " + savedState(saved) + "\n"
	}
	_, err = io.WriteString(stdout, footer)
	return err
}

// printSnapshot writes the snapshot for a person: what clients are told,
// where each fact came from, and what to fix.
func printSnapshot(w io.Writer, s *discover.Snapshot) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Host name: %s\n\n", s.Hostname())

	domains := s.Domains()
	state := "complete list"
	if !s.DomainsListed() {
		state = "incomplete list: other domains are looked up when a client asks"
	}
	fmt.Fprintf(&b, "Domains (%d, %s):\n", len(domains), state)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, d := range domains {
		kind := ""
		switch {
		case d.AliasOf != "":
			kind = "alias of " + d.AliasOf
		case d.Alias:
			kind = "alias domain"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", d.Name, kind, d.Source)
	}
	tw.Flush()

	fmt.Fprintf(&b, "\nEndpoints, best first:\n")
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  PROTOCOL\tHOST\tPORT\tSECURITY\tAUTH\tUSER NAME\tSERVER\tSOURCE\n")
	for _, e := range s.Endpoints() {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", e.Protocol, e.Host, e.Port, e.Security,
			strings.Join(e.Auth, " "), e.Username, e.Server, e.Source)
	}
	tw.Flush()

	if certs := s.Certificates(); len(certs) > 0 {
		fmt.Fprintf(&b, "\nCertificates:\n")
		tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		for _, c := range certs {
			fmt.Fprintf(tw, "  %s\t%s\tcovers %s\tuntil %s\t%s\n", c.Server, c.Path, strings.Join(c.Names, ", "), c.NotAfter, c.Source)
		}
		tw.Flush()
		staged := map[string]bool{} // what the daemon reads instead (root's view too)
		for _, c := range certs {
			if c.Staged != "" && !staged[c.Staged] {
				staged[c.Staged] = true
				fmt.Fprintf(&b, "  %s: %s\n", c.Path, c.Staged)
			}
		}
	}
	if g := s.Groupware(); len(g.Services)+len(g.Missing) > 0 {
		fmt.Fprintf(&b, "\nGroupware:\n")
		tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		for _, svc := range g.Services {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", svc.Protocol, svc.URL(), svc.Source)
		}
		tw.Flush()
		for _, svc := range g.Services {
			if svc.Protocol == discover.ServiceCardDAV {
				continue // the same evidence as CalDAV's
			}
			for _, ev := range svc.Evidence {
				fmt.Fprintf(&b, "    %s: %s\n", svc.Protocol, ev)
			}
		}
		for _, m := range g.Missing {
			fmt.Fprintf(&b, "  not advertised: %s\n", m)
		}
	}
	if warns := s.Warnings(); len(warns) > 0 {
		fmt.Fprintf(&b, "\nWarnings:\n")
		for _, w := range warns {
			fmt.Fprintf(&b, "  - %s\n", w)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
