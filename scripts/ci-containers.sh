#!/usr/bin/env bash
# CI section: examples/docker/README.md, run as written, with podman and
# with the docker CLI talking to podman's API service, with load on the
# servers throughout.
#
# Every container engine process runs in a network namespace made here, so
# that the README's --net=host means that namespace and not the host's; the
# repository's load client runs there too, against 127.0.0.1:8080. Podman
# keeps its images and containers in a directory of this run, and is told
# to use runc (crun refuses this host's hybrid cgroups) and ulimits any
# host allows. Each upgrade must lose no request; the control, a plain
# `docker restart`, must lose some. Root only; it installs what it needs.
#
#	bash scripts/ci-containers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ci-lib.sh

readme=examples/docker/README.md
cache=/var/cache/reuseport-ci/containers

tmp=$(mktemp -d)
netns_name=reuseport-ci-$$
netns=/run/netns/$netns_name
service_pid=
made_rundir=
cleanup() {
	local status=$?
	load_kill
	if [ "$status" -ne 0 ]; then
		for c in $(podman ps -a --format '{{.Names}}' 2>/dev/null); do
			echo "--- docker logs $c:"
			podman logs "$c" 2>&1 | tail -n 20 || true
		done
	fi
	podman rm -f -a -t 5 >/dev/null 2>&1 || true
	if [ -n "$service_pid" ]; then
		kill -TERM "$service_pid" 2>/dev/null || true
		wait "$service_pid" 2>/dev/null || true
	fi
	[ -e "$netns" ] && ip netns delete "$netns_name"
	[ -n "$made_rundir" ] && rm -rf /run/httpserver
	rm -f httpserver # the README's image block builds it in the clone
	rm -rf "$tmp"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v ip >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The docker CLI, and only it, from Debian's docker.io package: installing
# the package would start dockerd on this host.
docker_cli=$cache/docker
if [ ! -x "$docker_cli" ]; then
	mkdir -p "$cache/deb"
	(cd "$cache/deb" && apt-get download -qq -o APT::Sandbox::User=root docker.io 2>/dev/null) || {
		apt-get update -qq
		(cd "$cache/deb" && apt-get download -qq -o APT::Sandbox::User=root docker.io)
	}
	dpkg-deb --fsys-tarfile "$cache"/deb/docker.io_*.deb | tar -x -O ./usr/bin/docker >"$docker_cli.new"
	chmod 0755 "$docker_cli.new"
	mv "$docker_cli.new" "$docker_cli"
	rm -rf "$cache/deb"
fi

export CONTAINERS_CONF=$tmp/containers.conf CONTAINERS_STORAGE_CONF=$tmp/storage.conf
cat >"$CONTAINERS_CONF" <<EOF
[containers]
# Podman's defaults are above this host's hard limits; lower ones are
# always allowed, and plenty for the server.
default_ulimits = ["nofile=8192:8192", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$tmp/libpod"
EOF
cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "vfs"
graphroot = "$tmp/storage"
runroot = "$tmp/run"
EOF
# The docker CLI's settings, which podman reads too, in this run's directory.
export DOCKER_CONFIG=$tmp/docker-config DOCKER_HOST=unix://$tmp/podman.sock
mkdir "$DOCKER_CONFIG"
echo '{}' >"$DOCKER_CONFIG/config.json"

if [ -e /run/httpserver ]; then
	echo "/run/httpserver exists already: something else uses the README's handoff directory"
	exit 1
fi
made_rundir=1 # the README's run block makes it
ip netns add "$netns_name"
ip -n "$netns_name" link set lo up

CGO_ENABLED=0 go build -o "$tmp/loadclient" ./internal/test/cmd/loadclient
loadclient=$tmp/loadclient

# The API service in the namespace, so that the containers it starts for
# the docker CLI are in it too. (ip netns exec would remount /sys; nsenter
# only changes the network namespace.)
nsenter --net="$netns" podman system service --time=0 "$DOCKER_HOST" >"$tmp/service.log" 2>&1 &
service_pid=$!
for _ in $(seq 60); do
	[ -S "$tmp/podman.sock" ] && break
	sleep 0.5
done
echo "podman $(podman version --format '{{.Client.Version}}') with $(runc --version | head -n 1);" \
	"docker CLI $("$docker_cli" version --format '{{.Client.Version}}') against podman's API $("$docker_cli" version --format '{{.Server.APIVersion}}')"

# run_block ENGINE NAME [SED] runs the README block marked NAME with
# `docker` being ENGINE (see below), after the sed script SED, which renames
# workers and versions, in the clone's root.
declare -A shown
run_block() {
	local engine=$1 name=$2 block
	block=$(readme_block "$readme" "$name")
	if [ -z "${shown[$name]:-}" ]; then
		echo "  README block $name:"
		show_block <<<"$block"
		shown[$name]=1
	fi
	block=$(sed "${3:-}" <<<"$block")
	PATH=$tmp/$engine:$PATH timeout 300 bash -ec "$block" >"$tmp/block.log" 2>&1
}

# must_run_block is run_block for a block that must succeed.
must_run_block() {
	run_block "$@" || {
		echo "README block $2 ($1, ${3:-as written}) failed:"
		cat "$tmp/block.log"
		return 1
	}
}

# The two engines the README's `docker` stands for, each a `docker` command
# in a directory of its own: podman itself, which takes docker's commands
# and flags, run in the namespace; and the docker CLI, which reaches the API
# service running there.
mkdir "$tmp/podman" "$tmp/cli"
printf '#!/bin/sh\nexec nsenter --net=%s podman "$@"\n' "$netns" >"$tmp/podman/docker"
chmod 0755 "$tmp/podman/docker"
ln -s "$docker_cli" "$tmp/cli/docker"

# server_ids prints the id= the server of each container logged first.
server_ids() {
	local c
	for c in $(podman ps -a --format '{{.Names}}'); do
		podman logs "$c" 2>&1 | grep -o ' id=[0-9a-f]*' | head -n 1
	done
}

ids=$tmp/ids
declare -A engine_name=([podman]=podman [cli]="docker CLI")
for engine in podman cli; do
	echo
	echo "== ${engine_name[$engine]}: README run and upgrade blocks, 2 workers, each upgraded twice"
	must_run_block "$engine" image
	rm -f httpserver
	for v in v2 v3; do
		must_run_block "$engine" image "s/httpserver:v1/httpserver:$v/"
		rm -f httpserver
	done
	for w in w1 w2; do
		must_run_block "$engine" run "s/w1/$w/g"
	done
	sleep 1
	server_ids >"$ids"
	load_start "$netns"
	handoffs=0
	for step in "v1 v2" "v2 v3"; do
		read -r from to <<<"$step"
		for w in w1 w2; do
			must_run_block "$engine" upgrade "s/v2/$to/g; s/v1/$from/g; s/w1/$w/g"
			handoffs=$((handoffs + 1))
			server_ids >>"$ids"
		done
	done
	load_stop
	verdict "README upgrade, ${engine_name[$engine]}, 2 workers twice" none "$handoffs handoffs"
	distinct=$(sort -u "$ids" | wc -l)
	echo "  servers told apart by id: $distinct distinct ids in 6 containers, each pid 1"
	if [ "$distinct" -ne 6 ]; then
		verdicts_failed=$((${verdicts_failed:-0} + 1))
	fi
	perms=$(stat -c '%a %u' /run/httpserver /run/httpserver/w1.sock | tr '\n' ' ')
	echo "  /run/httpserver and w1.sock: $perms(want 700 and 600, owned by 1000)"
	if [ "$perms" != "700 1000 600 1000 " ]; then
		verdicts_failed=$((${verdicts_failed:-0} + 1))
	fi

	if [ "$engine" = podman ]; then
		# The failure path: a v2 that exits before it serves. The upgrade
		# block must fail, and v3 must go on serving without a loss. The
		# README waits a minute; here 10s show the same.
		echo
		echo "== ${engine_name[$engine]}: README upgrade block with a v2 that cannot start"
		mkdir "$tmp/broken"
		CGO_ENABLED=0 go build -o "$tmp/broken/httpserver" ./examples/httpserver
		# A command line the server rejects: it exits 2 at every start.
		tar -C "$tmp/broken" -c httpserver |
			podman import -q -c 'ENTRYPOINT ["/httpserver", "-no-such-flag"]' - httpserver:broken >/dev/null
		load_start "$netns"
		if run_block "$engine" upgrade "s/timeout 60/timeout 10/; s/within 60s/within 10s/; s/v2/broken/g; s/v1/v3/g"; then
			echo "FAIL: the upgrade block succeeded with a v2 that cannot start"
			verdicts_failed=$((${verdicts_failed:-0} + 1))
		fi
		sed 's/^/    | /' "$tmp/block.log"
		load_stop
		up=no
		[ "$(podman inspect -f '{{.State.Running}}' httpserver-w1-v3 2>/dev/null)" = true ] && up=yes
		verdict "failed upgrade: the old container serves on" none "v3 up=$up"
		[ "$up" = yes ] || verdicts_failed=$((${verdicts_failed:-0} + 1))
		podman rm -f -t 5 httpserver-w1-broken >/dev/null 2>&1
	fi

	echo
	echo "== ${engine_name[$engine]}: control, a plain docker restart of the same containers"
	# Enough rounds that a quiet machine still shows the loss (1 to 317
	# per 6 restarts here).
	load_start "$netns"
	for _ in 1 2 3 4 5 6 7 8; do
		for w in w1 w2; do
			timeout 120 "$tmp/$engine/docker" restart "httpserver-$w-v3" >/dev/null
		done
	done
	load_stop
	verdict "control: ${engine_name[$engine]} restart, 8 times per worker" some "16 restarts"

	podman rm -f -a -t 5 >/dev/null
	podman rmi -a -f >/dev/null
	rm -rf /run/httpserver
done

if [ "${verdicts_failed:-0}" -gt 0 ]; then
	echo "$verdicts_failed checks failed"
	exit 1
fi
