package dnsrecords

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteZone writes the plan as zone-file text: a commented block per
// domain with absolute names (no $ORIGIN, no $TTL: every record carries
// its TTL), so each block can be pasted into its domain's zone, then the
// certificate names as comments. The suggested MX is written commented out.
func (p *Plan) WriteZone(w io.Writer) error {
	var b strings.Builder
	comment(&b, "", "DNS records for mail clients, from this host's Postfix and Dovecot configuration (mailautoconf dns). Names are absolute: paste each domain's block into that domain's zone.")
	for _, n := range p.Notes {
		comment(&b, "", n)
	}
	if len(p.Domains) == 0 {
		comment(&b, "", "No hosted domains: nothing to publish.")
	}
	for _, d := range p.Domains {
		fmt.Fprintf(&b, "\n; ===== %s =====\n", d.Name)
		tw := tabwriter.NewWriter(&b, 0, 8, 1, ' ', 0)
		for _, r := range d.Records {
			fmt.Fprintf(tw, "%s\t%d IN %s\t%s\t; %s\n", r.Name, r.TTL, r.Type, r.Data(), oneLine(r.Why))
		}
		tw.Flush()
		for _, r := range d.Suggested {
			comment(&b, "", "Suggested, "+r.Why+":")
			fmt.Fprintf(&b, "; %s\n", r)
		}
		for _, n := range d.Notes {
			comment(&b, "", n)
		}
	}
	if len(p.Certificates) > 0 {
		b.WriteString("\n; ===== TLS certificate names =====\n")
		comment(&b, "", "Each name below must be in the certificate that the listed servers present; \"https\" is the web front of the discovery names (serve --listen-tls presents the mail servers' certificates; a web server in front, its own).")
		if n := p.MissingNames(); n > 0 {
			comment(&b, "", fmt.Sprintf("The current certificates lack %d required name(s), marked MISSING.", n))
		}
		tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
		for _, c := range p.Certificates {
			fmt.Fprintf(tw, ";   %s\t%s\t%s\t%s\n", c.Name, c.Status(), strings.Join(c.Servers, ", "), oneLine(c.Why))
		}
		tw.Flush()
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Status is "ok" when every server's certificate covers the name,
// "MISSING (servers)" when a required name is not covered, and
// "optional, not covered" for an optional one.
func (c CertName) Status() string {
	switch {
	case len(c.Missing) == 0:
		return "ok"
	case !c.Required:
		return "optional, not covered"
	}
	return "MISSING (" + strings.Join(c.Missing, ", ") + ")"
}

// comment writes text as zone-file comment lines of at most about 78
// columns, each starting with "; " and indent.
func comment(b *strings.Builder, indent, text string) {
	line := ""
	for _, word := range strings.Fields(text) {
		if line != "" && len(line)+1+len(word) > 76-len(indent) {
			fmt.Fprintf(b, "; %s%s\n", indent, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		fmt.Fprintf(b, "; %s%s\n", indent, line)
	}
}

// oneLine keeps a comment on one line whatever it holds.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// MissingNames counts the required certificate names some server's
// certificate lacks.
func (p *Plan) MissingNames() int {
	n := 0
	for _, c := range p.Certificates {
		if c.Required && len(c.Missing) > 0 {
			n++
		}
	}
	return n
}
