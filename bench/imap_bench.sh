#!/bin/sh
# bench/imap_bench.sh BUILD -- the `imap` section of bench/run: IMAP
# commands per second, mailsrv against Dovecot, side by side in one run,
# with and without login churn; and mailsrv's memory per idle connection.
# See docs/benchmarks.md ("mailsrv: IMAP").
#
# One load tool, bench/imap_load.c (libetpan's IMAP client, built here
# into BUILD/bench/imap_load), drives, one after the other (each gets the
# machine to itself):
#   1. BUILD/mailsrv (imaps_listen, implicit TLS) on a throw-away node in a
#      temporary directory (keyservice --init --demo; [keyservice]
#      argon2_memory/argon2_time set to the bench's password cost), with
#      BENCH_IMAP_USERS users added with `amanat user add` (Argon2id
#      hashes made by keyservice at that cost);
#   2. a throw-away Dovecot (Debian's dovecot-imapd, `dovecot -c` with its
#      own config, base_dir, state_dir and mail in another temporary
#      directory): imaps on 127.0.0.1 with the node's TLS certificate and
#      key, ssl = required, TLS 1.2 at least, the same ciphers; passdb
#      passwd-file of {ARGON2ID} hashes of the same cost (made with
#      Debian's argon2 CLI, the same passwords); userdb static, maildir;
#      otherwise Dovecot's defaults (no auth cache, mail_fsync optimized)
#      but for the login processes in Dovecot's "high-performance mode"
#      (service_count = 0, one per core).
# For each: --populate (the same messages to every user), then --churn
# and --no-churn for BENCH_SECONDS each, and the CPU time the server's
# processes used during each run.  Then, on a third throw-away node
# (Argon2 made cheap: logins are not measured there), --idle: that many
# connections logged in, INBOX selected and in IDLE at once; mailsrv's
# VmRSS before and with them, per connection.  Prints
#   imap churn: mailsrv N cmd/s, dovecot M cmd/s, ratio R (...)
#   imap no-churn: mailsrv N cmd/s, dovecot M cmd/s, ratio R (...)
#   imap idle: 10000 connections, mailsrv +X KiB RSS each
# with, for churn and no-churn, the server CPU per command of both and
# the CPU the rest of the machine used meanwhile (others' work shows
# there), and whether the targets (3x, 1.5x, 32 KiB) are met.  A figure counts
# only if the load tool saw no error (every reply OK, every count and
# fetched body as expected).
#
# Needs root for Dovecot (and to install dovecot-imapd and argon2, with
# apt-get; a system Dovecot the package might start is stopped and
# disabled).  As another user it prints what to install and runs mailsrv
# alone.
#
# Environment (all optional):
#   BENCH_SECONDS              measured seconds per run (default 10; 1 s
#                              warm-up more)
#   BENCH_IMAP_SESSIONS        parallel sessions, one thread each
#                              (default 20)
#   BENCH_IMAP_USERS           users (default: as many as sessions)
#   BENCH_IMAP_MESSAGES        messages per user's INBOX (default 200)
#   BENCH_IMAP_ARGON2_MEMORY   Argon2id memory, MiB, a power of two
#                              (default 16)
#   BENCH_IMAP_ARGON2_TIME     Argon2id passes (default 2)
#   BENCH_IMAP_IDLE            idle connections (default 10000; 0: skip)
#   BENCH_IMAP_TARGETS         "mailsrv dovecot" (default), or either
#   BENCH_IMAP_DOVECOT_PASSDB  passwd-file (default): Dovecot's passdb is
#                              a passwd-file, whose passwords its single
#                              auth process verifies one at a time; sql: a
#                              SQLite passdb (package dovecot-sqlite),
#                              verified in auth-worker processes in parallel
#   BENCH_IMAP_NODELAY         non-empty: the load tool sets TCP_NODELAY on
#                              its sockets (libetpan leaves Nagle on)
#   BENCH_IMAP_KEEP            non-empty: keep the temporary directories
#   BENCH_PYTHON               python3 for the port helper
# Every step is bounded in time (timeout(1), the tool's own bounds).
# Exits non-zero when a run fails or a check does not hold.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"
build=$(bench_build_arg bench/imap_bench.sh "$@")
seconds=${BENCH_SECONDS:-10}
sessions=${BENCH_IMAP_SESSIONS:-20}
nusers=${BENCH_IMAP_USERS:-$sessions}
nmsg=${BENCH_IMAP_MESSAGES:-200}
a2mem=${BENCH_IMAP_ARGON2_MEMORY:-16}
a2time=${BENCH_IMAP_ARGON2_TIME:-2}
nidle=${BENCH_IMAP_IDLE:-10000}
targets=${BENCH_IMAP_TARGETS:-mailsrv dovecot}
keep=${BENCH_IMAP_KEEP:-}
dv_passdb=${BENCH_IMAP_DOVECOT_PASSDB:-passwd-file}
nodelay=${BENCH_IMAP_NODELAY:-}
python=${BENCH_PYTHON:-/usr/bin/python3}
cc=${CC:-cc}
dept_domain=finance.amanat.test
if [ "$(id -u)" = 0 ]; then root=1; else root=0; fi

