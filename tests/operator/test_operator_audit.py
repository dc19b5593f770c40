"""The operator's background audit, as a real process against the emulator.

What a user sees with kubectl: the violations annotation on the workload,
Warning Events about it, and nothing written to compliant objects.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from finops_devtools.devcluster.reviews import COMPLETE_LABELS, workload
from finops_operator.domain.workloads import WORKLOAD_KINDS
from tests.support.kube_emulator import KubeEmulator, eventually
from tests.support.operator_process import OperatorProcess, running_operator

VIOLATIONS = "finops.resilio.tech/violations"
KINDS = list(WORKLOAD_KINDS)


@pytest.fixture(scope="module")
def auditing(
    cluster: KubeEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    with running_operator(cluster, tmp_path_factory, {"mode": "audit"}) as process:
        yield process


def annotation(cluster: KubeEmulator, kind: str, namespace: str, name: str) -> Any:
    obj = cluster.get(kind, namespace, name)
    return ((obj or {}).get("metadata", {}).get("annotations") or {}).get(VIOLATIONS)


def events_about(cluster: KubeEmulator, namespace: str, name: str, reason: str) -> list[Any]:
    return [
        e
        for e in cluster.list("Event", namespace)
        if e["involvedObject"]["name"] == name and e["reason"] == reason
    ]


def patches_to(cluster: KubeEmulator, kind: str, namespace: str, name: str) -> int:
    return len(cluster.requests_to("PATCH", cluster.path(kind, namespace, name)))


@pytest.mark.parametrize("kind", KINDS)
def test_an_untagged_gpu_workload_gets_the_violations_annotation_and_one_warning_event(
    cluster: KubeEmulator, auditing: OperatorProcess, kind: str
) -> None:
    name = f"untagged-{kind.lower()}"
    labels = {**COMPLETE_LABELS, "resilio.tech/environment": "prod"}
    del labels["resilio.tech/team"]
    cluster.create(workload(kind, name=name, namespace="audit-a", labels=labels))
    value = eventually(lambda: annotation(cluster, kind, "audit-a", name))
    assert json.loads(value) == {
        "missing": ["resilio.tech/team"],
        "invalid": {"resilio.tech/environment": "prod"},
    }
    events = eventually(lambda: events_about(cluster, "audit-a", name, "MissingCostLabels"))
    assert len(events) == 1
    assert events[0]["type"] == "Warning"
    assert events[0]["involvedObject"]["kind"] == kind
    assert "missing resilio.tech/team" in events[0]["message"]


def test_the_annotation_is_written_only_when_the_violations_change(
    cluster: KubeEmulator, auditing: OperatorProcess
) -> None:
    cluster.create(workload("Deployment", name="churny", namespace="audit-b"))
    eventually(lambda: annotation(cluster, "Deployment", "audit-b", "churny"))
    assert patches_to(cluster, "Deployment", "audit-b", "churny") == 1

    cluster.patch("Deployment", "audit-b", "churny", {"spec": {"replicas": 3}})
    cluster.patch("Deployment", "audit-b", "churny", {"metadata": {"labels": {"tier": "gold"}}})
    time.sleep(1.5)  # room for the operator to react, if it wrongly would
    assert patches_to(cluster, "Deployment", "audit-b", "churny") == 3  # the two above + ours
    assert len(events_about(cluster, "audit-b", "churny", "MissingCostLabels")) == 1

    template_labels = {"spec": {"template": {"metadata": {"labels": {"resilio.tech/team": "x"}}}}}
    cluster.patch("Deployment", "audit-b", "churny", template_labels)
    eventually(
        lambda: (
            "resilio.tech/team"
            not in json.loads(annotation(cluster, "Deployment", "audit-b", "churny"))["missing"]
        )
    )
    assert len(events_about(cluster, "audit-b", "churny", "MissingCostLabels")) == 2


def test_fixing_the_labels_removes_the_annotation_and_says_so(
    cluster: KubeEmulator, auditing: OperatorProcess
) -> None:
    cluster.create(workload("Job", name="finetune", namespace="audit-c"))
    eventually(lambda: annotation(cluster, "Job", "audit-c", "finetune"))
    fix = {"spec": {"template": {"metadata": {"labels": dict(COMPLETE_LABELS)}}}}
    cluster.patch("Job", "audit-c", "finetune", fix)
    eventually(lambda: annotation(cluster, "Job", "audit-c", "finetune") is None)
    fixed = eventually(lambda: events_about(cluster, "audit-c", "finetune", "CostLabelsCompliant"))
    assert fixed[0]["type"] == "Normal"


def test_compliant_and_non_gpu_objects_are_never_patched(
    cluster: KubeEmulator, auditing: OperatorProcess
) -> None:
    quiet = []
    for kind in KINDS:
        for suffix, obj_labels, gpus in (("tagged", COMPLETE_LABELS, 1), ("cpu", None, None)):
            name = f"{suffix}-{kind.lower()}"
            cluster.create(
                workload(kind, name=name, namespace="audit-d", labels=obj_labels, gpus=gpus)
            )
            quiet.append((kind, name))
    # An untagged sentinel created last: once it is annotated, the others were seen too.
    cluster.create(workload("Pod", name="sentinel", namespace="audit-d"))
    eventually(lambda: annotation(cluster, "Pod", "audit-d", "sentinel"))
    time.sleep(1.0)  # room for the operator to write, if it wrongly would
    for kind, name in quiet:
        assert patches_to(cluster, kind, "audit-d", name) == 0, (kind, name)
        annotations = cluster.get(kind, "audit-d", name)["metadata"].get("annotations") or {}
        assert not any(key.startswith("kopf.") for key in annotations), annotations
    assert cluster.list("Event", "audit-d") and all(
        e["involvedObject"]["name"] == "sentinel" for e in cluster.list("Event", "audit-d")
    )


def test_pods_their_owner_vouches_for_are_left_to_it_and_forged_claims_are_reported(
    cluster: KubeEmulator, auditing: OperatorProcess
) -> None:
    cluster.create(workload("ReplicaSet", name="llm-5d9", namespace="audit-e"))
    owner_uid = cluster.get("ReplicaSet", "audit-e", "llm-5d9")["metadata"]["uid"]
    eventually(lambda: annotation(cluster, "ReplicaSet", "audit-e", "llm-5d9"))

    def claiming(name: str, uid: str) -> dict[str, Any]:
        pod = workload("Pod", name=name, namespace="audit-e")
        pod["metadata"]["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "llm-5d9",
                "uid": uid,
                "controller": True,
            }
        ]
        return pod

    cluster.create(claiming("llm-5d9-abcde", owner_uid))
    cluster.create(claiming("forged", "not-the-owners-uid"))  # issue 19: judged on its own
    cluster.create(workload("Pod", name="sentinel", namespace="audit-e"))
    eventually(lambda: annotation(cluster, "Pod", "audit-e", "sentinel"))
    eventually(lambda: annotation(cluster, "Pod", "audit-e", "forged"))
    time.sleep(1.0)  # room for the operator to write, if it wrongly would
    assert patches_to(cluster, "Pod", "audit-e", "llm-5d9-abcde") == 0


def test_violations_are_exported_by_namespace_and_kind(
    cluster: KubeEmulator, auditing: OperatorProcess
) -> None:
    for name in ("a", "b"):
        cluster.create(workload("StatefulSet", name=name, namespace="audit-f"))
    series = 'finops_label_violations{kind="StatefulSet",namespace="audit-f"}'
    eventually(lambda: f"{series} 2.0" in auditing.metrics())
    cluster.delete("StatefulSet", "audit-f", "a")
    eventually(lambda: f"{series} 1.0" in auditing.metrics())


def test_off_mode_in_a_namespace_leaves_its_workloads_alone(
    cluster: KubeEmulator, auditing: OperatorProcess
) -> None:
    cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "audit-off", "labels": {"finops.resilio.tech/mode": "off"}},
        }
    )
    time.sleep(0.5)  # the namespace event reaches the index before the workload's
    cluster.create(workload("Deployment", name="free", namespace="audit-off"))
    cluster.create(workload("Pod", name="sentinel", namespace="audit-g"))
    eventually(lambda: annotation(cluster, "Pod", "audit-g", "sentinel"))
    time.sleep(1.0)  # room for the operator to write, if it wrongly would
    assert patches_to(cluster, "Deployment", "audit-off", "free") == 0


def test_an_exempt_workload_gets_one_exempted_event_and_is_counted(
    cluster: KubeEmulator, auditing: OperatorProcess
) -> None:
    reason = "vendor-paid benchmark (FIN-2211)"
    annotations = {
        "finops.resilio.tech/exempt": "true",
        "finops.resilio.tech/exempt-reason": reason,
    }
    for name in ("bench-a", "bench-b"):
        cluster.create(workload("Job", name=name, namespace="audit-h", annotations=annotations))
    series = 'finops_label_exemptions{kind="Job",namespace="audit-h"}'
    eventually(lambda: f"{series} 2.0" in auditing.metrics())
    events = eventually(lambda: events_about(cluster, "audit-h", "bench-a", "CostLabelsExempted"))
    assert events[0]["type"] == "Normal"
    assert events[0]["message"].endswith(f"finops.resilio.tech/exempt: {reason}")
    cluster.patch("Job", "audit-h", "bench-a", {"metadata": {"labels": {"tier": "gold"}}})
    time.sleep(1.0)  # room for the operator to react, if it wrongly would
    assert len(events_about(cluster, "audit-h", "bench-a", "CostLabelsExempted")) == 1
    assert annotation(cluster, "Job", "audit-h", "bench-a") is None
    cluster.delete("Job", "audit-h", "bench-a")
    eventually(lambda: f"{series} 1.0" in auditing.metrics())
