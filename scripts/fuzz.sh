#!/usr/bin/env bash
# Runs every fuzz target of the module for a bounded time each:
#   bash scripts/fuzz.sh [DURATION]   (default 30s per target)
# New crashers land in the package's testdata/fuzz/ and fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-30s}
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "fuzz $pkg $target ($time)"
		if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$time" -fuzzminimizetime 5s "$pkg" >/tmp/fuzz.$$.log 2>&1; then
			continue
		fi
		# The fuzzer can hit its own deadline while it minimizes a new
		# interesting (not failing) input: that is not a finding.
		if grep -q 'context deadline exceeded' /tmp/fuzz.$$.log && ! grep -q 'Failing input written' /tmp/fuzz.$$.log; then
			echo "  (fuzzer deadline while minimizing; no failing input)"
			continue
		fi
		cat /tmp/fuzz.$$.log
		rm -f /tmp/fuzz.$$.log
		exit 1
	done
done
rm -f /tmp/fuzz.$$.log