# Argon2 memory: a power of two MiB (the argon2 CLI takes log2 KiB).
a2log=$(awk -v m="$a2mem" 'BEGIN {
	k = m * 1024; l = 0
	while (2 ^ l < k) l++
	if (2 ^ l != k || m < 1) exit 1
	print l }') || {
	echo "bench: BENCH_IMAP_ARGON2_MEMORY=$a2mem: not a power of two" \
	    "MiB" >&2
	exit 2
}
a2desc="Argon2id m=${a2mem}M t=$a2time p=1"
case $dv_passdb in
passwd-file | sql) ;;
*)
	echo "bench: BENCH_IMAP_DOVECOT_PASSDB=$dv_passdb: passwd-file or" \
	    "sql" >&2
	exit 2
	;;
esac
load_flags=""
[ -n "$nodelay" ] && load_flags=--nodelay

echo "== imap: commands/s, mailsrv and dovecot (bench/imap_load.c, libetpan)"

# ---------------------------------------------------------------- tool
mkdir -p "$build/bench"
etpan_libs=$(pkg-config --libs libetpan 2>/dev/null | tr ' ' '\n' |
    grep -v -- '^-specs=' | tr '\n' ' ') || true
if [ -z "$etpan_libs" ]; then
	echo "bench: libetpan is missing (apt-get install libetpan-dev)" >&2
	exit 1
fi
# shellcheck disable=SC2046,SC2086 # word lists
if ! "$cc" -O2 -std=c11 -D_GNU_SOURCE -pthread -Wall -Wextra -Wshadow \
    -Wformat=2 -Wmissing-prototypes -Wstrict-prototypes \
    -Wno-unused-parameter -o "$build/bench/imap_load" \
    "$top/bench/imap_load.c" $(pkg-config --cflags libetpan) $etpan_libs \
    -lgnutls; then
	echo "bench: cannot build imap_load" >&2
	exit 1
fi
load=$build/bench/imap_load

# ---------------------------------------------------------------- install
# Debian's dovecot-imapd (Dovecot's imap) and argon2 (the CLI that makes
# the hashes); the package's own Dovecot must not run.
dovecot=/usr/sbin/dovecot
dv_pkgs="dovecot-imapd argon2"
[ "$dv_passdb" = sql ] && dv_pkgs="$dv_pkgs dovecot-sqlite"
dv_missing() {
	[ ! -x $dovecot ] || [ ! -x /usr/lib/dovecot/imap ] ||
	    ! command -v argon2 >/dev/null 2>&1 || { [ "$dv_passdb" = sql ] &&
	    [ ! -e /usr/lib/dovecot/modules/libdriver_sqlite.so ]; }
}
case " $targets " in
*" dovecot "*)
	if dv_missing; then
		if [ $root = 0 ]; then
			echo "bench: dovecot half skipped: some of $dv_pkgs" \
			    "is missing; run as root:"
			echo "  apt-get install -y --no-install-recommends" \
			    "$dv_pkgs"
			targets=mailsrv
		else
			echo "bench: installing Debian's $dv_pkgs"
			# shellcheck disable=SC2086 # package list
			if ! DEBIAN_FRONTEND=noninteractive timeout 600 \
			    apt-get install -y -q --no-install-recommends \
			    $dv_pkgs >/tmp/amanat-bench-apt.log 2>&1; then
				# the package lists may be missing or stale
				timeout 300 apt-get update -q \
				    >>/tmp/amanat-bench-apt.log 2>&1 || true
				# shellcheck disable=SC2086 # package list
				if ! DEBIAN_FRONTEND=noninteractive \
				    timeout 600 apt-get install -y -q \
				    --no-install-recommends $dv_pkgs \
				    >>/tmp/amanat-bench-apt.log 2>&1; then
					echo "bench: apt-get install" \
					    "$dv_pkgs failed:" >&2
					tail -n 20 /tmp/amanat-bench-apt.log >&2
					exit 1
				fi
			fi
			rm -f /tmp/amanat-bench-apt.log
		fi
	fi
	if [ $root = 1 ]; then
		# A system Dovecot (the default instance) must not run (the
		# package starts one where services may be started).
		if [ -e /run/dovecot/master.pid ] &&
		    kill -0 "$(cat /run/dovecot/master.pid)" 2>/dev/null; then
			timeout 30 service dovecot stop >/dev/null 2>&1 ||
			    timeout 30 doveadm stop >/dev/null 2>&1 || true
		fi
		if command -v systemctl >/dev/null 2>&1 &&
		    [ -d /run/systemd/system ]; then
			timeout 30 systemctl disable --now dovecot.socket \
			    dovecot.service >/dev/null 2>&1 || true
		fi
	elif [ "$targets" != mailsrv ]; then
		echo "bench: dovecot half skipped: it needs root"
		targets=mailsrv
	fi
	;;
