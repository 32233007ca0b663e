# bench/lib.sh -- shell helpers shared by bench/run and its section
# scripts (sourced, not run).  They use the caller's variables: python
# (a python3 for the port helpers), build (the binaries), and for
# cleanup_mailsrv and ks_demo_start ms_pid, ks_pid (daemon pids), tmp
# (the node directory) and keep (non-empty: keep it).

# bench_build_arg NAME ARG...: the one argument, the build directory, as
# an absolute path; a usage line naming NAME and exit 2 otherwise.  Use
# as build=$(bench_build_arg ...) under set -e.
bench_build_arg() {
	name=$1
	shift
	if [ $# -ne 1 ]; then
		echo "usage: $name BUILD" >&2
		exit 2
	fi
	case $1 in
	/*) echo "$1" ;;
	*) echo "$(pwd)/$1" ;;
	esac
}

# stop_pid PID NAME: SIGTERM, SIGKILL when still there after 10 s.
stop_pid() {
	kill -TERM "$1" 2>/dev/null || true
	n=0
	while kill -0 "$1" 2>/dev/null && [ $n -lt 100 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	if kill -0 "$1" 2>/dev/null; then
		echo "bench: $2 ignored SIGTERM; killing it" >&2
		kill -KILL "$1" 2>/dev/null || true
	fi
	wait "$1" 2>/dev/null || true
}

# cleanup_mailsrv: stop the throw-away node's daemons, remove (or keep)
# its directory.
# stop_mailsrv: stop the node's daemons, keep its files.
stop_mailsrv() {
	if [ -n "$ms_pid" ]; then
		stop_pid "$ms_pid" mailsrv
		ms_pid=""
	fi
	if [ -n "$ks_pid" ]; then
		stop_pid "$ks_pid" keyservice
		ks_pid=""
	fi
}

cleanup_mailsrv() {
	stop_mailsrv
	if [ -n "$tmp" ] && [ -n "$keep" ]; then
		echo "bench: kept $tmp" >&2
		tmp=""
	elif [ -n "$tmp" ]; then
		rm -rf "$tmp"
		tmp=""
	fi
}

# free_ports N: N distinct free TCP ports on 127.0.0.1, one a line (all
# sockets are held open until every port is picked, so they differ).
free_ports() {
	"$python" -c '
import socket, sys
ss = []
for _ in range(int(sys.argv[1])):
	s = socket.socket()
	s.bind(("127.0.0.1", 0))
	ss.append(s)
for s in ss:
	print(s.getsockname()[1])
' "$1"
}

# wait_port PORT SECONDS: until 127.0.0.1:PORT accepts (exit 1: timeout).
wait_port() {
	"$python" -c '
import socket, sys, time
addr = ("127.0.0.1", int(sys.argv[1]))
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
	try:
		socket.create_connection(addr, 1).close()
		sys.exit(0)
	except OSError:
		time.sleep(0.05)
sys.exit(1)
' "$1" "$2"
}

# ks_demo_start CONF PORT SECONDS: keyservice --init --demo (bounded by
# SECONDS), then keyservice started in the background (ks_pid) and
# waited for on PORT.  Returns 0, 1 on failure (said on stderr), or 2
# when the port was taken meanwhile (the caller may retry with others).
ks_demo_start() {
	if ! timeout "$3" "$build/keyservice" -c "$1" --init --demo \
	    >"$tmp/init.log" 2>&1; then
		echo "bench: keyservice --init --demo failed:" >&2
		tail -n 20 "$tmp/init.log" >&2
		return 1
	fi
	"$build/keyservice" -c "$1" >"$tmp/keyservice.log" 2>&1 &
	ks_pid=$!
	if ! wait_port "$2" 10; then
		grep -q 'Address already in use' "$tmp/keyservice.log" &&
		    return 2
		echo "bench: keyservice did not listen on $2:" >&2
		tail -n 20 "$tmp/keyservice.log" >&2
		return 1
	fi
}
