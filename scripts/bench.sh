#!/usr/bin/env bash
# Benchmark of mailautoconf serve against nginx serving the same bytes, on
# loopback only (README.md, "Performance"; docs/bench.md has recorded runs):
#
#   bash scripts/bench.sh        (or: make bench)
#
# It builds the daemon, starts a throwaway MariaDB (no networking, a unix
# socket under a temporary directory) holding 1, 10 000 and 1 000 000
# synthetic domains, generates a mail host's configuration tree for each
# (Postfix with a mysql: virtual_mailbox_domains table, Dovecot, a
# certificate and key), starts `mailautoconf serve --root` on it, and runs
# wrk against every endpoint. When nginx is installed it serves the very
# same response bytes as static files, and every figure is compared with
# nginx in the same run, three ways (each its own table):
#
#   per core        the daemon (GOMAXPROCS=1) and nginx (worker_processes 1)
#                   each pinned to one CPU (taskset), wrk on another one
#   as shipped      the daemon with the package's defaults and nginx with
#                   Debian's (worker_processes auto), nothing pinned
#   behind nginx    one nginx (1 worker) proxying to the daemon's unix
#                   socket vs the same nginx proxying to a second nginx
#                   serving the bytes from a unix socket, both with upstream
#                   keep-alive as packaging/nginx ships it; proxy, daemon and
#                   backend pinned to one CPU, wrk on another. Also the
#                   daemon without upstream keep-alive, and what that costs
#                   per request (one CPU: 1/rate is CPU time per request).
#
# Each figure is measured in BENCH_ROUNDS rounds of daemon then nginx; a
# ratio is taken within a round, and the tables show the median and the
# spread (lowest–highest ratio of a round). Then: RSS under load, cold
# start under socket activation to the first byte, and the snapshot
# rebuild after a master.cf change while wrk runs. Everything it starts
# is stopped and its temporary directory removed on exit.
#
# Environment:
#   BENCH_DURATION=5s    wrk run per throughput figure (-c50; -t2, or -t1
#                        when wrk is pinned to one CPU)
#   BENCH_LATENCY=3s     wrk run per latency figure (-t1 -c1)
#   BENCH_ROUNDS=5       rounds per figure against the daemon and nginx
#   BENCH_BIG=1000000    domains of the large case (0 skips it)
#   BENCH_PORT=18470     first of the loopback ports used (8 in a row)
#   BENCH_CPUS=0,1       the CPU for the servers under test, then the one for
#                        wrk (pinned tables need two CPUs; with one they are
#                        skipped)
#   BENCH_GOMAXPROCS=N   run the "as shipped" daemon with GOMAXPROCS=N
#                        instead of the package's default (to compare)
#   BENCH_OUT=FILE       also write the tables (markdown) to FILE
#   BENCH_BIN=FILE       measure this mailautoconf binary instead of building one
#   BENCH_ONLY=big       run the large case only (quick reruns of the memory figures)
#   BENCH_ONLY=tables    run the three comparisons with nginx only
#   BENCH_TABLES="core ship proxy"  which of the three to run
#   BENCH_ONLY=idle      run the idle measurement only (below)
#   BENCH_IDLE=600       seconds of the idle window of BENCH_ONLY=idle
#
# BENCH_ONLY=idle (issue 13: no idle work): for 10 000 domains, then for
# BENCH_BIG (skipped when 0), it starts the daemon with its defaults
# (--refresh 60s, info-level log), waits for the first snapshot's log line
# and 5 s more, and leaves it alone for BENCH_IDLE seconds, no request.
# The daemon's CPU time over the window (utime + stime from
# /proc/PID/stat, in clock ticks of getconf CLK_TCK), as ms and % of one
# core, and exactly: the time its threads ran and how often they were
# scheduled in (/proc/PID/task/*/schedstat: ticks charge a whole tick to
# whoever runs when it fires, so short wake-ups are counted by chance);
# the log lines written in the window (change checks and rebuilds
# that keep the domain count log at debug level only, so "snapshot
# published" counts the rebuilds that changed it, or were asked for by a
# file change or SIGHUP); and what MariaDB saw meanwhile (SELECT
# statements: the change-check queries, each --refresh; rows its
# handlers read (Handler_read_*); mariadbd's own CPU time, its background threads
# included); and how much of the daemon's binary the page cache held at
# the start and at the end of the window (fincore: a machine that pages
# out what nobody touched, or that is short of memory, drops it). It times
# the first request after the window, for a domain the snapshot lists,
# with the major page faults it took (pages of the binary read back from
# disk). Then it inserts a new domain into the table and
# measures (a) how long until a request for an address at it is answered
# with its settings (curl every 50 ms: the daemon looks up per request the
# domains its snapshot lacks), with what the daemon's threads ran
# meanwhile, and (b) how long until a snapshot holding it is
# published (the rebuild the next change check triggers: up to --refresh
# plus the check and the build).
#
# Needs: go, mariadbd + mariadb-install-db + mariadb client, openssl, curl,
# wrk, taskset; nginx and systemd-socket-activate are optional (Debian:
# apt-get install wrk nginx-light systemd).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-5s}
LATENCY=${BENCH_LATENCY:-3s}
ROUNDS=${BENCH_ROUNDS:-5}
BIG=${BENCH_BIG:-1000000}
PORT=${BENCH_PORT:-18470}
OUT=${BENCH_OUT:-}
ONLY=${BENCH_ONLY:-}
PIN_PORT=$((PORT + 7))
DAEMON_PORT=$PORT NGINX_PORT=$((PORT + 1)) COLD_PORT=$((PORT + 2)) UNSIGNED_PORT=$((PORT + 3))
PX_KEEP_PORT=$((PORT + 4)) PX_STATIC_PORT=$((PORT + 5)) PX_CLOSE_PORT=$((PORT + 6))
CPUS=${BENCH_CPUS:-0,1}
SCPU=${CPUS%%,*} CCPU=${CPUS#*,}
PROCS=${BENCH_GOMAXPROCS:-}
TABLES=" ${BENCH_TABLES:-core ship proxy} "

need() {
	for t in "$@"; do
		command -v "$t" >/dev/null || { echo "bench: $t is not installed" >&2; exit 1; }
	done
}
PATH=$PATH:/usr/sbin:/sbin
# On a fresh Debian machine, as root, fetch what is missing: one command
# must be enough.
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
	missing=()
	for p in wrk:wrk nginx:nginx-light mariadbd:mariadb-server mariadb:mariadb-client curl:curl openssl:openssl systemd-socket-activate:systemd; do
		command -v "${p%%:*}" >/dev/null || missing+=("${p#*:}")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "bench: apt-get install ${missing[*]}" >&2
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
fi
need go mariadbd mariadb-install-db mariadb openssl curl wrk taskset
# The pinned tables need two CPUs the process may run on.
PINNED=yes
if ! taskset -c "$SCPU" true 2>/dev/null || ! taskset -c "$CCPU" true 2>/dev/null || [ "$SCPU" = "$CCPU" ]; then
	echo "bench: CPUs $CPUS are not two usable CPUs: the per-core and behind-nginx tables are skipped" >&2
	PINNED=no
fi
HAVE_NGINX=$(command -v nginx >/dev/null && echo yes || echo no)
HAVE_ACTIVATE=$(command -v systemd-socket-activate >/dev/null && echo yes || echo no)

TMP=$(mktemp -d /tmp/macbench.XXXXXX)
chmod 755 "$TMP" # nginx workers (nobody, www-data) read the static files under it
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
log() { echo "bench: $*" >&2; }

# ---------------------------------------------------------------- build
if [ -n "${BENCH_BIN:-}" ]; then
	BIN=$(realpath "$BENCH_BIN")
else
	log "building the daemon"
	CGO_ENABLED=0 go build -trimpath -o "$TMP/mailautoconf" ./cmd/mailautoconf
	BIN=$TMP/mailautoconf
fi

# ---------------------------------------------------------------- MariaDB
DB=$TMP/db
SOCK=$DB/sock
mkdir -p "$DB/tmp"
ROOTUSER=()
[ "$(id -u)" -eq 0 ] && ROOTUSER=(--user=root)
log "starting a throwaway MariaDB on $SOCK"
mariadb-install-db --no-defaults --auth-root-authentication-method=normal --datadir="$DB/data" \
	--tmpdir="$DB/tmp" --skip-test-db --skip-name-resolve "${ROOTUSER[@]}" >"$DB/install.log" 2>&1
mariadbd --no-defaults --datadir="$DB/data" --tmpdir="$DB/tmp" --socket="$SOCK" --pid-file="$DB/pid" \
	--log-error="$DB/error.log" --skip-networking --skip-name-resolve --skip-log-bin \
	--innodb-buffer-pool-size=256M --innodb-log-file-size=64M --innodb-flush-log-at-trx-commit=0 \
	--max-connections=200 "${ROOTUSER[@]}" &
PIDS+=($!)
sql() { mariadb --no-defaults --socket="$SOCK" --user=root --batch --skip-column-names "$@"; }
for _ in $(seq 200); do
	sql -e 'SELECT 1' >/dev/null 2>&1 && break
	sleep 0.1
done
sql -e 'SELECT 1' >/dev/null

# loaddomains DBNAME N: a PostfixAdmin-style domain table with example.com
# and N-1 synthetic domains, generated inside the server (Sequence engine).
loaddomains() {
	local name=$1 n=$2 start
	start=$(date +%s%N)
	sql -e "CREATE DATABASE $name;
		CREATE TABLE $name.domain (domain VARCHAR(255) NOT NULL PRIMARY KEY, active TINYINT NOT NULL DEFAULT 1);
		INSERT INTO $name.domain (domain) VALUES ('example.com');"
	if [ "$n" -gt 1 ]; then
		sql -D "$name" -e "INSERT INTO $name.domain (domain) SELECT CONCAT('d', seq, '.bench.example') FROM seq_1_to_$((n - 1));"
	fi
	sql -e "CREATE USER IF NOT EXISTS vmail@localhost IDENTIFIED BY 'secret'; GRANT SELECT ON $name.* TO vmail@localhost;"
	log "loaded $n domains into $name in $((($(date +%s%N) - start) / 1000000)) ms"
}

# ---------------------------------------------------------------- config tree
# mailhost DIR DBNAME: Postfix (submission 587, smtps 465, domains from
# MySQL), Dovecot (IMAPS 993, POP3S 995) and a certificate for
# mail.example.com.
mailhost() {
	local dir=$1 dbname=$2
	mkdir -p "$dir/etc/postfix/sql" "$dir/etc/dovecot" "$dir/etc/ssl/private" "$dir/etc/ssl/certs"
	cat >"$dir/etc/postfix/main.cf" <<-EOF
		compatibility_level = 3.6
		myhostname = mail.example.com
		mydestination = localhost
		virtual_mailbox_domains = mysql:/etc/postfix/sql/domains.cf
		smtpd_tls_cert_file = /etc/ssl/certs/mail.pem
		smtpd_tls_key_file = /etc/ssl/private/mail.key
		smtpd_tls_security_level = may
		smtpd_sasl_type = dovecot
		smtpd_sasl_path = private/auth
	EOF
	cat >"$dir/etc/postfix/sql/domains.cf" <<-EOF
		user = vmail
		password = secret
		hosts = localhost
		dbname = $dbname
		query = SELECT domain FROM domain WHERE domain='%s' AND active = 1
	EOF
	cat >"$dir/etc/postfix/master.cf" <<-'EOF'
		smtp      inet  n       -       y       -       -       smtpd
		submission inet n       -       y       -       -       smtpd
		  -o smtpd_tls_security_level=encrypt
		  -o smtpd_sasl_auth_enable=yes
		smtps     inet  n       -       y       -       -       smtpd
		  -o smtpd_tls_wrappermode=yes
		  -o smtpd_sasl_auth_enable=yes
	EOF
	cat >"$dir/etc/dovecot/dovecot.conf" <<-'EOF'
		protocols = imap pop3
		ssl = required
		ssl_cert = </etc/ssl/certs/mail.pem
		ssl_key = </etc/ssl/private/mail.key
		auth_mechanisms = plain login
		service imap-login {
		  inet_listener imap {
		    port = 0
		  }
		  inet_listener imaps {
		    port = 993
		    ssl = yes
		  }
		}
		service pop3-login {
		  inet_listener pop3 {
		    port = 0
		  }
		  inet_listener pop3s {
		    port = 995
		    ssl = yes
		  }
		}
	EOF
	cp "$TMP/cert.pem" "$dir/etc/ssl/certs/mail.pem"
	cp "$TMP/key.pem" "$dir/etc/ssl/private/mail.key"
}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=mail.example.com \
	-addext "subjectAltName=DNS:mail.example.com,DNS:autoconfig.example.com,DNS:autodiscover.example.com" \
	-keyout "$TMP/key.pem" -out "$TMP/cert.pem" >/dev/null 2>&1

# ---------------------------------------------------------------- requests
# name|method|host|target ; the POX body is in $TMP/pox-request.xml.
ENDPOINTS=(
	"thunderbird|GET|autoconfig.example.com|/mail/config-v1.1.xml?emailaddress=fred%40example.com"
	"autodiscover|POST|autodiscover.example.com|/autodiscover/autodiscover.xml"
	"json|GET|autodiscover.example.com|/autodiscover/autodiscover.json/v1.0/fred@example.com?Protocol=AutodiscoverV1"
	"profile|GET|autoconfig.example.com|/mobileconfig?emailaddress=fred%40example.com"
	"settings|GET|example.com|/?emailaddress=fred%40example.com"
)
cat >"$TMP/pox-request.xml" <<'EOF'
<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>fred@example.com</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>
EOF
# wrk's Lua script for the POST; the body is a long string literal.
{
	echo 'wrk.method = "POST"'
	echo 'wrk.headers["Content-Type"] = "text/xml; charset=utf-8"'
	printf 'wrk.body = [==[%s]==]\n' "$(cat "$TMP/pox-request.xml")"
} >"$TMP/pox.lua"

# ---------------------------------------------------------------- helpers
# start_daemon TREE [LISTEN [PREFIX...]]: serve TREE on LISTEN (default
# 127.0.0.1:DAEMON_PORT; unix:/path for a unix socket), run under PREFIX
# (env, taskset); sets DPID, waits until it answers. Its log is TREE.log.
start_daemon() {
	local tree=$1 listen=${2:-127.0.0.1:$DAEMON_PORT} start
	shift 2 || shift $#
	local probe=(curl -s -o /dev/null -H 'Host: autoconfig.example.com')
	case $listen in
	unix:*) probe+=(--unix-socket "${listen#unix:}" http://localhost/mail/config-v1.1.xml) ;;
	*) probe+=("http://$listen/mail/config-v1.1.xml") ;;
	esac
	start=$(date +%s%N)
	"$@" "$BIN" serve --root "$tree" --mysql-socket "$SOCK" --listen "$listen" >>"$tree.log" 2>&1 &
	DPID=$!
	PIDS+=("$DPID")
	for _ in $(seq 1200); do
		if "${probe[@]}"; then
			log "daemon up on $(basename "$tree") ($listen${*:+, $*}) after $(((($(date +%s%N) - start)) / 1000000)) ms"
			return
		fi
		kill -0 "$DPID" 2>/dev/null || { cat "$tree.log" >&2; exit 1; }
		sleep 0.1
	done
	echo "bench: the daemon did not answer within 120 s" >&2
	exit 1
}
stop_daemon() {
	kill "$DPID" 2>/dev/null || true
	wait "$DPID" 2>/dev/null || true
}

