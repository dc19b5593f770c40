#!/usr/bin/env bash
# Builds Thanos for the end-to-end fleet test (tests/e2e/test_fleet.py) from its own Go
# module (github.com/thanos-io/thanos, cmd/thanos), pinned in e2e/thanos/go.mod and
# go.sum, into
#   .cache/thanos/<hash of go.mod, go.sum and this script>/thanos
# and prints that folder. One binary serves every role the test runs: `thanos sidecar`,
# `thanos query` and `thanos rule`.
# Builds only when that folder is missing; Go's module cache (~/go/pkg/mod) and build
# cache (~/.cache/go-build) make a rebuild quick. A cold build took 6 minutes on 2
# quiet cores and 20 to 37 on a loaded machine, so scripts/test.sh runs this in the
# background, at the lowest CPU priority, while the rest runs (docs/multi-cluster.md).
#
# Thanos v0.42 needs a newer Go than Debian's: GOTOOLCHAIN below makes `go` fetch that
# toolchain from the Go module proxy (once, into the module cache). It is set here, not
# in the caller's environment, so nothing else in the repository builds with it.
# Needs Go 1.21 or newer (toolchain switching) and the Go module proxy on the first run.
set -euo pipefail
export GOTOOLCHAIN=go1.27.3
repo=$(cd "$(dirname "$0")/.." && pwd)
src=$repo/e2e/thanos
cd "$src"
hash=$(cat go.mod go.sum "$repo/scripts/build-thanos.sh" | sha256sum | cut -c1-16)
out=$repo/.cache/thanos/$hash
# One build at a time: scripts/test.sh starts this script in the background while the
# tests run, and the fleet tests call it again to wait for that build (flock blocks
# until the first holder is done, then the cached binary answers).
mkdir -p "$repo/.cache"
exec 9>"$repo/.cache/thanos.lock"
flock 9
if [ -x "$out/thanos" ]; then
  echo "$out"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "build-thanos: Go is not installed (see e2e/thanos/go.mod for the version)" >&2
  exit 1
fi
module=github.com/thanos-io/thanos
version=$(awk -v m="$module" '$1 == m && $2 ~ /^v/ {print $2; exit}' go.mod)
[ -n "$version" ] || { echo "build-thanos: no $module line in go.mod" >&2; exit 1; }
echo "build-thanos: building $module@$version into $out" >&2
start=$(date +%s)
tmp=$(mktemp -d "$repo/.cache/thanos.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# -mod=readonly: go.mod/go.sum are the pin. The version stamp upstream's Makefile sets
# (github.com/prometheus/common/version), so `thanos --version` names the release.
ldflags="-s -w -X github.com/prometheus/common/version.Version=${version#v}"
ldflags="$ldflags -X github.com/prometheus/common/version.Branch=release"
# -tags slicelabels, as upstream's .promu.yml builds its releases: Thanos's Store API
# (pkg/store/labelpb) casts Prometheus's labels.Labels to []ZLabel with unsafe.Pointer,
# which holds only when labels.Labels is a slice. Without the tag Prometheus v0.309
# compiles its default `stringlabels` (one string), the cast reads garbage lengths,
# and the sidecar panics on its first gRPC answer (grpc's buffer pool asked for a
# negative or petabyte-sized buffer). docs/multi-cluster.md has the story.
nice -n 10 go build -mod=readonly -trimpath -tags slicelabels -ldflags="$ldflags" \
  -o "$tmp/thanos" "$module/cmd/thanos" >&2
mkdir -p "$(dirname "$out")"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
for old in "$repo"/.cache/thanos/*; do
  [ "$old" = "$out" ] || rm -rf "$old"
done
echo "build-thanos: built in $(( $(date +%s) - start ))s" >&2
echo "$out"
