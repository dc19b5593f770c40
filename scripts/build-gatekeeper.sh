#!/usr/bin/env bash
# Builds Gatekeeper for the admission benchmark (bench/apiserver_admission.py) from its
# own Go module (github.com/open-policy-agent/gatekeeper/v3, main package at the module
# root), pinned in e2e/gatekeeper/go.mod, into
#   .cache/gatekeeper/<hash of go.mod, go.sum and this script>/
# and prints that folder. It holds `gatekeeper` and `crds/`, the module's own
# CustomResourceDefinitions (manifest_staging/charts/gatekeeper/crds) of the same version.
# Not part of .ci/run: peers for benchmarks stay out of CI (issue 23).
# Builds only when that folder is missing; Go's module and build caches make a rebuild
# quick.
#
# Needs Go (go.mod's `go` line or newer) and the Go module proxy on the first run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
src=$repo/e2e/gatekeeper
cd "$src"
hash=$(cat go.mod go.sum "$repo/scripts/build-gatekeeper.sh" | sha256sum | cut -c1-16)
out=$repo/.cache/gatekeeper/$hash
if [ -x "$out/gatekeeper" ] && [ -d "$out/crds" ]; then
  echo "$out"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "build-gatekeeper: Go is not installed (see e2e/gatekeeper/go.mod for the version)" >&2
  exit 1
fi
module=github.com/open-policy-agent/gatekeeper/v3
version=$(awk -v m="$module" '$1 == m && $2 ~ /^v/ {print $2; exit}' go.mod)
[ -n "$version" ] || { echo "build-gatekeeper: no $module line in go.mod" >&2; exit 1; }
echo "build-gatekeeper: building $module@$version into $out" >&2
start=$(date +%s)
mkdir -p "$repo/.cache"
tmp=$(mktemp -d "$repo/.cache/gatekeeper.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
nice -n 10 go build -mod=readonly -trimpath -ldflags="-s -w" -o "$tmp/gatekeeper" "$module" >&2
moddir=$(go list -mod=readonly -m -f '{{.Dir}}' "$module")
mkdir -p "$tmp/crds"
cp "$moddir"/manifest_staging/charts/gatekeeper/crds/*.yaml "$tmp/crds/"
chmod -R u+w "$tmp/crds"
mkdir -p "$(dirname "$out")"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
for old in "$repo"/.cache/gatekeeper/*; do
  [ "$old" = "$out" ] || rm -rf "$old"
done
echo "build-gatekeeper: built in $(($(date +%s) - start))s" >&2
echo "$out"