# fetch NAME METHOD HOST TARGET PORT OUT: the response body, failing on non-200.
fetch() {
	local method=$2 host=$3 target=$4 port=$5 out=$6 data=()
	[ "$method" = POST ] && data=(--data-binary "@$TMP/pox-request.xml" -H 'Content-Type: text/xml; charset=utf-8')
	local code
	code=$(curl -s -o "$out" -w '%{http_code}' -X "$method" -H "Host: $host" "${data[@]}" "http://127.0.0.1:$port$target")
	if [ "$code" != 200 ]; then
		echo "bench: $method $target on port $port: HTTP $code" >&2
		cat "$out" >&2
		[ "$port" != "$NGINX_PORT" ] || { ls -la "$TMP/nginx/www" >&2; cat "$TMP/nginx/error.log" >&2; }
		exit 1
	fi
}

# WRK_PIN: the command wrk runs under (taskset for the pinned tables).
WRK_PIN=()
# wrkrun ARGS...: runs wrk, its output in $WRK_OUT (default $TMP/wrk.out),
# then wrkparse.
wrkrun() {
	local out=${WRK_OUT:-$TMP/wrk.out}
	"${WRK_PIN[@]}" wrk "$@" >"$out" 2>&1 || { cat "$out" >&2; exit 1; }
	wrkparse "$out"
}
# wrkparse FILE: sets RPS, P50 (microseconds), P99, MAXLAT, ERRORS (non-2xx
# and socket errors) from wrk's output.
wrkparse() {
	RPS=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$1")
	P50=$(awk '$1 == "50%" {print $2}' "$1" | tousec)
	P99=$(awk '$1 == "99%" {print $2}' "$1" | tousec)
	MAXLAT=$(awk '$1 == "Latency" {print $4}' "$1" | tousec)
	ERRORS=$(awk '/Non-2xx or 3xx responses:/ {n += $NF} /Socket errors:/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$1")
}
tousec() {
	awk '{ v = $1; u = 1
		if (v ~ /us$/) { sub(/us$/, "", v); u = 1 } else if (v ~ /ms$/) { sub(/ms$/, "", v); u = 1000 }
		else if (v ~ /m$/) { sub(/m$/, "", v); u = 60000000 } else if (v ~ /s$/) { sub(/s$/, "", v); u = 1000000 }
		printf "%.0f", v * u }'
}
# load METHOD HOST URL [wrk options]: one wrk run against URL.
load() {
	local method=$1 host=$2 url=$3
	shift 3
	local script=()
	[ "$method" = POST ] && script=(-s "$TMP/pox.lua")
	wrkrun "$@" "${script[@]}" -H "Host: $host" "$url"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
kib_to_mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
procstat() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 |"); }

# ---------------------------------------------------------------- nginx
# static_locations: the locations serving each endpoint's bytes from
# $TMP/www, as nginx would serve a static answer.
static_locations() {
	echo "    root $TMP/www;"
	echo "    location = /mail/config-v1.1.xml { default_type 'text/xml; charset=utf-8'; try_files /thunderbird =404; }"
	# The static module answers POST with 405; error_page turns that into
	# an internal GET of the same file, the usual way to serve a static
	# answer to a POST.
	echo "    location = /autodiscover/autodiscover.xml { default_type 'text/xml; charset=utf-8'; error_page 405 =200 /static/autodiscover; try_files /autodiscover =404; }"
	echo "    location /static/ { internal; default_type 'text/xml; charset=utf-8'; alias $TMP/www/; }"
	echo "    location /autodiscover/autodiscover.json/ { default_type application/json; try_files /json =404; }"
	echo "    location = /mobileconfig { default_type application/x-apple-aspen-config; try_files /profile =404; }"
	echo "    location = / { default_type 'text/html; charset=utf-8'; try_files /settings =404; }"
}
# proxy_location UPSTREAM: the location of packaging/nginx/mailautoconf.conf,
# proxying everything to UPSTREAM (keep-alive as the shipped snippet has it).
proxy_location() {
	echo "    location / { proxy_pass http://$1; proxy_http_version 1.1; proxy_set_header Connection \"\";"
	echo "      proxy_set_header Host \$host; proxy_set_header X-Real-IP \$remote_addr;"
	echo "      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto \$scheme;"
	echo "      proxy_redirect off; }"
}
# nginx_start NAME WORKERS HTTP [PREFIX...]: an nginx in $TMP/NAME with
# WORKERS worker processes and HTTP (server and upstream blocks) in its
# http block, as Debian's nginx.conf has it (sendfile, tcp_nopush; no access
# log here), run under PREFIX (taskset); sets NGPID.
nginx_start() {
	local n=$TMP/$1 workers=$2 http=$3
	shift 3
	mkdir -p "$n/tmp"
	{
		# As root the workers would run as nobody, which cannot connect to
		# the daemon's unix socket (0660).
		[ "$(id -u)" -ne 0 ] || echo "user root;"
		echo "worker_processes $workers; daemon off; pid $n/nginx.pid; error_log $n/error.log;"
		echo "events { worker_connections 1024; }"
		echo "http { access_log off; types { } sendfile on; tcp_nopush on; keepalive_requests 1000000;"
		echo "  client_body_temp_path $n/tmp/body; proxy_temp_path $n/tmp/proxy; fastcgi_temp_path $n/tmp/fcgi;"
		echo "  uwsgi_temp_path $n/tmp/uwsgi; scgi_temp_path $n/tmp/scgi;"
		echo "$http"
		echo "}"
	} >"$n/nginx.conf"
	"$@" nginx -c "$n/nginx.conf" -p "$n" &
	NGPID=$!
	PIDS+=("$NGPID")
}
# nginx_wait NAME CURL-ARGS...: waits until curl CURL-ARGS succeeds.
nginx_wait() {
	local n=$TMP/$1
	shift
	for _ in $(seq 50); do
		curl -s -o /dev/null "$@" && return
		sleep 0.1
	done
	echo "bench: nginx $n did not start" >&2
	cat "$n/error.log" >&2
	exit 1
}
nginx_stop() {
	kill "$NGPID" 2>/dev/null || true
	wait "$NGPID" 2>/dev/null || true
}
# check_bytes PORT [any]: every endpoint on 127.0.0.1:PORT answers 200 with
# the bytes the daemon did (or with any bytes: another daemon signs its
# Apple profiles at another time).
check_bytes() {
	local e name method host target
	for e in "${ENDPOINTS[@]}"; do
		IFS='|' read -r name method host target <<<"$e"
		fetch "$name" "$method" "$host" "$target" "$1" "$TMP/$name.check"
		[ $# -eq 1 ] || continue
		cmp -s "$TMP/$name.body" "$TMP/$name.check" || { echo "bench: port $1 serves other bytes for $name" >&2; exit 1; }
	done
}

# ---------------------------------------------------------------- tables
# The comparison tables: TABLE_<name> arrays of markdown rows.
TABLE_core=() TABLE_ship=() TABLE_proxy=() ROUNDLOG=()
spread() { sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%s–%s", lo, hi}'; }
med() { printf '%s\n' "$@" | median; }
# compare TABLE LABEL WRK-ARGS METHOD HOST OURS-URL NGINX-URL: ROUNDS rounds
# of ours, nginx (throughput with WRK-ARGS), ours, nginx (latency at one
# connection); two rows in TABLE.
compare() {
	local -n tab=$1
	local label=$2 wargs=$3 method=$4 host=$5 ours_url=$6 ng_url=$7
	local o_rps=() n_rps=() r_rps=() o_p50=() n_p50=() r_p50=() err=0 i
	for i in $(seq "$ROUNDS"); do
		# shellcheck disable=SC2086 # wargs is a word list
		load "$method" "$host" "$ours_url" $wargs -d"$DURATION"
		o_rps+=("$RPS") err=$((err + ERRORS))
		if [ -n "$ng_url" ]; then
			load "$method" "$host" "$ng_url" $wargs -d"$DURATION"
			n_rps+=("$RPS") r_rps+=("$(ratio "${o_rps[-1]}" "$RPS")")
		fi
		load "$method" "$host" "$ours_url" -t1 -c1 -d"$LATENCY" --latency
		o_p50+=("$P50") err=$((err + ERRORS))
		if [ -n "$ng_url" ]; then
			load "$method" "$host" "$ng_url" -t1 -c1 -d"$LATENCY" --latency
			n_p50+=("$P50") r_p50+=("$(ratio "${o_p50[-1]}" "$P50")")
		fi
	done
	[ "$err" -eq 0 ] || log "$label: $err failed requests"
	if [ -z "$ng_url" ]; then
		tab+=("| $label: requests/s | $(med "${o_rps[@]}") | - | - | - | ≥ 0.8 × nginx |")
		tab+=("| $label: p50 latency at 1 connection, µs | $(med "${o_p50[@]}") | - | - | - | ≤ 1.2 × nginx |")
		return
	fi
	log "$label: requests/s ratios per round ${r_rps[*]}; p50 ratios ${r_p50[*]}"
	ROUNDLOG+=("$1 $label: requests/s ${o_rps[*]} vs ${n_rps[*]}; ratios ${r_rps[*]}; p50 µs ${o_p50[*]} vs ${n_p50[*]}; ratios ${r_p50[*]}")
	tab+=("| $label: requests/s | $(med "${o_rps[@]}") | $(med "${n_rps[@]}") | $(med "${r_rps[@]}") | $(printf '%s\n' "${r_rps[@]}" | spread) | ≥ 0.8 × nginx |")
	tab+=("| $label: p50 latency at 1 connection, µs | $(med "${o_p50[@]}") | $(med "${n_p50[@]}") | $(med "${r_p50[@]}") | $(printf '%s\n' "${r_p50[@]}" | spread) | ≤ 1.2 × nginx |")
}

# ================================================================ runs
SMALL=1 MID=10000
loaddomains bench_small $SMALL
loaddomains bench_mid $MID
mailhost "$TMP/tree-small" bench_small
mailhost "$TMP/tree-mid" bench_mid

D=http://127.0.0.1:$DAEMON_PORT N=http://127.0.0.1:$NGINX_PORT

PIN_S=(taskset -c "$SCPU")

# --- idle (BENCH_ONLY=idle): see the header.
# statfields PID: the fields of /proc/PID/stat after the command name
# (which may hold spaces), so that field N of proc(5) is awk's $(N - 2).
statfields() { sed 's/^.*) //' "/proc/$1/stat"; }
# cputicks PID: the utime + stime of PID in clock ticks (fields 14 and 15).
cputicks() { statfields "$1" | awk '{print $12 + $13}'; }
# cpusched PID: the nanoseconds PID's threads have run and the times they
# were scheduled in, summed over /proc/PID/task/*/schedstat (exact, where
# the clock ticks above are sampled at CLK_TCK; a thread that exits in the
# window takes its share with it, which the Go runtime's threads do not).
cpusched() { cat "/proc/$1/task/"*/schedstat | awk '{ns += $1; n += $3} END {print ns + 0, n + 0}'; }
# majflt PID: PID's major page faults so far (field 12), all its threads:
# pages it touched that were not in memory and had to be read from disk.
majflt() { statfields "$1" | awk '{print $10}'; }
# cachedbin: how many MiB of the daemon's binary the page cache holds
# (fincore, util-linux; "?" when it is missing or fails).
cachedbin() {
	local res
	res=$(fincore --bytes --noheadings --output RES "$BIN" 2>/dev/null) || res=
	if [ -n "$res" ]; then
		awk '{printf "%.1f", $1 / 1048576}' <<<"$res"
	else
		echo "?"
	fi
}
# dbcounters: MariaDB's SELECT statements and rows its handlers read
# (Handler_read_*: Innodb_rows_read stays 0 on MariaDB 10.11) so far.
dbcounters() {
	sql -e "SHOW GLOBAL STATUS WHERE Variable_name = 'Com_select' OR Variable_name LIKE 'Handler\\_read\\_%'" |
		awk '$1 == "Com_select" {s = $2} $1 ~ /^Handler_read_/ {r += $2} END {print s + 0, r + 0}'
}
# idle_case TREE DBNAME N: the idle window and the new domain's latencies
# for the daemon on TREE, whose table in DBNAME holds N domains.
idle_case() {
	local tree=$1 dbname=$2 n=$3 tck lines0 c0 c1 m0 m1 q0 q1 r0 r1 t0 t1 ds mpid
	local first win_ms cpu_ms pct run_ms run_pct wakeups ns0 ns1 sw0 sw1 published other mcpu_ms newdom url code took attempts first_code served_ms snap_ms line build phase
	local bin0 bin1 mf0 mf1 first_mf
	tck=$(getconf CLK_TCK)
	mpid=$(cat "$DB/pid")
	log "idle, $n domains: starting the daemon"
	start_daemon "$tree"
	ds=$(date +%s%N) # about when its --refresh ticker started
	for _ in $(seq 600); do
		grep -q 'snapshot built' "$tree.log" && break
		sleep 0.1
	done
	grep -q 'snapshot built' "$tree.log" || { echo "bench: no first snapshot logged" >&2; cat "$tree.log" >&2; exit 1; }
	sleep 5
	lines0=$(wc -l <"$tree.log")
	read -r q0 r0 <<<"$(dbcounters)"
	m0=$(cputicks "$mpid") c0=$(cputicks "$DPID") t0=$(date +%s%N)
	read -r ns0 sw0 <<<"$(cpusched "$DPID")"
	bin0=$(cachedbin)
	log "idle, $n domains: $IDLE s without a request"
	sleep "$IDLE"
	read -r ns1 sw1 <<<"$(cpusched "$DPID")"
	bin1=$(cachedbin)
	c1=$(cputicks "$DPID") m1=$(cputicks "$mpid") t1=$(date +%s%N)
	read -r q1 r1 <<<"$(dbcounters)"
	win_ms=$(((t1 - t0) / 1000000))
	cpu_ms=$(((c1 - c0) * 1000 / tck)) mcpu_ms=$(((m1 - m0) * 1000 / tck))
	pct=$(awk -v c="$cpu_ms" -v w="$win_ms" 'BEGIN {printf "%.3f", 100 * c / w}')
	run_ms=$(awk -v a="$ns0" -v b="$ns1" 'BEGIN {printf "%.1f", (b - a) / 1e6}')
	run_pct=$(awk -v r="$run_ms" -v w="$win_ms" 'BEGIN {printf "%.4f", 100 * r / w}')
	wakeups=$(awk -v a="$sw0" -v b="$sw1" -v w="$win_ms" 'BEGIN {printf "%.1f", (b - a) / (w / 1000)}')
	published=$(tail -n +$((lines0 + 1)) "$tree.log" | grep -c 'snapshot published' || true)
	other=$(tail -n +$((lines0 + 1)) "$tree.log" | grep -vc 'snapshot published' || true)
	log "idle, $n domains: daemon $cpu_ms ms CPU in $win_ms ms ($pct % of a core); run $run_ms ms ($run_pct %), $wakeups wake-ups/s (schedstat); log lines in the window:"
	tail -n +$((lines0 + 1)) "$tree.log" >&2
	row "idle $IDLE s, $n domains: daemon CPU, ms / % of one core (CLK_TCK $tck)" "$cpu_ms / $pct %" "" "" "< 0.1 % of a core at 10k"
	row "idle $IDLE s, $n domains: daemon's threads on a CPU (schedstat, exact), ms / % of one core / wake-ups a second" "$run_ms / $run_pct % / $wakeups" "" "" "< 0.1 % of a core at 10k"
	row "idle $IDLE s, $n domains: \"snapshot published\" (info) / other log lines; MariaDB: SELECTs (change checks) / rows read (Handler_read_*) / mariadbd CPU ms" \
		"$published / $other" "$((q1 - q0)) / $((r1 - r0)) / $mcpu_ms" "" "0 rebuilds"
	log "idle, $n domains: the page cache held $bin0 MiB of the daemon's binary ($(du -m "$BIN" | cut -f1) MiB) at the window's start, $bin1 MiB at its end"
	row "idle $IDLE s, $n domains: the daemon's binary in the page cache (fincore) at the window's start / end, MiB" "$bin0 / $bin1" "" "" ""

	# The first request after the window, for a domain the snapshot lists
	# (no database query): what a client meets after a quiet night.
	mf0=$(majflt "$DPID")
	read -r code first <<<"$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -H "Host: autoconfig.example.com" \
		"http://127.0.0.1:$DAEMON_PORT/mail/config-v1.1.xml?emailaddress=fred%40example.com" || true)"
	[ "$code" = 200 ] || { echo "bench: first request after the idle window: HTTP $code" >&2; exit 1; }
	first=$(awk -v t="$first" 'BEGIN {printf "%.1f", t * 1000}')
	first_mf=$(($(majflt "$DPID") - mf0))
	log "idle, $n domains: the first request after the window (example.com, in the snapshot) took $first ms, $first_mf major page faults"
	row "first request after the idle window, $n domains: a domain in the snapshot, ms (the daemon's major page faults)" "$first ($first_mf)" "" "" ""

	# A domain added to the table.
	newdom=new$n.idle.example
	url="http://127.0.0.1:$DAEMON_PORT/mail/config-v1.1.xml?emailaddress=fred%40$newdom"
	lines0=$(wc -l <"$tree.log")
	sql -D "$dbname" -e "INSERT INTO domain (domain) VALUES ('$newdom')"
	read -r ns0 sw0 <<<"$(cpusched "$DPID")"
	mf0=$(majflt "$DPID")
	t0=$(date +%s%N)
	phase=$(awk -v t="$t0" -v s="$ds" 'BEGIN {printf "%.0f", 60 - ((t - s) / 1e9) % 60}')
	attempts=0 first_code= took=
	while :; do
		attempts=$((attempts + 1))
		read -r code took <<<"$(curl -s -o "$TMP/new.body" -w '%{http_code} %{time_total}' -H "Host: autoconfig.$newdom" "$url" || true)"
		[ -n "$first_code" ] || first_code=$code
		[ "$code" = 200 ] && grep -q "$newdom" "$TMP/new.body" && break
		[ $((($(date +%s%N) - t0) / 1000000)) -lt 180000 ] || { echo "bench: $newdom not served within 180 s (HTTP $code)" >&2; exit 1; }
		sleep 0.05
	done
	served_ms=$((($(date +%s%N) - t0) / 1000000))
	read -r ns1 sw1 <<<"$(cpusched "$DPID")"
	mf1=$(majflt "$DPID")
	run_ms=$(awk -v a="$ns0" -v b="$ns1" 'BEGIN {printf "%.1f", (b - a) / 1e6}')
	took=$(awk -v t="${took:-0}" 'BEGIN {printf "%.1f", t * 1000}')
	log "idle, $n domains: $newdom answered after $served_ms ms, attempt $attempts (first answer HTTP $first_code; the answering request took $took ms; the daemon's threads ran $run_ms ms and were scheduled in $((sw1 - sw0)) times meanwhile, $((mf1 - mf0)) major page faults); next refresh tick in about $phase s"
	line=
	while :; do
		line=$(tail -n +$((lines0 + 1)) "$tree.log" | grep 'snapshot published' | grep " domains=$((n + 1)) " | head -1 || true)
		[ -z "$line" ] || break
		[ $((($(date +%s%N) - t0) / 1000000)) -lt 180000 ] || { echo "bench: no snapshot with $((n + 1)) domains within 180 s" >&2; cat "$tree.log" >&2; exit 1; }
		sleep 0.05
	done
	snap_ms=$((($(date +%s%N) - t0) / 1000000))
	build=$(sed -n 's/.*build=\([^ ]*\).*/\1/p' <<<"$line")
	log "idle, $n domains: $line"
	row "new domain, $n domains: from the INSERT to its settings answered (request-time lookup; curl every 50 ms), ms (the answering request alone; attempts)" "$served_ms ($took ms; $attempts)" "daemon ran $run_ms ms, $((mf1 - mf0)) major faults" "" ""
	row "new domain, $n domains: from the INSERT to the snapshot holding it (change check every 60 s; next tick was ~$phase s away), ms / build" "$snap_ms / ${build:-?}" "" "" "≤ refresh + build"
	stop_daemon
}
if [ "$ONLY" = idle ]; then
	IDLE=${BENCH_IDLE:-600}
	idle_case "$TMP/tree-mid" bench_mid "$MID"
	if [ "$BIG" -gt 0 ]; then
		loaddomains bench_big "$BIG"
		mailhost "$TMP/tree-big" bench_big
		idle_case "$TMP/tree-big" bench_big "$BIG"
	fi
fi

if [ "$ONLY" != big ] && [ "$ONLY" != idle ]; then
# The response bytes, from a daemon on the 10k tree; nginx serves copies.
mkdir -p "$TMP/www"
start_daemon "$TMP/tree-mid" "127.0.0.1:$PIN_PORT"
for e in "${ENDPOINTS[@]}"; do
	IFS='|' read -r name method host target <<<"$e"
	fetch "$name" "$method" "$host" "$target" "$PIN_PORT" "$TMP/$name.body"
	cp "$TMP/$name.body" "$TMP/www/$name"
done
stop_daemon
P=http://127.0.0.1:$PIN_PORT

# --- per core: daemon GOMAXPROCS=1 and nginx worker_processes 1, each
# pinned to CPU SCPU; wrk (one thread) pinned to CPU CCPU.
if [ "$HAVE_NGINX" = yes ] && [ "$PINNED" = yes ] && [[ $TABLES == *" core "* ]]; then
	log "per core: servers on CPU $SCPU, wrk on CPU $CCPU"
	start_daemon "$TMP/tree-mid" "127.0.0.1:$PIN_PORT" env GOMAXPROCS=1 "${PIN_S[@]}"
	nginx_start nginx-core 1 "  server { listen 127.0.0.1:$NGINX_PORT;
$(static_locations)
  }" "${PIN_S[@]}"
	nginx_wait nginx-core "$N/"
	check_bytes "$NGINX_PORT"
	WRK_PIN=(taskset -c "$CCPU")
	for e in "${ENDPOINTS[@]}"; do
		IFS='|' read -r name method host target <<<"$e"
		log "per core: $name"
		load "$method" "$host" "$P$target" -t1 -c50 -d2s >/dev/null # warm-up
		compare TABLE_core "$name" "-t1 -c50" "$method" "$host" "$P$target" "$N$target"
	done
	WRK_PIN=()
	nginx_stop
	stop_daemon
fi

# --- as shipped: the package's defaults (GOMAXPROCS unset, or
# BENCH_GOMAXPROCS) and Debian's nginx (worker_processes auto), unpinned;
# wrk -t2 -c50.
log "as shipped: nothing pinned"
SHIP_ENV=()
[ -z "$PROCS" ] || SHIP_ENV=(env GOMAXPROCS="$PROCS")
start_daemon "$TMP/tree-mid" "127.0.0.1:$DAEMON_PORT" "${SHIP_ENV[@]}"
SHIP_PID=$DPID
check_bytes "$DAEMON_PORT" any
NG=
if [ "$HAVE_NGINX" = yes ]; then
	nginx_start nginx-ship auto "  server { listen 127.0.0.1:$NGINX_PORT;
$(static_locations)
  }"
	nginx_wait nginx-ship "$N/"
	check_bytes "$NGINX_PORT"
	NG=$N
fi
RSS_MID_MAX=0
for e in "${ENDPOINTS[@]}"; do
	[[ $TABLES == *" ship "* ]] || break
	IFS='|' read -r name method host target <<<"$e"
	log "as shipped: $name"
	# The first run warms the daemon up and samples RSS mid-run.
	WRK_OUT=$TMP/wrk-warm.out load "$method" "$host" "$D$target" -t2 -c50 -d"$DURATION" &
	wpid=$!
	sleep "$(awk -v d="${DURATION%s}" 'BEGIN {print d / 2}')"
	rss=$(procstat "$DPID" VmRSS)
	anon=$(procstat "$DPID" RssAnon) file=$(procstat "$DPID" RssFile)
	wait "$wpid"
	if [ "$rss" -gt "$RSS_MID_MAX" ]; then
		RSS_MID_MAX=$rss RSS_MID_ANON=$anon RSS_MID_FILE=$file
	fi
	compare TABLE_ship "$name" "-t2 -c50" "$method" "$host" "$D$target" "${NG:+$NG$target}"
done
HWM_MID=$(procstat "$DPID" VmHWM)
# RssFile is the binary's own pages (text, rodata, pclntab) the kernel
# mapped in, shared with every other copy and dropped under pressure;
# RssAnon is the heap, stacks and runtime: what the daemon itself holds.
row "memory under load, 10k domains: VmRSS (max sampled mid-run; of it anon + file) / VmHWM, MiB" "$(kib_to_mib "$RSS_MID_MAX") ($(kib_to_mib "${RSS_MID_ANON:-0}") + $(kib_to_mib "${RSS_MID_FILE:-0}")) / $(kib_to_mib "$HWM_MID")" "" "" "≤ 20 MiB"
[ "$HAVE_NGINX" = no ] || nginx_stop

# --- behind nginx: one nginx (1 worker) proxying to the daemon's unix
# socket and to a static nginx's, with upstream keep-alive, and to the
# daemon without it; all three servers on CPU SCPU, wrk on CPU CCPU.
if [ "$HAVE_NGINX" = yes ] && [ "$PINNED" = yes ] && [[ $TABLES == *" proxy "* ]]; then
	log "behind nginx: proxy, daemon and static nginx on CPU $SCPU, wrk on CPU $CCPU"
	start_daemon "$TMP/tree-mid" "unix:$TMP/daemon.sock" "${PIN_S[@]}"
	PX_DPID=$DPID
	chmod 666 "$TMP/daemon.sock"
	nginx_start nginx-backend 1 "  server { listen unix:$TMP/static.sock;
$(static_locations)
  }" "${PIN_S[@]}"
	PX_BPID=$NGPID
	nginx_wait nginx-backend --unix-socket "$TMP/static.sock" http://localhost/
	nginx_start nginx-proxy 1 "  upstream daemon_keep { server unix:$TMP/daemon.sock; keepalive 16; }
  upstream daemon_close { server unix:$TMP/daemon.sock; }
  upstream static_keep { server unix:$TMP/static.sock; keepalive 16; }
  server { listen 127.0.0.1:$PX_KEEP_PORT;
$(proxy_location daemon_keep)
  }
  server { listen 127.0.0.1:$PX_STATIC_PORT;
$(proxy_location static_keep)
  }
  server { listen 127.0.0.1:$PX_CLOSE_PORT;
$(proxy_location daemon_close)
  }" "${PIN_S[@]}"
	nginx_wait nginx-proxy "http://127.0.0.1:$PX_STATIC_PORT/"
	check_bytes "$PX_STATIC_PORT"
	check_bytes "$PX_KEEP_PORT" any
	check_bytes "$PX_CLOSE_PORT" any
	WRK_PIN=(taskset -c "$CCPU")
	PK=http://127.0.0.1:$PX_KEEP_PORT PS=http://127.0.0.1:$PX_STATIC_PORT PC=http://127.0.0.1:$PX_CLOSE_PORT
	for e in "${ENDPOINTS[@]}"; do
		IFS='|' read -r name method host target <<<"$e"
		log "behind nginx: $name"
		load "$method" "$host" "$PK$target" -t1 -c50 -d2s >/dev/null # warm-up
		compare TABLE_proxy "$name" "-t1 -c50" "$method" "$host" "$PK$target" "$PS$target"
		# Without upstream keep-alive: nginx connects to the daemon for
		# every request. On one CPU, 1/rate is the CPU time of a request.
		k_rps=() c_rps=() r_c=() us=()
		for _ in $(seq "$ROUNDS"); do
			load "$method" "$host" "$PK$target" -t1 -c50 -d"$DURATION"
			k_rps+=("$RPS")
			load "$method" "$host" "$PC$target" -t1 -c50 -d"$DURATION"
			c_rps+=("$RPS") r_c+=("$(ratio "$RPS" "${k_rps[-1]}")")
			us+=("$(awk -v c="$RPS" -v k="${k_rps[-1]}" 'BEGIN {printf "%.1f", 1e6 / c - 1e6 / k}')")
		done
		ROUNDLOG+=("TABLE_proxy $name without keep-alive: requests/s ${c_rps[*]} vs ${k_rps[*]} with; µs per request ${us[*]}")
		TABLE_proxy+=("| $name: without upstream keep-alive, requests/s (ratio to with) | $(med "${c_rps[@]}") | - | $(med "${r_c[@]}") | $(printf '%s\n' "${r_c[@]}" | spread) | |")
		TABLE_proxy+=("| $name: what no keep-alive costs per request, CPU µs | $(med "${us[@]}") | - | - | $(printf '%s\n' "${us[@]}" | spread) | |")
	done
	WRK_PIN=()
	nginx_stop
	NGPID=$PX_BPID
	nginx_stop
	DPID=$PX_DPID
	stop_daemon
