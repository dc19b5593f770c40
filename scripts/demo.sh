#!/usr/bin/env bash
# Runs the whole product on one machine: `finops-operator demo` (an emulated
# Kubernetes API, a real Prometheus over simulated GPU usage, the operator), after
# installing what it needs with scripts/bootstrap.sh. Arguments go to the demo,
# e.g. scripts/demo.sh --keep, scripts/demo.sh --days 20 --hold.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/finops-operator demo "$@"
