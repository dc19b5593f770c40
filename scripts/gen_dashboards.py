"""Rewrites the repository's dashboards: manifests/dashboards/ and the Helm chart's copies.

The dashboards are a view of the package (`finops-operator render --dashboards`,
src/finops_operator/views/dashboards.py); this only says where the repository keeps
them for the built-in configuration. `--check` exits 1 when a committed file differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from finops_operator.cli import main

ROOT = Path(__file__).resolve().parent.parent
# The Helm chart carries copies of the ConfigMaps (tests/install/test_helm_chart.py checks them).
FOLDERS = (
    ROOT / "manifests" / "dashboards",
    ROOT / "charts" / "finops-operator" / "files" / "dashboards",
)


def regenerate(check: bool) -> int:
    code = main(["render", "--dashboards", "--out", str(FOLDERS[0]), *(["--check"] * check)])
    if code and not check:
        return code
    for name in ("leadership.yaml", "engineering.yaml"):
        committed = (FOLDERS[0] / name).read_text(encoding="utf-8")
        copy = FOLDERS[1] / name
        if check and copy.read_text(encoding="utf-8") != committed:
            print(f"{copy} is out of date: run scripts/gen_dashboards.py", file=sys.stderr)
            code = 1
        elif not check:
            copy.write_text(committed, encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(regenerate("--check" in sys.argv[1:]))
