#!/usr/bin/env bash
# Builds the worker node of the end-to-end tests (e2e/node: kubelet and
# kube-scheduler in one binary, from the k8s.io/kubernetes version of
# e2e/controlplane) and the pods' sandbox image, into
#   .cache/node/<hash of go.mod, go.sum, the sources and this script>/
# and prints that folder. It holds
#   node             `node kubelet ...`, `node kube-scheduler ...`
#   pause            a static sandbox process (e2e/node/pause)
#   pause-image.tar  a docker-archive image of it, named $PAUSE_IMAGE below, for
#                    `ctr images import` (no registry is needed)
# Builds only when that folder is missing. Go's module cache (~/go/pkg/mod) and
# build cache (~/.cache/go-build) are shared with build-controlplane.sh: the
# packages both binaries use are compiled once.
#
# Needs Go (go.mod's `go` line or newer) and the Go module proxy on the first run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
src=$repo/e2e/node
cd "$src"
# The name scripts/e2e-node.sh gives containerd as its sandbox_image.
PAUSE_IMAGE=localhost/finops-e2e/pause:1
hash=$(cat go.mod go.sum ./*.go pause/*.go "$repo/scripts/build-node.sh" | sha256sum | cut -c1-16)
out=$repo/.cache/node/$hash
if [ -x "$out/node" ] && [ -f "$out/pause-image.tar" ]; then
  echo "$out"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "build-node: Go is not installed (see e2e/node/go.mod for the version)" >&2
  exit 1
fi
echo "build-node: building $src into $out (the first build takes a while)" >&2
start=$(date +%s)
mkdir -p "$repo/.cache"
tmp=$(mktemp -d "$repo/.cache/node.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# The same flags and version stamp as build-controlplane.sh (so the packages both
# binaries share hit the same entries of Go's build cache).
version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' go.mod)
minor=$(echo "$version" | cut -d. -f2)
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags="$ldflags -X $pkg.gitTreeState=clean"
done
go build -mod=readonly -trimpath -ldflags="$ldflags" -o "$tmp/node" . >&2
CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags="-s -w" -o "$tmp/pause" ./pause >&2

# The sandbox image, as `podman save` writes one (docker-archive): one layer with
# /pause, a config naming it the entrypoint, a manifest naming the image.
img=$tmp/image
mkdir -p "$img/rootfs"
cp "$tmp/pause" "$img/rootfs/pause"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$img/rootfs" -cf "$img/layer.tar" pause
layer=$(sha256sum "$img/layer.tar" | cut -d' ' -f1)
mkdir -p "$img/archive/$layer"
mv "$img/layer.tar" "$img/archive/$layer/layer.tar"
cat >"$img/config.json" <<EOF
{"architecture":"$(go env GOARCH)","os":"linux","config":{"Entrypoint":["/pause"],"User":"65535:65535"},"rootfs":{"type":"layers","diff_ids":["sha256:$layer"]},"history":[{"created_by":"scripts/build-node.sh"}]}
EOF
config=$(sha256sum "$img/config.json" | cut -d' ' -f1)
mv "$img/config.json" "$img/archive/$config.json"
cat >"$img/archive/manifest.json" <<EOF
[{"Config":"$config.json","RepoTags":["$PAUSE_IMAGE"],"Layers":["$layer/layer.tar"]}]
EOF
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$img/archive" -cf "$tmp/pause-image.tar" .
echo "$PAUSE_IMAGE" >"$tmp/pause-image.name"
rm -rf "$img"

mkdir -p "$(dirname "$out")"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
# Older builds of other sources are of no further use.
for old in "$repo"/.cache/node/*; do
  [ "$old" = "$out" ] || rm -rf "$old"
done
echo "build-node: built in $(($(date +%s) - start))s" >&2
echo "$out"
