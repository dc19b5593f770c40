#!/usr/bin/env bash
# Installs the FinOps Foundation's focus-validator (FOCUS 1.2 rules) in .venv-focus,
# for tests/domain/costs/test_focus_validator.py. Safe to run again.
#
# focus-validator 2.2.1 declares Python >= 3.12, and this project runs on Debian's
# Python 3.11. Its code runs on 3.11 but for one f-string that puts a backslash in
# an expression (a 3.12 feature); we install the release's sdist with that one line
# rewritten to an equivalent 3.11 expression, the dependencies pinned in
# scripts/focus-validator-requirements.txt (versions it accepts). Nothing else of
# the validator or its rules (model-1.2.0.1.json) is changed.
# `--no-binary` names the validator alone: with `:all:` pip also built the sdist's build
# requirements from source (Cython among them), over ten minutes with a cold pip cache.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=2.2.1
SHA256=0b9560ec8b7e36b5cf0c9685bb7ed2fa6f0e734cb8a14eb176a2bff5369cabcb
VENV=.venv-focus
stamp=$VENV/.installed-$VERSION-$(sha256sum scripts/focus-validator-requirements.txt | cut -c1-16)
[ -f "$stamp" ] && exit 0

PYTHON=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$VENV/bin/pip" download -q --no-deps --no-binary=focus-validator --ignore-requires-python \
  "focus-validator==$VERSION" -d "$work"
echo "$SHA256  $work/focus_validator-$VERSION.tar.gz" | sha256sum -c --quiet
tar -xzf "$work/focus_validator-$VERSION.tar.gz" -C "$work"
src=$work/focus_validator-$VERSION
"$VENV/bin/python" - "$src/focus_validator/config_objects/focus_to_duckdb_converter.py" <<'PY'
import sys

path = sys.argv[1]
text = open(path, encoding="utf-8").read()
old = r"""f"'{k.replace('\"', '\"\"')}'" for k in ignore_keys"""
new = """"'" + k.replace('"', '""') + "'" for k in ignore_keys"""
if old not in text:
    sys.exit(f"focus-validator: the line to rewrite for Python 3.11 is not in {path}")
open(path, "w", encoding="utf-8").write(text.replace(old, new))
PY
"$VENV/bin/pip" install -q -r scripts/focus-validator-requirements.txt
"$VENV/bin/pip" install -q --no-deps --ignore-requires-python "$src"
touch "$stamp"
