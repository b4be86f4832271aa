#!/usr/bin/env bash
# ci-go.sh runs a test command under another Go release than the machine's,
# which the go command fetches as a toolchain module through the module
# proxy the first time (GOTOOLCHAIN):
#
#	bash scripts/ci-go.sh go1.27.3 'go test -short ./...'
#
# As in the first test run of .ci/run, every test runs (-count=1) and one
# test binary at a time (-p=1). It prints the release that really ran, how
# many packages passed, and the time taken; it fails if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

toolchain=${1:?usage: ci-go.sh GOTOOLCHAIN 'TEST COMMAND'}
test_cmd=${2:?usage: ci-go.sh GOTOOLCHAIN 'TEST COMMAND'}
export GOTOOLCHAIN=$toolchain

begin=$SECONDS
got=$(go env GOVERSION)
if [ "$got" != "$toolchain" ]; then
	echo "GOTOOLCHAIN=$toolchain, but the go command runs $got"
	exit 1
fi
echo "$(go version) (fetched in $((SECONDS - begin))s)"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
read -ra cmd <<<"$test_cmd"
status=0
GOFLAGS="$(go env GOFLAGS) -count=1 -p=1" "${cmd[@]}" 2>&1 | tee "$out" || status=$?
echo
echo "$toolchain: $(grep -c '^ok ' "$out") packages ok, $(grep -c '^FAIL' "$out") FAIL lines; $((SECONDS - begin))s in all"
exit $status
