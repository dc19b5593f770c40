"""The FOCUS export through the FinOps Foundation's focus-validator (FOCUS 1.2 rules).

`scripts/focus-validator.sh` (run by `scripts/bootstrap.sh`) installs focus-validator
2.2.1 in `.venv-focus`; see that script for the one-line Python 3.11 rewrite. The
export claims the applicability criteria of `focus.APPLICABILITY_CRITERIA`.

One leaf rule always fails, whatever the data: InvoiceId-C-003-C ("InvoiceId
nullability") is the OR of InvoiceId-C-004-C (MUST be null when the charge has no
invoice) and InvoiceId-C-005-C (MUST NOT be null when it has one); the validator
cannot know which applies, so it runs both on every row and one of them fails. The
composite passes; the test requires exactly that and nothing else failing.
"""

from __future__ import annotations

import re
import subprocess
from datetime import timedelta
from pathlib import Path

from finops_operator.domain import conventions
from finops_operator.domain.costs.focus import APPLICABILITY_CRITERIA, focus_rows
from finops_operator.domain.costs.focus13 import FOCUS_1_3_COLUMNS, focus13_rows
from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.showback import compute_costs
from finops_operator.domain.costs.trend import DayUsage
from finops_operator.domain.costs.usage import CapacityUsage, GpuUsage, TokenUsage
from finops_operator.views.report_formats import to_focus
from tests.domain.costs.prices import A100, H100, NOVEMBER, D, pricing
from tests.support.tools import FOCUS_VALIDATOR as VALIDATOR
from tests.support.tools import needs_tool

# Leaves of an OR that the validator runs on every row (see the docstring).
OR_LEAVES = {"InvoiceId-C-004-C": "InvoiceId-C-003-C"}

pytestmark = needs_tool("focus-validator")

GPU = [
    GpuUsage(
        "search", H100, D("120.25"), D("80.5"), "ranking", "production", "inference", "cc-100"
    ),
    GpuUsage("search", A100, D("33.333333"), None, "ranking", "staging", "training", "cc-200"),
    GpuUsage("vision", A100, D("250.125"), D("249"), "ocr", "production", "training", "cc-300"),
    GpuUsage(conventions.UNTAGGED, H100, D("7.5"), D("1.25")),
]
TOKENS = [
    TokenUsage("search", "gpt-4o", D(1_234_567)),
    TokenUsage("chat", "llama-3-70b", D(50_001)),
]
CAPACITY = [CapacityUsage(H100, D(720)), CapacityUsage(A100, D(720))]


def _validate(
    tmp_path: Path, csv_text: str, criteria: tuple[str, ...] = APPLICABILITY_CRITERIA
) -> tuple[dict[str, str], str]:
    data = tmp_path / "focus.csv"
    data.write_text(csv_text)
    where = "import focus_validator as f, os; print(os.path.dirname(os.path.dirname(f.__file__)))"
    site = subprocess.run(
        [str(VALIDATOR.parent / "python"), "-c", where], capture_output=True, text=True, check=True
    ).stdout.strip()
    # It reads its currency list by a path relative to its package's parent folder.
    done = subprocess.run(
        [
            str(VALIDATOR),
            "--data-file",
            str(data),
            "--block-download",
            "--validate-version",
            "1.2",
            "--applicability-criteria",
            ",".join(criteria),
            "--show-violations",
        ],
        capture_output=True,
        text=True,
        cwd=site,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = dict(
        re.findall(r"^\S+ (\S+-[CDA]-\d{3}-[MCO]): (PASS|FAIL|SKIPPED)", done.stdout, re.M)
    )
    assert results, done.stdout[-3000:]
    return results, done.stdout


def _check(results: dict[str, str], output: str) -> None:
    failed = {rule for rule, outcome in results.items() if outcome == "FAIL"}
    assert failed <= set(OR_LEAVES), output[-6000:]
    for parent in OR_LEAVES.values():
        assert results.get(parent) == "PASS", parent
    # Each mandatory column of FOCUS 1.2 is there (one presence rule per column,
    # CostAndUsage-D-005-M to D-068-M; D-000 to D-002 are composites it reports skipped).
    presence = [
        rule for rule in results if re.fullmatch(r"CostAndUsage-D-0(0[3-9]|[1-9]\d)-M", rule)
    ]
    assert len(presence) == 21 and all(results[rule] == "PASS" for rule in presence), presence
    checked = sum(1 for outcome in results.values() if outcome == "PASS")
    assert checked >= 150, f"only {checked} rules passed; the validator checked too little"


def test_a_month_passes_the_validator(tmp_path: Path) -> None:
    costs = compute_costs(
        period=NOVEMBER, pricing=pricing(), gpu_usage=GPU, token_usage=TOKENS, capacity=CAPACITY
    )
    csv_text = to_focus(focus_rows(costs, GPU, TOKENS, pricing()))
    _check(*_validate(tmp_path, csv_text))


def test_a_partial_month_with_undistributed_shared_cost_passes_the_validator(
    tmp_path: Path,
) -> None:
    # No GPU cost at all: the shared pool has no recipient and stays undistributed.
    through = Period(NOVEMBER.start, NOVEMBER.start.replace(day=10, hour=13))
    tokens = [TokenUsage("chat", "gpt-4o", D(10))]
    costs = compute_costs(period=through, pricing=pricing(), token_usage=tokens)
    assert costs.cluster.undistributed_cost > 0
    rows = focus_rows(costs, [], tokens, pricing(), billing_period=NOVEMBER)
    assert {row["x_CostComponent"] for row in rows} == {"tokens", "undistributed"}
    _check(*_validate(tmp_path, to_focus(rows)))


def test_a_focus_1_3_month_passes_the_rules_the_newest_validator_has(tmp_path: Path) -> None:
    """focus-validator 2.2.1, the newest on PyPI, knows FOCUS 1.2 rules only (its
    model-1.2.0.1.json; 1.3 would be a download from GitHub). The 1.3 export (daily
    rows, SubAccount, split allocation) passes all of them, SubAccount's included;
    the 1.3 columns are checked against the spec text in test_focus13.py."""
    first, second = (
        Period(NOVEMBER.start + timedelta(days=i), NOVEMBER.start + timedelta(days=i + 1))
        for i in range(2)
    )
    days = [DayUsage(first, gpu=GPU, capacity=CAPACITY), DayUsage(second, tokens=TOKENS)]
    costs = compute_costs(
        period=Period(first.start, second.end),
        pricing=pricing(),
        gpu_usage=GPU,
        token_usage=TOKENS,
        capacity=CAPACITY,
    )
    rows = focus13_rows(costs, GPU, TOKENS, pricing(), days=days, capacity=CAPACITY)
    assert {row["x_CostComponent"] for row in rows} == {"gpu", "tokens", "shared"}
    criteria = (*APPLICABILITY_CRITERIA, "SUB_ACCOUNT_SUPPORTED")
    results, output = _validate(tmp_path, to_focus(rows, FOCUS_1_3_COLUMNS), criteria)
    _check(results, output)
    assert results.get("SubAccountId-C-001-M") == "PASS", output[-3000:]
