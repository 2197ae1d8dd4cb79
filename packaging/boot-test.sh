#!/usr/bin/env bash
# packaging/boot-test.sh: install the .deb as an admin would, on a Debian 12
# container booted with systemd as PID 1, next to a real mail stack, and
# check what an unattended host meets (issue 11, "The booted-systemd test").
#
#   1. build the .deb and .rpm of this checkout (the commands of the
#      Makefile, into a private directory), and a second pair with a higher
#      version for the upgrade checks;
#   2. debootstrap Debian 12 from the mirror apt uses here, with Postfix,
#      Dovecot, MariaDB, nginx and rpm included, into a tmpfs;
#   3. put the iRedMail MySQL corpus set's configuration in place
#      (testdata/corpus/iredmail-mysql-debian12) and an nginx laid out as
#      iRedMail lays it out, including the template the way README.md says;
#   4. boot it: systemd-nspawn -b --register=no --keep-unit
#      --private-network (loopback only: nothing leaves the container, and
#      nothing in it can reach or collide with this host's services);
#   5. run packaging/boot-test/checks.sh inside it (nsenter into the
#      container's PID 1), which loads the vmail database, checks that the
#      mail services run, installs the .deb and prints PASS or FAIL per check;
#      among them "mailautoconf check --resolver" against NSD serving the
#      zones "mailautoconf dns" prints, which prints the per-client table.
#
# Exits non-zero when a check fails. Needs root, Go, git, debootstrap,
# systemd-nspawn (systemd-container) and nsenter (util-linux); without them,
# or when the container cannot boot, it fails with CI=true and skips (exit 0)
# otherwise. Takes 4 to 7 minutes on 2 cores (more when the machine is
# busy), most of it debootstrap; the packages build meanwhile.
#
# BOOT_TEST_KEEP=1 leaves the container's directory in place (it is still
# shut down); BOOT_TEST_MIRROR overrides the Debian mirror.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

suite=bookworm
corpus=testdata/corpus/iredmail-mysql-debian12
# What the container gets: systemd to boot, the mail stack of the corpus set
# (iRedMail's Dovecot runs imap, pop3, lmtp and sieve with MySQL tables; its
# Postfix uses pcre: and proxy:mysql: tables), nginx, and the tools the
# checks use. rpm is Debian's, for running the .rpm's scriptlets. NSD (an
# authoritative-only DNS server, the smallest of Debian's) serves the zones
# "mailautoconf dns" prints, for "mailautoconf check --resolver"; jq reads
# the JSON of both.
include=systemd-sysv,dbus,adduser,procps,iproute2,psmisc,curl,ca-certificates,openssl,jq,
include+=postfix,postfix-mysql,postfix-pcre,
include+=dovecot-core,dovecot-imapd,dovecot-pop3d,dovecot-lmtpd,dovecot-managesieved,dovecot-sieve,dovecot-mysql,
include+=mariadb-server,mariadb-client,nginx,nsd,rpm

start=$(date +%s)
elapsed() { echo "$(($(date +%s) - start))s"; }
step() { printf -- '\n=== boot-test: %s (at %s)\n' "$*" "$(elapsed)"; }
die() {
	printf 'FAIL  boot-test: %s\n' "$*" >&2
	exit 1
}
# skip leaves when the test cannot run here: a failure with CI=true.
skip() {
	if [ "${CI:-}" = true ]; then
		die "$* (CI=true: cannot skip)"
	fi
	printf 'SKIP  boot-test: %s\n' "$*"
	exit 0
}

[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, systemd-nspawn)"
PATH=$PATH:/usr/sbin:/sbin
for tool in go git debootstrap systemd-nspawn nsenter chroot timeout mount; do
	command -v "$tool" >/dev/null || skip "no $tool (apt-get install debootstrap systemd-container; see .ci/run)"
done

work=$(mktemp -d /var/tmp/mailautoconf-boot-test.XXXXXX)
root=$work/root
nspawn_pid=
leader=
build_pid=

