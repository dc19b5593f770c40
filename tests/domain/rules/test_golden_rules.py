"""Golden files: each policy in tests/golden/policies/ renders exactly into tests/golden/rules/.

After a deliberate change: `.venv/bin/python -m tests.golden.regenerate`, then review
`git diff tests/golden` (docs/rules.md).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.golden.regenerate import RULES, expected_rules, write_rule_groups
from tests.support.crd_schema import PROMETHEUS_RULE_CRD, upstream_crd, validate_against_crd
from tests.support.tools import needs_tool

EXPECTED = expected_rules()
PROMTOOL = shutil.which("promtool")


@pytest.mark.parametrize("path", sorted(EXPECTED), ids=lambda path: path.name)
def test_the_golden_rules_are_what_rendering_produces(path: Path) -> None:
    assert path.exists(), f"{path} is missing: run .venv/bin/python -m tests.golden.regenerate"
    assert path.read_text(encoding="utf-8") == EXPECTED[path], (
        f"{path.name} differs from what rendering produces now; if the change is deliberate, "
        "run .venv/bin/python -m tests.golden.regenerate and review git diff tests/golden"
    )


def test_no_golden_rule_file_is_left_without_its_policy() -> None:
    assert set(RULES.glob("*.yaml")) == set(EXPECTED)


@needs_tool("promtool")
def test_promtool_accepts_every_golden_rule_file(tmp_path: Path) -> None:
    files = write_rule_groups(tmp_path)
    result = subprocess.run(
        [str(PROMTOOL), "check", "rules", *[str(file) for file in files]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", sorted(EXPECTED), ids=lambda path: path.name)
def test_every_golden_prometheus_rule_is_valid_under_the_upstream_crd(path: Path) -> None:
    crd = upstream_crd(PROMETHEUS_RULE_CRD.name)
    validate_against_crd(yaml.safe_load(path.read_text(encoding="utf-8")), crd)
