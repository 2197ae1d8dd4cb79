#!/usr/bin/env bash
# packaging/boot-test/checks.sh DEB DEB2 RPM RPM2 VERSION VERSION2: the
# checks of packaging/boot-test.sh, run as root inside the booted Debian 12
# container, from /root/boot-test (which holds the packages and the corpus
# set's schema.sql and seed.sql). DEB2 and RPM2 are the same packages with
# the higher VERSION2. Each check prints PASS or FAIL with what it saw; the
# exit status is 1 when one failed.
#
# It does what an admin would: apt-get install, curl, systemctl, an editor
# (sed), mariadb, postfix reload, apt-get remove and purge, and rpm; and
# publishes what "mailautoconf dns" prints (in NSD, on 127.0.0.1:5300) and
# runs "mailautoconf check --resolver" against it.
set -uo pipefail
cd /root/boot-test
deb=./$1 deb2=./$2 rpm=./$3 rpm2=./$4 version=$5 version2=$6

tmp=$(mktemp -d)
body=$tmp/body
trap 'rm -rf "$tmp"' EXIT
sock=/run/mailautoconf/http.sock
dovecot_conf=/etc/dovecot/dovecot.conf
lookup=/etc/postfix/mysql/virtual_mailbox_domains.cf

n=0
results=()
section() {
	n=$((n + 1))
	printf '\n--- [%d] %s\n' "$n" "$*"
}
pass() {
	printf 'PASS  %s\n' "$*"
	results+=("PASS  [$n] $*")
}
fail() {
	printf 'FAIL  %s\n' "$*"
	results+=("FAIL  [$n] $*")
}
# check prints PASS or FAIL with MESSAGE depending on whether CMD succeeds.
check() {
	local msg=$1
	shift
	if "$@"; then pass "$msg"; else fail "$msg"; fi
}
note() { printf '      %s\n' "$@"; }

ms() { echo $(($(date +%s%N) / 1000000)); }
# until_ok SECONDS CMD...: runs CMD every 0.2 s until it succeeds (0) or
# SECONDS pass (1); waited is then the time it took, in seconds.
waited=
until_ok() {
	local limit=$(($1 * 1000)) t0
	shift
	t0=$(ms)
	while :; do
		if "$@"; then
			waited=$(awk -v d=$(($(ms) - t0)) 'BEGIN { printf "%.1f", d / 1000 }')
			return 0
		fi
		if [ $(($(ms) - t0)) -ge "$limit" ]; then
			waited=$((limit / 1000))
			return 1
		fi
		sleep 0.2
	done
}

# get VIA HOST PATH [CURL ARGS]: one request through the unix socket
# (unix), 127.0.0.1:8470 (tcp) or nginx's HTTPS server (nginx, resolving
# HOST to 127.0.0.1); sets code (000 when nothing answered) and writes the
# body to $body and the headers to $tmp/headers.
code=
get() {
	local via=$1 host=$2 path=$3
	shift 3
	local args=(-sS --max-time 10 -o "$body" -D "$tmp/headers" -w '%{http_code}' "$@")
	case $via in
	unix) code=$(curl "${args[@]}" --unix-socket "$sock" "http://$host$path" 2>"$tmp/curl.err") ;;
	tcp) code=$(curl "${args[@]}" -H "Host: $host" "http://127.0.0.1:8470$path" 2>"$tmp/curl.err") ;;
	nginx) code=$(curl "${args[@]}" -k --resolve "$host:443:127.0.0.1" "https://$host$path" 2>"$tmp/curl.err") ;;
	nginx80) code=$(curl "${args[@]}" --resolve "$host:80:127.0.0.1" "http://$host$path" 2>"$tmp/curl.err") ;;
	esac
	[ -n "$code" ] || code=000
}
# autoconfig VIA DOMAIN: the Mozilla autoconfig document for alice@DOMAIN.
autoconfig() { get "$1" "autoconfig.$2" "/mail/config-v1.1.xml?emailaddress=alice%40$2"; }
# served VIA DOMAIN: mailautoconf answers for DOMAIN with this host's servers.
served() {
	autoconfig "$1" "$2"
	[ "$code" = 200 ] && grep -q "emailProvider id=\"$2\"" "$body" && grep -q '<hostname>mail.example.com</hostname>' "$body"
}
not_served() {
	autoconfig "$1" "$2"
	[ "$code" = 404 ]
}
# advertises PORT: the autoconfig answer for example.org lists PORT.
advertises() {
	served unix example.org && grep -q "<port>$1</port>" "$body"
}
said() { printf '%s %s: %s' "$code" "$(head -c 200 "$body" | tr '\n' ' ')" "$(cat "$tmp/curl.err" 2>/dev/null)"; }

