#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine: Debian's prometheus
# package (prometheus + promtool, used by the tests and the demo), Debian's
# chromium (the showback page's browser test), and a virtualenv in .venv with the
# project, its test extra and the development tools (devtools/pyproject.toml). Safe
# to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "bootstrap: installing Debian's prometheus package" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    # The package starts a system service; the tests start their own Prometheus.
    (systemctl stop prometheus || service prometheus stop || pkill -x prometheus) >/dev/null 2>&1 || true
  else
    echo "bootstrap: please install Debian's prometheus package (sudo apt-get install prometheus)" >&2
    exit 1
  fi
fi

# Debian's chromium: the showback HTML is tested as a browser lays it out
# (tests/views/test_showback_in_browser.py, headless, no display needed).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "bootstrap: installing Debian's chromium package" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "bootstrap: chromium is missing (sudo apt-get install --no-install-recommends chromium);" \
      "the showback's browser test will be skipped" >&2
  fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# The operator (with the test tools) and the development tools, a distribution of their
# own (devtools/pyproject.toml), both editable from src/.
stamp=.venv/.installed-$(cat pyproject.toml devtools/pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[test]' -e ./devtools
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# The upstream CRDs the tests validate against (PrometheusRule, ServiceMonitor,
# PolicyReport, OpenReports), from their Go modules at pinned versions, into .cache/.
scripts/fetch-upstream-crds.sh >/dev/null

# The FinOps Foundation's focus-validator, in its own virtualenv (.venv-focus), for
# the FOCUS export's conformance test.
scripts/focus-validator.sh
