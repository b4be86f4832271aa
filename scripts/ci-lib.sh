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
# NETNS, in the background, writing to the caller's scratch directory $tmp. load_stop ends it and sets requests, failed and
# pids from what it printed. The client stops by itself after 10 minutes,
# so that a stuck section cannot load the machine forever.
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
	if [ "$failed" -gt 0 ]; then
		sed 's/^/    /' "$load_out.err" # the kinds of failure and the first of each
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
# control that must lose some (else the harness could not see a loss);
# EVENTS says what happened under load ("4 handoffs"). A run that sent no
# request fails either way. Failures are counted in $verdicts_failed.
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
