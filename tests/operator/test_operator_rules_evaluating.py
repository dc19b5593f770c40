"""RulesEvaluating with the operator as a real process and a real Prometheus.

The Prometheus first evaluates no rules at all (as when its ruleSelector does not
select the operator's PrometheusRules): every CostPolicy must say
RulesEvaluating=False and Ready=False, naming the rule labels. Then it loads the
very recording rules the operator wrote to the API: both turn True.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from finops_operator.domain.rules.prometheus_rule import rule_groups_file
from tests.support.crd_schema import validate_against_crd
from tests.support.kube_emulator import KubeEmulator, eventually
from tests.support.operator_process import OperatorProcess, running_operator
from tests.support.paths import ROOT
from tests.support.prometheus_server import PrometheusServer, needs_prometheus

pytestmark = needs_prometheus

COSTPOLICY_CRD = ROOT / "crds" / "costpolicies.finops.resilio.tech.yaml"
RULES_FILE = "finops-rules.yaml"
# Rules evaluated every second, so the heartbeat appears at once after a reload.
CONFIG = f"""\
global:
  scrape_interval: 1m
  evaluation_interval: 1s
rule_files: [{RULES_FILE}]
"""


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    workdir = tmp_path_factory.mktemp("prometheus")
    (workdir / RULES_FILE).write_text("groups: []\n")
    server = PrometheusServer(workdir, config=CONFIG)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def operator(
    cluster: KubeEmulator, prometheus: PrometheusServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    config = {
        "mode": "audit",
        "prometheus": {"url": prometheus.url, "rulesCheckSeconds": 1},
        "ruleLabels": {"release": "monitoring"},
        # a central FinOps namespace whose policies may act on every team
        "costPolicies": {"allowedTeams": {"finops": ["*"]}},
    }
    with running_operator(cluster, tmp_path_factory, config) as process:
        yield process


def condition(cluster: KubeEmulator, kind: str) -> dict[str, Any] | None:
    live = cluster.get("CostPolicy", "finops", "budget")
    for found in ((live or {}).get("status") or {}).get("conditions") or []:
        if found["type"] == kind:
            return dict(found)
    return None


def test_a_policy_says_when_prometheus_does_not_evaluate_its_rules_and_when_it_does(
    cluster: KubeEmulator, prometheus: PrometheusServer, operator: OperatorProcess
) -> None:
    cluster.create(
        {
            "apiVersion": "finops.resilio.tech/v1alpha1",
            "kind": "CostPolicy",
            "metadata": {"name": "budget", "namespace": "finops", "generation": 1},
            "spec": {"selector": {"team": "search"}, "budget": {"monthly": 1000}},
        }
    )
    evaluating = eventually(
        lambda: (c := condition(cluster, "RulesEvaluating")) and c["status"] == "False" and c
    )
    assert evaluating["reason"] == "RecordingRulesNotEvaluated"
    assert "release=monitoring" in evaluating["message"]
    assert "ruleSelector" in evaluating["message"]
    ready = condition(cluster, "Ready")
    assert ready is not None and ready["status"] == "False"
    assert ready["reason"] == "RecordingRulesNotEvaluated"
    validate_against_crd(cluster.get("CostPolicy", "finops", "budget"), COSTPOLICY_CRD)

    # Prometheus now loads the recording rules the operator wrote, as they are stored.
    written = eventually(
        lambda: cluster.get("PrometheusRule", "finops-system", "finops-recording-rules")
    )
    assert written["metadata"]["labels"]["release"] == "monitoring"
    rules_path: Path = prometheus.workdir / RULES_FILE
    rules_path.write_text(yaml.safe_dump(rule_groups_file(written)))
    prometheus.reload()

    started = time.monotonic()
    evaluating = eventually(
        lambda: (c := condition(cluster, "RulesEvaluating")) and c["status"] == "True" and c,
        timeout=60,
    )
    assert evaluating["reason"] == "HeartbeatFound"
    ready = condition(cluster, "Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("True", "RulesApplied")
    assert time.monotonic() - started < 60
