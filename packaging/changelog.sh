#!/bin/sh
# changelog.sh VERSION MAINTAINER prints the package changelog in the YAML
# form nfpm reads (github.com/goreleaser/chglog): one entry for VERSION, the
# package being built, listing the commits since the last release tag (at
# most 50, subjects cut to 76 columns). nfpm turns it into changelog.Debian.gz and the rpm %changelog.
set -eu

version=$1
maintainer=$2

# yaml_quote prints its argument as a single-quoted YAML scalar.
yaml_quote() {
	printf "'%s'" "$(printf '%s' "$1" | sed "s/'/''/g")"
}

if git rev-parse HEAD >/dev/null 2>&1; then
	date=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ HEAD)
	if last=$(git describe --tags --abbrev=0 --match 'v[0-9]*' HEAD^ 2>/dev/null); then
		range="$last..HEAD"
	else
		range=HEAD
	fi
	subjects=$(git log --no-merges -n 50 --format=%s "$range")
else
	date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	subjects="Build outside a git checkout."
fi

echo "- semver: $(yaml_quote "$version")"
echo "  date: $date"
echo "  packager: $(yaml_quote "$maintainer")"
echo "  deb:"
echo "    urgency: medium"
echo "    distributions: [unstable]"
echo "  changes:"
printf '%s\n' "$subjects" | while IFS= read -r subject; do
	[ -n "$subject" ] || continue
	# Debian changelog lines stay under 80 columns: "  * " and 76 more.
	if [ ${#subject} -gt 76 ]; then
		subject="$(printf '%s' "$subject" | cut -c1-73)..."
	fi
	echo "    - note: $(yaml_quote "$subject")"
done