prop() { systemctl show -P "$2" "$1" 2>/dev/null; }
status_text() { prop mailautoconf.service StatusText; }
main_pid() { prop mailautoconf.service MainPID; }
restarts() { prop mailautoconf.service NRestarts; }
is_running() { [ "$(prop mailautoconf.service ActiveState)/$(prop mailautoconf.service SubState)" = active/running ]; }
journal_since() { journalctl -q -u mailautoconf.service --since "@$1" -o cat --no-pager 2>/dev/null; }
# first_log_line: the first line the running daemon (not its ExecStartPre
# step) logged.
first_log_line() { journalctl -q -o cat --no-pager _PID="$(main_pid)" 2>/dev/null | head -1; }
# daemon_log SINCE: the daemon's own lines (slog's), not systemd's.
daemon_log() { journal_since "$1" | grep '^level='; }
listening() { [ -n "$(ss -Hltn "sport = :$1")" ]; }
# leftovers prints every file or directory named after the package, and
# every empty directory it could have left, under the paths packages use.
leftovers() {
	find /etc /usr /var /run /srv /opt \( -name '*mailautoconf*' -o -path /var/lib/mailautoconf \) -print 2>/dev/null | sort
}
empty_dirs() {
	{
		find /etc /usr /var /run /srv /opt -depth -type d -empty -name '*mailautoconf*' 2>/dev/null
		for d in /etc/nginx/templates /usr/share/doc/mailautoconf /usr/share/licenses /usr/lib/systemd/system-preset; do
			[ -d "$d" ] && [ -z "$(ls -A "$d")" ] && echo "$d"
		done
	} | sort -u
}
# signed_by CERT: the Apple profile for alice@example.org is a CMS
# signature whose signer is CERT.
signed_by() {
	get unix autoconfig.example.org "/mobileconfig?emailaddress=alice%40example.org"
	[ "$code" = 200 ] || return 1
	openssl cms -verify -inform DER -in "$body" -noverify -signer "$tmp/signer.pem" -out /dev/null 2>/dev/null || return 1
	[ "$(openssl x509 -in "$tmp/signer.pem" -noout -fingerprint -sha256)" = "$(openssl x509 -in "$1" -noout -fingerprint -sha256)" ]
}
nginx_ok() { nginx -t >"$tmp/nginx-t" 2>&1; }
broken_dovecot() {
	cp -p "$dovecot_conf" "$tmp/dovecot.conf.good"
	# An unclosed block, the kind of mistake an edit leaves behind.
	printf '\nservice imap-login {\n  inet_listener imaps {\n    port = 993\n' >>"$dovecot_conf"
}
fix_dovecot() { cp -p "$tmp/dovecot.conf.good" "$dovecot_conf"; }
status_has_error() { status_text | grep -qi 'error' && status_text | grep -qi 'dovecot'; }
status_clean() { ! status_text | grep -qiE 'error|fail'; }
quiet() { "$@" >"$tmp/out" 2>&1 || {
	local rc=$?
	sed 's/^/      | /' "$tmp/out" | tail -15
	return $rc
}; }

# ---------------------------------------------------------------------------
section "setup: the vmail database loaded, Postfix, Dovecot, MariaDB and nginx running"
setup_ok=yes
until_ok 60 systemctl is-active --quiet mariadb.service || setup_ok=no
quiet mariadb <schema.sql && quiet mariadb <seed.sql || setup_ok=no
quiet systemctl restart postfix.service dovecot.service || setup_ok=no
for port in 25 465 587 110 143 993 995 3306 80 443; do
	until_ok 30 listening "$port" || {
		note "nothing listens on port $port"
		setup_ok=no
	}
done
[ "$(postmap -q example.org "mysql:$lookup" 2>&1)" = example.org ] || {
	note "postmap -q example.org mysql:$lookup: $(postmap -q example.org "mysql:$lookup" 2>&1)"
	setup_ok=no
}
nginx_ok || {
	sed 's/^/      | /' "$tmp/nginx-t"
	setup_ok=no
}
if [ "$setup_ok" = yes ]; then
	pass "mail stack running: postfix $(postconf -h mail_version), dovecot $(dovecot --version | cut -d' ' -f1), $(mariadb --version | grep -o 'Distrib [^,]*' || mariadb --version), $(nginx -v 2>&1 | cut -d' ' -f3); postmap finds example.org in MariaDB"
else
	fail "the mail stack does not run as configured (above); the checks below would prove nothing"
	systemctl --failed --no-legend --no-pager | sed 's/^/      | /'
	exit 1
fi

# ---------------------------------------------------------------------------
section "install: apt-get install ./$(basename "$deb")"
if quiet apt-get install -y --no-install-recommends "$deb"; then
	pass "installed $(dpkg-query -W -f='${Version}' mailautoconf); groups of mailautoconf: $(id -nG mailautoconf)"
else
	fail "apt-get install $deb"
fi
check "mailautoconf.socket enabled and listening ($sock, 127.0.0.1:8470)" \
	eval '[ "$(systemctl is-enabled mailautoconf.socket)" = enabled ] && systemctl is-active --quiet mailautoconf.socket && [ -S "$sock" ] && listening 8470'
check "mailautoconf.service not started by the install (it is socket-activated): $(prop mailautoconf.service ActiveState)" \
	eval '! systemctl is-active --quiet mailautoconf.service'
check "mailautoconf-keys.timer enabled and active ($(systemctl list-timers --no-legend mailautoconf-keys.timer 2>/dev/null | head -1))" \
	eval '[ "$(systemctl is-enabled mailautoconf-keys.timer)" = enabled ] && systemctl is-active --quiet mailautoconf-keys.timer'
check "mailautoconf-keys.service with the daemon idle: succeeds and does not start it" \
	eval 'quiet timeout 60 systemctl start mailautoconf-keys.service && ! systemctl is-active --quiet mailautoconf.service'
# README.md: with the include line in place, "nginx -t && systemctl reload
# nginx" once the package is installed.
check "nginx -t && systemctl reload nginx, with the template installed" eval 'nginx_ok && quiet systemctl reload nginx.service'

# ---------------------------------------------------------------------------
section "the first request starts the service"
t0=$(ms)
served unix example.org
first_code=$code
first_ms=$(($(ms) - t0))
if [ "$first_code" = 200 ] && is_running; then
	pass "first request answered 200 in ${first_ms} ms and started mailautoconf.service (MainPID $(main_pid))"
else
	fail "first request: $(said); service $(prop mailautoconf.service ActiveState)/$(prop mailautoconf.service SubState)"
fi
note "STATUS: $(status_text)"
check "the version is $version in mailautoconf --version, STATUS and the log's first line" \
	eval '[ "$(mailautoconf --version 2>&1)" = "mailautoconf $version" ] && status_text | grep -qF "$version" && first_log_line | grep -qF "$version"'
