#!/usr/bin/env bash
# ci-qemu.sh runs the tests of the root, handoff and drain packages on other
# CPUs under qemu-user: arm64, s390x (big-endian), riscv64 and 32-bit arm
# (GOARM=7). Each package's test binary is cross-compiled (CGO_ENABLED=0, no
# -race, which needs cgo) and run from its package directory with
# -test.short, as `go test` would run it; qemu-user-static from Debian runs
# it through binfmt_misc handlers that this script registers itself, so that
# the tests that re-execute their own binary (internal/test/nstest) work too.
#
# It prints per architecture and package how many tests and subtests passed,
# failed and were skipped, and the reason of every skip; it fails if any test
# fails. As root (binfmt_misc is the machine's): bash scripts/ci-qemu.sh
# [ARCH...]. 386 is not among the architectures: the Go runtime crashes
# under qemu-i386 ("bad g in signal handler"), a limitation of qemu.
set -euo pipefail
cd "$(dirname "$0")/.."

arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(arm64 s390x riscv64 arm)
packages=(. ./handoff ./drain)

# qemu's name for each GOARCH, as in /usr/lib/binfmt.d/qemu-NAME.conf.
qemu_name() {
	case $1 in
	arm64) echo aarch64 ;;
	*) echo "$1" ;;
	esac
}

if ! command -v qemu-aarch64-static >/dev/null; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static >/dev/null
fi
qemu-aarch64-static --version | head -1

# The package's registration tool (binfmt-support or systemd-binfmt) is not
# installed; each /usr/lib/binfmt.d file holds the line the kernel's
# register file takes. Registering twice fails, so only what is missing.
binfmt=/proc/sys/fs/binfmt_misc
[ -e $binfmt/register ] || mount -t binfmt_misc binfmt_misc $binfmt
for arch in "${arches[@]}"; do
	name=qemu-$(qemu_name "$arch")
	[ -e "$binfmt/$name" ] || cat "/usr/lib/binfmt.d/$name.conf" >$binfmt/register
	grep -qx enabled "$binfmt/$name" || echo 1 >"$binfmt/$name"
	echo "binfmt_misc: $name: $(sed -n 's/^interpreter //p' "$binfmt/$name")"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/testsummary" ./internal/test/cmd/testsummary

# Build every architecture's test binaries first (the go command keeps both
# cores busy), then run two architectures at a time: a test binary under
# qemu-user keeps about one core busy, and the runs are independent.
for arch in "${arches[@]}"; do
	begin=$SECONDS
	# One go command for the three packages: it writes NAME.test for each.
	mkdir "$work/$arch"
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOARM=7 go test -c -o "$work/$arch/" "${packages[@]}"
	echo "$arch: built in $((SECONDS - begin))s"
done

# run_arch ARCH runs the tests of every package for ARCH, appending the
# report of each to $work/ARCH.out and its summary line, then a line for the
# architecture, to $work/ARCH.sum.
run_arch() {
	local arch=$1 begin=$SECONDS status=pass pkg bin out
	for pkg in $PACKAGES; do
		bin=$work/$arch/$(go list -f '{{.Name}}' "$pkg").test
		out=$work/$arch.$(basename "$pkg").out
		# -test.timeout and -test.paniconexit0 as go test passes them; the
		# timeout also starts the runtime's poller before the first test,
		# as under go test, which tests that count descriptors rely on.
		if ! (cd "$pkg" && go tool test2json -p "$pkg" "$bin" -test.v=test2json -test.short \
			-test.count=1 -test.timeout=10m -test.paniconexit0) |
			"$work/testsummary" -label "$arch $pkg" >"$out"; then
			status=FAIL
		fi
		cat "$out" >>"$work/$arch.out"
		head -1 "$out" >>"$work/$arch.sum"
	done
	echo "$arch: $status, ran in $((SECONDS - begin))s" >>"$work/$arch.sum"
}
export -f run_arch
export work PACKAGES="${packages[*]}"

begin=$SECONDS
printf '%s\n' "${arches[@]}" | xargs -P 2 -I{} bash -c 'run_arch "$1"' _ {}
failed=()
for arch in "${arches[@]}"; do
	cat "$work/$arch.out"
	grep -q "^$arch: pass," "$work/$arch.sum" || failed+=("$arch")
done

echo
echo "qemu-user summary (runs took $((SECONDS - begin))s, two architectures at a time):"
for arch in "${arches[@]}"; do
	sed 's/^/  /' "$work/$arch.sum"
done
if [ ${#failed[@]} -gt 0 ]; then
	printf 'FAILED under qemu: %s\n' "${failed[*]}"
	exit 1
fi
