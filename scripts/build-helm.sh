#!/usr/bin/env bash
# Builds Helm v4 for the chart tests (tests/install/test_helm_chart.py,
# tests/e2e/test_helm_install.py) from its own Go module (helm.sh/helm/v4, cmd/helm),
# pinned in e2e/helm/go.mod and go.sum, into
#   .cache/helm/<hash of go.mod, go.sum and this script>/helm
# and prints that path. Builds only when it is missing; Go's module cache
# (~/go/pkg/mod) and build cache (~/.cache/go-build) make a rebuild quick (Helm shares
# k8s.io/client-go and friends with e2e/controlplane).
#
# Needs Go (go.mod's `go` line or newer) and the Go module proxy on the first run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
src=$repo/e2e/helm
cd "$src"
hash=$(cat go.mod go.sum "$repo/scripts/build-helm.sh" | sha256sum | cut -c1-16)
out=$repo/.cache/helm/$hash
if [ -x "$out/helm" ]; then
  echo "$out/helm"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "build-helm: Go is not installed (see e2e/helm/go.mod for the version)" >&2
  exit 1
fi
module=helm.sh/helm/v4
version=$(awk -v m="$module" '$1 == m && $2 ~ /^v/ {print $2; exit}' go.mod)
[ -n "$version" ] || { echo "build-helm: no $module line in go.mod" >&2; exit 1; }
echo "build-helm: building $module@$version into $out" >&2
start=$(date +%s)
mkdir -p "$repo/.cache"
tmp=$(mktemp -d "$repo/.cache/helm.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# -mod=readonly: go.mod/go.sum are the pin. The version stamp upstream's Makefile
# sets, so `helm version` names the release it is.
ldflags="-s -w -X $module/internal/version.version=$version"
ldflags="$ldflags -X $module/internal/version.gitTreeState=clean"
CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags="$ldflags" -o "$tmp/helm" "$module/cmd/helm" >&2
"$tmp/helm" version --short >/dev/null
mkdir -p "$(dirname "$out")"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
for old in "$repo"/.cache/helm/*; do
  [ "$old" = "$out" ] || rm -rf "$old"
done
echo "build-helm: built in $(( $(date +%s) - start ))s" >&2
echo "$out/helm"
