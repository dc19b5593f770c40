"""AdmissionReviews and workloads shaped as the API server and users produce them (tests, bench)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from typing import Any, Final

from finops_operator.domain.workloads import WORKLOAD_KINDS

COMPLETE_LABELS = {
    "resilio.tech/team": "search-platform",
    "resilio.tech/feature": "semantic-search",
    "resilio.tech/environment": "production",
    "resilio.tech/workload-type": "inference",
    "resilio.tech/cost-center": "cc-1042",
}


def pod_spec(gpus: int | str | None = 1, resource: str = "nvidia.com/gpu") -> dict[str, Any]:
    limits: dict[str, Any] = {"cpu": "4", "memory": "16Gi"}
    if gpus is not None:
        limits[resource] = gpus
    return {
        "containers": [
            {
                "name": "server",
                "image": "vllm/vllm-openai:v0.6.3",
                "args": ["--model", "meta-llama/Llama-3.1-8B-Instruct"],
                "resources": {"limits": limits, "requests": {"cpu": "2", "memory": "16Gi"}},
            }
        ]
    }


def workload(
    kind: str,
    name: str = "llm",
    namespace: str = "team-a",
    labels: dict[str, str] | None = None,
    gpus: int | str | None = 1,
    resource: str = "nvidia.com/gpu",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A workload of `kind` whose pods carry `labels` and ask for `gpus` of `resource`."""
    group = WORKLOAD_KINDS[kind][0]
    template = {
        "metadata": {"labels": {"app": name, **(labels or {})}},
        "spec": pod_spec(gpus, resource),
    }
    obj: dict[str, Any] = {
        "apiVersion": f"{group}/v1" if group else "v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
    }
    if annotations:
        obj["metadata"]["annotations"] = dict(annotations)
    if kind == "Pod":
        obj["metadata"]["labels"].update(labels or {})
        obj["spec"] = template["spec"]
    elif kind == "CronJob":
        obj["spec"] = {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}}
        template["spec"]["restartPolicy"] = "Never"
    else:
        obj["spec"] = {"selector": {"matchLabels": {"app": name}}, "template": template}
        if kind == "Job":
            del obj["spec"]["selector"]
            template["spec"]["restartPolicy"] = "Never"
    return obj


# request.userInfo of an ordinary user, of a cluster admin, and of a namespace admin's
# ServiceAccount (the attacker of issue 19).
ALICE: Final[Mapping[str, Any]] = {
    "username": "alice@example.com",
    "groups": ["system:authenticated"],
}
CLUSTER_ADMIN: Final[Mapping[str, Any]] = {
    "username": "kubernetes-admin",
    "groups": ["kubeadm:cluster-admins", "system:masters", "system:authenticated"],
}
TEAM_A_DEV: Final[Mapping[str, Any]] = {
    "username": "system:serviceaccount:team-a:dev",
    "groups": ["system:serviceaccounts", "system:serviceaccounts:team-a", "system:authenticated"],
}
# (kind, the kind of its owner) as the built-in controllers make them: written out, not
# derived from `workloads.CONTROLLER_OWNERS`, so that the tests check that table.
CONTROLLER_PAIRS: Final = (
    ("Pod", "ReplicaSet"),
    ("Pod", "StatefulSet"),
    ("Pod", "DaemonSet"),
    ("Pod", "Job"),
    ("ReplicaSet", "Deployment"),
    ("Job", "CronJob"),
)
# The kube-controller-manager's ReplicaSet controller (--use-service-account-credentials).
REPLICASET_CONTROLLER: Final[Mapping[str, Any]] = {
    "username": "system:serviceaccount:kube-system:replicaset-controller",
    "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system"],
}
EXEMPT: Final = "finops.resilio.tech/exempt"
EXEMPT_REASON: Final = "finops.resilio.tech/exempt-reason"


def review(
    obj: dict[str, Any] | None,
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    dry_run: bool = False,
    sub_resource: str | None = None,
    kind: str | None = None,
    user: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An AdmissionReview request as kube-apiserver sends it to a webhook.

    `user` is `request.userInfo`; by default an ordinary user (who may not exempt).
    """
    source = obj if obj is not None else old
    assert source is not None
    kind = kind or source["kind"]
    group, plural, _ = WORKLOAD_KINDS[kind]
    meta = source.get("metadata", {})
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": group, "version": "v1", "kind": kind},
        "resource": {"group": group, "version": "v1", "resource": plural},
        "requestKind": {"group": group, "version": "v1", "kind": kind},
        "requestResource": {"group": group, "version": "v1", "resource": plural},
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "operation": operation,
        "userInfo": dict(user or ALICE),
        "object": copy.deepcopy(obj),
        "oldObject": copy.deepcopy(old),
        "dryRun": dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": f"{operation.title()}Options"},
    }
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
