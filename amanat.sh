#!/bin/sh
# amanat.sh -- the two commands a new machine needs (in the spirit of gradlew):
#   ./amanat.sh run     install what is missing, build, create the demo node, start it
#   ./amanat.sh check   install what is missing, build, run every test
# Any other argument is passed to make as a target (./amanat.sh bench).
# As root it installs make and the build tools with apt-get; as another user
# it prints the apt-get command to run and stops.
set -eu
cd "$(dirname "$0")"

need=""
for tool in make gcc pkg-config; do
	command -v "$tool" >/dev/null 2>&1 || need="$need $tool"
done
if [ -n "$need" ]; then
	pkgs="make gcc libc6-dev pkg-config"
	if [ "$(id -u)" = 0 ]; then
		export DEBIAN_FRONTEND=noninteractive
		apt-get update
		apt-get install -y --no-install-recommends $pkgs
	else
		echo "amanat.sh: missing:$need" >&2
		echo "run as root: apt-get update && apt-get install -y $pkgs" >&2
		exit 1
	fi
fi

case "${1:-}" in
run)	shift; exec make run "$@" ;;
check)	shift; exec make check "$@" ;;
"")	echo "usage: $0 run | check | <make target>" >&2; exit 64 ;;
*)	exec make "$@" ;;
esac