esac

# ---------------------------------------------------------------- helpers
tmp=""		# the current mailsrv node
dvtmp=""	# the Dovecot instance
ks_pid=""
ms_pid=""
dv_pid=""
runtmp=""	# this run's users file, the certificate for Dovecot
users=""	# the users file: "address password" lines

# dv_stop: stop the throw-away Dovecot (the master and its children).
dv_stop() {
	[ -n "$dv_pid" ] || return 0
	kill -TERM "$dv_pid" 2>/dev/null || true
	n=0
	while kill -0 "$dv_pid" 2>/dev/null && [ $n -lt 100 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	if kill -0 "$dv_pid" 2>/dev/null; then
		echo "bench: dovecot ignored SIGTERM; killing it" >&2
		pkill -KILL -P "$dv_pid" 2>/dev/null || true
		kill -KILL "$dv_pid" 2>/dev/null || true
	fi
	dv_pid=""
}

cleanup_dovecot() {
	dv_stop
	if [ -n "$dvtmp" ] && [ -n "$keep" ]; then
		echo "bench: kept $dvtmp" >&2
		dvtmp=""
	elif [ -n "$dvtmp" ]; then
		rm -rf "$dvtmp"
		dvtmp=""
	fi
}

# shellcheck disable=SC2317 # called by the traps
cleanup() {
	cleanup_mailsrv
	cleanup_dovecot
	if [ -n "$runtmp" ] && [ -n "$keep" ]; then
		echo "bench: kept $runtmp" >&2
		runtmp=""
	elif [ -n "$runtmp" ]; then
		rm -rf "$runtmp"
		runtmp=""
	fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# wait_log FILE PATTERN SECONDS: until FILE has a line matching PATTERN.
wait_log() {
	end=$(($(date +%s) + $3))
	while ! grep -qE "$2" "$1" 2>/dev/null; do
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# make_users N PREFIX FILE: N bench users in the demo's finance domain,
# random passwords.
make_users() {
	: >"$3"
	chmod 600 "$3"
	i=1
	while [ "$i" -le "$1" ]; do
		printf '%s%04d@%s %s\n' "$2" "$i" "$dept_domain" \
		    "$(openssl rand -hex 12)" >>"$3"
		i=$((i + 1))
	done
}

# shellcheck disable=SC2034 # rate is read by run_all's eval
# run_load NAME KIND ARGS...: imap_load with ARGS and $srv_args (the
# server's processes, for its CPU time); prints its output; sets rate
# (cmd/s).  Fails when the tool does.
run_load() {
	name=$1
	kind=$2
	shift 2
	# shellcheck disable=SC2086 # words
	if ! timeout $((seconds + 400)) "$load" "$@" $srv_args $load_flags \
	    >"$work/$name-$kind.out" 2>&1; then
		sed "s/^/$name: /" "$work/$name-$kind.out"
		echo "bench: imap_load $kind against $name failed" >&2
		return 1
	fi
	sed "s/^/$name: /" "$work/$name-$kind.out"
	rate=$(sed -n 's/^imap_load result: .* rate=\([0-9.]*\) .*/\1/p' \
	    "$work/$name-$kind.out")
	# server CPU per command (us)
	us=$(awk '/^imap_load result: / {
		for (i = 1; i <= NF; i++) {
			split($i, kv, "=")
			v[kv[1]] = kv[2]
		}
		if (v["cmds"] > 0)
			printf "%.0f", v["server_cpu"] * 1e6 / v["cmds"]
	}' "$work/$name-$kind.out")
	# CPU seconds used outside the server and the tool meanwhile
	other=$(sed -n 's/^imap_load result: .* other_cpu=\([-0-9.]*\) .*/\1/p' \
	    "$work/$name-$kind.out")
}

# run_all NAME PORT: populate, churn, no-churn; sets NAME_churn and
# NAME_nochurn.
run_all() {
	common="-h 127.0.0.1 -p $2 -u $users -m $nmsg"
	echo "$1: imap_load $common -c 4 --populate"
	# shellcheck disable=SC2086 # words
	run_load "$1" populate $common -c 4 --populate || return 1
	for kind in churn no-churn; do
		echo "$1: imap_load $common -c $sessions -d $seconds --$kind"
		# shellcheck disable=SC2086 # words
		run_load "$1" "$kind" $common -c "$sessions" -d "$seconds" \
		    "--$kind" || return 1
		case $kind in
		churn)
			eval "${1}_churn=\$rate ${1}_churn_us=\$us" \
			    "${1}_churn_other=\$other"
			;;
		no-churn)
			eval "${1}_nochurn=\$rate ${1}_nochurn_us=\$us" \
			    "${1}_nochurn_other=\$other"
			;;
		esac
	done
}

# ---------------------------------------------------------------- node
# ms_add_users CONF: every user of $users added with `amanat user add`,
# four at a time.
ms_add_users() {
	t0=$(date +%s)
	: >"$tmp/useradd.log"
	n=0
	pids=""
	while read -r addr pw; do
		(printf '%s' "$pw" | timeout 60 "$build/amanat" -c "$1" \
		    user add "$addr" --password-stdin \
		    >>"$tmp/useradd.log" 2>&1 ||
		    echo "FAILED $addr" >>"$tmp/useradd.log") &
		pids="$pids $!"
		n=$((n + 1))
		if [ $((n % 4)) = 0 ]; then
			# (not a bare wait: keyservice is a child too)
			# shellcheck disable=SC2086 # pids
			wait $pids
			pids=""
		fi
	done <"$users"
	# shellcheck disable=SC2086 # pids
	[ -z "$pids" ] || wait $pids
	if grep -q '^FAILED' "$tmp/useradd.log"; then
		echo "bench: amanat user add failed:" >&2
		tail -n 20 "$tmp/useradd.log" >&2
		return 1
	fi
	echo "node: $n users added (amanat user add) in" \
	    "$(($(date +%s) - t0)) s"
}

# ms_node MEM TIME MAXCONN: a throw-away node in $tmp, keyservice and
# mailsrv running, $users added; returns 2 when a port picked as free was
# taken meanwhile (retry).
ms_node() {
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/amanat-bench-imap.XXXXXX")
	conf=$tmp/amanat.conf
	src=$top/conf/amanat.conf
	nlisten=$(grep -cE '^[a-z_]*listen = ' "$src" || true)
	awk -v ports="$(free_ports "${nlisten:-0}" | tr '\n' ' ')" \
	    -v map="$tmp/ports" -v mem="$1" -v time="$2" -v maxc="$3" '
	BEGIN { split(ports, p, " "); i = 0 }
	/^\[/ { sec = $1 }
	/^[a-z_]*listen = / {
		i++
		sub(/:[0-9]+$/, ":" p[i])
		if ($1 == "crl_listen")
			crl = p[i]
		print sec, $1, p[i] > map
		print
		next
	}
	/^crl_url = / && crl != "" {
		print "crl_url = http://127.0.0.1:" crl "/crl.der"
		next
	}
	/^argon2_memory = / { print "argon2_memory = " mem; next }
	/^argon2_time = / { print "argon2_time = " time; next }
	/^argon2_lanes = / { print "argon2_lanes = 1"; next }
	sec == "[mailsrv]" && /^max_connections = / {
		print "max_connections = " maxc
		next
	}
	# every load connection comes from 127.0.0.1
	sec == "[mailsrv]" && /^imap_max_connections_per_ip = / {
		print "imap_max_connections_per_ip = 0"
		next
	}
	{ print }
	' "$src" >"$conf"
	ks_port=$(awk '$1 == "[keyservice]" && $2 == "listen" { print $3 }' \
	    "$tmp/ports")
	imaps_port=$(awk '$1 == "[mailsrv]" && $2 == "imaps_listen" \
	    { print $3 }' "$tmp/ports")
	if [ -z "$ks_port" ] || [ -z "$imaps_port" ] ||
	    ! grep -q "^crl_url = http://127.0.0.1:[0-9]*/crl.der\$" "$conf" ||
	    ! grep -q "^max_connections = $3\$" "$conf" ||
	    ! grep -q "^imap_max_connections_per_ip = 0\$" "$conf"; then
		echo "bench: could not set up the node's config from $src" >&2
		return 1
	fi

	ks_demo_start "$conf" "$ks_port" 120 || return $?
	# the users; keyservice hashes each password at the node's cost
	ms_add_users "$conf" || return 1
	mslog=$tmp/mailsrv.log
	"$build/mailsrv" -c "$conf" >"$mslog" 2>&1 &
	ms_pid=$!
	if ! wait_port "$imaps_port" 30; then
		grep -q 'Address already in use' "$mslog" && return 2
		echo "bench: mailsrv did not listen on $imaps_port:" >&2
		tail -n 20 "$mslog" >&2
		return 1
	fi
	if ! wait_log "$mslog" 'mailsrv local domains loaded' 30; then
		echo "bench: mailsrv not ready in 30 s:" >&2
		tail -n 20 "$mslog" >&2
		return 1
	fi
}

# tls_info NAME PORT: what the server negotiates with an OpenSSL client
# (the load tool's GnuTLS offers both servers the same).
tls_info() {
	info=$(timeout 10 openssl s_client -connect "127.0.0.1:$2" -brief \
	    </dev/null 2>&1 | awk -F': ' '
	    /^Protocol version/ { p = $2 } /^Ciphersuite/ { c = $2 }
	    /^Server Temp Key/ { k = $2 } /^Signature type/ { s = $2 }
	    END { print p ", " c ", " k ", " s " signature" }') || info=unknown
	echo "$1: TLS (openssl s_client): $info"
}

# ms_start MEM TIME MAXCONN: ms_node, retried when ports were taken.
ms_start() {
	attempt=1
	while :; do
		rc=0
		ms_node "$@" || rc=$?
		[ $rc = 0 ] && return 0
		cleanup_mailsrv
		if [ $rc != 2 ] || [ $attempt -ge 3 ]; then
			[ $rc = 2 ] && echo "bench: mailsrv node: ports taken" \
			    "by others three times" >&2
			return 1
		fi
		echo "bench: a port picked for the node was taken" \
		    "meanwhile; retrying with others"
		attempt=$((attempt + 1))
	done
}

# ms_alive: mailsrv and keyservice still run and logged nothing fatal.
ms_alive() {
	if ! kill -0 "$ms_pid" 2>/dev/null ||
	    ! kill -0 "$ks_pid" 2>/dev/null; then
		echo "bench: mailsrv or keyservice exited during the run:" >&2
		tail -n 20 "$tmp/mailsrv.log" "$tmp/keyservice.log" >&2
		return 1
	fi
	if grep -E ' (fatal|crit)|AddressSanitizer|runtime error' \
	    "$tmp/mailsrv.log" "$tmp/keyservice.log" >&2; then
		echo "bench: fatal log lines (above)" >&2
		return 1
	fi
}

mailsrv_churn=""
mailsrv_nochurn=""
mailsrv_churn_us=""
mailsrv_nochurn_us=""
mailsrv_churn_other=""
mailsrv_nochurn_other=""
bench_mailsrv() {
	ms_start "${a2mem}M" "$a2time" 10000 || return 1
	work=$tmp
	# Dovecot serves the same certificate and key
	cp "$tmp/tls/server.pem" "$tmp/tls/server.key" "$runtmp/"
	echo "mailsrv: pid $ms_pid (keyservice $ks_pid), imaps on" \
	    "127.0.0.1:$imaps_port, $a2desc, data in $tmp"
	tls_info mailsrv "$imaps_port"
	srv_args="--server-pids $ms_pid,$ks_pid"
	run_all mailsrv "$imaps_port" || { ms_alive || true; return 1; }
	ms_alive || return 1
	echo "mailsrv: VmRSS $(awk '/^VmRSS/ { print $2, $3 }' \
	    "/proc/$ms_pid/status"), $(grep -c ' imap login user=' \
	    "$tmp/mailsrv.log" || true) logins logged"
	cleanup_mailsrv
}

# ---------------------------------------------------------------- dovecot
dovecot_churn=""
dovecot_nochurn=""
dovecot_churn_us=""
dovecot_nochurn_us=""
dovecot_churn_other=""
dovecot_nochurn_other=""
bench_dovecot() {
	# Dovecot's TLS: the certificate and key mailsrv served (kept from
	# its node), or when mailsrv was not run a self-signed one of the
	# same kind (EC P-256); the ciphers of amanat.conf.
	dvtmp=$(mktemp -d "${TMPDIR:-/tmp}/amanat-bench-dovecot.XXXXXX")
	chmod 755 "$dvtmp"
	mkdir -m 755 "$dvtmp/run" "$dvtmp/state" "$dvtmp/log" "$dvtmp/mail"
	work=$dvtmp
	if [ -s "$runtmp/server.pem" ] && [ -s "$runtmp/server.key" ]; then
		cp "$runtmp/server.pem" "$runtmp/server.key" "$dvtmp/"
		certdesc="mailsrv's node certificate"
	elif ! timeout 120 openssl req -x509 -newkey ec \
	    -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	    -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
	    -keyout "$dvtmp/server.key" -out "$dvtmp/server.pem" \
	    >"$dvtmp/openssl.log" 2>&1; then
		echo "bench: openssl req failed:" >&2
		cat "$dvtmp/openssl.log" >&2
		return 1
	else
		certdesc="a self-signed P-256 certificate"
	fi
	chmod 600 "$dvtmp/server.key"
	ciphers=$(sed -n 's/^ciphers = //p' "$top/conf/amanat.conf")
	suites=$(sed -n 's/^ciphersuites = //p' "$top/conf/amanat.conf")

	# The same users and passwords, Argon2id hashes of the same cost
	# (salt 16 bytes, digest 32 like keyservice's).
	t0=$(date +%s)
	: >"$dvtmp/passwd"
	chmod 640 "$dvtmp/passwd"
	while read -r addr pw; do
		h=$(printf '%s' "$pw" | timeout 60 argon2 \
		    "$(openssl rand -hex 8)" -id -t "$a2time" -m "$a2log" \
		    -p 1 -l 32 -e) || h=""
		# shellcheck disable=SC2016 # a literal $
		case $h in
		'$argon2id$'*) ;;
		*)
			echo "bench: argon2 failed for $addr" >&2
			return 1
			;;
		esac
		printf '%s:{ARGON2ID}%s\n' "$addr" "$h" >>"$dvtmp/passwd"
	done <"$users"
	chgrp dovecot "$dvtmp/passwd"
	echo "dovecot: $(wc -l <"$dvtmp/passwd") {ARGON2ID} hashes" \
	    "($a2desc, argon2 CLI) in $(($(date +%s) - t0)) s"
	if [ "$dv_passdb" = sql ]; then
		# the same hashes in an SQLite table
		if ! timeout 60 "$python" -c '
import sqlite3, sys
db = sqlite3.connect(sys.argv[2])
db.execute("CREATE TABLE users (userid TEXT PRIMARY KEY, password TEXT)")
with open(sys.argv[1]) as f:
	for line in f:
		u, h = line.rstrip("\n").split(":", 1)
		db.execute("INSERT INTO users VALUES (?, ?)", (u, h))
db.commit()
' "$dvtmp/passwd" "$dvtmp/users.db"; then
			echo "bench: cannot make the SQLite passdb" >&2
			return 1
		fi
		chgrp dovecot "$dvtmp/users.db"
		chmod 640 "$dvtmp/users.db"
		cat >"$dvtmp/sql.conf.ext" <<SQL
driver = sqlite
connect = $dvtmp/users.db
password_query = SELECT userid AS user, password FROM users WHERE userid = '%u'
SQL
		passdb_conf="passdb {
  driver = sql
  args = $dvtmp/sql.conf.ext
}"
	else
		passdb_conf="passdb {
  driver = passwd-file
  args = scheme=ARGON2ID $dvtmp/passwd
}"
	fi

	# mail as the unprivileged "dovenull"-like owner: Dovecot's own
	# "dovecot" user is for its internal processes, so a mail uid of
	# nobody (uid >= first_valid_uid, no login) owns the maildirs.
	chown nobody:nogroup "$dvtmp/mail"
	attempt=1
	while :; do
		dv_port=$(free_ports 1)
		cat >"$dvtmp/dovecot.conf" <<CONF
