#!/usr/bin/env bash
# packaging/test.sh: build the .deb and .rpm from this checkout and check them
# with the real tools: systemd-analyze (verify, security), lintian, rpmlint,
# and, as root, rpm -i and -e in a scratch root (no directory left behind)
# and dpkg itself: install on this machine, upgrade, trigger, remove, purge,
# and check that nothing is left, no empty directory either, and that nginx
# -t passes with the documented include of the iRedMail template and the
# packaged upstream, in iRedMail's layout and in Debian's and Fedora's,
# before, during and after. Run by .ci/run; needs make, Go, git, systemd
# (systemd-analyze), lintian, rpmlint, rpm, python3-magic and nginx.
#
# PACKAGING_TEST_NO_BUILD=1 checks the packages already in dist/.
set -euo pipefail
cd "$(dirname "$0")/.."

# The highest systemd-analyze security exposure the service may have.
max_exposure=2.0

step() { printf -- '--- packaging: %s\n' "$*"; }
fail() {
	printf 'packaging/test.sh: FAIL: %s\n' "$*" >&2
	exit 1
}
ok() { printf '    ok: %s\n' "$*"; }

tmp=$(mktemp -d)
installed=no
cleanup() {
	if [ "$installed" = yes ]; then
		echo "--- packaging: cleaning up: dpkg --purge mailautoconf"
		dpkg --purge mailautoconf >/dev/null 2>&1 || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

if [ "${PACKAGING_TEST_NO_BUILD:-}" != 1 ]; then
	step "make clean packages"
	make --no-print-directory clean packages
fi
version=$(sh packaging/version.sh)
arch=$(dpkg --print-architecture)
deb=dist/mailautoconf_${version}-1_${arch}.deb
debs=(dist/mailautoconf_"${version}"-1_*.deb)
rpms=(dist/mailautoconf-"${version}"-1.*.rpm)
[ -f "$deb" ] || fail "no $deb"
[ ${#debs[@]} -eq 2 ] && [ ${#rpms[@]} -eq 2 ] || fail "want a .deb and an .rpm for amd64 and arm64, have: ${debs[*]} ${rpms[*]}"
ok "built ${debs[*]} ${rpms[*]}"

step "binaries: static, for the right architecture"
file -b dist/build/amd64/mailautoconf | grep -q 'x86-64.*statically linked' || fail "amd64 binary: $(file -b dist/build/amd64/mailautoconf)"
file -b dist/build/arm64/mailautoconf | grep -q 'aarch64.*statically linked' || fail "arm64 binary: $(file -b dist/build/arm64/mailautoconf)"
ok "amd64 and arm64, statically linked"

step "copyright lists every Go module linked into the binary"
# Every "Files:" pattern ending in /*, such as golang.org/x/*.
globs=$(sed -n 's/^Files://p' packaging/copyright | tr ' ' '\n' | grep '/\*$' || true)
while read -r kind path _; do
	[ "$kind" = dep ] || continue
	listed=no
	while read -r g; do
		case "$path/" in "${g%\*}"*) listed=$g ;; esac
	done <<<"$globs"
	[ "$listed" != no ] || fail "module $path is linked into mailautoconf but not listed in packaging/copyright"
	ok "$path ($listed)"
done < <(go version -m dist/build/amd64/mailautoconf)

step "package contents"
want_conffiles='/etc/nginx/conf-enabled/mailautoconf-upstream.conf
/etc/nginx/conf.d/mailautoconf-upstream.conf
/etc/nginx/templates/mailautoconf.tmpl'
want_common=$want_conffiles'
/usr/lib/systemd/system/mailautoconf-https.socket
/usr/lib/systemd/system/mailautoconf-keys.service
/usr/lib/systemd/system/mailautoconf-keys.timer
/usr/lib/systemd/system/mailautoconf.service
/usr/lib/systemd/system/mailautoconf.socket
/usr/sbin/mailautoconf
/usr/share/doc/mailautoconf/README.md
/usr/share/doc/mailautoconf/examples/apache.conf
/usr/share/doc/mailautoconf/examples/nginx.conf
/usr/share/doc/mailautoconf/examples/read-root-only-files.conf
/usr/share/man/man8/mailautoconf.8.gz'
want_deb=$(printf '%s\n' "$want_common" /usr/share/doc/mailautoconf/changelog.Debian.gz /usr/share/doc/mailautoconf/copyright /usr/share/lintian/overrides/mailautoconf | sort)
# An .rpm also lists the directories it owns (only the package's own, so
# that "rpm -e" leaves none behind, empty).
want_rpm=$(printf '%s\n' "$want_common" /usr/lib/systemd/system-preset/80-mailautoconf.preset /usr/share/licenses/mailautoconf/copyright \
	/etc/nginx /etc/nginx/conf-enabled /etc/nginx/conf.d /etc/nginx/templates /usr/share/doc/mailautoconf /usr/share/doc/mailautoconf/examples /usr/share/licenses/mailautoconf | sort)
for f in "${debs[@]}"; do
	got=$(dpkg-deb --fsys-tarfile "$f" | tar -t | grep -v '/$' | sed 's|^\./|/|' | sort)
	[ "$got" = "$want_deb" ] || fail "$f holds:
$got
want:
$want_deb"
	got=$(dpkg-deb --ctrl-tarfile "$f" | tar -xO ./conffiles | sort)
	[ "$got" = "$want_conffiles" ] || fail "$f: conffiles $got, want $want_conffiles"
	ok "$f: files and conffiles"
done
for f in "${rpms[@]}"; do
	got=$(rpm -qpl "$f" 2>/dev/null | sort)
	[ "$got" = "$want_rpm" ] || fail "$f holds:
$got
want:
$want_rpm"
	got=$(rpm -qpc "$f" 2>/dev/null | sort)
	[ "$got" = "$want_conffiles" ] || fail "$f: %config $got, want $want_conffiles"
	rpm -qp --changelog "$f" 2>/dev/null | grep -q -- "- ${version}-1\$" || fail "$f: %changelog does not name ${version}-1"
	rpm -qp --scripts "$f" 2>/dev/null | grep -q 'preinstall scriptlet' || fail "$f: no %pre"
	ok "$f: files, %config, %changelog, scriptlets"
done
man --warnings -l -Tutf8 -Z packaging/mailautoconf.8 2>&1 >/dev/null | grep . && fail "groff warnings in mailautoconf.8"
ok "mailautoconf.8 formats without warnings"

step "systemd-analyze verify (units as shipped, ExecStart pointed at the built binary)"
mkdir -p "$tmp/units"
for u in mailautoconf.socket mailautoconf-https.socket mailautoconf.service mailautoconf-keys.timer mailautoconf-keys.service; do
	sed "s|^ExecStart=/usr/sbin/mailautoconf|ExecStart=$PWD/dist/build/$(go env GOARCH)/mailautoconf|" \
		"packaging/systemd/$u" >"$tmp/units/$u"
done
mkdir -p "$tmp/units/mailautoconf.service.d"
cp packaging/systemd/read-root-only-files.conf "$tmp/units/mailautoconf.service.d/"
(cd "$tmp/units" && systemd-analyze verify --man=no ./mailautoconf.socket ./mailautoconf-https.socket ./mailautoconf.service \
	./mailautoconf-keys.timer ./mailautoconf-keys.service) ||
	fail "systemd-analyze verify"
ok "mailautoconf.socket, mailautoconf-https.socket, mailautoconf.service (+ read-root-only-files.conf drop-in), mailautoconf-keys.timer, mailautoconf-keys.service"

step "systemd-analyze security mailautoconf.service (at most $max_exposure)"
rm -r "$tmp/units/mailautoconf.service.d"
security=$(cd "$tmp/units" && systemd-analyze security --offline=yes ./mailautoconf.service 2>&1) || true
exposure=$(printf '%s\n' "$security" | sed -n 's/.*Overall exposure level for mailautoconf.service: \([0-9.]*\).*/\1/p')
[ -n "$exposure" ] || fail "no exposure level in: $security"
printf '%s\n' "$security" | grep '✗' || true
awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }' || fail "exposure $exposure > $max_exposure"
ok "exposure $exposure"

step "lintian and rpmlint"
sh packaging/lint.sh "${debs[@]}" "${rpms[@]}" || fail "lint"
ok "lintian and rpmlint clean (overrides: packaging/lintian-overrides, packaging/rpmlint.toml)"

if [ "$(id -u)" -ne 0 ]; then
	if [ "${CI:-}" = true ]; then
		fail "the dpkg checks need root"
	fi
	step "skipping the dpkg install checks: not root"
	exit 0
fi

# dpkg refuses to run while another package manager holds its lock (an
# apt-get elsewhere on the machine): wait for it rather than fail.
dpkg() {
	local i
	for i in $(seq 1 60); do
		if ! fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock >/dev/null 2>&1; then
			break
		fi
		[ "$i" -eq 1 ] && echo "    (waiting for the dpkg lock)"
		sleep 2
	done
	command dpkg "$@"
}

step "rpm -i, rpm -e into an empty root: no directory left behind"
# The .rpm's files, without its scriptlets (they need the system user and
# systemd), in a root that has only the directories a base system's
# packages own; twice: without nginx, where the package makes /etc/nginx,
# and with nginx's conf.d and iRedMail's templates and conf-enabled, which
# must stay.
rpm_arch=$(uname -m)
rpm_file=dist/mailautoconf-${version}-1.${rpm_arch}.rpm
[ -f "$rpm_file" ] || fail "no $rpm_file"
base_dirs='etc usr/sbin usr/lib/systemd/system usr/lib/systemd/system-preset usr/share/doc usr/share/licenses usr/share/man/man8'
for with in none iredmail; do
	r=$tmp/rpmroot-$with
	for d in $base_dirs; do mkdir -p "$r/$d"; done
	if [ "$with" = iredmail ]; then
		for f in templates/roundcube.tmpl conf-enabled/0-general.conf conf.d/default.conf; do
			mkdir -p "$(dirname "$r/etc/nginx/$f")" && touch "$r/etc/nginx/$f"
		done
	fi
	before=$(cd "$r" && find . -path ./var -prune -o -print | sort)
	rpm --root "$r" --dbpath /var/lib/rpm --initdb
	# (Debian's rpm says it should not be used to install packages.)
	out=$(rpm --root "$r" --dbpath /var/lib/rpm -i --nodeps --noscripts "$rpm_file" 2>&1) || fail "rpm -i into $r: $out"
	[ -f "$r/usr/sbin/mailautoconf" ] || fail "rpm -i into $r did not install /usr/sbin/mailautoconf"
	out=$(rpm --root "$r" --dbpath /var/lib/rpm -e --nodeps --noscripts mailautoconf 2>&1) || fail "rpm -e in $r: $out"
	after=$(cd "$r" && find . -path ./var -prune -o -print | sort)
	[ "$after" = "$before" ] || fail "rpm -e (with $with) left: $(comm -13 <(echo "$before") <(echo "$after") | tr '\n' ' ')"
	ok "rpm -e leaves the tree as it was (nginx templates: $with)"
done

# The directories the package, its scripts and its units can make, that
# exist now: the .deb's, the daemon's runtime and state directories, and
# those under systemd's enablement trees.
existing_dirs() {
	{
		dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -n 's|^\./\(.*\)/$|/\1|p'
		printf '%s\n' /run/mailautoconf /run/mailautoconf/keys /var/lib/mailautoconf
		find /etc/systemd/system /var/lib/systemd -type d 2>/dev/null || true
	} | sort -u | while read -r d; do
		if [ -d "$d" ]; then echo "$d"; fi
	done
}
# new_dirs prints the directories that exist now and did not before the
# install.
new_dirs() { comm -13 <(printf '%s\n' "$dirs_before") <(existing_dirs); }

# nginx -t with the include line the iRedMail template documents, in a
# server of a throwaway config whose http block reads the real
# /etc/nginx/conf-enabled (iRedMail's nginx.conf: the upstream
# mailautoconf_iredmail the template proxies to), with "example" also a
# server with the location block of the nginx example
# (packaging/nginx/mailautoconf.conf) in a config that reads the real
# /etc/nginx/conf.d (Debian's and Fedora's: the upstream mailautoconf),
# and both in one that reads both directories; against the real
# /etc/nginx/templates.
nginx_include=$(sed -n 's|^#[[:space:]]*\(include /etc/nginx/templates/[^ ]*;\)$|\1|p' packaging/nginx/iredmail-mailautoconf.tmpl)
[ -n "$nginx_include" ] || fail "packaging/nginx/iredmail-mailautoconf.tmpl documents no include line"
nginx_bin=$(PATH=$PATH:/usr/sbin command -v nginx || true)
nginx_test() {
	local when=$1 example=${2:-}
	if [ -z "$nginx_bin" ]; then
		[ "${CI:-}" != true ] || fail "no nginx (.ci/run installs it)"
		echo "    (no nginx here: \"$nginx_include\" $when not checked)"
		return
	fi
	local d=$tmp/nginx out layout dirs dir location='' what
	if [ "$example" = example ]; then
		location=$(awk '/^location ~\*/, /^}/' packaging/nginx/mailautoconf.conf)
		[ -n "$location" ] || fail "no location block in packaging/nginx/mailautoconf.conf"
	fi
	mkdir -p "$d"
	for layout in iRedMail Debian/Fedora both; do
		case $layout in
		iRedMail) dirs=/etc/nginx/conf-enabled ;;
		Debian/Fedora) dirs=/etc/nginx/conf.d ;;
		both) dirs="/etc/nginx/conf-enabled /etc/nginx/conf.d" ;;
		esac
		what=
		{
			cat <<-EOF
				pid $d/nginx.pid;
				error_log $d/error.log;
				events {}
				http {
				    access_log off;
				    client_body_temp_path $d/client_body;
				    proxy_temp_path $d/proxy;
				    fastcgi_temp_path $d/fastcgi;
				    uwsgi_temp_path $d/uwsgi;
				    scgi_temp_path $d/scgi;
			EOF
			for dir in $dirs; do
				echo "    include $dir/*.conf;"
			done
			if [ "$layout" != Debian/Fedora ]; then
				printf '    server {\n        listen unix:%s;\n        %s\n    }\n' "$d/nginx.sock" "$nginx_include"
			fi
			if [ -n "$location" ] && [ "$layout" != iRedMail ]; then
				printf '    server {\n        listen unix:%s;\n%s\n    }\n' "$d/example.sock" "$location"
			fi
			echo "}"
		} >"$d/nginx.conf"
		[ "$layout" = Debian/Fedora ] || what="\"$nginx_include\""
		[ -z "$location" ] || [ "$layout" = iRedMail ] || what="${what:+$what and }the example's location block"
		[ -n "$what" ] || continue
		out=$("$nginx_bin" -t -p "$d/" -c "$d/nginx.conf" -e "$d/error.log" 2>&1) ||
			fail "nginx -t $when, $layout layout ($dirs), with $what: $out"
		ok "nginx -t $when passes, $layout layout ($dirs), with $what"
	done
}