fi
DPID=$SHIP_PID

if [ "$ONLY" != tables ]; then
# --- signed (cached) against unsigned Apple profiles: a second daemon on
# the same tree without the private key serves them unsigned.
log "signed against unsigned profiles"
cp -a "$TMP/tree-mid" "$TMP/tree-unsigned"
rm "$TMP/tree-unsigned/etc/ssl/private/mail.key"
"$BIN" serve --root "$TMP/tree-unsigned" --mysql-socket "$SOCK" --listen "127.0.0.1:$UNSIGNED_PORT" >"$TMP/tree-unsigned.log" 2>&1 &
UPID=$!
PIDS+=("$UPID")
U=http://127.0.0.1:$UNSIGNED_PORT
PROFILE="/mobileconfig?emailaddress=fred%40example.com"
for _ in $(seq 100); do
	curl -s -o /dev/null -H 'Host: autoconfig.example.com' "$U$PROFILE" && break
	sleep 0.1
done
fetch profile GET autoconfig.example.com "$PROFILE" "$UNSIGNED_PORT" "$TMP/profile-unsigned.body"
grep -q '<?xml' "$TMP/profile-unsigned.body" || { echo "bench: the profile without a key is not a plain plist" >&2; exit 1; }
s_rps=() u_rps=() r_sig=()
for _ in $(seq "$ROUNDS"); do
	load GET autoconfig.example.com "$D$PROFILE" -t2 -c50 -d"$DURATION"
	s_rps+=("$RPS")
	load GET autoconfig.example.com "$U$PROFILE" -t2 -c50 -d"$DURATION"
	u_rps+=("$RPS") r_sig+=("$(ratio "${s_rps[-1]}" "$RPS")")