# cleanup shuts the container down, waits for it (bounded), kills what is
# left by PID, unmounts the tmpfs and removes the directory: on success, on a
# failed check and on an interrupt alike.
cleanup() {
	local rc=$? i
	set +e
	trap - EXIT INT TERM
	if [ -n "$build_pid" ]; then
		# Its timeout processes pass the signal on to go.
		pkill -TERM -P "$build_pid" 2>/dev/null
		kill -TERM "$build_pid" 2>/dev/null
		wait "$build_pid" 2>/dev/null
	fi
	if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
		echo "--- boot-test: shutting the container down"
		# systemd-nspawn turns SIGTERM into an orderly shutdown of PID 1.
		kill -TERM "$nspawn_pid" 2>/dev/null || true
		for i in $(seq 1 60); do
			kill -0 "$nspawn_pid" 2>/dev/null || break
			sleep 0.5
		done
		if kill -0 "$nspawn_pid" 2>/dev/null; then
			echo "    (no clean shutdown within 30s: killing it)"
			[ -n "$leader" ] && kill -KILL "$leader" 2>/dev/null || true
			kill -KILL "$nspawn_pid" 2>/dev/null || true
			sleep 1
		fi
	fi
	# A chroot command of the second stage still running after an interrupt.
	if [ -d "$root" ]; then
		for i in /proc/[0-9]*; do
			[ "$(readlink "$i/root" 2>/dev/null)" = "$root" ] && kill -KILL "${i#/proc/}" 2>/dev/null
		done
		for m in $(awk -v r="$root" 'index($2, r) == 1 { print $2 }' /proc/self/mounts | sort -r); do
			umount -l "$m" 2>/dev/null || true
		done
	fi
	if [ "${BOOT_TEST_KEEP:-}" = 1 ]; then
		echo "--- boot-test: kept $work (BOOT_TEST_KEEP=1)"
	else
		mountpoint -q "$work" 2>/dev/null && umount -l "$work"
		rm -rf --one-file-system "$work"
	fi
	echo "--- boot-test: finished in $(elapsed), exit $rc"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The container lives in a tmpfs when there is memory for it (its ~900 MB
# plus headroom): dpkg's many small writes are then cheap, and nothing is
# left on disk. Otherwise on disk.
avail_kb=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
if [ "${avail_kb:-0}" -gt $((4 * 1024 * 1024)) ]; then
	mount -t tmpfs -o size=3g,mode=0755 mailautoconf-boot-test "$work"
fi
mkdir -p "$root" "$work/pkg"

version=$(sh packaging/version.sh)
# Higher for both dpkg and rpm: an added +component sorts after its absence.
upgrade_version=${version}+boottest
arch=$(go env GOARCH)
# build_packages makes the .deb and .rpm of VERSION and UPGRADE_VERSION in
# $work/pkg, with the Makefile's commands. nfpm.yaml names its inputs under
# dist/build/; they go to a private directory instead, so that a concurrent
# "make packages" is not disturbed.
build_packages() {
	export SOURCE_DATE_EPOCH
	SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
	local maintainer='mailautoconf maintainers <maintainers@mailautoconf.invalid>' v fmt
	sed "s|dist/build/|$work/build/|g" packaging/nfpm.yaml >"$work/nfpm.yaml"
	mkdir -p "$work/build"
	gzip -9n <packaging/mailautoconf.8 >"$work/build/mailautoconf.8.gz"
	for v in "$version" "$upgrade_version"; do
		CGO_ENABLED=0 GOOS=linux GOARCH=$arch timeout 600 go build -trimpath -ldflags "-s -w -X main.version=$v" \
			-o "$work/build/$arch/mailautoconf" ./cmd/mailautoconf || return 1
		sh packaging/changelog.sh "$v-1" "$maintainer" >"$work/build/changelog.yml" || return 1
		for fmt in deb rpm; do
			ARCH=$arch VERSION=$v MAINTAINER=$maintainer timeout 300 go tool nfpm package -p "$fmt" -f "$work/nfpm.yaml" -t "$work/pkg/" || return 1
		done
	done
}
step "build the packages $version and $upgrade_version (in the background, into $work/pkg)"
build_packages >"$work/build.log" 2>&1 &
build_pid=$!

# mirror is the Debian archive apt uses here (deb822 .sources or a
# one-line sources.list entry for the suite), else deb.debian.org.
mirror() {
	local m
	m=$(awk -v s="$suite" '
		/^URIs:/ { uri = $2 }
		/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) found = uri }
		/^$/ { uri = "" }
		END { print found }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	[ -n "$m" ] || m=$(awk -v s="$suite" '$1 == "deb" && $3 == s { print $2; exit }' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
	echo "${m:-http://deb.debian.org/debian}"
}
mirror=${BOOT_TEST_MIRROR:-$(mirror)}

step "debootstrap $suite from $mirror (first stage: download and unpack)"
timeout 600 debootstrap --variant=minbase --foreign --include="$include" "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
	{ tail -20 "$work/debootstrap.log"; skip "debootstrap failed (log above)"; }
# No daemon may start inside the chroot while the packages are configured:
# that would run on this host's network. The booted container gets them.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/boot-test-unsafe-io"

step "debootstrap second stage (configure $(ls "$root"/var/cache/apt/archives/*.deb | wc -l) packages)"
timeout 900 chroot "$root" /debootstrap/debootstrap --second-stage >>"$work/debootstrap.log" 2>&1 ||
	{ tail -20 "$work/debootstrap.log"; die "debootstrap --second-stage failed (log above)"; }
rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/dpkg/dpkg.cfg.d/boot-test-unsafe-io"
rm -rf "$root"/var/cache/apt/archives/*.deb

step "wait for the packages"
build_rc=0
wait "$build_pid" || build_rc=$?
build_pid=
[ "$build_rc" -eq 0 ] || {
	cat "$work/build.log"
	die "building the packages failed (log above)"
}
ls -1 "$work/pkg"
deb=$(ls "$work"/pkg/mailautoconf_"$version"-1_*.deb)
deb2=$(ls "$work"/pkg/mailautoconf_"$upgrade_version"-1_*.deb)
rpm=$(ls "$work"/pkg/mailautoconf-"$version"-1.*.rpm)
rpm2=$(ls "$work"/pkg/mailautoconf-"$upgrade_version"-1.*.rpm)

step "the iRedMail MySQL configuration ($corpus) and an iRedMail-style nginx"
bash packaging/boot-test/prepare-root.sh "$root" "$corpus"
mkdir -p "$root/root/boot-test"
cp packaging/boot-test/checks.sh "$corpus/schema.sql" "$corpus/seed.sql" "$deb" "$deb2" "$rpm" "$rpm2" "$root/root/boot-test/"

step "boot: systemd-nspawn -b --register=no --keep-unit --private-network"
systemd-nspawn -b --register=no --keep-unit --private-network --machine=mailautoconf-boot-test \
	--console=read-only -D "$root" </dev/null >"$work/console.log" 2>&1 &
nspawn_pid=$!
# The container's PID 1 is the child of systemd-nspawn whose PID in its own
# namespace is 1.
for i in $(seq 1 100); do
	for p in $(pgrep -P "$nspawn_pid" 2>/dev/null || true); do
		if awk '/^NSpid:/ { exit !($NF == 1) }' "/proc/$p/status" 2>/dev/null; then
			leader=$p
		fi
	done
	[ -n "$leader" ] && break
	kill -0 "$nspawn_pid" 2>/dev/null || break
	sleep 0.2
done
if [ -z "$leader" ]; then
	tail -30 "$work/console.log"
	skip "the container did not start (console above)"
fi
# inside runs a command inside the container, as root, in every namespace of its
# PID 1, with a clean environment.
inside() {
	nsenter --target "$leader" --mount --uts --ipc --net --pid --cgroup -- \
		/usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LANG=C.UTF-8 TERM=dumb "$@"
}
# Until systemd has finished booting (running, or degraded with a failed
# unit), at most 120 s; before its bus is up systemctl cannot connect.
for i in $(seq 1 240); do
	state=$(inside timeout 10 systemctl is-system-running 2>&1 || true)
	case $state in running | degraded | maintenance | stopping | offline) break ;; esac
	kill -0 "$nspawn_pid" 2>/dev/null || break
	sleep 0.5
done
echo "    systemd in the container: $state after $(elapsed) (PID 1 is $leader here)"
[ "$state" != degraded ] || inside systemctl --failed --no-legend --no-pager | sed 's/^/    failed: /'
case $state in
running | degraded) ;;
*)
	tail -30 "$work/console.log"
	skip "the container did not boot: systemctl is-system-running says '$state'"
	;;
esac
inside ip -brief address | sed 's/^/    network: /'

step "checks, inside the container (packaging/boot-test/checks.sh)"
rc=0
inside timeout 900 bash /root/boot-test/checks.sh \
	"$(basename "$deb")" "$(basename "$deb2")" "$(basename "$rpm")" "$(basename "$rpm2")" \
	"$version" "$upgrade_version" || rc=$?
[ "$rc" -ne 124 ] || echo "FAIL  boot-test: checks.sh did not finish within 15 minutes"
exit "$rc"
