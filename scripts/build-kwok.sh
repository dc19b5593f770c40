#!/usr/bin/env bash
# Builds kwok for the end-to-end tests from its own Go module (sigs.k8s.io/kwok,
# cmd/kwok), pinned in e2e/kwok/go.mod, into
#   .cache/kwok/<hash of go.mod, go.sum and this script>/kwok
# and prints that folder, with `stages/`: kwok's own Stage manifests of the same
# version (kustomize/stage: node-initialize, node heartbeat with a Lease, pod
# ready/complete/delete), which kwok needs to do anything. tests/e2e/test_dra.py runs it out of cluster: it keeps the
# module's fake GPU Nodes Ready (heartbeats) and runs the pods kube-scheduler binds
# to them, so that the real scheduler can allocate DRA claims on nodes that have no
# kubelet. Builds only when that folder is missing; Go's module cache (~/go/pkg/mod)
# and build cache (~/.cache/go-build) make a rebuild quick.
#
# Needs Go (go.mod's `go` line or newer) and the Go module proxy on the first run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
src=$repo/e2e/kwok
cd "$src"
hash=$(cat go.mod go.sum "$repo/scripts/build-kwok.sh" | sha256sum | cut -c1-16)
out=$repo/.cache/kwok/$hash
if [ -x "$out/kwok" ] && [ -f "$out/stages/pod-ready.yaml" ]; then
  echo "$out"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "build-kwok: Go is not installed (see e2e/kwok/go.mod for the version)" >&2
  exit 1
fi
module=sigs.k8s.io/kwok
version=$(awk -v m="$module" '$1 == m && $2 ~ /^v/ {print $2; exit}' go.mod)
[ -n "$version" ] || { echo "build-kwok: no $module line in go.mod" >&2; exit 1; }
echo "build-kwok: building $module@$version into $out" >&2
start=$(date +%s)
mkdir -p "$repo/.cache"
tmp=$(mktemp -d "$repo/.cache/kwok.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# -mod=readonly: go.mod/go.sum are the pin. The version stamp kwok's Makefile sets.
ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${version#v}"
go build -mod=readonly -trimpath -ldflags="$ldflags" -o "$tmp/kwok" "$module/cmd/kwok" >&2
moddir=$(go list -mod=readonly -m -f '{{.Dir}}' "$module")
mkdir -p "$tmp/stages"
cp "$moddir"/kustomize/stage/node/fast/node-initialize.yaml \
  "$moddir"/kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
  "$moddir"/kustomize/stage/pod/fast/pod-*.yaml "$tmp/stages/"
chmod -R u+w "$tmp/stages"
mkdir -p "$(dirname "$out")"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
for old in "$repo"/.cache/kwok/*; do
  [ "$old" = "$out" ] || rm -rf "$old"
done
echo "build-kwok: built in $(( $(date +%s) - start ))s" >&2
echo "$out"