done
kill "$UPID" 2>/dev/null || true
wait "$UPID" 2>/dev/null || true
row "signed Apple profile (cached) vs unsigned, requests/s ($(wc -c <"$TMP/profile.body") vs $(wc -c <"$TMP/profile-unsigned.body") bytes)" \
	"$(printf '%s\n' "${s_rps[@]}" | median)" "$(printf '%s\n' "${u_rps[@]}" | median)" "$(printf '%s\n' "${r_sig[@]}" | median)" "within 10 % of unsigned"

# --- rebuild after a master.cf change while wrk runs (10k domains)
log "rebuild under load"
TB="/mail/config-v1.1.xml?emailaddress=fred%40example.com"
load GET autoconfig.example.com "$D$TB" -t2 -c50 -d"$DURATION" --latency
base_p99=$P99 base_max=$MAXLAT
master=$TMP/tree-mid/etc/postfix/master.cf
WRK_OUT=$TMP/wrk-reload.out load GET autoconfig.example.com "$D$TB" -t2 -c50 -d"$DURATION" --latency &
wpid=$!
sleep "$(awk -v d="${DURATION%s}" 'BEGIN {print d / 3}')"
before=$(grep -c 'snapshot published' "$TMP/tree-mid.log" || true)
t0=$(date +%s%N)
sed 's/^submission inet/2587 inet/' "$master" >"$master.new" && mv "$master.new" "$master"
until curl -s -H 'Host: autoconfig.example.com' "$D$TB" | grep -q '<port>2587</port>'; do
	[ $((($(date +%s%N) - t0) / 1000000)) -lt 10000 ] || { echo "bench: the change was not served within 10 s" >&2; exit 1; }
	sleep 0.005
