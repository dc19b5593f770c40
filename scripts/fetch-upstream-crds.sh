#!/usr/bin/env bash
# Fetches the third-party CustomResourceDefinitions the tests check the operator's
# objects against (PrometheusRule, ServiceMonitor, PolicyReport, OpenReports) from
# the Go modules that publish them, at pinned versions, into
#   .cache/upstream-crds/
# and prints that folder. Nothing is copied into the repository: the pins live here
# and in e2e/prometheus-operator/go.mod (the Prometheus Operator the e2e suite runs,
# so that unit and e2e tests check against the very CRDs that operator serves).
#   github.com/prometheus-operator/prometheus-operator  example/prometheus-operator-crd/
#   github.com/kyverno/kyverno                          config/crds/policyreport/
#   github.com/openreports/reports-api                  config/crd/
# `go mod download` verifies each module against the checksum database (sum.golang.org
# through the proxy), so a changed upstream zip is refused. Safe to run again: only a
# change of the pins fetches anything (~3 s, a few MB, with Go's module cache cold).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
kyverno=github.com/kyverno/kyverno@v1.19.1
openreports=github.com/openreports/reports-api@v0.2.1
po_module=github.com/prometheus-operator/prometheus-operator
po_version=$(awk -v m="$po_module" '$1 == m && $2 ~ /^v/ {print $2; exit}' \
  "$repo/e2e/prometheus-operator/go.mod")
[ -n "$po_version" ] || { echo "fetch-upstream-crds: no $po_module line in e2e/prometheus-operator/go.mod" >&2; exit 1; }
prometheus_operator=$po_module@$po_version
out=$repo/.cache/upstream-crds
pins="$prometheus_operator $kyverno $openreports"
if [ -f "$out/.pins" ] && [ "$(cat "$out/.pins")" = "$pins" ]; then
  echo "$out"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "fetch-upstream-crds: Go is not installed (needed to fetch $pins)" >&2
  exit 1
fi
dir_of() {
  # Outside any module, so that no go.mod of the caller's is read or changed.
  (cd / && GOFLAGS=-mod=mod GO111MODULE=on go mod download -json "$1") |
    awk -F'"' '$2 == "Dir" {print $4}'
}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/upstream-crds.XXXXXX")
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
po_dir=$(dir_of "$prometheus_operator")
kyverno_dir=$(dir_of "$kyverno")
openreports_dir=$(dir_of "$openreports")
cp "$po_dir"/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml \
  "$po_dir"/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml "$tmp/"
cp "$kyverno_dir"/config/crds/policyreport/wgpolicyk8s.io_policyreports.yaml \
  "$kyverno_dir"/config/crds/policyreport/wgpolicyk8s.io_clusterpolicyreports.yaml "$tmp/"
cp "$openreports_dir"/config/crd/openreports.io_reports.yaml \
  "$openreports_dir"/config/crd/openreports.io_clusterreports.yaml "$tmp/"
chmod -R u+w "$tmp"
echo "$pins" >"$tmp/.pins"
mkdir -p "$repo/.cache"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "$out"
