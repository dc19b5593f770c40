#!/usr/bin/env bash
# The test command: installs what it needs, then lint, format check, types, import contracts,
# tests (tests/e2e included: a real control plane, see docs/testing-e2e.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
# Thanos, for the fleet tests (tests/e2e/test_fleet.py, tests/cli/test_thanos_fleet.py):
# its cold build takes minutes (6 on 2 quiet cores, 20 to 37 on a loaded machine), so it
# runs in the background at the lowest CPU priority while everything below runs, on
# the CPU the rest leaves idle (pytest runs on one core). The fleet tests come last and wait for it
# (tests/support/tools.py); it is stopped if the tests end first.
mkdir -p .cache
FINOPS_THANOS_BUILD_LOG=$PWD/.cache/thanos-build.log
export FINOPS_THANOS_BUILD_LOG
# setsid: a process group of its own, to stop it whole. A new session is also a new
# scheduler autogroup, which would share the CPU equally with this one whatever the
# nice value; the autogroup's own nice (/proc/self/autogroup) keeps the build last.
setsid sh -c 'echo 19 >/proc/self/autogroup 2>/dev/null; exec nice -n 19 scripts/build-thanos.sh' \
  >/dev/null 2>"$FINOPS_THANOS_BUILD_LOG" &
thanos_build=$!
trap 'kill -- -"$thanos_build" 2>/dev/null || true' EXIT
# The Kubernetes control plane of tests/e2e (docs/testing-e2e.md): built once, cached.
scripts/build-controlplane.sh >/dev/null
# Its worker node (kubelet, kube-scheduler) for tests/e2e/test_operator_pod.py: cached too.
# (The node's Debian packages and the image come with `E2E_OPERATOR_AS=pod e2e-cluster.sh up`.)
scripts/build-node.sh >/dev/null
# The Prometheus Operator of tests/e2e/test_monitoring_stack.py, from its Go module: cached too.
scripts/build-prometheus-operator.sh >/dev/null
# kwok, which keeps tests/e2e/test_dra.py's fake GPU nodes Ready and runs their pods: cached too.
scripts/build-kwok.sh >/dev/null
# Helm v4 for the chart tests (tests/install/test_helm_chart.py, tests/e2e/test_helm_chart.py).
scripts/build-helm.sh >/dev/null
# The operator's image, run by tests/install/test_image.py (and the e2e node): podman, cached.
FINOPS_OPERATOR_IMAGE=$(scripts/build-image.sh)
export FINOPS_OPERATOR_IMAGE
.venv/bin/ruff check src tests bench scripts
.venv/bin/ruff format --check src tests bench scripts
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/pytest "$@"