# Amanat bench: a throw-away Dovecot (bench/imap_bench.sh)
protocols = imap
listen = 127.0.0.1
base_dir = $dvtmp/run
state_dir = $dvtmp/state
instance_name = amanat-bench-$$
log_path = $dvtmp/log/dovecot.log
ssl = required
ssl_cert = <$dvtmp/server.pem
ssl_key = <$dvtmp/server.key
ssl_min_protocol = TLSv1.2
ssl_cipher_list = $ciphers
ssl_cipher_suites = $suites
ssl_prefer_server_ciphers = yes
disable_plaintext_auth = yes
auth_mechanisms = plain
$passdb_conf
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$dvtmp/mail/%u
}
mail_location = maildir:~/Maildir
mail_max_userip_connections = 1000
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $dv_port
    ssl = yes
  }
  service_count = 0
  process_min_avail = $(nproc)
}
CONF
		if [ $attempt = 1 ] && ! timeout 60 doveconf -c \
		    "$dvtmp/dovecot.conf" -n >"$dvtmp/doveconf.log" 2>&1; then
			echo "bench: doveconf failed:" >&2
			tail -n 20 "$dvtmp/doveconf.log" >&2
			return 1
		fi
		$dovecot -F -c "$dvtmp/dovecot.conf" \
		    >"$dvtmp/log/stderr.log" 2>&1 &
		dv_pid=$!
		wait_port "$dv_port" 30 && break
		if grep -q 'Address already in use' "$dvtmp/log/dovecot.log" \
		    "$dvtmp/log/stderr.log" 2>/dev/null &&
		    [ $attempt -lt 3 ]; then
			echo "bench: port $dv_port was taken meanwhile;" \
			    "retrying with another"
			dv_stop
			attempt=$((attempt + 1))
			continue
		fi
		echo "bench: dovecot did not listen on $dv_port:" >&2
		tail -n 20 "$dvtmp/log/dovecot.log" "$dvtmp/log/stderr.log" >&2
		return 1
	done
	echo "dovecot: $($dovecot --version), pid $dv_pid, imaps on" \
	    "127.0.0.1:$dv_port, $a2desc, $dv_passdb passdb, $certdesc," \
	    "maildirs in $dvtmp/mail"
	tls_info dovecot "$dv_port"
	# the master, its children and the reaped ones
	srv_args="--server-tree $dv_pid"
	run_all dovecot "$dv_port" || { dv_log_check || true; return 1; }
	dv_log_check || return 1
	echo "dovecot: $(grep -c 'imap-login: Info: Login: ' \
	    "$dvtmp/log/dovecot.log" || true) logins logged"
	cleanup_dovecot
}