done
t1=$(date +%s%N)
wait "$wpid"
wrkparse "$TMP/wrk-reload.out"
reload_p99=$P99 reload_max=$MAXLAT reload_err=$ERRORS
visible_ms=$(((t1 - t0) / 1000000))
build_ms=$(grep 'snapshot published' "$TMP/tree-mid.log" | tail -n +$((before + 1)) | head -1 | sed -n 's/.*build=\([^ ]*\).*/\1/p')
row "rebuild after a master.cf change (10k domains): build time logged" "${build_ms:-?}" "" "" "≤ 100 ms"
row "rebuild: from the write to the new answer, ms (incl. 300 ms settle delay)" "$visible_ms" "" "" ""
row "requests during the rebuild: failed / p99 µs (steady p99) / max µs (steady max)" "$reload_err / $reload_p99 ($base_p99) / $reload_max ($base_max)" "" "" "0 failed, no spike"
stop_daemon

# --- cold start under socket activation (10k domains)
if [ "$HAVE_ACTIVATE" = yes ]; then
	log "cold start under socket activation"
	times=()
	for i in 1 2 3 4 5 6 7; do
		systemd-socket-activate -l "127.0.0.1:$COLD_PORT" "$BIN" serve --root "$TMP/tree-mid" --mysql-socket "$SOCK" \
			>"$TMP/cold.log" 2>&1 &
		apid=$!
		PIDS+=("$apid")
		for _ in $(seq 100); do
			grep -q 'Listening on' "$TMP/cold.log" && break
			sleep 0.02
		done
		t=$(curl -s -o /dev/null -w '%{time_starttransfer}' -H 'Host: autoconfig.example.com' "http://127.0.0.1:$COLD_PORT$TB")
		times+=("$(awk -v t="$t" 'BEGIN {printf "%.1f", t * 1000}')")
		kill "$apid" 2>/dev/null || true
		wait "$apid" 2>/dev/null || true
	done
	cold=$(printf '%s\n' "${times[@]}" | median)
	row "cold start under socket activation to first byte, 10k domains, ms (median of 7: ${times[*]})" "$cold" "" "" "≤ 100 ms"
