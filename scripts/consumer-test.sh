#!/usr/bin/env bash
# consumer-test.sh VERSION builds, as a stranger would, a program that
# imports every public package of the published modules at VERSION, before
# the tags exist: tools/cmd/modproxy publishes the root module and
# integrations of this checkout at VERSION into a file-based module proxy
# (what tagging vX.Y.Z and integrations/vX.Y.Z would publish), and a fresh
# module outside the repository, with its own module cache, gets
# integrations from it. The replace lines in our go.mod files do not apply
# there, so this catches what they hide: a require of a version that will
# never exist, an internal package of another module, a go line that
# raises every consumer's.
#
# Third-party modules still come from the real proxy; the checksum database
# is not asked about ours, which it has never seen.
set -euo pipefail

version=${1:?usage: consumer-test.sh VERSION (e.g. v0.1.0)}
repo=$(cd "$(dirname "$0")/.." && pwd)
# The go line a consumer starts with and must keep: the oldest release we
# support.
readonly consumer_go=1.26.0

host_cache=$(go env GOMODCACHE)/cache/download
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$repo/tools" && go build -o "$tmp/modproxy" ./cmd/modproxy)
"$tmp/modproxy" -repo "$repo" -version "$version" -out "$tmp/proxy"

# Every public package: not internal, not a command; tests are not listed.
pkgs=()
for dir in $("$tmp/modproxy" -dirs); do
	while read -r pkg; do
		case $pkg in */internal/* | */internal) continue ;; esac
		pkgs+=("$pkg")
	done < <(cd "$repo/$dir" && go list -f '{{if ne .Name "main"}}{{.ImportPath}}{{end}}' ./...)
done
echo "public packages: ${pkgs[*]}"

# The consumer's world: nothing shared with this machine's module cache,
# no workspace, and the go command it has (no toolchain switch).
export GOMODCACHE=$tmp/modcache GOPATH=$tmp/gopath GOFLAGS=-mod=mod GOWORK=off GOTOOLCHAIN=local
# This machine's module download cache is in the proxy's layout: reading
# third-party modules from it first saves a minute of downloads, and what
# it lacks comes from the real proxy. Both are checked against go.sum and
# the checksum database as usual.
export GOPROXY="file://$tmp/proxy,file://$host_cache,https://proxy.golang.org"
# GOPRIVATE keeps the checksum database out of it (it implies GONOSUMDB);
# GONOPROXY=none stops it from also sending our modules around the proxy
# straight to a git clone of a repository that has no such tag.
export GOPRIVATE=github.com/b93f8b21 GONOSUMDB=github.com/b93f8b21 GONOPROXY=none

mkdir "$tmp/consumer"
cd "$tmp/consumer"
go mod init example.com/consumer
go mod edit -go="$consumer_go"
go get "github.com/b93f8b21/reuseport/integrations@$version"

{
	echo '// Command consumer imports every public package of reuseport.'
	echo 'package main'
	echo
	echo 'import ('
	printf '\t_ "%s"\n' "${pkgs[@]}"
	echo ')'
	echo
	echo 'func main() {}'
} >main.go
# Report every failure, not only the first.
fail=0
if ! go build -o /dev/null .; then
	echo "FAIL: the consumer does not build"
	fail=1
fi
got=$(go list -m -f '{{.GoVersion}}')
if [ "$got" != "$consumer_go" ]; then
	echo "FAIL: depending on reuseport $version raised the consumer's go line from $consumer_go to $got"
	fail=1
fi
for mod in github.com/b93f8b21/reuseport github.com/b93f8b21/reuseport/integrations; do
	got=$(go list -m -f '{{.Version}}' "$mod")
	if [ "$got" != "$version" ]; then
		echo "FAIL: the consumer got $mod@$got, not $version"
		fail=1
	fi
done
cat go.mod
[ "$fail" = 0 ] && echo "consumer test at $version: ok"
exit "$fail"
