#!/usr/bin/env bash
# CI section: examples/systemd/README.md §3, one unit upgraded in place with
# systemctl reload, run as written under a real systemd, with load on the
# server throughout; and the crashes its fd store makes survivable.
#
# In a Debian 12 machine (systemd 252, Type=notify, as the unit file says):
#   - N reloads, each of which must lose no request, hand the unit's main
#     process to the new generation before systemctl reload returns, and
#     leave the unit active;
#   - N kill -9 of the main process with the fd store, and N with the store
#     disabled (FileDescriptorStoreMax=0), the control: with the store no
#     connection may fail to open (only those the killed process had
#     accepted may fail), and it must lose fewer requests in all than the
#     control, which must lose some;
#   - Type=simple: SIGHUP must be refused, the server serving on.
# In a Debian 13 machine (systemd 257), N reloads again with the README's
# Type=notify-reload drop-in. The machines are booted as in
# scripts/ci-systemd.sh, from rootfs cached in /var/cache/reuseport-ci.
# Root only; it installs what it needs.
#
#	bash scripts/ci-systemd-unit.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ci-lib.sh

readme=examples/systemd/README.md
rounds=5 # reloads, and crashes with and without the store

tmp=$(mktemp -d)
cleanup() {
	local status=$?
	load_kill
	if [ "$status" -ne 0 ] && [ -n "${leader:-}" ] && kill -0 "$leader" 2>/dev/null; then
		echo "--- the machine's journal for the server:"
		machine journalctl --no-pager -o short-precise -u httpserver | tail -n 60 || true
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

# procps: /bin/kill, which the unit's ExecReload runs.
machine_rootfs /var/cache/reuseport-ci/systemd "mmdebstrap --variant=minbase --include=systemd,procps bookworm"
machine_rootfs /var/cache/reuseport-ci/systemd-trixie "mmdebstrap --variant=minbase --include=systemd,procps trixie"

# The machines have no Go: the binaries are built here, static.
mkdir -p "$tmp/ci" "$tmp/src/examples"
CGO_ENABLED=0 go build -o "$tmp/ci/httpserver" ./examples/httpserver
CGO_ENABLED=0 go build -o "$tmp/loadclient" ./internal/test/cmd/loadclient
loadclient=$tmp/loadclient
# /src in the machine stands for the clone the README's commands run in.
cp -r examples/systemd "$tmp/src/examples/"
cp "$tmp/ci/httpserver" "$tmp/src/httpserver.new"

fail() {
	echo "FAIL: $*"
	verdicts_failed=$((${verdicts_failed:-0} + 1))
}

# boot ROOTFS boots a fresh machine and runs the README's setup block in
# it, but for its go build: the binary built above goes in its place.
boot() {
	local block
	machine_boot "$1" --bind="$tmp/src:/src" --bind-ro="$tmp/ci:/ci"
	block=$(readme_block "$readme" setup)
	if ! grep -q '^go build -o /usr/local/bin/httpserver ' <<<"$block"; then
		echo "$readme's setup block no longer builds /usr/local/bin/httpserver; update this script"
		return 1
	fi
	machine install -m 0755 /ci/httpserver /usr/local/bin/httpserver
	machine sh -ec "$(grep -v '^go build ' <<<"$block")"
}

mainpid() { machine systemctl show -P MainPID httpserver; }

# journal_has PATTERN reports whether a line of the server's journal
# matches PATTERN. (Not journalctl | grep -q: grep exits at the first
# match, and pipefail makes journalctl's SIGPIPE a failure.)
journal_has() {
	machine journalctl --no-pager -o cat -u httpserver >"$tmp/journal"
	grep -q -- "$1" "$tmp/journal"
}

# journal_wait PATTERN waits, at most 15 s, until journal_has PATTERN
# (journald writes a moment after the server), and fails if it never does.
journal_wait() {
	for _ in $(seq 30); do
		journal_has "$1" && return 0
		sleep 0.5
	done
	return 1
}

# wait_restarted PID waits, at most 15 s, until the unit is active with a
# main process other than PID.
wait_restarted() {
	local now
	for _ in $(seq 60); do
		now=$(mainpid)
		if [ "$now" != 0 ] && [ "$now" != "$1" ] && machine systemctl is-active -q httpserver; then
			return 0
		fi
		sleep 0.25
	done
	return 1
}

# reloads SYSTEMD runs the README's upgrade block $rounds times under load,
# and checks each reload: a new main process as soon as systemctl reload
# returns, the pid that says it serves in the journal, the unit active.
reloads() {
	local before after i changed=0
	load_start "$netns"
	for i in $(seq "$rounds"); do
		before=$(mainpid)
		machine_block "$readme" unit-upgrade
		after=$(mainpid)
		if [ "$after" = "$before" ]; then
			fail "reload $i: systemctl reload returned with MainPID still $before: it did not wait for the new version"
		elif ! journal_wait "pid=$after .*msg=\"handoff: serving\""; then
			fail "reload $i: MainPID is $after, but the journal shows no pid=$after serving"
		elif ! journal_wait "pid=$before .*the successor is now the systemd unit's main process\" successor_pid=$after"; then
			fail "reload $i: pid $before did not log that it handed the unit to $after"
		else
			changed=$((changed + 1))
		fi
		if ! machine systemctl is-active -q httpserver; then
			fail "reload $i: the unit is $(machine systemctl is-active httpserver || true), want active"
		fi
	done
	load_stop
	verdict "README §3: systemctl reload, $rounds times ($1)" none "$changed new pids"
}

# crashes NAME WANT kills the main process with SIGKILL $rounds times, each
# under load of its own, and prints the requests each crash failed. It sets
# crash_failed to the total failed.
crashes() {
	local pid i per=() total=0 requests_all=0
	for i in $(seq "$rounds"); do
		machine systemctl reset-failed httpserver # StartLimitBurst counts restarts
		load_start "$netns"
		pid=$(mainpid)
		machine kill -9 "$pid"
		wait_restarted "$pid" || fail "$1: crash $i: the unit did not restart within 15 s"
		load_stop
		# With the store (WANT any), the socket never closes.
		if [ "$2" = any ] && grep -q '^ *dial:' <<<"$load_summary"; then
			fail "$1: crash $i: connections failed to open; the stored socket should have kept them queued"
		fi
		per+=("$failed")
		total=$((total + failed))
		requests_all=$((requests_all + requests))
	done
	requests=$requests_all failed=$total pids=
	verdict "§3 kill -9 of the main process, $rounds times, $1" "$2" "$rounds restarts"
	echo "  failed per crash: ${per[*]}"
	crash_failed=$total
}

# broken_upgrade puts a binary that exits at once in place of the server
# and reloads: the reload must not hand the unit over, and the server must
# serve on. It prints what systemctl reload returned.
broken_upgrade() {
	local pid status=0
	pid=$(mainpid)
	machine sh -c 'printf "#!/bin/sh\nexit 1\n" >/usr/local/bin/httpserver.next && chmod 0755 /usr/local/bin/httpserver.next &&
		cp /usr/local/bin/httpserver /usr/local/bin/httpserver.good && mv /usr/local/bin/httpserver.next /usr/local/bin/httpserver'
	machine timeout 60 systemctl reload httpserver >/dev/null 2>&1 || status=$?
	machine mv /usr/local/bin/httpserver.good /usr/local/bin/httpserver
	echo "  a new binary that exits at once: systemctl reload exits $status; main pid $pid -> $(mainpid), unit $(machine systemctl is-active httpserver || true)"
	journal_wait "pid=$pid .*msg=\"handoff: upgrade failed; still serving\"" || fail "pid $pid did not log that the upgrade failed"
	if [ "$(mainpid)" != "$pid" ] || ! machine systemctl is-active -q httpserver; then
		fail "after a failed upgrade the unit must stay active with pid $pid"
	fi
	broken_status=$status
}

# dropin NAME LINES... writes a drop-in of the test's own for the unit's
# [Service] section, and reloads systemd's configuration.
dropin() {
	local name=$1
	shift
	machine mkdir -p /etc/systemd/system/httpserver.service.d
	printf '%s\n' '[Service]' "$@" | machine sh -c "cat >/etc/systemd/system/httpserver.service.d/$name.conf"
	machine systemctl daemon-reload
}

echo
echo "== Debian 12"
boot /var/cache/reuseport-ci/systemd/rootfs
machine_block "$readme" unit-install
echo "  unit: Type=$(machine systemctl show -P Type httpserver), NotifyAccess=$(machine systemctl show -P NotifyAccess httpserver), main pid $(mainpid)"
reloads "systemd 252, Type=notify"
stored=$(machine systemctl show -P NFileDescriptorStore httpserver)
[ "$stored" = 1 ] || fail "the fd store holds $stored sockets after $rounds upgrades, want 1"
broken_upgrade
[ "$broken_status" -ne 0 ] || fail "systemctl reload succeeded though the upgrade failed"

crashes "with the fd store" any
store_failed=$crash_failed
stored=$(machine systemctl show -P NFileDescriptorStore httpserver)
echo "  fd store after $rounds crashes: $stored socket(s) (want 1: systemd keeps one entry for the socket stored again)"
[ "$stored" = 1 ] || fail "the fd store holds $stored sockets, want 1"
journal_has 'msg="handoff: serving" .*origin=stored' ||
	fail "no restarted server says it serves on a stored socket"

dropin ci-nostore FileDescriptorStoreMax=0
machine systemctl restart httpserver
stored=$(machine systemctl show -P NFileDescriptorStore httpserver)
[ "$stored" = 0 ] || fail "control: the fd store holds $stored sockets, want 0"
crashes "control: no fd store" some
control_failed=$crash_failed
echo "  failed requests over $rounds crashes: $store_failed with the fd store, $control_failed without"
if [ "$store_failed" -ge "$control_failed" ]; then
	fail "the fd store lost as many requests as no store ($store_failed, $control_failed)"
fi

echo
echo "== Type=simple: the server refuses to upgrade"
machine rm /etc/systemd/system/httpserver.service.d/ci-nostore.conf
# FileDescriptorStoreMax=0 as well: with a store, systemd gives even a
# Type=simple unit NOTIFY_SOCKET, and the upgrade works.
dropin ci-simple Type=simple FileDescriptorStoreMax=0 ExecReload=
machine systemctl restart httpserver
sleep 1 # Type=simple: started is not serving
pid=$(mainpid)
machine systemctl kill -s HUP --kill-who=main httpserver
if journal_wait "pid=$pid .*msg=\"handoff: upgrade failed; still serving\" err=\"systemd runs this process without NOTIFY_SOCKET"; then
	echo "  pid $pid: $(grep -o 'msg="handoff: upgrade failed.*' "$tmp/journal" | tail -n 1)"
else
	fail "Type=simple: pid $pid did not log that it refuses to upgrade"
fi
sleep 1
if [ "$(mainpid)" != "$pid" ] || ! machine systemctl is-active -q httpserver; then
	fail "Type=simple: after SIGHUP the unit is $(machine systemctl is-active httpserver || true) with main pid $(mainpid), want active with $pid"
fi
machine_poweroff

echo
echo "== Debian 13"
boot /var/cache/reuseport-ci/systemd-trixie/rootfs
machine_block "$readme" unit-notify-reload
machine_block "$readme" unit-install
echo "  unit: Type=$(machine systemctl show -P Type httpserver), NotifyAccess=$(machine systemctl show -P NotifyAccess httpserver), main pid $(mainpid)"
reloads "systemd $(machine systemctl --version | head -n 1 | cut -d' ' -f2), Type=notify-reload"
stored=$(machine systemctl show -P NFileDescriptorStore httpserver)
[ "$stored" = 1 ] || fail "the fd store holds $stored sockets after $rounds upgrades, want 1"
# Printed, not judged: what Type=notify-reload makes of READY=1 after a
# failed upgrade.
broken_upgrade

if [ "${verdicts_failed:-0}" -gt 0 ]; then
	echo "$verdicts_failed checks failed"
	exit 1
fi