fi

# --- 1 domain
start_daemon "$TMP/tree-small"
for e in "${ENDPOINTS[@]:0:2}"; do
	IFS='|' read -r name method host target <<<"$e"
	load "$method" "$host" "$D$target" -t2 -c50 -d"$DURATION"
	row "$name: requests/s (1 domain)" "$RPS" "" "" ""
done
row "memory under load, 1 domain: VmHWM, MiB" "$(kib_to_mib "$(procstat "$DPID" VmHWM)")" "" "" ""
stop_daemon

fi # BENCH_ONLY=tables
fi # BENCH_ONLY=big

# --- the large case
if [ "$BIG" -gt 0 ] && [ "$ONLY" != tables ] && [ "$ONLY" != idle ]; then
	loaddomains bench_big "$BIG"
	mailhost "$TMP/tree-big" bench_big
	t0=$(date +%s%N)
	start_daemon "$TMP/tree-big"
	start_ms=$((($(date +%s%N) - t0) / 1000000))
	idle_rss=$(procstat "$DPID" VmRSS)
	IFS='|' read -r name method host target <<<"${ENDPOINTS[0]}"
	WRK_OUT=$TMP/wrk-big.out load "$method" "$host" "$D$target" -t2 -c50 -d"$DURATION" &
	wpid=$!
	sleep "$(awk -v d="${DURATION%s}" 'BEGIN {print d / 2}')"
	rss=$(procstat "$DPID" VmRSS)
	wait "$wpid"
	wrkparse "$TMP/wrk-big.out"
	row "$name: requests/s ($BIG domains)" "$RPS" "" "" ""
	row "memory under load, $BIG domains: VmRSS mid-run / VmHWM (idle after start: $(kib_to_mib "$idle_rss")), MiB" "$(kib_to_mib "$rss") / $(kib_to_mib "$(procstat "$DPID" VmHWM)")" "" "" "≤ 300 MiB"
	row "start to first answer with $BIG domains, ms" "$start_ms" "" "" ""
	# A rebuild (SIGHUP, as the periodic refresh does) under load: the
	# previous snapshot serves while the new one is built next to it.
	WRK_OUT=$TMP/wrk-big-reload.out load "$method" "$host" "$D$target" -t2 -c50 -d"$DURATION" &
	wpid=$!
	sleep "$(awk -v d="${DURATION%s}" 'BEGIN {print d / 4}')"
	before=$(grep -c 'snapshot published' "$TMP/tree-big.log" || true)
	kill -HUP "$DPID"
	for _ in $(seq 600); do
		[ "$(grep -c 'snapshot published' "$TMP/tree-big.log" || true)" -gt "$before" ] && break
		sleep 0.05
	done
	wait "$wpid"
	wrkparse "$TMP/wrk-big-reload.out"
	build_ms=$(grep 'snapshot published' "$TMP/tree-big.log" | tail -n +$((before + 1)) | head -1 | sed -n 's/.*build=\([^ ]*\).*/\1/p')
	row "rebuild with $BIG domains under load: build time logged / failed requests / VmRSS after, MiB" "${build_ms:-?} / $ERRORS / $(kib_to_mib "$(procstat "$DPID" VmRSS)")" "" "" ""
	row "memory, $BIG domains: VmHWM after start, load and a rebuild, MiB" "$(kib_to_mib "$(procstat "$DPID" VmHWM)")" "" "" "≤ 150 MiB (≤ 300 kept)"
	stop_daemon