dirs_before=$(existing_dirs)
nginx_test "before the install"

step "dpkg -i $deb (on this machine; systemd is not PID 1 here, as in a chroot)"
if dpkg-query -W -f='${Status}' mailautoconf 2>/dev/null | grep -q installed; then
	fail "mailautoconf is already installed here; remove it first"
fi
installed=yes
dpkg -i "$deb"
systemd_running=no
[ -d /run/systemd/system ] && systemd_running=yes

check_installed() {
	dpkg-query -W -f='${Status}\n' mailautoconf | grep -qx 'install ok installed' || fail "dpkg status: $(dpkg-query -W -f='${Status}' mailautoconf)"
	local f mode
	while read -r f mode; do
		[ -e "$f" ] || fail "missing $f"
		[ "$(stat -c '%a %U:%G' "$f")" = "$mode root:root" ] || fail "$f: $(stat -c '%a %U:%G' "$f"), want $mode root:root"
	done <<-EOF
		/usr/sbin/mailautoconf 755
		/usr/lib/systemd/system/mailautoconf.socket 644
		/usr/lib/systemd/system/mailautoconf-https.socket 644
		/usr/lib/systemd/system/mailautoconf.service 644
		/usr/lib/systemd/system/mailautoconf-keys.timer 644
		/usr/lib/systemd/system/mailautoconf-keys.service 644
		/usr/share/man/man8/mailautoconf.8.gz 644
		/usr/share/doc/mailautoconf/copyright 644
		/usr/share/doc/mailautoconf/changelog.Debian.gz 644
		/etc/nginx/templates/mailautoconf.tmpl 644
		/etc/nginx/conf.d/mailautoconf-upstream.conf 644
		/etc/nginx/conf-enabled/mailautoconf-upstream.conf 644
	EOF
	ok "files and permissions"
	local pw
	pw=$(getent passwd mailautoconf) || fail "no user mailautoconf"
	IFS=: read -r _ _ uid gid _ home shell <<<"$pw"
	[ "$uid" -lt 1000 ] || fail "mailautoconf uid $uid is not a system uid"
	[ "$(getent group mailautoconf | cut -d: -f3)" = "$gid" ] || fail "mailautoconf's primary group is not mailautoconf"
	[ "$home" = /nonexistent ] && [ ! -e /nonexistent ] || fail "home $home"
	case $shell in */nologin | */false) ;; *) fail "shell $shell" ;; esac
	local g
	for g in postfix dovecot ssl-cert; do
		getent group "$g" >/dev/null || continue
		id -nG mailautoconf | tr ' ' '\n' | grep -qx "$g" || fail "mailautoconf is not in group $g"
	done
	ok "system user mailautoconf (uid $uid), groups: $(id -nG mailautoconf)"
	[ -L /etc/systemd/system/sockets.target.wants/mailautoconf.socket ] || fail "mailautoconf.socket not enabled"
	[ ! -e /etc/systemd/system/sockets.target.wants/mailautoconf-https.socket ] || fail "mailautoconf-https.socket enabled"
	ok "mailautoconf.socket enabled, mailautoconf-https.socket not"
	[ -L /etc/systemd/system/timers.target.wants/mailautoconf-keys.timer ] || fail "mailautoconf-keys.timer not enabled"
	ok "mailautoconf-keys.timer enabled"
	if [ "$systemd_running" = no ]; then
		[ ! -e /run/mailautoconf ] || fail "/run/mailautoconf exists without systemd"
		ok "nothing started (systemd is not running)"
	fi
	runuser -u mailautoconf -- /usr/sbin/mailautoconf help >/dev/null || fail "mailautoconf help as user mailautoconf"
	ok "/usr/sbin/mailautoconf runs as mailautoconf"
	systemd-analyze verify /usr/lib/systemd/system/mailautoconf.socket /usr/lib/systemd/system/mailautoconf-https.socket /usr/lib/systemd/system/mailautoconf.service \
		/usr/lib/systemd/system/mailautoconf-keys.timer /usr/lib/systemd/system/mailautoconf-keys.service ||
		fail "systemd-analyze verify on the installed units"
	ok "systemd-analyze verify on the installed units (binary and man page found)"
}
check_installed
nginx_test "with the template and the upstream installed" example