note "log: $(first_log_line)"
# iRedMail's key is root's alone (0600): signing needs the unit's staging.
check "Apple profile signed with iRedMail's root-only key (/etc/ssl/private/iRedMail.key, 0600 root)" \
	signed_by /etc/ssl/certs/iRedMail.crt

# ---------------------------------------------------------------------------
section "answers through the unix socket, 127.0.0.1:8470 and nginx (iRedMail's template, included as README.md says)"
for via in unix tcp nginx; do
	if served "$via" example.org; then
		pass "$via: autoconfig for example.org: 200, servers of mail.example.com"
	else
		fail "$via: autoconfig for example.org: $(said)"
	fi
done
get nginx autoconfig.example.org "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40example.org"
check "nginx: /.well-known/autoconfig/... reaches mailautoconf before misc.tmpl claims /.well-known/ ($code)" \
	grep -q 'emailProvider id="example.org"' "$body"
get nginx autodiscover.example.org /autodiscover/autodiscover.xml -X POST -H 'Content-Type: text/xml' \
	--data '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>alice@example.org</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>'
check "nginx: Outlook autodiscover POST for alice@example.org ($code)" \
	eval '[ "$code" = 200 ] && grep -q "mail.example.com" "$body"'
get nginx autoconfig.example.org /
check "nginx: the settings page at https://autoconfig.example.org/ ($code, $(head -c 80 "$body" | tr '\n' ' '))" \
	eval '[ "$code" = 200 ] && grep -qi "<html" "$body" && ! grep -q "iRedMail web root" "$body"'
get nginx mail.example.com /
check "nginx: https://mail.example.com/ is still iRedMail's web root ($code)" grep -q 'iRedMail web root' "$body"
get nginx mail.example.com /mail/
check "nginx: /mail/ is still Roundcube's ($code)" grep -q roundcube "$body"
get nginx80 autoconfig.example.org "/mail/config-v1.1.xml?emailaddress=alice%40example.org"
note "port 80 (iRedMail redirects everything to HTTPS): $code $(grep -i '^location:' "$tmp/headers" | tr -d '\r')"
check "alias domain alias.example.com is served" served unix alias.example.com
check "backup-MX domain backupmx.example.net is not served (404)" not_served unix backupmx.example.net

