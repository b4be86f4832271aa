# shellcheck shell=bash
# Shell functions shared by the CI sections that run the deployment recipes
# (scripts/ci-systemd.sh, scripts/ci-containers.sh). Source it; it defines
# functions only.

# readme_block FILE NAME prints the fenced code block that follows the line
# "<!-- ci: NAME -->" in FILE, without its fences, so that CI runs what the
# recipe says, not a copy of it that could drift. It fails if there is none.
readme_block() {
	awk -v marker="<!-- ci: $2 -->" '
		$0 == marker { armed = 1; next }
		armed && !inside && /^```/ { inside = 1; next }
		inside && /^```/ { found = 1; exit }
		inside { print }
	END { exit found ? 0 : 1 }' "$1" || {
		echo "$1 has no code block after <!-- ci: $2 -->" >&2
		return 1
	}
}

# show_block prints a block as it is about to run, indented.
show_block() { sed 's/^/    | /'; }

# load_start NETNS starts the load client (built by the caller into
# $loadclient) against 127.0.0.1:8080 inside the network namespace at path
# NETNS, in the background, writing to the caller's scratch directory $tmp.
# load_stop ends it and sets requests, failed and pids from what it
# printed, and load_summary to its full summary. The client stops by itself
# after 10 minutes, so that a stuck section cannot load the machine forever.
load_start() {
	load_out=${tmp:?load_start needs \$tmp}/load.out
	nsenter --net="$1" "${loadclient:?load_start needs \$loadclient}" -addr 127.0.0.1:8080 -max-duration 10m >"$load_out" 2>"$load_out.err" &
	load_pid=$!
	sleep 1 # warm-up: the procedure starts under load
}

load_stop() {
	sleep 1 # and ends under load
	kill -INT "$load_pid" 2>/dev/null || true
	wait "$load_pid" || {
		echo "load client failed:" >&2
		cat "$load_out.err" >&2
		return 1
	}
	load_pid=
	local line
	line=$(tail -n 1 "$load_out")
	requests=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$line")
	failed=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$line")
	pids=$(sed -n 's/.*pids=\([0-9]*\).*/\1/p' <<<"$line")
	if [ -z "$requests" ] || [ -z "$failed" ]; then
		echo "load client printed no figures: $line" >&2
		return 1
	fi
	# The kinds of failure and the first of each, for the caller too.
	# shellcheck disable=SC2034 # for the caller
	load_summary=$(cat "$load_out.err")
	if [ "$failed" -gt 0 ]; then
		sed 's/^/    /' "$load_out.err"
	fi
	rm -f "$load_out" "$load_out.err"
}

# load_kill ends a load client still running, for traps.
load_kill() {
	if [ -n "${load_pid:-}" ]; then
		kill -INT "$load_pid" 2>/dev/null || true
		wait "$load_pid" 2>/dev/null || true
		load_pid=
	fi
}

# verdict NAME WANT EVENTS records the figures of the load run just stopped:
# WANT is "none" for a procedure that must lose no request, "some" for a
# control that must lose some (else the harness could not see a loss),
# "any" for figures only printed; EVENTS says what happened under load
# ("4 handoffs"). A run that sent no request fails either way. Failures
# are counted in $verdicts_failed.
verdict() {
	local ok=ok
	if [ "$requests" -eq 0 ]; then
		ok="FAIL: no request was sent"
	elif [ "$2" = none ] && [ "$failed" -ne 0 ]; then
		ok="FAIL: lost $failed requests"
	elif [ "$2" = some ] && [ "$failed" -eq 0 ]; then
		ok="FAIL: the control lost nothing, so this harness cannot see a loss"
	fi
	printf '%-58s %-13s requests=%-7s failed=%-4s pids=%-3s %s\n' "$1" "$3" "$requests" "$failed" "${pids:-?}" "$ok"
	if [ "$ok" != ok ]; then
		verdicts_failed=$((${verdicts_failed:-0} + 1))
	fi
}

# ---- a Debian machine booted with systemd under systemd-nspawn ------------
# (scripts/ci-systemd.sh, scripts/ci-systemd-unit.sh). They need mmdebstrap
# and systemd-nspawn, and write to the caller's scratch directory $tmp.