step "dpkg -i again (upgrade path: postinst configure <old version>)"
for f in $want_conffiles; do echo '# local change' >>"$f"; done
dpkg -i --force-confold "$deb"
check_installed
for f in $want_conffiles; do
	grep -q '^# local change' "$f" || fail "the conffile $f lost a local change on upgrade"
done
ok "conffiles kept their local changes"

step "an upgrade keeps a timer the admin disabled disabled"
systemctl disable --quiet mailautoconf-keys.timer
[ ! -e /etc/systemd/system/timers.target.wants/mailautoconf-keys.timer ] || fail "systemctl disable left mailautoconf-keys.timer enabled"
dpkg -i --force-confold "$deb"
[ ! -e /etc/systemd/system/timers.target.wants/mailautoconf-keys.timer ] || fail "the upgrade enabled mailautoconf-keys.timer again"
[ -L /etc/systemd/system/sockets.target.wants/mailautoconf.socket ] || fail "mailautoconf.socket not enabled after the upgrade"
systemctl enable --quiet mailautoconf-keys.timer
ok "mailautoconf-keys.timer stayed disabled, the socket enabled"

step "trigger: a group the user lacks is joined when Postfix's files change"
if getent group postfix >/dev/null && command -v gpasswd >/dev/null; then
	gpasswd -d mailautoconf postfix >/dev/null
	dpkg-trigger --no-await /usr/sbin/postfix
	dpkg --triggers-only mailautoconf
	id -nG mailautoconf | tr ' ' '\n' | grep -qx postfix || fail "postinst triggered did not add mailautoconf to postfix"
	ok "mailautoconf is back in group postfix"