# ---------------------------------------------------------------------------
# mailautoconf check follows each client's lookup order through DNS and
# HTTPS. The container has no DNS: NSD serves, on 127.0.0.1:$dns_port, a
# zone per hosted domain made of that domain's block of "mailautoconf dns"
# (with the suggested MX taken as is), and the A record of the host the
# notes ask for (127.0.0.1, where nginx and the mail servers listen).
dns_port=5300
resolver=127.0.0.1:$dns_port
zonedir=/etc/nsd/boot-test
# The four clients the table must name for every domain (CalDAV and
# CardDAV rows may come on top).
clients=("Thunderbird" "Thunderbird for Android" "Outlook" "Apple Mail")
zones=() dns_domains=() dns_host= host_zone=
# zone_text ZONE: the zone file of ZONE from $tmp/dns.zone.
zone_text() {
	local z=$1
	printf '$ORIGIN %s.\n$TTL 3600\n' "$z"
	printf '@\tIN SOA\t%s. hostmaster.%s. 1 3600 600 86400 300\n@\tIN NS\t%s.\n' "$dns_host" "$z" "$dns_host"
	# The domain's block: its records, and the suggested MX uncommented (mail
	# for the domains of the set does come straight to this host).
	awk -v h="; ===== $z =====" '
		$0 == h { on = 1; next }
		/^; =====/ { on = 0 }
		!on { next }
		/^; [^ ]+\.[ \t]+[0-9]+ IN MX [0-9]+ [^ ]+\.$/ { sub(/^; /, ""); print; next }
		/^;/ || NF == 0 { next }
		{ print }' "$tmp/dns.zone"
	[ "$z" != "$host_zone" ] || printf '%s.\tIN A\t127.0.0.1\n' "$dns_host"
}
# serve_zones writes the zones and nsd.conf from "mailautoconf dns" and
# (re)starts NSD; prints what went wrong.
serve_zones() {
	local z d
	mailautoconf dns >"$tmp/dns.zone" 2>"$tmp/dns.err" &&
		mailautoconf dns --format json >"$tmp/dns.json" 2>>"$tmp/dns.err" || {
		sed 's/^/      | /' "$tmp/dns.err"
		return 1
	}
	dns_host=$(jq -r .host "$tmp/dns.json")
	mapfile -t dns_domains < <(jq -r '.domains[].name' "$tmp/dns.json")
	[ -n "$dns_host" ] && [ "${#dns_domains[@]}" -gt 0 ] || {
		note "mailautoconf dns names no host or no domain"
		return 1
	}
	# The host's A record goes into the longest hosted domain above it, or
	# into a zone of its own.
	host_zone=
	for d in "${dns_domains[@]}"; do
		case $dns_host in "$d" | *."$d") [ "${#d}" -le "${#host_zone}" ] || host_zone=$d ;; esac
	done
	zones=("${dns_domains[@]}")
	[ -n "$host_zone" ] || {
		host_zone=$dns_host
		zones+=("$dns_host")
	}
	mkdir -p "$zonedir"
	[ -f /etc/nsd/nsd.conf.debian ] || cp -p /etc/nsd/nsd.conf /etc/nsd/nsd.conf.debian
	{
		printf 'server:\n\tip-address: 127.0.0.1@%s\n\tzonesdir: "%s"\n\tverbosity: 1\nremote-control:\n\tcontrol-enable: no\n' "$dns_port" "$zonedir"
		for z in "${zones[@]}"; do
			printf 'zone:\n\tname: "%s"\n\tzonefile: "%s.zone"\n' "$z" "$z"
		done
	} >/etc/nsd/nsd.conf
	for z in "${zones[@]}"; do
		zone_text "$z" >"$zonedir/$z.zone"
		nsd-checkzone "$z" "$zonedir/$z.zone" >"$tmp/out" 2>&1 || {
			sed 's/^/      | /' "$tmp/out" "$zonedir/$z.zone"
			return 1
		}
	done
	quiet nsd-checkconf /etc/nsd/nsd.conf && quiet systemctl restart nsd.service &&
		until_ok 10 eval '[ -n "$(ss -Hlun "sport = :$dns_port")" ]'
}
# run_check NAME CA_FILE: mailautoconf check --resolver, in text (printed
# into this log) and in JSON ($tmp/NAME.json); check_rc is its exit status.
check_rc=
run_check() {
	local name=$1 ca=$2
	check_rc=0
	mailautoconf check --resolver "$resolver" --ca-file "$ca" >"$tmp/$name.txt" 2>"$tmp/$name.err" || check_rc=$?
	note "mailautoconf check --resolver $resolver --ca-file $ca (exit $check_rc):"
	sed 's/^/      | /' "$tmp/$name.txt" "$tmp/$name.err"
	mailautoconf check --json --resolver "$resolver" --ca-file "$ca" >"$tmp/$name.json" 2>/dev/null
	jq -e . "$tmp/$name.json" >/dev/null 2>&1
}
# client_row NAME CLIENT DOMAIN: the client's result for DOMAIN, as JSON.
client_row() {
	jq -c --arg c "$2" --arg d "$3" '[.results[] | select(.group == "client" and .client == $c and .domain == $d)] | if length == 1 then .[0] else empty end' "$tmp/$1.json"
}
# table_shape NAME: every hosted domain has a row for each client, each
# row a URL, and a row that is not ok says why and what to fix; prints
# what is missing.
table_shape() {
	local name=$1 d c row bad=
	grep -q '^Per client' "$tmp/$name.txt" && grep -q '^CLIENT  *DOMAIN  *RESULT  *URL' "$tmp/$name.txt" || bad="no per-client table in the text output"
	for d in "${dns_domains[@]}"; do
		for c in "${clients[@]}"; do
			row=$(client_row "$name" "$c" "$d")
			if [ -z "$row" ]; then
				bad+="${bad:+; }no single $c row for $d"
			elif ! jq -e '(.url // "") != "" and (.status == "ok" or ((.detail // "") != "" and (.fix // "") != ""))' <<<"$row" >/dev/null; then
				bad+="${bad:+; }$c/$d: $row"
			elif ! grep -qE "^$c  +$d  +" "$tmp/$name.txt"; then
				bad+="${bad:+; }$c/$d not in the text table"
			fi
		done
	done
	[ -z "$bad" ] || note "$bad"
	[ -z "$bad" ]
}
# rows_where NAME CLIENT JQ_FILTER: the domains whose CLIENT row fails
# the filter ($d is the domain), with the row's status and URL; empty
# when every row passes.
rows_where() {
	local d row out=
	for d in "${dns_domains[@]}"; do
		row=$(client_row "$1" "$2" "$d")
		jq -e --arg d "$d" "$3" <<<"${row:-null}" >/dev/null 2>&1 ||
			out+="${out:+; }$d: $(jq -r '"\(.status) \(.url) (\(.detail))"' <<<"${row:-null}" 2>/dev/null | cut -c1-300)"
	done
	printf '%s' "$out"
}
# group_failures NAME GROUP: the FAIL results of GROUP, one a line.
group_failures() {
	jq -r --arg g "$2" '.results[] | select(.group == $g and .status == "FAIL") | "\(.name): \(.detail)"' "$tmp/$1.json"
}

section "mailautoconf check --resolver: NSD on $resolver serving the zones of mailautoconf dns; iRedMail's certificate (mail.example.com only)"
if serve_zones; then
	pass "NSD $(nsd -v 2>&1 | head -1 | grep -o '[0-9][0-9.]*' | head -1) serves ${#zones[@]} zones from mailautoconf dns on $resolver: ${zones[*]} (host $dns_host in $host_zone)"
else
	fail "could not serve the zones of mailautoconf dns with NSD (above)"
fi
for z in "${zones[@]}"; do
	note "zone $z:" && sed 's/^/      | /' "$zonedir/$z.zone"
done
run_check iredmail /etc/ssl/certs/iRedMail.crt
check "check --json is JSON; the text output is the report (exit $check_rc: $(tail -1 "$tmp/iredmail.txt"))" \
	eval 'jq -e ".results | length > 0" "$tmp/iredmail.json" >/dev/null && grep -qE "^[0-9]+ checks: " "$tmp/iredmail.txt"'
check "the per-client table: ${clients[*]} for each of ${dns_domains[*]}, each with a URL, and why and a fix when not ok" \
	table_shape iredmail
bad=$(group_failures iredmail dns)
check "DNS as NSD serves it holds what mailautoconf dns asks for (no FAIL among the dns checks)${bad:+: $bad}" test -z "$bad"
# iRedMail's certificate covers mail.example.com alone: Outlook finds the
# host through the _autodiscover._tcp SRV record (after a prompt, hence
# warn); the names autoconfig.<d> and autodiscover.<d> fail on the
# certificate, and their rows say so and name the fix.
bad=$(rows_where iredmail Outlook '.status != "FAIL" and (.url | startswith("SRV _autodiscover._tcp." + $d + " → https://mail.example.com/"))')
check "Outlook reaches mail.example.com through SRV _autodiscover._tcp.<domain> for every domain (warn: Outlook asks first)${bad:+: $bad}" test -z "$bad"
bad=$(rows_where iredmail Thunderbird '.status == "FAIL" and (.detail | contains("autoconfig." + $d)) and (.fix | contains("autoconfig." + $d))')
check "Thunderbird: the certificate lacks autoconfig.<domain>; each row names it in why and fix${bad:+: $bad}" test -z "$bad"