# machine_rootfs DIR RECIPE makes the rootfs DIR/rootfs with RECIPE (an
# mmdebstrap command line without its target), unless DIR/recipe says it
# was made with RECIPE already: change the recipe and the cache is rebuilt.
machine_rootfs() {
	local dir=$1 recipe=$2 start
	if [ "$(cat "$dir/recipe" 2>/dev/null)" = "$recipe" ]; then
		echo "rootfs from the cache: $dir ($recipe)"
		return
	fi
	echo "making the machine's rootfs: $recipe"
	rm -rf "$dir"
	mkdir -p "$dir"
	start=$SECONDS
	if ! $recipe "$dir/rootfs.new" >"${tmp:?}/mmdebstrap.log" 2>&1; then
		tail -n 30 "$tmp/mmdebstrap.log"
		return 1
	fi
	mv "$dir/rootfs.new" "$dir/rootfs"
	echo "$recipe" >"$dir/recipe"
	echo "rootfs made in $((SECONDS - start))s, $(du -sh "$dir/rootfs" | cut -f1); cached in $dir"
}

# machine_boot ROOTFS [NSPAWN-ARGS...] boots a copy of ROOTFS, so that every
# run starts from a fresh machine, in a network namespace of its own, and
# waits until systemd in it has started. It sets nspawn_pid, leader (the
# machine's pid 1 as the host sees it) and netns (its network namespace);
# machine CMD... runs a command in it. --register=no --keep-unit: the
# host's pid 1 is not systemd, and without them systemd-nspawn fails with
# "Failed to open system bus".
machine_boot() {
	local rootfs=$1 p state
	shift
	rm -rf "${tmp:?}/machine"
	cp -a "$rootfs" "$tmp/machine"
	leader=
	systemd-nspawn -q -b -D "$tmp/machine" -M reuseport-ci --register=no --keep-unit \
		--private-network --console=pipe "$@" </dev/null >"$tmp/boot.log" 2>&1 &
	nspawn_pid=$!
	for _ in $(seq 60); do
		for p in $(pgrep -P "$nspawn_pid" || true); do
			if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = systemd ]; then
				leader=$p
			fi
		done
		[ -n "$leader" ] && break
		kill -0 "$nspawn_pid" 2>/dev/null || break
		sleep 0.5
	done
	if [ -z "$leader" ]; then
		echo "the machine did not start:"
		cat "$tmp/boot.log"
		return 1
	fi
	# systemctl needs the manager's socket, which appears a moment after boot.
	for _ in $(seq 60); do
		machine test -S /run/systemd/private && break
		sleep 0.5
	done
	state=$(machine timeout 60 systemctl is-system-running --wait || true)
	echo "machine booted: systemd $(machine systemctl --version | head -n 1 | cut -d' ' -f2), state $state, network namespace of its own"
	case $state in running | degraded) ;; *)
		cat "$tmp/boot.log"
		return 1
		;;
	esac
	# shellcheck disable=SC2034 # for the caller
	netns=/proc/$leader/ns/net
}

machine() { nsenter -t "${leader:?no machine}" -a -- "$@"; }

# machine_poweroff stops the machine machine_boot started, if it runs:
# SIGTERM makes systemd-nspawn power it off; it gets 30 s.
machine_poweroff() {
	if [ -n "${nspawn_pid:-}" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
		kill -TERM "$nspawn_pid" 2>/dev/null || true
		for _ in $(seq 30); do
			kill -0 "$nspawn_pid" 2>/dev/null || break
			sleep 1
		done
		kill -KILL "$nspawn_pid" 2>/dev/null || true
		wait "$nspawn_pid" 2>/dev/null || true
	fi
	nspawn_pid='' leader=''
}

# machine_block FILE NAME runs the block of FILE marked NAME (see
# readme_block) in the machine, in /src, where the caller binds the clone's
# stand-in, showing it the first time.
declare -gA machine_blocks_shown
machine_block() {
	local block
	block=$(readme_block "$1" "$2")
	if [ -z "${machine_blocks_shown[$2]:-}" ]; then
		echo "  README block $2:"
		show_block <<<"$block"
		machine_blocks_shown[$2]=1
	fi
	machine timeout 300 sh -ec "cd /src
$block" >"${tmp:?}/block.log" 2>&1 || {
		echo "README block $2 failed:"
		cat "$tmp/block.log"
		return 1
	}
}
