#!/bin/sh
# bench/smtp_bench.sh BUILD -- the `smtp` section of bench/run: durable
# SMTP accept, mailsrv against Postfix, side by side in one run.
# See docs/benchmarks.md ("mailsrv: SMTP").
#
# Debian's smtp-source (package postfix) sends the same load to
#   1. BUILD/mailsrv (MX listener, smtp_listen) on a throw-away node in a
#      temporary directory (keyservice --init --demo, Argon2 made cheap),
#      as an external sender to the demo user bob@finance.amanat.test;
#   2. a throw-away Postfix instance (Debian's postfix, its own
#      config_directory and queue_directory in a temporary directory on
#      the same filesystem), which accepts into its queue as usual (queue
#      files fsync()ed before "250") and delivers with discard(8);
# and prints both rates and their ratio:
#   smtp durable accept: mailsrv N msg/s, postfix M msg/s, ratio R (...)
# A rate is messages / wall time of the smtp-source run.  The figures are
# checked: smtp-source must finish without an error reply, mailsrv's log
# must hold one "smtp queued" or "smtp delivered" (direct delivery, into
# the INBOX before the 250) line per message and, once the queue has
# drained, one "delivery ... state=sent" line per message; Postfix's log
# one "status=sent" (discard) line per message.
#
# Needs root for Postfix (and to install it).  As root, a missing
# smtp-source or postfix is installed with apt-get (debconf preseeded to
# "No configuration"; a system Postfix that the package might start is
# stopped).  As another user it prints what to install and skips the
# section (smtp-source missing) or the Postfix half (not root).
#
# Environment (all optional):
#   BENCH_SMTP_MESSAGES   messages per run (default 10000: a run of a few seconds, not one)
#   BENCH_SMTP_SESSIONS   parallel SMTP sessions (default 20)
#   BENCH_SMTP_SIZE       message payload bytes (default 5120)
#   BENCH_SMTP_REUSE      "yes": several messages per connection
#                         (smtp-source -d); default: one message per
#                         connection, like most MX traffic
#   BENCH_SMTP_TARGETS    "mailsrv postfix" (default), or either alone
#   BENCH_SMTP_KEEP       non-empty: keep the temporary directories
#                         (logs, queues) for a look afterwards
#   BENCH_PYTHON          python3 for the port helper (default
#                         /usr/bin/python3)
# Every step is bounded in time (timeout(1)).  Exits non-zero when a run
# fails or a check does not hold.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"
build=$(bench_build_arg bench/smtp_bench.sh "$@")
count=${BENCH_SMTP_MESSAGES:-10000}
sessions=${BENCH_SMTP_SESSIONS:-20}
size=${BENCH_SMTP_SIZE:-5120}
reuse=${BENCH_SMTP_REUSE:-no}
targets=${BENCH_SMTP_TARGETS:-mailsrv postfix}
python=${BENCH_PYTHON:-/usr/bin/python3}
keep=${BENCH_SMTP_KEEP:-}
sender=sender@example.org
rcpt=bob@finance.amanat.test
srcflags="-s $sessions -l $size -m $count -f $sender -t $rcpt -M client.example.org"
case $reuse in
yes) srcflags="$srcflags -d" ;;
esac
if [ "$(id -u)" = 0 ]; then root=1; else root=0; fi

echo "== smtp: durable accept, mailsrv and postfix (smtp-source)"

# ---------------------------------------------------------------- install
# smtp-source and Postfix both come with Debian's postfix package.
smtp_source=$(command -v smtp-source 2>/dev/null || true)
[ -n "$smtp_source" ] || [ ! -x /usr/sbin/smtp-source ] ||
    smtp_source=/usr/sbin/smtp-source