# The admin then does what the TLS certificate names of "mailautoconf dns"
# ask: a certificate for nginx covering every required name the https
# front presents (from a throwaway CA here), in iRedMail's ssl.tmpl.
section "mailautoconf check --resolver, nginx with a certificate for the names mailautoconf dns lists for https"
mapfile -t web_names < <(jq -r '.certificate_names[] | select(.required and any(.servers[]; . == "https")) | .name' "$tmp/dns.json")
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/web-ca.key" -out "$tmp/web-ca.crt" -subj '/CN=boot-test web CA' -days 30 2>/dev/null
san=$(printf 'DNS:%s,' "${web_names[@]}")
openssl req -newkey rsa:2048 -nodes -keyout "$tmp/web.key" -subj "/CN=${web_names[0]:-none}" -addext "subjectAltName=${san%,}" \
	-out "$tmp/web.req" 2>/dev/null
openssl x509 -req -in "$tmp/web.req" -CA "$tmp/web-ca.crt" -CAkey "$tmp/web-ca.key" -CAcreateserial -days 30 \
	-copy_extensions copy -out "$tmp/web.crt" 2>/dev/null
install -m 0644 "$tmp/web.crt" /etc/ssl/certs/boot-test-web.crt
install -m 0600 "$tmp/web.key" /etc/ssl/private/boot-test-web.key
cp -p /etc/nginx/templates/ssl.tmpl "$tmp/ssl.tmpl.good"
sed -i 's|/etc/ssl/certs/iRedMail.crt|/etc/ssl/certs/boot-test-web.crt|; s|/etc/ssl/private/iRedMail.key|/etc/ssl/private/boot-test-web.key|' /etc/nginx/templates/ssl.tmpl
check "nginx presents a certificate for ${#web_names[@]} names: ${web_names[*]}" eval 'nginx_ok && quiet systemctl reload nginx.service'
# The mail servers keep iRedMail's certificate: trust both.
cat "$tmp/web-ca.crt" /etc/ssl/certs/iRedMail.crt >"$tmp/cas.pem"
# nginx's workers take the new certificate once reloaded.
until_ok 10 eval 'echo | openssl s_client -connect 127.0.0.1:443 -servername "autoconfig.${dns_domains[0]}" 2>/dev/null | openssl x509 -noout -issuer 2>/dev/null | grep -q "boot-test web CA"' ||
	note "nginx still presents the old certificate after ${waited}s"
run_check named "$tmp/cas.pem"
check "the per-client table: ${clients[*]} for each of ${dns_domains[*]}, each with a URL, and why and a fix when not ok" \
	table_shape named
bad=$(rows_where named Thunderbird '.status == "ok" and (.url | startswith("https://autoconfig." + $d + "/mail/config-v1.1.xml?emailaddress="))')
check "Thunderbird: ok through https://autoconfig.<domain>/mail/config-v1.1.xml for every domain${bad:+: $bad}" test -z "$bad"
bad=$(rows_where named "Thunderbird for Android" '.status == "ok" and .url == "https://autoconfig." + $d + "/mail/config-v1.1.xml"')
check "Thunderbird for Android: ok through https://autoconfig.<domain>/mail/config-v1.1.xml (no address sent) for every domain${bad:+: $bad}" test -z "$bad"
bad=$(rows_where named Outlook '.status == "ok" and (.url | startswith("https://autodiscover." + $d + "/autodiscover/"))')
check "Outlook: ok through https://autodiscover.<domain>/autodiscover/ for every domain${bad:+: $bad}" test -z "$bad"
bad=$(rows_where named "Apple Mail" '.status == "ok" and (.url | startswith("https://autoconfig." + $d + "/mobileconfig?emailaddress="))')
check "Apple Mail: ok through the profile at https://autoconfig.<domain>/mobileconfig for every domain${bad:+: $bad}" test -z "$bad"
bad=$(jq -r '.results[] | select(.status == "FAIL") | "\(.group) \(.name): \(.detail)"' "$tmp/named.json" 2>/dev/null | head -5 | tr '\n' ' ')
check "with DNS and the certificate as mailautoconf dns asks, check finds nothing to fix (exit $check_rc: $(tail -1 "$tmp/named.txt"))${bad:+: $bad}" \
	eval '[ "$check_rc" = 0 ] && [ -z "$bad" ]'
cp -p "$tmp/ssl.tmpl.good" /etc/nginx/templates/ssl.tmpl
rm -f /etc/ssl/certs/boot-test-web.crt /etc/ssl/private/boot-test-web.key
check "nginx back on iRedMail's certificate" eval 'nginx_ok && quiet systemctl reload nginx.service'

# ---------------------------------------------------------------------------
section "a master.cf edit is advertised once postfix reload applies it"
cp -p /etc/postfix/master.cf "$tmp/master.cf.good"
t_edit=$(date +%s)
cat >>/etc/postfix/master.cf <<-'EOF'
	2587      inet  n       -       n       -       -       smtpd
	    -o syslog_name=postfix/submission2587
	    -o smtpd_tls_security_level=encrypt
	    -o smtpd_sasl_auth_enable=yes
EOF
# The daemon follows the file at once; give it time to rebuild.
until_ok 5 eval 'journal_since "$t_edit" | grep -q 2587' || sleep 2
if advertises 2587; then
	fail "port 2587 is advertised before postfix reload, while nothing listens on it"
else
	pass "before postfix reload: port 2587 not advertised (nothing listens on it)"
fi
note "log: $(journal_since "$t_edit" | grep 2587 | head -2)"
quiet postfix reload
if until_ok 15 advertises 2587; then
	pass "after postfix reload: port 2587 advertised within ${waited}s"
