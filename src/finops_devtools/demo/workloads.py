"""The sample cluster content of `finops-operator demo`: namespaces, workloads, a CostPolicy.

Plain data. Each sample says what it shows and what the admission chain must
make of it, so the demo (and its test) can tell a surprise from the expected.
Teams are those of the simulated cluster (`simulator`), so the workloads, the
policy and the CostReports tell one story.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Literal

from finops_operator.domain import conventions
from finops_operator.domain.workloads import WorkloadKind

TEAM: Final = conventions.TEAM_LABEL
FEATURE: Final = conventions.FEATURE_LABEL
ENVIRONMENT: Final = conventions.ENVIRONMENT_LABEL
WORKLOAD_TYPE: Final = conventions.WORKLOAD_TYPE_LABEL
COST_CENTER: Final = conventions.COST_CENTER_LABEL

ENFORCED_NAMESPACE: Final = "search"  # the cluster default mode: enforce
INHERITING_NAMESPACE: Final = "recsys"  # carries the five cost labels
AUDITED_NAMESPACE: Final = "research-sandbox"  # labelled finops.resilio.tech/mode=audit
POLICY_TEAM: Final = "search-platform"
GPU_NODE: Final = "gpu-h100-0"
GPU_MODEL: Final = "NVIDIA-H100-80GB-HBM3"

Expect = Literal["created", "denied", "warned", "inherited", "ignored"]


@dataclass(frozen=True)
class Sample:
    """One `kubectl apply`: the object, what it shows, and the expected outcome."""

    obj: dict[str, Any]
    shows: str
    expect: Expect

    @property
    def namespace(self) -> str:
        return str(self.obj["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def file(self) -> str:
        """Where the demo writes the manifest, relative to its work directory."""
        return f"manifests/{self.namespace}/{self.obj['kind'].lower()}-{self.name}.yaml"


def namespaces() -> list[dict[str, Any]]:
    return [
        _namespace(ENFORCED_NAMESPACE, {}),
        _namespace(
            INHERITING_NAMESPACE,
            {
                TEAM: "recsys",
                FEATURE: "ranking",
                ENVIRONMENT: "production",
                WORKLOAD_TYPE: "training",
                COST_CENTER: "cc-2001",
            },
        ),
        _namespace(AUDITED_NAMESPACE, {conventions.MODE_NAMESPACE_LABEL: "audit"}),
    ]


def _namespace(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}},
    }


def _container(name: str, image: str, gpus: int) -> dict[str, Any]:
    limits: dict[str, Any] = {"cpu": "8", "memory": "64Gi"}
    if gpus:
        limits["nvidia.com/gpu"] = gpus
    return {
        "name": name,
        "image": image,
        "resources": {"requests": {"cpu": "4", "memory": "32Gi"}, "limits": limits},
    }


def _workload(
    kind: str,
    namespace: str,
    name: str,
    labels: dict[str, str],
    image: str,
    gpus: int = 1,
    replicas: int | None = None,
) -> dict[str, Any]:
    group = WorkloadKind(kind).group
    template: dict[str, Any] = {
        "metadata": {"labels": {"app": name, **labels}},
        "spec": {"containers": [_container(name, image, gpus)]},
    }
    obj: dict[str, Any] = {
        "apiVersion": f"{group}/v1" if group else "v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
    }
    if kind == "Pod":
        obj["metadata"]["labels"].update(labels)
        obj["spec"] = template["spec"]
    elif kind == "CronJob":
        template["spec"]["restartPolicy"] = "Never"
        obj["spec"] = {"schedule": "0 2 * * *", "jobTemplate": {"spec": {"template": template}}}
    elif kind == "Job":
        template["spec"]["restartPolicy"] = "Never"
        obj["spec"] = {"backoffLimit": 3, "template": template}
    else:
        obj["spec"] = {"selector": {"matchLabels": {"app": name}}, "template": template}
        if replicas is not None:
            obj["spec"]["replicas"] = replicas
        if kind == "StatefulSet":
            obj["spec"]["serviceName"] = name
    return obj


SEARCH_LABELS: Final = {
    TEAM: POLICY_TEAM,
    FEATURE: "semantic-search",
    ENVIRONMENT: "production",
    WORKLOAD_TYPE: "inference",
    COST_CENTER: "cc-1042",
}


def samples() -> list[Sample]:
    """The workloads the demo applies, in order."""
    return [
        Sample(
            _workload(
                "Deployment",
                ENFORCED_NAMESPACE,
                "semantic-search",
                SEARCH_LABELS,
                "vllm/vllm-openai:v0.6.3",
                replicas=2,
            ),
            "a GPU Deployment with all five cost labels",
            "created",
        ),
        Sample(
            _workload(
                "Job",
                ENFORCED_NAMESPACE,
                "llm-finetune",
                {TEAM: POLICY_TEAM, WORKLOAD_TYPE: "training"},
                "nvcr.io/nvidia/pytorch:24.05-py3",
                gpus=8,
            ),
            "a training Job missing three cost labels, in an enforce namespace",
            "denied",
        ),
        Sample(
            _workload(
                "CronJob",
                ENFORCED_NAMESPACE,
                "nightly-eval",
                {**SEARCH_LABELS, ENVIRONMENT: "prod", COST_CENTER: "1042", WORKLOAD_TYPE: "batch"},
                "ghcr.io/example/eval:1.4",
                gpus=1,
            ),
            "a CronJob whose labels have values the rules refuse",
            "denied",
        ),
        Sample(
            _workload(
                "Deployment",
                ENFORCED_NAMESPACE,
                "web-frontend",
                {},
                "nginx:1.27",
                gpus=0,
                replicas=3,
            ),
            "a Deployment without GPUs and without labels: never judged",
            "ignored",
        ),
        Sample(
            _workload(
                "Job",
                INHERITING_NAMESPACE,
                "ranker-train-0412",
                {},
                "nvcr.io/nvidia/pytorch:24.05-py3",
                gpus=4,
            ),
            "a training Job without cost labels, in a namespace that carries them",
            "inherited",
        ),
        Sample(
            _workload(
                "StatefulSet",
                AUDITED_NAMESPACE,
                "notebook-alice",
                {TEAM: "llm-core"},
                "jupyter/pytorch-notebook:cuda12-2024-05-20",
                replicas=1,
            ),
            "a notebook with only its team label, in an audit-mode namespace",
            "warned",
        ),
    ]


def sample_policy(budget: Decimal = Decimal("20000")) -> dict[str, Any]:
    """The CostPolicy the demo applies: alerts and a monthly budget for one team."""
    return {
        "apiVersion": f"{conventions.API_GROUP}/{conventions.API_VERSION}",
        "kind": conventions.COSTPOLICY_KIND,
        "metadata": {"name": POLICY_TEAM, "namespace": ENFORCED_NAMESPACE, "generation": 1},
        "spec": {
            "selector": {"team": POLICY_TEAM},
            "anomaly": {"threshold": 50, "baseline": "7d", "for": "15m", "minHourlyCost": 5},
            "budget": {
                "monthly": int(budget),
                "currency": "USD",
                "thresholds": [50, 80, 100],
                "forecast": True,
            },
            "idle": {"maxUtilization": 10, "for": "2h"},
            "retries": {"maxRestartsPerHour": 6},
            "alerting": {
                "severity": "warning",
                "ruleLabels": {"release": "kube-prometheus-stack"},
            },
        },
    }


def gpu_node() -> dict[str, Any]:
    """A node with 8 H100s, as GPU feature discovery and the device plugin label it."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": GPU_NODE,
            "labels": {"nvidia.com/gpu.product": GPU_MODEL, "nvidia.com/gpu.count": "8"},
        },
        "status": {
            "capacity": {"cpu": "192", "memory": "2Ti", "nvidia.com/gpu": "8"},
            "allocatable": {"cpu": "190", "memory": "2000Gi", "nvidia.com/gpu": "8"},
        },
    }


