#!/usr/bin/env bash
# Checks that every program a test needs (testtool.Need, postmaptest.Need,
# and the servers the harnesses start) comes from a Debian package that
# .ci/run installs or that a fresh machine already has
# (../shared/ci/fresh-image-packages.txt), so CI does not pass only where
# someone installed a tool by hand. A package pulled in as a dependency
# (apt-mark showauto) counts as installed by what pulled it.
#   bash scripts/ci-tools.sh PACKAGE...   (the packages .ci/run installs)
set -euo pipefail
cd "$(dirname "$0")/.."
fresh=../shared/ci/fresh-image-packages.txt
if ! command -v dpkg >/dev/null || [ ! -f "$fresh" ]; then
	echo "ci-tools: no dpkg or no $fresh: not checked"
	[ "${CI:-}" != true ] || exit 1
	exit 0
fi
installed=" $* "
auto=$(apt-mark showauto 2>/dev/null | sed 's/:.*//')
# Table types postmaptest.Need is asked about are not programs.
tools=$(grep -rhoE '(testtool|postmaptest)\.Need\([a-zA-Z]+, "[^"]+"' --include='*.go' . |
	sed 's/.*"\(.*\)"/\1/' | grep -vxE 'mysql|pgsql|ldap|sqlite|hash|btree|lmdb|cdb|texthash' | sort -u)
# What the server harnesses (internal/*test) start or call.
tools+=$'\n'"mariadbd mariadb-install-db initdb postgres psql slapd slapadd ldapmodify"
# What packaging/boot-test.sh runs on the host to boot its container.
tools+=$'\n'"debootstrap systemd-nspawn nsenter"
bad=0
for tool in $tools; do
	pkg=""
	for dir in /usr/bin /usr/sbin /bin /sbin /usr/lib/postgresql/*/bin; do
		[ -e "$dir/$tool" ] || continue
		pkg=$(dpkg -S "$(readlink -f "$dir/$tool")" 2>/dev/null | head -1 | cut -d: -f1) || true
		[ -n "$pkg" ] && break
	done
	if [ -z "$pkg" ]; then
		echo "ci-tools: $tool comes from no installed Debian package" >&2
		bad=1
	elif [[ $installed == *" $pkg "* ]] || grep -qx "$pkg" "$fresh" || grep -qx "$pkg" <<<"$auto"; then
		echo "ci-tools: $tool ($pkg) ok"
	else
		echo "ci-tools: $tool comes from $pkg, which was installed by hand: add it to .ci/run" >&2
		bad=1
	fi
done
exit $bad