fi

# ---------------------------------------------------------------- table
{
	head="| figure | mailautoconf | nginx | ratio (median) | ratio per round, lowest–highest | target |
| --- | --- | --- | --- | --- | --- |"
	if [ ${#TABLE_core[@]} -gt 0 ]; then
		echo "Per core: daemon GOMAXPROCS=1 vs nginx worker_processes 1, both on CPU $SCPU; wrk -t1 -c50 (latency -t1 -c1) on CPU $CCPU"
		echo
		echo "$head"
		printf '%s\n' "${TABLE_core[@]}"
		echo
	fi
	if [ ${#TABLE_ship[@]} -gt 0 ]; then
		procs="with the package's default GOMAXPROCS"
		[ -z "$PROCS" ] || procs="GOMAXPROCS=$PROCS"
		echo "As shipped: daemon $procs vs nginx worker_processes auto, nothing pinned; wrk -t2 -c50 (latency -t1 -c1)"
		echo
		echo "$head"
		printf '%s\n' "${TABLE_ship[@]}"
		echo
	fi
	if [ ${#TABLE_proxy[@]} -gt 0 ]; then
		echo "Behind nginx: nginx (1 worker) → daemon's unix socket vs the same nginx → static nginx (1 worker) on a unix socket, upstream keep-alive 16, HTTP/1.1; all on CPU $SCPU; wrk -t1 -c50 (latency -t1 -c1) on CPU $CCPU"
		echo
		echo "$head"
		printf '%s\n' "${TABLE_proxy[@]}"
		echo
	fi
	if [ ${#ROWS[@]} -gt 0 ]; then
		echo "| figure | mailautoconf | nginx static / other | ratio | target |"
		echo "| --- | --- | --- | --- | --- |"
		printf '%s\n' "${ROWS[@]}"
	fi
} >"$TMP/table.md"
echo
echo "mailautoconf $(git describe --always --dirty 2>/dev/null || echo '?'), $(date -u +%Y-%m-%dT%H:%MZ), load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
machine="$(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(free -h | awk '/^Mem:/ {print $2}') RAM"
if [ "$ONLY" = idle ]; then
	echo "machine: $machine; idle windows of $IDLE s, daemon defaults (--refresh 60s)"
else
	echo "machine: $machine; wrk $DURATION per throughput figure, $LATENCY per latency figure, $ROUNDS rounds, loopback; nginx $(nginx -v 2>&1 | sed 's|.*/||')"
fi
echo
cat "$TMP/table.md"
if [ "${#ROUNDLOG[@]}" -gt 0 ]; then
	echo
	echo "Per round:"
	printf '%s\n' "${ROUNDLOG[@]}"
fi
[ -z "$OUT" ] || cp "$TMP/table.md" "$OUT"