def running_pods(obj: dict[str, Any], node: str = GPU_NODE) -> list[dict[str, Any]]:
    """The running pods a controller makes of an admitted workload (one per replica).

    Each is owned by its controller (a Deployment's by its ReplicaSet), so the
    background audit leaves it to its owner, as in a real cluster.
    """
    kind = obj["kind"]
    meta = obj["metadata"]
    name = str(meta["name"])
    digest = f"{zlib.crc32(name.encode()):08x}"
    if kind in ("Pod", "CronJob"):
        return []  # a Pod is its own pod; a CronJob runs nothing until its schedule comes
    owner_kind, owner_name = kind, name
    if kind == "Deployment":
        owner_kind, owner_name = "ReplicaSet", f"{name}-{digest[:9]}"
    count = 1 if kind == "Job" else int(obj["spec"].get("replicas", 1))
    template = obj["spec"]["template"]
    pod_meta = template.get("metadata") or {}
    pods = []
    for index in range(count):
        suffix = str(index) if kind == "StatefulSet" else f"{digest[:2]}{index:03x}"
        owner = {
            "apiVersion": "apps/v1" if owner_kind == "ReplicaSet" else obj["apiVersion"],
            "kind": owner_kind,
            "name": owner_name,
            "uid": str(meta.get("uid", "")),
            "controller": True,
        }
        pods.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{owner_name}-{suffix}",
                    "namespace": meta["namespace"],
                    "labels": dict(pod_meta.get("labels") or {}),
                    "annotations": dict(pod_meta.get("annotations") or {}),
                    "ownerReferences": [owner],
                },
                "spec": {**template["spec"], "nodeName": node},
                "status": {"phase": "Running"},
            }
        )
    return pods
