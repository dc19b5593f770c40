#!/usr/bin/env bash
# Builds Kyverno for the admission benchmark (bench/apiserver_admission.py) from its own
# Go module (github.com/kyverno/kyverno: cmd/kyverno, the admission controller, and
# cmd/reports-controller), pinned in e2e/kyverno/go.mod, into
#   .cache/kyverno/<hash of go.mod, go.sum and this script>/
# and prints that folder. It holds `kyverno`, `reports-controller` and `crds/`, the
# module's own CustomResourceDefinitions (config/crds) of the same version.
# Not part of .ci/run: peers for benchmarks stay out of CI (issue 23).
# Builds only when that folder is missing; Go's module cache (~/go/pkg/mod) and build
# cache (~/.cache/go-build) make a rebuild quick.
#
# Needs Go (go.mod's `go` line or newer) and the Go module proxy on the first run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
src=$repo/e2e/kyverno
cd "$src"
hash=$(cat go.mod go.sum "$repo/scripts/build-kyverno.sh" | sha256sum | cut -c1-16)
out=$repo/.cache/kyverno/$hash
if [ -x "$out/kyverno" ] && [ -x "$out/reports-controller" ] && [ -d "$out/crds" ]; then
  echo "$out"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "build-kyverno: Go is not installed (see e2e/kyverno/go.mod for the version)" >&2
  exit 1
fi
module=github.com/kyverno/kyverno
version=$(awk -v m="$module" '$1 == m && $2 ~ /^v/ {print $2; exit}' go.mod)
[ -n "$version" ] || { echo "build-kyverno: no $module line in go.mod" >&2; exit 1; }
echo "build-kyverno: building $module@$version into $out" >&2
start=$(date +%s)
mkdir -p "$repo/.cache"
tmp=$(mktemp -d "$repo/.cache/kyverno.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# The version stamp upstream's Makefile sets, so Kyverno logs its version.
ldflags="-s -w -X github.com/kyverno/kyverno/pkg/version.BuildVersion=$version"
for cmd in kyverno reports-controller; do
  nice -n 10 go build -mod=readonly -trimpath -ldflags="$ldflags" -o "$tmp/$cmd" \
    "$module/cmd/$cmd" >&2
done
moddir=$(go list -mod=readonly -m -f '{{.Dir}}' "$module")
mkdir -p "$tmp/crds"
find "$moddir/config/crds" -name '*.yaml' -exec cp {} "$tmp/crds/" \;
chmod -R u+w "$tmp/crds"
mkdir -p "$(dirname "$out")"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
for old in "$repo"/.cache/kyverno/*; do
  [ "$old" = "$out" ] || rm -rf "$old"
done
echo "build-kyverno: built in $(($(date +%s) - start))s" >&2
echo "$out"
