"""promtool unit tests: each alert fires on its planted condition and stays silent without it.

The files under tests/promtool/ load the golden rule files (tests/golden/rules/,
turned into the plain `groups:` files promtool reads) and plant series as the
operator, dcgm-exporter and kube-state-metrics export them, including two
operator replicas and scrape target labels.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from finops_operator.domain import conventions
from tests.golden.regenerate import write_rule_groups
from tests.support.paths import TESTS
from tests.support.tools import needs_tool

PROMTOOL = shutil.which("promtool")
PROMTOOL_TESTS = sorted((TESTS / "promtool").glob("*_test.yaml"))
ALERT_NAMES = (
    conventions.ALERT_SPEND_ANOMALY,
    conventions.ALERT_BUDGET_THRESHOLD,
    conventions.ALERT_BUDGET_FORECAST,
    conventions.ALERT_GPU_IDLE,
    conventions.ALERT_GPU_RETRY_LOOP,
)


def run_promtool_test(test_file: Path, folder: Path) -> subprocess.CompletedProcess[str]:
    write_rule_groups(folder)
    shutil.copy(test_file, folder / test_file.name)
    return subprocess.run(
        [str(PROMTOOL), "test", "rules", test_file.name],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@needs_tool("promtool")
@pytest.mark.parametrize("test_file", PROMTOOL_TESTS, ids=lambda path: path.stem)
def test_the_rules_pass_their_promtool_unit_tests(test_file: Path, tmp_path: Path) -> None:
    result = run_promtool_test(test_file, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_proven_to_fire_by_some_promtool_test() -> None:
    fired = set()
    for test_file in PROMTOOL_TESTS:
        for test in yaml.safe_load(test_file.read_text(encoding="utf-8"))["tests"]:
            for case in test.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    fired.add(case["alertname"])
    assert fired == set(ALERT_NAMES)