if [ -z "$smtp_source" ] || [ ! -x /usr/sbin/postfix ]; then
	if [ $root = 0 ]; then
		echo "bench: smtp skipped: smtp-source and postfix are missing;" \
		    "run as root:"
		echo "  echo 'postfix postfix/main_mailer_type select No" \
		    "configuration' | debconf-set-selections"
		echo "  DEBIAN_FRONTEND=noninteractive apt-get install -y" \
		    "--no-install-recommends postfix"
		[ -n "$smtp_source" ] || exit 0
		targets=mailsrv
	else
		echo "bench: installing Debian's postfix (smtp-source, postfix)"
		echo "postfix postfix/main_mailer_type select No configuration" |
		    debconf-set-selections
		if ! DEBIAN_FRONTEND=noninteractive timeout 600 \
		    apt-get install -y -q --no-install-recommends postfix \
		    >/tmp/amanat-bench-apt.log 2>&1; then
			# the package lists may be missing or stale
			timeout 300 apt-get update -q \
			    >>/tmp/amanat-bench-apt.log 2>&1 || true
			if ! DEBIAN_FRONTEND=noninteractive timeout 600 \
			    apt-get install -y -q --no-install-recommends \
			    postfix >>/tmp/amanat-bench-apt.log 2>&1; then
				echo "bench: apt-get install postfix failed:" >&2
				tail -n 20 /tmp/amanat-bench-apt.log >&2
				exit 1
			fi
		fi
		rm -f /tmp/amanat-bench-apt.log
		smtp_source=/usr/sbin/smtp-source
		# A system Postfix (the default instance) must not run:
		# stop it if the package started one.
		if pgrep -x master >/dev/null 2>&1; then
			timeout 30 service postfix stop >/dev/null 2>&1 ||
			    timeout 30 postfix stop >/dev/null 2>&1 || true
			if command -v systemctl >/dev/null 2>&1; then
				timeout 30 systemctl disable postfix \
				    >/dev/null 2>&1 || true
			fi
		fi
	fi
fi
if [ $root = 0 ] && [ "$targets" != mailsrv ]; then
	echo "bench: postfix half skipped: it needs root (postfix start)"
	targets=mailsrv
fi

# ---------------------------------------------------------------- helpers
tmp=""
pftmp=""
pf_started=0
ks_pid=""
ms_pid=""

# pf_running: the throw-away Postfix's master still runs (master -t
# succeeds when master.pid is missing or not locked).
pf_running() {
	! timeout 5 /usr/lib/postfix/sbin/master -t -c "$pftmp/etc" \
	    >/dev/null 2>&1
}

