"""Golden files: each configuration tests/golden/admission/in-*.yaml renders into out-*.yaml.

After a deliberate change: `.venv/bin/python -m tests.golden.regenerate`, then review
`git diff tests/golden`. Beside the text comparison, the policies as the golden file
holds them are evaluated (cel-python) and must decide as the webhook does under that
configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from finops_devtools.devcluster.reviews import COMPLETE_LABELS, workload
from finops_operator.domain.config import parse_config
from finops_operator.domain.policies.admission import Outcome, validate
from finops_operator.domain.policies.label_check import LabelPolicy
from tests.domain.policies.test_admission_policy import _request, as_sent, evaluate
from tests.golden.regenerate import ADMISSION, expected_admission

EXPECTED = expected_admission()


@pytest.mark.parametrize("path", sorted(EXPECTED), ids=lambda path: path.name)
def test_the_golden_admission_policies_are_what_rendering_produces(path: Path) -> None:
    assert path.exists(), f"{path} is missing: run .venv/bin/python -m tests.golden.regenerate"
    assert path.read_text(encoding="utf-8") == EXPECTED[path], (
        f"{path.name} differs from what rendering produces now; if the change is deliberate, "
        "run .venv/bin/python -m tests.golden.regenerate and review git diff tests/golden"
    )


def test_no_golden_output_is_left_without_its_configuration() -> None:
    assert set(ADMISSION.glob("out-*.yaml")) == set(EXPECTED)
    assert len(EXPECTED) >= 2


def _golden(name: str) -> dict[tuple[str, str], dict[str, Any]]:
    docs = yaml.safe_load_all((ADMISSION / name).read_text(encoding="utf-8"))
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}


def test_the_custom_golden_decides_as_the_webhook_under_its_configuration() -> None:
    config = parse_config(yaml.safe_load((ADMISSION / "in-custom.yaml").read_text()))
    policy = LabelPolicy(config)
    golden = _golden("out-custom.yaml")
    assert not any(kind.startswith("Mutating") for kind, _ in golden)  # mutating: false
    deny = golden[("ValidatingAdmissionPolicy", "finops-cost-labels")]
    warn = golden[("ValidatingAdmissionPolicy", "finops-cost-labels-warnings")]
    good = {**COMPLETE_LABELS, "resilio.tech/team": "ml-ranking", "acme.io/project": "apollo"}
    cases = [
        (workload("Job", labels=good, resource="example.com/tpu-v5e"), "enforce"),
        (workload("Job", labels=COMPLETE_LABELS, resource="example.com/tpu-v5e"), "enforce"),
        (workload("Deployment", labels=COMPLETE_LABELS, resource="nvidia.com/mig-1g.5gb"), None),
        (workload("Pod", labels=good, resource="amd.com/gpu"), "enforce"),
        (workload("CronJob", namespace="gpu-burn-in", resource="nvidia.com/gpu"), "enforce"),
    ]
    outcomes = set()
    for obj, mode in cases:
        sent = as_sent(obj) or {}
        labels = {} if mode is None else {"finops.resilio.tech/mode": mode}
        namespace = sent["metadata"]["namespace"]
        decision = validate(_request(sent, None, "CREATE"), policy, {namespace: labels})
        outcomes.add(decision.outcome)
        denied = evaluate(deny, sent, None, labels)
        assert denied == ([decision.message] if decision.outcome is Outcome.DENIED else [])
        assert sorted(evaluate(warn, sent, None, labels)) == sorted(decision.warnings)
    assert outcomes == {
        Outcome.COMPLIANT,
        Outcome.DENIED,
        Outcome.WARNED,
        Outcome.SKIPPED,
        Outcome.EXEMPT,
    }