else
	fail "after postfix reload: port 2587 not advertised within ${waited}s ($(said))"
fi
cp -p "$tmp/master.cf.good" /etc/postfix/master.cf
quiet postfix reload
until_ok 10 eval '! advertises 2587' || fail "port 2587 still advertised 10s after it was removed from master.cf"

# ---------------------------------------------------------------------------
section "a domain inserted in MariaDB is served"
quiet mariadb vmail -e "INSERT INTO domain (domain, transport, backupmx, active, expired, created) VALUES ('new.example.net', 'dovecot', 0, 1, '9999-12-31 00:00:00', NOW())"
if until_ok 10 served unix new.example.net; then
	pass "new.example.net served ${waited}s after the INSERT"
else
	fail "new.example.net not served within ${waited}s: $(said)"
fi

# ---------------------------------------------------------------------------
section "systemctl reload mailautoconf"
pid=$(main_pid)
t0=$(date +%s)
if quiet timeout 30 systemctl reload mailautoconf.service; then
	pass "systemctl reload returned 0"
else
	fail "systemctl reload failed"
fi
# systemctl returns once ExecReload ran (kill -HUP), maybe before the daemon
# has even sent RELOADING=1 (Type=notify-reload, which waits, needs systemd
# 253; bookworm has 252): wait for the reload's own log line, then READY=1.
reloaded() { journal_since "$t0" | sed -n '/SIGHUP: reloading/,$p' | grep -q 'snapshot published' && is_running; }
until_ok 10 reloaded
check "running again ${waited}s after the reload, same process (MainPID $pid -> $(main_pid))" \
	eval '[ "$(main_pid)" = "$pid" ] && is_running'
check "still answering after the reload" served unix example.org
note "STATUS: $(status_text)"
pid=$(main_pid)
t0=$(date +%s)
check "mailautoconf-keys.service (the twice-daily timer's job) reloads the running daemon (SIGHUP after stage-keys), same process" \
	eval 'quiet timeout 60 systemctl start mailautoconf-keys.service && until_ok 10 is_running && [ "$(main_pid)" = "$pid" ] && until_ok 5 eval "journal_since $t0 | grep -q SIGHUP"'
check "still answering after the timer's reload" served unix example.org

# ---------------------------------------------------------------------------
section "MariaDB stopped: the domains known before are still served"
# Debian's MariaDB is socket-activated too: the socket would start it again.
quiet systemctl stop mariadb.socket mariadb.service
quiet timeout 30 systemctl reload mailautoconf.service
until_ok 10 is_running
for d in example.org example.com alias.example.com new.example.net; do
	if served unix "$d"; then pass "$d still served with MariaDB down"; else fail "$d with MariaDB down: $(said)"; fi
done
autoconfig unix never-seen.example.net
check "a domain never listed, with MariaDB down: 503, as README.md says for a failed lookup ($(said))" \
	eval '[ "$code" = 503 ]'
note "STATUS: $(status_text)"
check "STATUS says the database is unreachable" eval 'status_text | grep -qiE "unreachable|database"'
quiet systemctl start mariadb.socket mariadb.service
quiet timeout 30 systemctl reload mailautoconf.service
until_ok 20 eval '! status_text | grep -qi unreachable' || fail "STATUS still says unreachable 20s after MariaDB is back: $(status_text)"

# ---------------------------------------------------------------------------
# broken_restart_checks WHAT T0_MS PID_BEFORE: after a (re)start of the
# daemon with a broken dovecot.conf, started at T0_MS (ms).
broken_restart_checks() {
	local what=$1 t0=$2 pid_before=$3
	if until_ok 15 eval 'is_running && served unix example.org'; then
		pass "$what: answering again $(($(ms) - t0)) ms after it began, from the last good snapshot (example.org served)"
	else
		fail "$what: not answering 15s later: $(prop mailautoconf.service ActiveState)/$(prop mailautoconf.service SubState), $(said)"
	fi
	check "$what: a new process (MainPID $pid_before -> $(main_pid))" eval '[ "$(main_pid)" != "$pid_before" ] && [ "$(main_pid)" != 0 ]'
	check "$what: STATUS names the error: $(status_text)" status_has_error
	note "log: $(daemon_log "$(((t0 / 1000) - 1))" | grep -iE 'error|dovecot' | head -2 | tr '\n' ' ' | cut -c1-400)"
	local pid r0
	pid=$(main_pid)
	r0=$(restarts)
	sleep 8
	check "$what: no restart loop (same MainPID after 8s, NRestarts $r0 -> $(restarts), state $(prop mailautoconf.service SubState))" \
		eval '[ "$(main_pid)" = "$pid" ] && [ "$(restarts)" = "$r0" ] && is_running'
	check "$what: a domain of the last good snapshot still answers (example.com)" served unix example.com
	check "$what: Apple profiles still signed (iRedMail's root-only key) while the configuration is broken" \
		signed_by /etc/ssl/certs/iRedMail.crt
	[ -f "$body" ] && note "profile: $(head -c 40 "$body" | tr -c '[:print:]' '.'); STATUS: $(status_text | cut -c1-300)"
	fix_dovecot
	if until_ok 15 status_clean; then
		pass "$what: dovecot.conf fixed: the error is gone from STATUS within ${waited}s ($(status_text))"
	else
		fail "$what: dovecot.conf fixed, STATUS 15s later: $(status_text)"
	fi
	check "$what: answering after the fix" served unix example.org
	if until_ok 15 signed_by /etc/ssl/certs/iRedMail.crt; then
		pass "$what: Apple profiles signed again ${waited}s after the fix, with no admin reload"
	else
		fail "$what: Apple profiles still unsigned ${waited}s after the fix (until a systemctl reload stages the key): $(status_text | grep -o 'Apple profiles unsigned[^(]*' | cut -c1-200)"
	fi
}

