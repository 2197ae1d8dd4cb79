package check

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// A Report is the JSON form of a run (README.md documents it).
type Report struct {
	OK       bool     `json:"ok"` // no result failed
	Passed   int      `json:"passed"`
	Warnings int      `json:"warnings"`
	Failed   int      `json:"failed"`
	Results  []Result `json:"results"`
}

// NewReport summarizes results.
func NewReport(results []Result) Report {
	ok, warn, fail := Count(results)
	if results == nil {
		results = []Result{}
	}
	return Report{OK: fail == 0, Passed: ok, Warnings: warn, Failed: fail, Results: results}
}

// WriteText writes one line per result, its status first ("ok", "warn",
// "FAIL"), then what was checked and found, and for a problem what to
// change; then the per-client table (writeClients); then a summary line.
func WriteText(w io.Writer, results []Result) error {
	var b strings.Builder
	var clients []Result
	for _, res := range results {
		if res.Group == GroupClient {
			clients = append(clients, res)
			continue
		}
		fmt.Fprintf(&b, "%-4s  %-5s  %s: %s", res.Status, res.Group, res.Name, oneLine(res.Detail))
		if res.Fix != "" && res.Status != OK {
			fmt.Fprintf(&b, ". Fix: %s", oneLine(res.Fix))
		}
		b.WriteByte('\n')
	}
	writeClients(&b, clients)
	ok, warn, fail := Count(results)
	fmt.Fprintf(&b, "%d checks: %d ok, %d warnings, %d failed\n", len(results), ok, warn, fail)
	_, err := io.WriteString(w, b.String())
	return err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// writeClients writes the per-client table: a row per client and domain
// (client, domain, result, the URL used or first tried), and under it
// what the client is told there, or why it finds nothing, and the fix.
func writeClients(b *strings.Builder, clients []Result) {
	if len(clients) == 0 {
		return
	}
	b.WriteString("\nPer client (the first way each one finds its settings):\n")
	tw := tabwriter.NewWriter(b, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "CLIENT\tDOMAIN\tRESULT\tURL\n")
	for _, c := range clients {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Client, c.Domain, c.Status, c.URL)
		if c.Told != "" {
			fmt.Fprintf(tw, "\t\t\ttold: %s\n", oneLine(c.Told))
		}
		if c.Status != OK {
			fmt.Fprintf(tw, "\t\t\twhy: %s\n", oneLine(c.Detail))
		}
		if c.Fix != "" && c.Status != OK {
			fmt.Fprintf(tw, "\t\t\tfix: %s\n", oneLine(c.Fix))
		}
	}
	tw.Flush()
}
