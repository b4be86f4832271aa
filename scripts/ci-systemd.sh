#!/usr/bin/env bash
# CI section: examples/systemd/README.md, run as written, under a real
# systemd, with load on the server throughout.
#
# A Debian rootfs with systemd (made once with mmdebstrap and cached in
# /var/cache/reuseport-ci) is copied and booted with systemd-nspawn in a
# network namespace of its own; the README's blocks run inside it, and the
# repository's load client runs in its namespace from the host, against
# 127.0.0.1:8080. Each procedure must lose no request; the control, a plain
# `systemctl restart`, must lose some. Root only; it installs what it needs.
#
#	bash scripts/ci-systemd.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ci-lib.sh

readme=examples/systemd/README.md
# The rootfs of scripts/ci-systemd-unit.sh too, whose unit runs /bin/kill
# (procps). Change the recipe and the cache is rebuilt.
cache=/var/cache/reuseport-ci/systemd
recipe="mmdebstrap --variant=minbase --include=systemd,procps bookworm"

tmp=$(mktemp -d)
cleanup() {
	local status=$?
	load_kill
	if [ "$status" -ne 0 ] && [ -n "${leader:-}" ] && kill -0 "$leader" 2>/dev/null; then
		echo "--- the machine's journal for the servers:"
		machine journalctl --no-pager -o short-precise -u 'httpserver*' | tail -n 60 || true
	fi
	machine_poweroff
	rm -rf "$tmp"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

machine_rootfs "$cache" "$recipe"

# The machine has no Go: the binaries are built here, static.
mkdir -p "$tmp/ci" "$tmp/src/examples"
CGO_ENABLED=0 go build -o "$tmp/ci/httpserver" ./examples/httpserver
CGO_ENABLED=0 go build -o "$tmp/loadclient" ./internal/test/cmd/loadclient
loadclient=$tmp/loadclient
# /src in the machine stands for the clone the README's commands run in.
cp -r examples/systemd "$tmp/src/examples/"
cp "$tmp/ci/httpserver" "$tmp/src/httpserver.new"

machine_boot "$cache/rootfs" --bind="$tmp/src:/src" --bind-ro="$tmp/ci:/ci"

run_block() { machine_block "$readme" "$1"; }

# journal_count PATTERN counts the servers' journal lines that match.
journal_count() {
	machine journalctl --no-pager -o cat -u 'httpserver*' | grep -c -- "$1" || true
}

# journal_wait PATTERN BEFORE WANT prints how many lines match PATTERN beyond
# BEFORE, once that reaches WANT or after 15 s. The units are Type=simple, so
# systemctl returns before the last server logs, and journald writes later.
journal_wait() {
	local n _
	for _ in $(seq 1 30); do
		n=$(($(journal_count "$1") - $2))
		[ "$n" -ge "$3" ] && break
		sleep 0.5
	done
	echo "$n"
}

# Setup: everything but the build, done here already.
block=$(readme_block "$readme" setup)
if ! grep -q '^go build -o /usr/local/bin/httpserver ' <<<"$block"; then
	echo "$readme's setup block no longer builds /usr/local/bin/httpserver; update this script"
	exit 1
fi
echo "  README block setup, but for its go build: the binary built above goes to /usr/local/bin/httpserver"
machine install -m 0755 /ci/httpserver /usr/local/bin/httpserver
machine sh -ec "$(grep -v '^go build ' <<<"$block")"

echo
echo "== §1: blue/green units, upgraded through -handoff"
run_block blue-green-install
sleep 1
before=$(journal_count 'a successor took over the socket')
load_start "$netns"
for _ in 1 2; do # blue to green, and back: 4 handoffs over 2 slots
	run_block blue-green-upgrade
done
load_stop
handoffs=$(journal_wait 'a successor took over the socket' "$before" 4)
verdict "README §1: blue/green upgrade, twice" none "$handoffs handoffs"
if [ "$handoffs" -ne 4 ]; then
	echo "FAIL: 4 handoffs expected (2 upgrades of 2 slots), the journal shows $handoffs"
	verdicts_failed=$((${verdicts_failed:-0} + 1))
fi
perms=$(machine stat -c '%a %U' /run/httpserver /run/httpserver/w1.sock | tr '\n' ' ')
echo "  /run/httpserver and w1.sock: $perms(want 700 and 600, owned by httpserver)"
if [ "$perms" != "700 httpserver 600 httpserver " ]; then
	verdicts_failed=$((${verdicts_failed:-0} + 1))
fi

echo
echo "== control: a plain systemctl restart of the same units"
# Enough rounds that a quiet machine, where few connections wait in a
# queue at each close, still shows the loss (1 to 317 per 6 restarts here).
load_start "$netns"
for _ in 1 2 3 4 5 6 7 8; do
	for slot in w1 w2; do
		colour=blue
		machine systemctl is-active -q "httpserver-blue@$slot" || colour=green
		# systemd refuses a sixth start within 10 s (StartLimitBurst);
		# reset-failed flushes that count.
		machine systemctl reset-failed "httpserver-$colour@$slot"
		machine timeout 60 systemctl restart "httpserver-$colour@$slot"
	done
done
load_stop
verdict "control: systemctl restart, 8 times per slot" some "16 restarts"
machine systemctl disable -q --now httpserver-blue@w1 httpserver-blue@w2 httpserver-green@w1 httpserver-green@w2

echo
echo "== §2: socket units, upgraded with systemctl restart"
run_block activated-install
sleep 1
before=$(journal_wait 'msg="handoff: serving".* origin=activated' 0 2) # w1 and w2
load_start "$netns"
for _ in 1 2 3; do
	run_block activated-upgrade
done
load_stop
restarts=$(journal_wait 'msg="handoff: serving".* origin=activated' "$before" 6)
verdict "README §2: .socket units, upgrade 3 times" none "$restarts restarts"
if [ "$restarts" -ne 6 ]; then
	echo "FAIL: 6 restarts expected (3 upgrades of 2 slots), the journal shows $restarts servers starting on an activated socket"
	verdicts_failed=$((${verdicts_failed:-0} + 1))
fi

# README §2 says a copy started by hand with the unit's -handoff path takes
# the socket, and is replaced at once by the process the .socket unit
# starts again. Check that, under load.
echo
echo "== §2: a copy started by hand beside the socket unit"
load_start "$netns"
machine timeout 30 runuser -u httpserver -- /usr/local/bin/httpserver \
	-addr :8080 -handoff /run/httpserver-activated/w1.sock -shutdown-timeout 30s >"$tmp/byhand.log" 2>&1 || true
load_stop
sed 's/^/    by hand: /' "$tmp/byhand.log" | grep -v tcp_migrate_req
replaced=no
if grep -q 'msg="handoff: serving" .* origin=inherited' "$tmp/byhand.log" && grep -q 'a successor took over the socket' "$tmp/byhand.log" &&
	machine systemctl is-active -q httpserver-activated@w1.service; then
	replaced=yes
fi
verdict "README §2: a copy started by hand is replaced" none "replaced=$replaced"
if [ "$replaced" != yes ]; then
	echo "FAIL: README §2 says the hand-started copy takes the socket and the unit's process takes it back"
	verdicts_failed=$((${verdicts_failed:-0} + 1))
fi

if [ "${verdicts_failed:-0}" -gt 0 ]; then
	echo "$verdicts_failed checks failed"
	exit 1
fi