section "a broken dovecot.conf across systemctl restart"
broken_dovecot
sleep 2
note "before the restart, STATUS: $(status_text)"
pid=$(main_pid)
t0=$(ms)
if quiet timeout 30 systemctl restart mailautoconf.service; then
	note "systemctl restart returned 0 after $(($(ms) - t0)) ms"
else
	fail "systemctl restart with a broken dovecot.conf failed"
fi
broken_restart_checks "restart" "$t0" "$pid"

# ---------------------------------------------------------------------------
section "a broken dovecot.conf across an upgrade to $version2"
broken_dovecot
sleep 2
pid=$(main_pid)
t0=$(ms)
if quiet timeout 120 apt-get install -y --no-install-recommends "$deb2"; then
	pass "apt-get install $(basename "$deb2") succeeded ($(dpkg-query -W -f='${Version}' mailautoconf))"
else
	fail "apt-get install $(basename "$deb2") with a broken dovecot.conf"
fi
until_ok 10 eval 'status_text | grep -qF "$version2"'
check "the running daemon is $version2 (STATUS)" eval 'status_text | grep -qF "$version2"'
broken_restart_checks "upgrade" "$t0" "$pid"

# ---------------------------------------------------------------------------
section "a lookup file made unreadable (chmod 0600, root) keeps the domains"
t0=$(date +%s)
chown root:root "$lookup"
chmod 0600 "$lookup"
quiet timeout 30 systemctl reload mailautoconf.service
sleep 1
for d in example.org example.com new.example.net; do
	if served unix "$d"; then pass "$d still served with $lookup unreadable"; else fail "$d with $lookup unreadable: $(said)"; fi
done
note "STATUS: $(status_text)"
check "the log names the file and the permission problem" \
	eval 'journal_since "$t0" | grep -F "$(basename "$lookup")" | grep -qi permission'
note "log: $(journal_since "$t0" | grep -i permission | head -2 | tr '\n' ' ')"
chown root:postfix "$lookup"
chmod 0640 "$lookup"
quiet timeout 30 systemctl reload mailautoconf.service
check "readable again: served, no permission warning in STATUS" \
	eval 'until_ok 10 served unix example.org && ! status_text | grep -qi permission'

# ---------------------------------------------------------------------------
section "a root-only key (certbot's layout) named by Postfix and Dovecot signs Apple profiles"
le=/etc/letsencrypt
# new_cert N: a certificate for mail.example.com from a throwaway CA and
# its key, as certbot keeps them: archive/…N.pem, live/ symlinks, key 0600,
# directories 0700, all root's.
new_cert() {
	local a=$le/archive/mail.example.com
	mkdir -p "$a" "$le/live/mail.example.com"
	chmod 0700 "$le/archive" "$le/live"
	[ -f "$tmp/ca.key" ] || openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/ca.key" -out "$tmp/ca.crt" \
		-subj '/CN=boot-test CA' -days 30 2>/dev/null
	(umask 077 && openssl req -newkey rsa:2048 -nodes -keyout "$a/privkey$1.pem" -subj /CN=mail.example.com \
		-addext 'subjectAltName=DNS:mail.example.com' -out "$tmp/req.pem" 2>/dev/null)
	openssl x509 -req -in "$tmp/req.pem" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial -days 30 \
		-copy_extensions copy -out "$a/cert$1.pem" 2>/dev/null
	cat "$a/cert$1.pem" "$tmp/ca.crt" >"$a/fullchain$1.pem"
	chmod 0600 "$a/privkey$1.pem"
	ln -sf "../../archive/mail.example.com/fullchain$1.pem" "$le/live/mail.example.com/fullchain.pem"
	ln -sf "../../archive/mail.example.com/privkey$1.pem" "$le/live/mail.example.com/privkey.pem"
}
new_cert 1
live=$le/live/mail.example.com
postconf -e "smtpd_tls_cert_file = $live/fullchain.pem" "smtpd_tls_key_file = $live/privkey.pem"
sed -i "s|^ssl_cert = .*|ssl_cert = <$live/fullchain.pem|; s|^ssl_key = .*|ssl_key = <$live/privkey.pem|" "$dovecot_conf"
# certbot's deploy hook, as README.md suggests.
quiet systemctl reload postfix.service dovecot.service
note "$(ls -l "$le/archive/mail.example.com/privkey1.pem")"
if until_ok 15 signed_by "$le/archive/mail.example.com/cert1.pem"; then
	pass "profile signed by the Let's Encrypt-style certificate ${waited}s after 'systemctl reload postfix dovecot'"
else
	fail "profile not signed by $live within ${waited}s: $code, $(head -c 60 "$body" | tr -c '[:print:]' '.'); STATUS: $(status_text)"
fi
check "the daemon still runs as mailautoconf, not root ($(ps -o user= -p "$(main_pid)"))" \
	eval '[ "$(ps -o user= -p "$(main_pid)")" = mailautoconf ]'
check "no drop-in or admin edit of the unit was needed" eval '[ ! -d /etc/systemd/system/mailautoconf.service.d ]'
note "STATUS: $(status_text)"
# A renewal: certbot writes the N+1 files, relinks live/ and runs its hook.
new_cert 2
quiet systemctl reload postfix.service dovecot.service
if until_ok 15 signed_by "$le/archive/mail.example.com/cert2.pem"; then
	pass "renewal picked up: signed by the renewed certificate ${waited}s after the deploy hook"
else
	fail "renewal not picked up within ${waited}s: STATUS: $(status_text)"
fi