# dv_log_check: Dovecot still runs and logged no error.
dv_log_check() {
	if ! kill -0 "$dv_pid" 2>/dev/null; then
		echo "bench: dovecot exited during the run:" >&2
		tail -n 20 "$dvtmp/log/dovecot.log" "$dvtmp/log/stderr.log" >&2
		return 1
	fi
	if grep -E '(Error|Fatal|Panic): ' "$dvtmp/log/dovecot.log" |
	    head -n 10 >&2 && grep -qE '(Error|Fatal|Panic): ' \
	    "$dvtmp/log/dovecot.log"; then
		echo "bench: dovecot logged errors (above)" >&2
		return 1
	fi
}

# ---------------------------------------------------------------- idle
idle_each=""
bench_idle() {
	# IMAP_USER_SESSIONS_MAX (32) sessions per user at most: 25 each.
	nidle_users=$(((nidle + 24) / 25))
	idle_users=$runtmp/idle-users
	make_users "$nidle_users" idle "$idle_users"
	saved=$users
	users=$idle_users
	rc=0
	ms_start 1M 1 $((nidle + 100)) || rc=1
	users=$saved
	if [ $rc = 0 ]; then
		work=$tmp
		echo "mailsrv: pid $ms_pid, imaps on 127.0.0.1:$imaps_port," \
		    "[mailsrv] max_connections = $((nidle + 100)), Argon2 1M/1" \
		    "(logins not measured here)"
		echo "mailsrv: imap_load -h 127.0.0.1 -p $imaps_port -u USERS" \
		    "--idle $nidle --rss-pid $ms_pid ($nidle_users users)"
		if timeout $((600 + nidle / 10)) "$load" -h 127.0.0.1 \
		    -p "$imaps_port" -u "$idle_users" -m 1 --idle "$nidle" \
		    --rss-pid "$ms_pid" >"$tmp/idle.out" 2>&1; then
			sed 's/^/mailsrv: /' "$tmp/idle.out"
			idle_each=$(sed -n \
			    's/^imap_load result: .* kib_each=\([-0-9.]*\) .*/\1/p' \
			    "$tmp/idle.out")
		else
			sed 's/^/mailsrv: /' "$tmp/idle.out"
			echo "bench: imap_load --idle failed" >&2
			rc=1
		fi
		ms_alive || rc=1
	fi
	cleanup_mailsrv
	return $rc
}

