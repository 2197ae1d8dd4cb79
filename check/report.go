package check

import (
	"fmt"
	"io"
	"strings"
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
// change; then a summary line.
func WriteText(w io.Writer, results []Result) error {
	var b strings.Builder
	for _, res := range results {
		fmt.Fprintf(&b, "%-4s  %-5s  %s: %s", res.Status, res.Group, res.Name, oneLine(res.Detail))
		if res.Fix != "" && res.Status != OK {
			fmt.Fprintf(&b, ". Fix: %s", oneLine(res.Fix))
		}
		b.WriteByte('\n')
	}
	ok, warn, fail := Count(results)
	fmt.Fprintf(&b, "%d checks: %d ok, %d warnings, %d failed\n", len(results), ok, warn, fail)
	_, err := io.WriteString(w, b.String())
	return err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