else
	echo "    (no postfix group or gpasswd here: trigger not tested)"
fi

step "dpkg --remove: files gone, conffile, state and user kept, no empty directory left"
if [ "$systemd_running" = no ]; then
	# What a stopped daemon leaves (with systemd, the real ones): the last
	# good snapshot in StateDirectory=, and /run/mailautoconf emptied by
	# RemoveOnStop= and RuntimeDirectory=mailautoconf/keys.
	mkdir -p /var/lib/mailautoconf /run/mailautoconf/keys
	echo snapshot >/var/lib/mailautoconf/snapshot
	chown -R mailautoconf:mailautoconf /var/lib/mailautoconf
fi
dpkg --remove mailautoconf
[ ! -e /usr/sbin/mailautoconf ] || fail "/usr/sbin/mailautoconf left after remove"
[ ! -e /usr/lib/systemd/system/mailautoconf.service ] || fail "unit left after remove"
for f in $want_conffiles; do
	[ -e "$f" ] || fail "conffile $f removed by remove"
done
getent passwd mailautoconf >/dev/null || fail "user removed by remove"
[ -e /var/lib/mailautoconf/snapshot ] || fail "the state directory lost its snapshot on remove"
[ ! -e /run/mailautoconf ] || fail "/run/mailautoconf left after remove"
for d in $(new_dirs); do
	[ -n "$(ls -A "$d")" ] || fail "empty directory $d left after remove"
