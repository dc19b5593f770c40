"""Two operator replicas against one API: one writes, both serve, one certificate.

The install runs two replicas with `--webhook-secret`; this is that setup, with
real processes against the emulator.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from finops_devtools.devcluster.reviews import COMPLETE_LABELS, review, workload
from tests.support.crd_schema import upstream_crd, validate_against_crd
from tests.support.kube_emulator import KubeEmulator, eventually
from tests.support.operator_process import OperatorProcess
from tests.support.paths import ROOT

WEBHOOKS = ROOT / "manifests" / "base" / "webhooks.yaml"
SECRET = "finops-operator-webhook-tls"
REPLICA_ARGS = ("--webhook-secret", SECRET, "--lease-seconds", "3")


@pytest.fixture
def cluster() -> Iterator[KubeEmulator]:
    emulator = KubeEmulator().start()
    for doc in yaml.safe_load_all(WEBHOOKS.read_text()):
        if doc and doc["kind"].endswith("WebhookConfiguration"):
            emulator.create(doc)
    yield emulator
    emulator.stop()


@pytest.fixture
def replicas(cluster: KubeEmulator, tmp_path: Path) -> Iterator[list[OperatorProcess]]:
    started = []
    try:
        for index in range(2):
            process = OperatorProcess(
                cluster,
                tmp_path / f"replica-{index}",
                {"mode": "audit"},
                own_cert=False,
                extra_args=REPLICA_ARGS,
            )
            started.append(process.start())
        yield started
    finally:
        for process in started:
            process.stop()


def leader_flags(replicas: list[OperatorProcess]) -> list[float]:
    flags = []
    for process in replicas:
        lines = process.metrics().splitlines()
        line = next(text for text in lines if text.startswith("finops_leader "))
        flags.append(float(line.split()[1]))
    return flags


def warnings_about(cluster: KubeEmulator, namespace: str, name: str) -> list[Any]:
    return [
        e
        for e in cluster.list("Event", namespace)
        if e["involvedObject"]["name"] == name and e["reason"] == "MissingCostLabels"
    ]


def test_both_replicas_serve_one_certificate_whose_ca_is_in_the_webhook_configurations(
    cluster: KubeEmulator, replicas: list[OperatorProcess]
) -> None:
    secret = cluster.get("Secret", "finops-system", SECRET)
    ca = base64.b64decode(secret["data"]["ca.crt"])
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        configuration = eventually(
            lambda k=kind: (
                (c := cluster.get(k, None, "finops-operator"))
                and all(h["clientConfig"].get("caBundle") for h in c["webhooks"])
                and c
            )
        )
        for hook in configuration["webhooks"]:
            assert base64.b64decode(hook["clientConfig"]["caBundle"]) == ca
    trusted = ssl.create_default_context(cadata=ca.decode())
    for process in replicas:
        process.tls = trusted  # verify against the Secret's CA, as the API server would
        answer = process.review("/validate", review(workload("Pod")))
        assert answer["allowed"] is True and answer["warnings"]


def test_one_replica_leads_and_writes_each_change_once(
    cluster: KubeEmulator, replicas: list[OperatorProcess]
) -> None:
    assert sorted(
        eventually(lambda: sum(leader_flags(replicas)) == 1 and leader_flags(replicas))
    ) == [
        0.0,
        1.0,
    ]
    cluster.create(workload("Deployment", name="untagged", namespace="team-a"))
    eventually(lambda: warnings_about(cluster, "team-a", "untagged"))
    time.sleep(2)  # room for the other replica to write it again, if it wrongly would
    assert len(warnings_about(cluster, "team-a", "untagged")) == 1
    annotation_writes = cluster.requests_to(
        "PATCH", cluster.path("Deployment", "team-a", "untagged")
    )
    assert len(annotation_writes) == 1


def test_one_replica_writes_the_policy_report_of_a_namespace_once(
    cluster: KubeEmulator, replicas: list[OperatorProcess]
) -> None:
    eventually(lambda: sum(leader_flags(replicas)) == 1)
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-c"}})
    for i in range(20):
        labels = COMPLETE_LABELS if i % 2 else None
        cluster.create(workload("Job", name=f"job-{i:02d}", namespace="team-c", labels=labels))

    def complete() -> Any:
        report = cluster.get("PolicyReport", "team-c", "finops-labels")
        summary = (report or {}).get("summary") or {}
        return report if summary.get("pass") == 10 and summary.get("fail") == 10 else None

    report = eventually(complete, timeout=30)
    assert [r["resources"][0]["name"] for r in report["results"]] == [
        f"job-{i:02d}" for i in range(20)
    ]
    time.sleep(3)  # both replicas had time to write it again, if they were going to
    assert len(cluster.requests_to("POST", cluster.path("PolicyReport", "team-c"))) == 1
    validate_against_crd(report, upstream_crd("wgpolicyk8s.io_policyreports.yaml"))


def test_the_standby_takes_over_when_the_leader_stops(
    cluster: KubeEmulator, replicas: list[OperatorProcess]
) -> None:
    eventually(lambda: sum(leader_flags(replicas)) == 1)
    leader = replicas[leader_flags(replicas).index(1.0)]
    standby = replicas[1 - replicas.index(leader)]
    leader.stop()
    eventually(lambda: leader_flags([standby]) == [1.0], timeout=20)
    cluster.create(workload("Job", name="after-failover", namespace="team-b"))
    annotated = eventually(
        lambda: (
            cluster.get("Job", "team-b", "after-failover")["metadata"].get("annotations") or {}
        ).get("finops.resilio.tech/violations")
    )
    assert json.loads(annotated)["missing"]
