#!/usr/bin/env bash
# check-harness-deps.sh fails if a library package of a published module
# (every package of the root and integrations modules but commands, tests
# and the test harness itself) depends, directly or not, on a package of
# the test harness: what users import must not drag in load generators,
# network namespaces or nginx drivers, nor make their builds depend on
# code that carries no compatibility promise.
#
# The harness is everything under internal/test/. It runs for every main target
# (scripts/main-targets), since a dependency may hide in one OS's files.
set -euo pipefail
cd "$(dirname "$0")/.."

is_harness() {
	case $1 in */internal/test/* | */internal/test) return 0 ;; esac
	return 1
}

bad=0
for target in $(grep -v -e '^#' -e '^$' scripts/main-targets); do
	for dir in . integrations; do
		libs=()
		while read -r pkg; do
			is_harness "$pkg" || libs+=("$pkg")
		done < <(cd "$dir" && GOOS=${target%/*} GOARCH=${target#*/} go list -e -f '{{if ne .Name "main"}}{{.ImportPath}}{{end}}' ./...)
		# -f prints, for each library package, its own path and each
		# package it depends on.
		while read -r lib dep; do
			if is_harness "$dep"; then
				echo "$target: library package $lib depends on test harness package $dep"
				bad=1
			fi
		done < <(cd "$dir" && GOOS=${target%/*} GOARCH=${target#*/} go list -e -f '{{$p := .ImportPath}}{{range .Deps}}{{$p}} {{.}}{{"\n"}}{{end}}' "${libs[@]}")
	done
done
if [ "$bad" = 0 ]; then
	echo "no library package reaches the test harness"
fi
exit "$bad"