done
ok "removed; new directories left, none empty: $(new_dirs | tr '\n' ' ')"
nginx_test "after remove (conffiles kept)" example

step "dpkg --purge: nothing left"
dpkg --purge mailautoconf
installed=no
dpkg-query -W mailautoconf >/dev/null 2>&1 && fail "dpkg still knows mailautoconf: $(dpkg-query -W -f='${Status}' mailautoconf)"
getent passwd mailautoconf >/dev/null && fail "user mailautoconf left after purge"
getent group mailautoconf >/dev/null && fail "group mailautoconf left after purge"
for g in postfix dovecot ssl-cert; do
	getent group "$g" | cut -d: -f4 | tr ',' '\n' | grep -qx mailautoconf && fail "mailautoconf still listed in group $g"
done
left=$(find /etc /usr /run /var/lib -name '*mailautoconf*' 2>/dev/null || true)
[ -z "$left" ] || fail "left after purge: $left"
[ ! -e /etc/nginx/templates ] || [ -n "$(ls -A /etc/nginx/templates)" ] || fail "empty /etc/nginx/templates left after purge"
ok "no package, user, group, unit, enablement link or file named mailautoconf left"
left=$(new_dirs)
[ -z "$left" ] || fail "directories made since the install left after purge: $left"
ok "no directory made since the install left"
nginx_test "after purge"

echo "--- packaging: all checks passed"
