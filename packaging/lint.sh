#!/bin/sh
# lint.sh PACKAGE... runs lintian on each .deb and rpmlint on each .rpm, and
# fails on any error or warning that packaging/lintian-overrides (installed
# in the .deb) or packaging/rpmlint.toml does not justify.
#
# rpmlint unpacks an .rpm with "rpm2cpio | cpio -id" in a temporary
# directory, but nfpm's payload names files with absolute paths, which GNU
# cpio would write to / itself: a cpio wrapper adds --no-absolute-filenames.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
debs=
rpms=
for f in "$@"; do
	case $f in
	*.deb) debs="$debs $f" ;;
	*.rpm) rpms="$rpms $f" ;;
	*) echo "lint.sh: not a .deb or .rpm: $f" >&2; exit 2 ;;
	esac
done

if [ -n "$debs" ]; then
	echo "lintian$debs"
	# shellcheck disable=SC2086
	lintian --pedantic --fail-on error,warning $debs
fi

if [ -n "$rpms" ]; then
	wrap=$(mktemp -d)
	trap 'rm -rf "$wrap"' EXIT
	cpio=$(command -v cpio)
	printf '#!/bin/sh\nexec %s --no-absolute-filenames "$@"\n' "$cpio" >"$wrap/cpio"
	chmod +x "$wrap/cpio"
	echo "rpmlint$rpms"
	# rpmlint exits 0 on warnings: count them from its report.
	out=$wrap/rpmlint.out
	# shellcheck disable=SC2086
	status=0
	PATH="$wrap:$PATH" rpmlint -c "$here/rpmlint.toml" $rpms >"$out" 2>&1 || status=$?
	cat "$out"
	if [ "$status" -ne 0 ] || grep -q ': [EW]: ' "$out"; then
		echo "lint.sh: rpmlint found problems" >&2
		exit 1
	fi
fi