# ---------------------------------------------------------------- main
runtmp=$(mktemp -d "${TMPDIR:-/tmp}/amanat-bench-imaprun.XXXXXX")
users=$runtmp/users
make_users "$nusers" bench "$users"
echo "$(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' \
    /proc/cpuinfo | head -n 1); $sessions sessions, $nusers users," \
    "$nmsg messages each, $a2desc, implicit TLS; temporary dirs in" \
    "${TMPDIR:-/tmp} ($(df -P "${TMPDIR:-/tmp}" | awk 'NR == 2 { print $1 }'));" \
    "load average $(cut -d ' ' -f 1-3 /proc/loadavg)"
status=0
for t in $targets; do
	case $t in
	mailsrv) bench_mailsrv || status=1 ;;
	dovecot) bench_dovecot || status=1 ;;
	*)
		echo "bench: unknown imap target $t" >&2
		status=1
		;;
	esac
	cleanup_mailsrv
	cleanup_dovecot
	# others' work on the machine shows here
	echo "$t done; load average $(cut -d ' ' -f 1-3 /proc/loadavg)"
done
case " $targets " in
*" mailsrv "*)
	if [ "$nidle" -gt 0 ]; then
		bench_idle || status=1
	fi
	;;
esac

what="$sessions sessions, $nusers users, $nmsg messages, $a2desc, implicit TLS"
[ -n "$nodelay" ] && what="$what, client TCP_NODELAY"
[ "$dv_passdb" = sql ] && what="$what, dovecot sql passdb"
# summary KIND MS DV TARGET MS_US DV_US MS_OTHER DV_OTHER
summary() {
	if [ -n "$2" ] && [ -n "$3" ]; then
		ratio=$(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.2f", a / b }')
		echo "imap $1: mailsrv $2 cmd/s, dovecot $3 cmd/s, ratio" \
		    "$ratio ($what)"
		if [ -n "$5" ] && [ -n "$6" ] && [ "$5" -gt 0 ]; then
			echo "imap $1 server CPU per command: mailsrv $5 us," \
			    "dovecot $6 us, ratio $(awk -v a="$6" -v b="$5" \
			    'BEGIN { printf "%.2f", a / b }')"
		fi
		if [ -n "$7" ] && [ -n "$8" ]; then
			echo "imap $1 CPU used outside the server and the" \
			    "load tool: $7 s in the mailsrv run, $8 s in the" \
			    "dovecot run (of $((seconds * $(nproc))) core-s)"
		fi
		if awk -v r="$ratio" -v t="$4" 'BEGIN { exit !(r >= t) }'; then
			echo "imap $1 target (${4}x dovecot): met"
		else
			echo "imap $1 target (${4}x dovecot): NOT met"
		fi
	elif [ -n "$2" ]; then
		echo "imap $1: mailsrv $2 cmd/s ($what; dovecot not run)"
	elif [ -n "$3" ]; then
		echo "imap $1: dovecot $3 cmd/s ($what; mailsrv not run)"
	fi
}
summary churn "$mailsrv_churn" "$dovecot_churn" 3 "$mailsrv_churn_us" \
    "$dovecot_churn_us" "$mailsrv_churn_other" "$dovecot_churn_other"
summary no-churn "$mailsrv_nochurn" "$dovecot_nochurn" 1.5 \
    "$mailsrv_nochurn_us" "$dovecot_nochurn_us" "$mailsrv_nochurn_other" \
    "$dovecot_nochurn_other"
if [ -n "$idle_each" ]; then
	echo "imap idle: $nidle connections, mailsrv +$idle_each KiB RSS each"
	if awk -v k="$idle_each" 'BEGIN { exit !(k <= 32) }'; then
		echo "imap idle target (32 KiB each): met"
	else
		echo "imap idle target (32 KiB each): NOT met"
	fi
fi
exit $status
