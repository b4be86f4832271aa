#!/usr/bin/env bash
# build-all.sh checks the module on every Go target, with CGO_ENABLED=0:
#
#   - every library package (all but package main and the test harness
#     under internal/test/) builds for every target of
#     `go tool dist list`: the API is the same on every GOOS, and an OS that
#     cannot share ports gets an error at run time, never a build failure;
#   - go vet, tests included, passes on the main targets (scripts/main-targets),
#     which also covers the commands in examples/. Commands are not built for
#     every target because linking for android and ios needs cgo.
#
# Run it from anywhere; it checks the module it belongs to. With a warm build
# cache it takes well under a minute; from cold, several minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

# check TARGET build|vet prints nothing on success, the output on failure.
check() {
	local goos=${1%/*} goarch=${1#*/} out
	case $2 in
	build) out=$(CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch go build $LIBS 2>&1) ;;
	vet) out=$(CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch go vet ./... 2>&1) ;;
	esac || {
		printf 'FAIL: go %s for %s\n%s\n' "$2" "$1" "$out"
		return 1
	}
}
export -f check

# IgnoredGoFiles keeps a package written for some OSes only in the list, so
# that it fails on the others, as it must; a directory of tests alone is left out.
# The test harness (internal/test/...) is left out: it is not part of what
# users build, and go vet below checks it on the main targets.
LIBS=$(go list -f '{{if and (ne .Name "main") (or .GoFiles .IgnoredGoFiles)}}{{.ImportPath}}{{end}}' ./... | grep -v /internal/test/ | tr '\n' ' ')
export LIBS

# Targets are independent, and each one's build is mostly a serial chain of
# standard packages: run one target per core.
jobs=$(nproc)
status=0
targets=$(go tool dist list)
echo "go build, $(wc -l <<<"$targets") targets: $LIBS"
xargs -P "$jobs" -I{} bash -c 'check "$1" build' _ {} <<<"$targets" || status=1
main=$(grep -v -e '^#' -e '^$' scripts/main-targets)
echo "go vet ./..., main targets:" $main
xargs -P "$jobs" -I{} bash -c 'check "$1" vet' _ {} <<<"$main" || status=1
[ "$status" -eq 0 ] || echo "build-all: FAILED, see the FAIL lines above"
exit "$status"
