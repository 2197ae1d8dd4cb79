#!/usr/bin/env bash
# Fetches Debian 13 (trixie)'s Dovecot 2.4 doveconf, with trixie's own
# dynamic loader and libraries, into a private cache, and prints the path of
# a wrapper that runs it:
#   out=$(bash scripts/dovecot24.sh) && "$out" -c /etc/dovecot/dovecot.conf -n
# Nothing is installed on the host: apt-get runs with a private sources list,
# package lists and cache, and the packages are only unpacked (dpkg-deb -x).
# The wrapper runs doveconf in a private mount namespace (unshare -m, so it
# needs root) with the trixie /usr/lib/dovecot (settings plugins, SQL
# drivers) bind-mounted over the host's, which must exist (dovecot-core of
# the host installed). Idempotent: a complete cache is reused as it is.
set -euo pipefail

cache=${XDG_CACHE_HOME:-$HOME/.cache}/mailautoconf/dovecot24
wrapper=$cache/doveconf
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

# doveconf, the settings plugins of Pigeonhole (managesieve) and the MySQL
# driver (a "mysql" section needs it), and every library they load.
packages=(
	dovecot-core dovecot-sieve dovecot-managesieved dovecot-mysql
	libc6 libgcc-s1 libstdc++6 libunwind8 liblzma5 libzstd1 zlib1g liblz4-1 libbz2-1.0
	libssl3t64 libsasl2-2 libldap2 libicu76 libstemmer0d libexttextcat-2.0-0 libmariadb3
)

if [ -x "$wrapper" ] && [ -f "$cache/complete" ]; then
	echo "$wrapper"
	exit 0
fi

for tool in apt-get dpkg-deb; do
	command -v "$tool" >/dev/null || { echo "dovecot24.sh: $tool not found" >&2; exit 1; }
done
if [ "$(dpkg --print-architecture 2>/dev/null || echo amd64)" != amd64 ]; then
	echo "dovecot24.sh: only amd64 is supported" >&2
	exit 1
fi
[ -r "$keyring" ] || { echo "dovecot24.sh: $keyring missing (debian-archive-keyring)" >&2; exit 1; }

mkdir -p "$cache"
work=$(mktemp -d "$cache/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$work/root"
echo "deb [signed-by=$keyring] $mirror trixie main" >"$work/sources.list"
apt=(apt-get -q
	-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
	-o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
	-o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Dir::State::status=/dev/null
	-o APT::Architecture=amd64 -o APT::Sandbox::User=root -o Acquire::Languages=none
	-o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
	-o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
	-o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false)
"${apt[@]}" update >"$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; exit 1; }
(cd "$work/debs" && "${apt[@]}" download "${packages[@]}") >>"$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; exit 1; }
for deb in "$work"/debs/*.deb; do
	dpkg-deb -x "$deb" "$work/root"
done

root=$cache/root
ld=$root/usr/lib64/ld-linux-x86-64.so.2
libs=$root/usr/lib/x86_64-linux-gnu:$root/usr/lib/dovecot

# Every library must come from trixie: a host library found instead would
# make this a different doveconf than Debian 13's.
check() {
	local f bad=0
	for f in "$work/root/usr/bin/doveconf" "$work"/root/usr/lib/dovecot/modules/settings/*.so "$work/root/usr/lib/dovecot/modules/libdriver_mysql.so"; do
		if "$work/root/usr/lib64/ld-linux-x86-64.so.2" --library-path "$work/root/usr/lib/x86_64-linux-gnu:$work/root/usr/lib/dovecot" --list "$f" 2>&1 |
			grep -v "=> $work/root/" | grep -vE 'linux-vdso|ld-linux-x86-64|statically linked' | grep . >&2; then
			echo "dovecot24.sh: $f needs libraries outside the trixie packages (above)" >&2
			bad=1
		fi
	done
	return $bad
}
check

rm -f "$cache/complete"
rm -rf "$root"
mv "$work/root" "$root"
cat >"$wrapper.tmp" <<EOF
#!/bin/sh
# Runs Debian 13's doveconf (Dovecot 2.4) from $root
# in a private mount namespace with its /usr/lib/dovecot. Made by
# scripts/dovecot24.sh; arguments are doveconf's.
[ -d /usr/lib/dovecot ] || { echo "\$0: /usr/lib/dovecot must exist to be replaced" >&2; exit 1; }
exec unshare -m --propagation private sh -c 'mount --bind "\$0/usr/lib/dovecot" /usr/lib/dovecot && exec "\$0/usr/lib64/ld-linux-x86-64.so.2" --library-path "\$0/usr/lib/x86_64-linux-gnu:\$0/usr/lib/dovecot" "\$0/usr/bin/doveconf" "\$@"' "$root" "\$@"
EOF
chmod +x "$wrapper.tmp"
mv "$wrapper.tmp" "$wrapper"
touch "$cache/complete"
echo "$wrapper"