# ---------------------------------------------------------------------------
section "systemd-analyze security mailautoconf.service (at most 1.5)"
exposure=$(systemd-analyze security --no-pager mailautoconf.service 2>&1 | sed -n 's/.*Overall exposure level for mailautoconf.service: \([0-9.]*\).*/\1/p')
check "exposure ${exposure:-none}" awk -v e="${exposure:-99}" 'BEGIN { exit !(e <= 1.5) }'
check "no restarts over the whole run (NRestarts $(restarts))" eval '[ "$(restarts)" = 0 ]'

# ---------------------------------------------------------------------------
section "apt-get remove: nginx keeps working"
if quiet apt-get remove -y mailautoconf; then pass "apt-get remove"; else fail "apt-get remove"; fi
check "nginx -t succeeds after remove" nginx_ok
check "systemctl reload nginx succeeds after remove" quiet systemctl reload nginx.service
get nginx mail.example.com /
check "webmail's server still answers ($code)" grep -q 'iRedMail web root' "$body"
check "nothing listens on 127.0.0.1:8470 or $sock any more" eval '! listening 8470 && [ ! -e "$sock" ]'
left=$(empty_dirs)
check "no empty directory left${left:+: $left}" test -z "$left"
note "left after remove: $(leftovers | tr '\n' ' ')"

section "apt-get purge: nginx keeps working, nothing left"
if quiet apt-get purge -y mailautoconf; then pass "apt-get purge"; else fail "apt-get purge"; fi
check "nginx -t succeeds after purge" nginx_ok
check "systemctl reload nginx succeeds after purge" quiet systemctl reload nginx.service
left=$(leftovers)
check "nothing named mailautoconf left${left:+: $left}" test -z "$left"
left=$(empty_dirs)
check "no empty directory left${left:+: $left}" test -z "$left"
check "user and group mailautoconf removed" eval '! getent passwd mailautoconf >/dev/null && ! getent group mailautoconf >/dev/null'
check "no mailautoconf timer left (systemctl list-timers --all)" eval '! systemctl list-timers --all --no-legend | grep -q mailautoconf'

# ---------------------------------------------------------------------------
section "the .rpm's scriptlets against this systemd (Debian's rpm, --nodeps)"
note "rpm $(rpm --version | cut -d' ' -f3) with its own database; dependencies (shadow-utils, systemd) are not in it, hence --nodeps"
if quiet rpm -i --nodeps "$rpm"; then pass "rpm -i $(basename "$rpm")"; else fail "rpm -i $(basename "$rpm")"; fi
check "%pre: system user mailautoconf ($(id mailautoconf 2>&1))" eval 'getent passwd mailautoconf >/dev/null'
check "%post: joined postfix and dovecot ($(id -nG mailautoconf 2>/dev/null))" \
	eval 'id -nG mailautoconf | tr " " "\n" | grep -qx postfix && id -nG mailautoconf | tr " " "\n" | grep -qx dovecot'
check "%post: preset enabled mailautoconf.socket and started it" \
	eval '[ "$(systemctl is-enabled mailautoconf.socket)" = enabled ] && systemctl is-active --quiet mailautoconf.socket && [ "$(systemctl is-enabled mailautoconf-https.socket)" = disabled ]'
check "the first request starts the service and it answers" eval 'until_ok 10 served unix example.org && is_running'
check "signs with the root-only key (ExecStartPre=+ staging under the rpm's install too)" \
	signed_by "$le/archive/mail.example.com/cert2.pem"
pid=$(main_pid)
if quiet rpm -U --nodeps "$rpm2"; then pass "rpm -U $(basename "$rpm2")"; else fail "rpm -U $(basename "$rpm2")"; fi
upgraded() { [ "$(main_pid)" != "$pid" ] && status_text | grep -qF "$version2"; }
until_ok 10 upgraded
check "%postun on upgrade: daemon restarted as $version2 (MainPID $pid -> $(main_pid))" upgraded
check "answers after the rpm upgrade" served unix example.org
if quiet rpm -e mailautoconf; then pass "rpm -e mailautoconf"; else fail "rpm -e mailautoconf"; fi
check "%preun: sockets and service stopped and disabled" \
	eval '! systemctl is-active --quiet mailautoconf.socket mailautoconf.service && ! listening 8470 && [ ! -e /etc/systemd/system/sockets.target.wants/mailautoconf.socket ]'
check "nginx -t succeeds after rpm -e" nginx_ok
check "%preun: the timer's Persistent= stamp is gone (systemctl clean)" test ! -e /var/lib/systemd/timers/stamp-mailautoconf-keys.timer
# EL's filesystem package owns /usr/share/licenses; Debian has none, so rpm
# leaves the one it created here.
left=$(empty_dirs | grep -vx /usr/share/licenses)
check "no empty directory left after rpm -e${left:+: $left}" test -z "$left"
note "left after rpm -e (Fedora keeps the user): $(leftovers | tr '\n' ' ') user: $(getent passwd mailautoconf)"
note "What this cannot show about the .rpm:" \
	"- dependency resolution and the names in Requires (--nodeps; no dnf here);" \
	"- EL's users, groups and paths: here postfix/dovecot/ssl-cert are Debian's, there is no 'mail' GID policy or /etc/pki;" \
	"- SELinux labels and policy (Debian runs without SELinux);" \
	"- Fedora's presets (99-default-disable.preset) and systemd-rpm-macros' file triggers (daemon-reload on unit changes);" \
	"- whether /usr/share/licenses is left: EL's filesystem package owns it, Debian has none (rpm -e leaves the empty one it made);" \
	"- rpm's own %config(noreplace) merges against an EL nginx layout (/etc/nginx/conf.d, no templates dir)."

# ---------------------------------------------------------------------------
printf '\n=== summary\n'
printf '%s\n' "${results[@]}"
failed=$(printf '%s\n' "${results[@]}" | grep -c '^FAIL' || true)
printf '%d checks, %d failed\n' "${#results[@]}" "$failed"
[ "$failed" -eq 0 ]
