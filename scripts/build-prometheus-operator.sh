#!/usr/bin/env bash
# Builds the Prometheus Operator for the end-to-end tests from its own Go module
# (github.com/prometheus-operator/prometheus-operator, cmd/operator), and the
# Prometheus it configures (github.com/prometheus/prometheus, cmd/prometheus, the
# version the operator's module requires), pinned in e2e/prometheus-operator/go.mod
# and e2e/prometheus/go.mod, into
#   .cache/prometheus-operator/<hash of both go.mod and go.sum and this script>/
# and prints that folder. It holds `prometheus-operator`, `prometheus` and `crds/`,
# the operator module's own CustomResourceDefinitions (example/prometheus-operator-crd
# of the same version), which tests/e2e/test_monitoring_stack.py installs.
# (Debian's prometheus package is built without Kubernetes service discovery, which
# the operator's generated configuration needs: docs/testing-e2e.md.)
# Builds only when that folder is missing; Go's module cache (~/go/pkg/mod) and
# build cache (~/.cache/go-build) make a rebuild quick (the operator shares
# k8s.io/client-go and friends with e2e/controlplane).
#
# Needs Go (go.mod's `go` line or newer) and the Go module proxy on the first run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
src=$repo/e2e/prometheus-operator
cd "$src"
prom_src=$repo/e2e/prometheus
hash=$(cat go.mod go.sum "$prom_src/go.mod" "$prom_src/go.sum" "$repo/scripts/build-prometheus-operator.sh" |
  sha256sum | cut -c1-16)
out=$repo/.cache/prometheus-operator/$hash
if [ -x "$out/prometheus-operator" ] && [ -x "$out/prometheus" ] && [ -f "$out/crds/monitoring.coreos.com_prometheuses.yaml" ]; then
  echo "$out"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "build-prometheus-operator: Go is not installed (see e2e/prometheus-operator/go.mod for the version)" >&2
  exit 1
fi
module=github.com/prometheus-operator/prometheus-operator
version=$(awk -v m="$module" '$1 == m && $2 ~ /^v/ {print $2; exit}' go.mod)
[ -n "$version" ] || { echo "build-prometheus-operator: no $module line in go.mod" >&2; exit 1; }
echo "build-prometheus-operator: building $module@$version into $out" >&2
start=$(date +%s)
mkdir -p "$repo/.cache"
tmp=$(mktemp -d "$repo/.cache/prometheus-operator.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# -mod=readonly: go.mod/go.sum are the pin. The version stamp upstream's Makefile
# sets (github.com/prometheus/common/version), so the operator logs its version.
ldflags="-s -w -X github.com/prometheus/common/version.Version=${version#v}"
ldflags="$ldflags -X github.com/prometheus/common/version.Branch=release"
go build -mod=readonly -trimpath -ldflags="$ldflags" -o "$tmp/prometheus-operator" \
  "$module/cmd/operator" >&2
# Prometheus: module v0.X0Y.Z is Prometheus 3.Y.Z (v0.305.0 = 3.5.0). Without the
# `builtinassets` tag it serves the API but not the web UI's files.
cd "$prom_src"
prom_version=$(awk '$1 == "github.com/prometheus/prometheus" && $2 ~ /^v0\.3/ {print $2; exit}' go.mod)
[ -n "$prom_version" ] || { echo "build-prometheus-operator: no github.com/prometheus/prometheus v0.3xx line in go.mod" >&2; exit 1; }
minor=${prom_version#v0.3}
minor=${minor%%.*}
patch=${prom_version##*.}
pldflags="-s -w -X github.com/prometheus/common/version.Version=3.$((10#$minor)).$patch"
pldflags="$pldflags -X github.com/prometheus/common/version.Branch=release"
go build -mod=readonly -trimpath -ldflags="$pldflags" -o "$tmp/prometheus" \
  github.com/prometheus/prometheus/cmd/prometheus >&2
# The CRDs of the very version built, from the module in Go's module cache.
cd "$src"
moddir=$(go list -mod=readonly -m -f '{{.Dir}}' "$module")
mkdir -p "$tmp/crds"
cp "$moddir"/example/prometheus-operator-crd/monitoring.coreos.com_*.yaml "$tmp/crds/"
chmod -R u+w "$tmp/crds"
mkdir -p "$(dirname "$out")"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
for old in "$repo"/.cache/prometheus-operator/*; do
  [ "$old" = "$out" ] || rm -rf "$old"
done
echo "build-prometheus-operator: built in $(( $(date +%s) - start ))s" >&2
echo "$out"
