#!/usr/bin/env bash
# Builds the end-to-end tests' Kubernetes control plane (e2e/controlplane: etcd,
# kube-apiserver, kube-controller-manager and kubectl in one binary, from the
# k8s.io/kubernetes module pinned in e2e/controlplane/go.mod) into
#   .cache/controlplane/<hash of go.mod, go.sum and the sources>/
# and prints that folder. It holds `controlplane` and a link `kubectl` to it.
# Builds only when that folder is missing; Go's module cache (~/go/pkg/mod) and
# build cache (~/.cache/go-build) make a rebuild after a source change quick.
#
# Needs Go (go.mod's `go` line or newer) and the Go module proxy on the first run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
src=$repo/e2e/controlplane
cd "$src"
hash=$(cat go.mod go.sum ./*.go "$repo/scripts/build-controlplane.sh" | sha256sum | cut -c1-16)
out=$repo/.cache/controlplane/$hash
if [ -x "$out/controlplane" ] && [ -L "$out/kubectl" ]; then
  echo "$out"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "build-controlplane: Go is not installed (see e2e/controlplane/go.mod for the version)" >&2
  exit 1
fi
echo "build-controlplane: building $src into $out (the first build takes a while)" >&2
start=$(date +%s)
mkdir -p "$repo/.cache"
tmp=$(mktemp -d "$repo/.cache/controlplane.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# -trimpath and -s -w: a smaller binary; -mod=readonly: go.mod/go.sum are the pin.
# The version stamp upstream's build sets, from the k8s.io/kubernetes line of go.mod.
version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' go.mod)
minor=$(echo "$version" | cut -d. -f2)
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags="$ldflags -X $pkg.gitTreeState=clean"
done
go build -mod=readonly -trimpath -ldflags="$ldflags" -o "$tmp/controlplane" . >&2
ln -s controlplane "$tmp/kubectl"
mkdir -p "$(dirname "$out")"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
# Older builds of other sources are of no further use.
for old in "$repo"/.cache/controlplane/*; do
  [ "$old" = "$out" ] || rm -rf "$old"
done
echo "build-controlplane: built in $(( $(date +%s) - start ))s" >&2
echo "$out"
