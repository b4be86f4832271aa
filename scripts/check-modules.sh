#!/usr/bin/env bash
# check-modules.sh fails unless every module of the repository is tidy
# (`go mod tidy -diff` prints nothing) and declares its go line as
# `go 1.N.0`: the lowest patch of a release, so that depending on a
# published module never raises a consumer's go line to a patch release
# (the go command raises the main module's go line to the highest of its
# dependencies'). It also fails on a toolchain line, which has the same
# effect on whoever works in the module.
set -euo pipefail
cd "$(dirname "$0")/.."

bad=0
while read -r mod; do
	dir=$(dirname "$mod")
	if ! (cd "$dir" && go mod tidy -diff); then
		echo "$dir: go.mod or go.sum is not tidy: run go mod tidy there (diff above)"
		bad=1
	fi
	goline=$(cd "$dir" && go mod edit -json | sed -n 's/^\t"Go": "\(.*\)",*$/\1/p')
	if ! [[ $goline =~ ^1\.[0-9]+\.0$ ]]; then
		echo "$dir: go line is 'go $goline', not 'go 1.N.0'"
		bad=1
	fi
	if grep -q '^toolchain ' "$mod"; then
		echo "$dir: go.mod has a toolchain line: $(grep '^toolchain ' "$mod")"
		bad=1
	fi
	echo "$dir: go $goline"
done < <(git ls-files -- go.mod '*/go.mod')
exit "$bad"
