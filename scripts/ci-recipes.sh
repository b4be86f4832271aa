#!/usr/bin/env bash
# CI section: the recipes module (recipes/), which serves echo, gin and chi
# apps as docs/recipes/frameworks.md shows and restarts each five times
# under a keep-alive load in one test process, on loopback: every recipe
# must lose no request, and the control (echo's own Shutdown through
# handoff.Funcs) must lose some. It vets, runs staticcheck on, and tests
# the module, with -race and one test binary at a time; about 20 s of
# tests on 2 cores.
#
#	bash scripts/ci-recipes.sh
#
# STATICCHECK names a staticcheck binary to use (.ci/run passes its own);
# without it, the script installs the version .ci/run pins in a directory
# of its own. -race needs gcc, which the script installs as root if it is
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! command -v gcc >/dev/null; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null
fi
staticcheck=${STATICCHECK:-}
if [ -z "$staticcheck" ]; then
	version=$(sed -n 's/^staticcheck_version=//p' .ci/run)
	GOBIN=$tmp/bin go install "honnef.co/go/tools/cmd/staticcheck@${version:?no staticcheck_version= in .ci/run}"
	staticcheck=$tmp/bin/staticcheck
fi

cd recipes
go vet ./...
"$staticcheck" ./...
# -v for the figures each test prints: requests answered and failed.
status=0
GOFLAGS="$(go env GOFLAGS) -count=1 -p=1" go test -race -v ./... 2>&1 | tee "$tmp/test.log" || status=$?
echo
echo "recipes: $(grep -c '^--- PASS' "$tmp/test.log") passed, $(grep -c '^--- FAIL' "$tmp/test.log") failed"
exit "$status"
