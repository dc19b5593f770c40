#!/usr/bin/env bash
# Proves that requirements.lock installs on its own, as the Dockerfile installs it:
# a fresh virtual environment without pip, `--no-deps --require-hashes
# --only-binary=:all: -r requirements.lock`, then the project's wheel with --no-deps,
# then `pip check` (every dependency of every package is in the lock, in a version
# it accepts) and a start of the command line. Needs PyPI; takes about a minute.
#
#   scripts/check_lock.sh            check the lock
#   scripts/check_lock.sh --update   regenerate it from pyproject.toml (pip-tools, in a
#                                    throwaway environment), then check it
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if [[ "${1:-}" == "--update" ]]; then
    "$PYTHON" -m venv "$WORK/tools"
    "$WORK/tools/bin/pip" install --quiet pip-tools
    (cd "$ROOT" && CUSTOM_COMPILE_COMMAND="scripts/check_lock.sh --update" \
        "$WORK/tools/bin/pip-compile" --quiet --generate-hashes --strip-extras --allow-unsafe \
        --no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml)
    echo "requirements.lock regenerated"
fi

"$PYTHON" -m venv --without-pip "$WORK/venv"
PIP=("$PYTHON" -m pip --disable-pip-version-check --python "$WORK/venv/bin/python")
"${PIP[@]}" install --quiet --no-deps --require-hashes --only-binary=:all: \
    -r "$ROOT/requirements.lock"
"$PYTHON" -m pip --disable-pip-version-check wheel --quiet --no-deps --wheel-dir "$WORK/wheels" "$ROOT"
"${PIP[@]}" install --quiet --no-deps "$WORK"/wheels/finops_operator-*.whl
"${PIP[@]}" check
"$WORK/venv/bin/finops-operator" --help >/dev/null
"$WORK/venv/bin/python" -c 'import finops_operator.operator, finops_operator.cli'
echo "requirements.lock: $(grep -c '==' "$ROOT/requirements.lock") pinned packages install with --no-deps; pip check passes"