# pf_stop: stop the throw-away Postfix (if started) and wait for it.
pf_stop() {
	[ $pf_started = 1 ] || return 0
	timeout 30 /usr/sbin/postfix -c "$pftmp/etc" stop \
	    >/dev/null 2>&1 || true
	# master exits once its children have; wait for it
	n=0
	while pf_running && [ $n -lt 100 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	if [ $n -ge 100 ]; then
		echo "bench: postfix did not stop; aborting it" >&2
		timeout 30 /usr/sbin/postfix -c "$pftmp/etc" abort \
		    >/dev/null 2>&1 || true
	fi
	pf_started=0
}

cleanup_postfix() {
	pf_stop
	if [ -n "$pftmp" ] && [ -n "$keep" ]; then
		echo "bench: kept $pftmp" >&2
		pftmp=""
	elif [ -n "$pftmp" ]; then
		rm -rf "$pftmp"
		pftmp=""
	fi
}

cleanup() {
	cleanup_mailsrv
	cleanup_postfix
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# wait_count FILE PATTERN N SECONDS: until FILE has N lines matching the
# extended regular expression PATTERN; prints the last count seen.
wait_count() {
	n=0
	end=$(($(date +%s) + $4))
	while :; do
		n=$(grep -cE "$2" "$1" 2>/dev/null || true)
		[ "${n:-0}" -ge "$3" ] && break
		[ "$(date +%s)" -lt "$end" ] || break
		sleep 0.2
	done
	echo "${n:-0}"
}

# proc_cpu PID: "utime stime" of PID in clock ticks (/proc/PID/stat:
# fields 14 and 15, counted after the command name, which may hold
# spaces).
proc_cpu() {
	sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12, $13 }'
}

now_ns() {
	date +%s%N
}

# warm_up NAME PORT LOG PATTERN: one message (one session), then wait
# until LOG has a line matching PATTERN (its delivery).  mailsrv listens
# before it is ready (queue key and local domains come from keyservice:
# "451 4.3.0 Mail system not ready"), so a 4xx is retried for 30 s.  And
# it creates the recipient's mailbox (and its key) on the first delivery,
# which is not what is measured.
warm_up() {
	end=$(($(date +%s) + 30))
	while :; do
		# shellcheck disable=SC2086 # flags are words
		if timeout 60 "$smtp_source" -s 1 -l "$size" -m 1 \
		    -f "$sender" -t "$rcpt" -M client.example.org \
		    "127.0.0.1:$2" >"$3.warm" 2>&1 && [ ! -s "$3.warm" ]; then
			break
		fi
		if ! grep -q ': 4[0-9][0-9] ' "$3.warm" ||
		    [ "$(date +%s)" -ge "$end" ]; then
			echo "bench: warm-up message to $1 failed:" >&2
			tail -n 20 "$3.warm" >&2
			return 1
		fi
		sleep 0.2
	done
	if [ "$(wait_count "$3" "$4" 1 30)" -lt 1 ]; then
		echo "bench: warm-up message to $1 not delivered in 30 s:" >&2
		tail -n 20 "$3" >&2
		return 1
	fi
}

# run_source NAME PORT LOG: smtp-source against 127.0.0.1:PORT; sets
# rate (messages/s, one decimal) and secs (wall seconds).
run_source() {
	echo "$1: smtp-source $srcflags 127.0.0.1:$2"
	t0=$(now_ns)
	# shellcheck disable=SC2086 # flags are words
	if ! timeout 600 "$smtp_source" $srcflags "127.0.0.1:$2" \
	    >"$3" 2>&1; then
		echo "bench: smtp-source against $1 failed:" >&2
		tail -n 20 "$3" >&2
		return 1
	fi
	t1=$(now_ns)
	if [ -s "$3" ]; then
		echo "bench: smtp-source against $1 reported:" >&2
		tail -n 20 "$3" >&2
		return 1
	fi
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
	rate=$(awk -v n="$count" -v s="$secs" 'BEGIN { printf "%.1f", n / s }')
	echo "$1: $count messages in $secs s: $rate msg/s"
}

# ---------------------------------------------------------------- mailsrv
ms_rate=""

# ms_node: a throw-away node in $tmp with keyservice and mailsrv running;
# returns 2 when a port picked as free was taken meanwhile (retry).
ms_node() {
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/amanat-bench.XXXXXX")
	conf=$tmp/amanat.conf

	# Every listener ("*listen = host:port", whatever the section) gets
	# its own free port; the CRL URL follows crl_listen.  Hashing is not
	# measured, so Argon2 is made cheap.  $tmp/ports: "[section] key
	# port" for each listener.
	src=$top/conf/amanat.conf
	nlisten=$(grep -cE '^[a-z_]*listen = ' "$src" || true)
	awk -v ports="$(free_ports "${nlisten:-0}" | tr '\n' ' ')" \
	    -v map="$tmp/ports" '
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
	/^argon2_memory = / { print "argon2_memory = 8M"; next }
	/^argon2_time = / { print "argon2_time = 1"; next }
	# every session comes from 127.0.0.1 (BENCH_SMTP_SESSIONS may be
	# over 50); Postfix exempts it too (mynetworks)
	/^smtp_max_connections_per_ip = / {
		print "smtp_max_connections_per_ip = 0"
		next
	}
	{ print }
	' "$src" >"$conf"
	ks_port=$(awk '$1 == "[keyservice]" && $2 == "listen" { print $3 }' \
	    "$tmp/ports")
	smtp_port=$(awk '$1 == "[mailsrv]" && $2 == "smtp_listen" \
	    { print $3 }' "$tmp/ports")
	if [ -z "$ks_port" ] || [ -z "$smtp_port" ] ||
	    ! grep -q "^crl_url = http://127.0.0.1:[0-9]*/crl.der\$" "$conf"; then
		echo "bench: could not move the listeners of $src" >&2
		return 1
	fi

	ks_demo_start "$conf" "$ks_port" 60 || return $?
	mslog=$tmp/mailsrv.log
	"$build/mailsrv" -c "$conf" >"$mslog" 2>&1 &
	ms_pid=$!
	if ! wait_port "$smtp_port" 30; then
		grep -q 'Address already in use' "$mslog" && return 2
		echo "bench: mailsrv did not listen on $smtp_port:" >&2
		tail -n 20 "$mslog" >&2
		return 1
	fi
}

bench_mailsrv() {
	attempt=1
	while :; do
		rc=0
		ms_node || rc=$?
		[ $rc = 0 ] && break
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
	echo "mailsrv: pid $ms_pid, MX on 127.0.0.1:$smtp_port," \
	    "queue in $tmp (device $(stat -c %d "$tmp"))"

	sent=' delivery id=[^ ]* to=<[^>]*> state=sent '
	warm_up mailsrv "$smtp_port" "$mslog" "$sent" || return 1
	cpu0=$(proc_cpu "$ms_pid")
	run_source mailsrv "$smtp_port" "$tmp/smtp-source.out" || return 1
	cpu1=$(proc_cpu "$ms_pid")
	ms_rate=$rate
	# what one message cost mailsrv (user and system CPU) while
	# smtp-source ran; deliveries still running after are not in it
	echo "$cpu0 $cpu1" | awk -v n="$count" -v hz="$(getconf CLK_TCK)" '
	{ u = ($3 - $1) * 1e6 / hz / n; s = ($4 - $2) * 1e6 / hz / n
	  printf "mailsrv: CPU per message %.0f us (user %.0f, system %.0f)\n", u + s, u, s }'

	# The figure counts only if every message was accepted durably:
	# queued (the 250 comes after the queue's group commit) and then
	# delivered, or delivered before its 250 (direct delivery: the
	# store's group commit).  (Plus the warm-up message, queued: its
	# recipient's key was not cached yet.)
	q=$(($(grep -c ' smtp queued id=' "$mslog" || true) - 1))
	direct=$(grep -c ' smtp delivered id=' "$mslog" || true)
	if [ $((q + direct)) -ne "$count" ]; then
		echo "bench: mailsrv logged $q \"smtp queued\" and" \
		    "$direct \"smtp delivered\" for $count messages" >&2
		tail -n 20 "$mslog" >&2
		return 1
	fi
	d=$(($(wait_count "$mslog" "$sent" $((count + 1)) 120) - 1))
	if [ "$d" -ne "$count" ]; then
		echo "bench: mailsrv delivered $d of $count messages" \
		    "within 120 s" >&2
		grep -E ' (warn|error|fatal)' "$mslog" | head -n 10 >&2
		grep -E ' state=(deferred|failed) ' "$mslog" | head -n 10 >&2
		return 1
	fi
	if ! kill -0 "$ms_pid" 2>/dev/null; then
		echo "bench: mailsrv exited during the run:" >&2
		tail -n 20 "$mslog" >&2
		return 1
	fi
	echo "mailsrv: $q queued (smtp queued), $direct delivered before" \
	    "the 250 (smtp delivered), $d delivered (state=sent)"
}

# ---------------------------------------------------------------- postfix
pf_rate=""
bench_postfix() {
	pftmp=$(mktemp -d "${TMPDIR:-/tmp}/amanat-bench-postfix.XXXXXX")
	chmod 755 "$pftmp"
	mkdir -m 755 "$pftmp/etc" "$pftmp/queue" "$pftmp/log"
	mkdir -m 700 "$pftmp/data"
	chown postfix "$pftmp/data"
	pflog=$pftmp/log/maillog

	# Loopback only, every address of the test domain is local and
	# goes to discard(8); anti-abuse limits off for loopback; no
	# DNS; logs to a file (postlogd).  The queue keeps Postfix's
	# default durability (cleanup fsync()s the queue file before 250).
	cat >"$pftmp/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $pftmp/queue
data_directory = $pftmp/data
mail_owner = postfix
setgid_group = postdrop
myhostname = bench-postfix.localdomain
mydomain = localdomain
myorigin = \$myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination = finance.amanat.test
mynetworks = 127.0.0.0/8
local_recipient_maps =
alias_maps =
alias_database =
local_transport = discard:
default_transport = discard:
relay_transport = discard:
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_client_connection_rate_limit = 0
smtpd_client_connection_count_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_recipient_rate_limit = 0
smtpd_peername_lookup = no
default_process_limit = 100
disable_dns_lookups = yes
smtp_dns_support_level = disabled
append_dot_mydomain = no
biff = no
maillog_file = $pflog
maillog_file_prefixes = $pftmp/log
EOF
	# smtpd on a free port; when another program takes it before
	# master binds it, again with another.
	attempt=1
	while :; do
		pf_port=$(free_ports 1)
		cat >"$pftmp/etc/master.cf" <<EOF
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:$pf_port inet n -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
		if [ $attempt = 1 ] && ! timeout 60 /usr/sbin/postfix \
		    -c "$pftmp/etc" check >"$pftmp/check.log" 2>&1; then
			echo "bench: postfix check failed:" >&2
			tail -n 20 "$pftmp/check.log" >&2
			return 1
		fi
		if ! timeout 60 /usr/sbin/postfix -c "$pftmp/etc" start \
		    >"$pftmp/start.log" 2>&1; then
			echo "bench: postfix start failed:" >&2
			tail -n 20 "$pftmp/start.log" "$pflog" >&2
			return 1
		fi
		pf_started=1
		wait_port "$pf_port" 30 && break
		if grep -q 'Address already in use' "$pflog" \
		    "$pftmp/start.log" 2>/dev/null && [ $attempt -lt 3 ]; then
			echo "bench: port $pf_port was taken meanwhile;" \
			    "retrying with another"
			pf_stop
			: >"$pflog"
			attempt=$((attempt + 1))
			continue
		fi
		echo "bench: postfix did not listen on $pf_port:" >&2
		tail -n 20 "$pflog" >&2
		return 1
	done
	echo "postfix: $(/usr/sbin/postconf -c "$pftmp/etc" -h mail_version)," \
	    "smtpd on 127.0.0.1:$pf_port, queue in $pftmp/queue" \
	    "(device $(stat -c %d "$pftmp/queue"))"

	warm_up postfix "$pf_port" "$pflog" ' status=sent \(' || return 1
	run_source postfix "$pf_port" "$pftmp/smtp-source.out" || return 1
	pf_rate=$rate

	# (plus the warm-up message)
	d=$(($(wait_count "$pflog" ' status=sent \(' $((count + 1)) 120) - 1))
	q=$(($(grep -cE ' postfix/qmgr\[[0-9]+\]: [0-9A-Za-z]+: from=<' \
	    "$pflog" || true) - 1))
	if [ "$d" -ne "$count" ] || [ "$q" -ne "$count" ]; then
		echo "bench: postfix queued $q and delivered $d of" \
		    "$count messages within 120 s" >&2
		grep -E 'warning|error|fatal|panic' "$pflog" | tail -n 20 >&2
		return 1
	fi
	echo "postfix: $q queued (qmgr from=), $d delivered (discard" \
	    "status=sent)"
}

# ---------------------------------------------------------------- main
echo "$(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' \
    /proc/cpuinfo | head -n 1); $sessions sessions, $size-byte payload," \
    "$count messages; temporary dirs in ${TMPDIR:-/tmp}" \
    "($(df -P "${TMPDIR:-/tmp}" | awk 'NR == 2 { print $1 }'))"
status=0
for t in $targets; do
	case $t in
	mailsrv) bench_mailsrv || status=1 ;;
	postfix) bench_postfix || status=1 ;;
	*)
		echo "bench: unknown smtp target $t" >&2
		status=1
		;;
	esac
	# Stop, but remove the files only at the end: on some filesystems
	# (ext4 without a journal) creating files is much slower for a
	# minute after many were deleted, which would slow the next target.
	stop_mailsrv
	pf_stop
done

kib=$(awk -v s="$size" 'BEGIN { printf "%g", s / 1024 }')
conn="one message per connection"
[ "$reuse" = yes ] && conn="several messages per connection"
if [ -n "$ms_rate" ] && [ -n "$pf_rate" ]; then
	ratio=$(awk -v a="$ms_rate" -v b="$pf_rate" \
	    'BEGIN { printf "%.2f", a / b }')
	echo "smtp durable accept: mailsrv $ms_rate msg/s, postfix $pf_rate" \
	    "msg/s, ratio $ratio ($sessions sessions, $kib KiB, $count" \
	    "messages, $conn)"
	if awk -v r="$ratio" 'BEGIN { exit !(r >= 5) }'; then
		echo "smtp target (5x postfix): met"
	else
		echo "smtp target (5x postfix): NOT met"
	fi
elif [ -n "$ms_rate" ]; then
	echo "smtp durable accept: mailsrv $ms_rate msg/s ($sessions" \
	    "sessions, $kib KiB, $count messages, $conn; postfix not run)"
elif [ -n "$pf_rate" ]; then
	echo "smtp durable accept: postfix $pf_rate msg/s ($sessions" \
	    "sessions, $kib KiB, $count messages, $conn; mailsrv not run)"
fi
exit $status
