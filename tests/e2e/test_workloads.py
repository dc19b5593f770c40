"""Controllers make pods through the webhooks; pods bound to fake GPU nodes show in /metrics.

There is no kubelet and no scheduler: the tests create Nodes as GPU feature
discovery and the device plugin would label them, bind the controllers' pods with
the pods/binding subresource, and set their status to Running as a kubelet would.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import COMPLIANT, MODE, OPERATOR_USER, TEAM, Cluster, gpu_workload, wait_until

NS = "e2e-workloads"


def node(name: str, labels: dict[str, str], capacity: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}


def make_node(
    cluster: Cluster, name: str, labels: dict[str, str], capacity: dict[str, str]
) -> None:
    cluster.apply(node(name, {"kubernetes.io/hostname": name, **labels}, capacity))
    status = {
        "capacity": {"cpu": "64", "memory": "512Gi", "pods": "110", **capacity},
        "allocatable": {"cpu": "64", "memory": "512Gi", "pods": "110", **capacity},
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "fake node of the e2e tests",
            }
        ],
    }
    cluster.kubectl(
        "patch",
        "node",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def run_on(cluster: Cluster, pod: dict[str, Any], node_name: str) -> None:
    """What the scheduler and the kubelet would do: bind the pod, report it Running."""
    meta = pod["metadata"]
    if not pod["spec"].get("nodeName"):
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
        }
        cluster.kubectl(
            "create",
            "--raw",
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding",
            "-f",
            "-",
            input=json.dumps(binding),
        )
    status = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [
            {
                "name": c["name"],
                "image": c["image"],
                "imageID": "",
                "ready": True,
                "restartCount": 0,
                "started": True,
                "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}},
            }
            for c in pod["spec"]["containers"]
        ],
    }
    cluster.kubectl(
        "patch",
        "pod",
        meta["name"],
        "-n",
        meta["namespace"],
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def pods_of(cluster: Cluster, selector: str) -> list[dict[str, Any]]:
    return list(cluster.get("pods", None, NS, "-l", selector)["items"])


@pytest.fixture(scope="module")
def nodes(cluster: Cluster) -> dict[str, str]:
    make_node(
        cluster,
        "e2e-h100",
        {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.count": "8"},
        {"nvidia.com/gpu": "8"},
    )
    make_node(
        cluster,
        "e2e-a100-mig",
        {
            "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
            "nvidia.com/mig.strategy": "mixed",
            "nvidia.com/gpu.count": "1",
        },
        {"nvidia.com/mig-1g.10gb": "7"},
    )
    make_node(
        cluster,
        "e2e-l4-shared",
        {
            "nvidia.com/gpu.product": "NVIDIA-L4-SHARED",
            "nvidia.com/gpu.replicas": "4",
            "nvidia.com/gpu.count": "1",
        },
        {"nvidia.com/gpu.shared": "4"},
    )
    return {"whole": "e2e-h100", "mig": "e2e-a100-mig", "shared": "e2e-l4-shared"}


@pytest.fixture(scope="module")
def ns(cluster: Cluster) -> str:
    cluster.namespace(NS, {MODE: "enforce"})
    return NS


def test_a_deployment_makes_its_pods_through_the_webhooks(cluster: Cluster, ns: str) -> None:
    cluster.apply(gpu_workload("Deployment", "serve", ns, COMPLIANT, replicas=2))
    pods = wait_until(
        lambda: len(pods_of(cluster, "app=serve")) == 2 and pods_of(cluster, "app=serve"),
        timeout=60,
        what="the Deployment's two pods",
    )
    for pod in pods:
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        assert pod["metadata"]["labels"][TEAM] == COMPLIANT[TEAM]
    rs = cluster.get("replicasets", None, ns, "-l", "app=serve")["items"]
    assert len(rs) == 1 and rs[0]["status"].get("replicas") == 2


def test_a_job_makes_its_pod(cluster: Cluster, ns: str) -> None:
    cluster.apply(gpu_workload("Job", "train", ns, COMPLIANT))
    pods = wait_until(lambda: pods_of(cluster, "job-name=train"), timeout=60, what="the Job's pod")
    assert pods[0]["metadata"]["ownerReferences"][0]["kind"] == "Job"


def test_pods_of_an_inheriting_namespace_get_its_labels(cluster: Cluster) -> None:
    """The mutating webhook sees the controller-made pods too (the validating one does not)."""
    labels = dict(COMPLIANT, **{TEAM: "inherited-team"})
    ns = cluster.namespace("e2e-workloads-inherit", {MODE: "enforce", **labels})

    def admitted() -> bool:
        proc = cluster.apply(gpu_workload("Job", "inherit", ns), check=False)
        return proc.returncode == 0

    wait_until(admitted, timeout=30, what="a Job admitted with inherited labels")
    pods = wait_until(
        lambda: cluster.get("pods", None, ns, "-l", "job-name=inherit")["items"],
        timeout=60,
        what="the Job's pod",
    )
    assert pods[0]["metadata"]["labels"][TEAM] == "inherited-team"


def test_running_pods_show_their_gpu_allocation(
    cluster: Cluster, ns: str, nodes: dict[str, str]
) -> None:
    pods = wait_until(
        lambda: len(pods_of(cluster, "app=serve")) == 2 and pods_of(cluster, "app=serve"),
        timeout=60,
        what="the Deployment's two pods",
    )
    for pod in pods:
        run_on(cluster, pod, nodes["whole"])
    mig = gpu_workload("Pod", "mig-slice", ns, COMPLIANT, resource="nvidia.com/mig-1g.10gb")
    shared = gpu_workload("Pod", "shared-l4", ns, COMPLIANT, resource="nvidia.com/gpu.shared")
    cluster.apply([mig, shared])
    run_on(cluster, cluster.get("pod", "mig-slice", ns), nodes["mig"])
    run_on(cluster, cluster.get("pod", "shared-l4", ns), nodes["shared"])

    def allocation(pod: str) -> float:
        return cluster.metric("finops_pod_gpu_allocation", namespace=ns, pod=pod)

    for pod in pods:
        name = pod["metadata"]["name"]
        assert wait_until(lambda n=name: allocation(n) == 1.0, what=f"{name} holds 1 GPU")
        assert (
            cluster.metric(
                "finops_pod_gpu_allocation",
                pod=name,
                gpu_model="NVIDIA-H100-80GB-HBM3",
                team=COMPLIANT[TEAM],
            )
            == 1.0
        )
    wait_until(lambda: abs(allocation("mig-slice") - 1 / 7) < 1e-6, what="a 1g.10gb slice is 1/7")
    wait_until(lambda: allocation("shared-l4") == 0.25, what="a time-sliced share is 1/4")
    assert (
        cluster.metric("finops_pod_gpu_allocation", pod="shared-l4", gpu_model="NVIDIA-L4") == 0.25
    )
    assert cluster.metric("finops_node_gpu_capacity", node="e2e-h100") == 8.0
    assert cluster.metric("finops_node_gpu_capacity", node="e2e-a100-mig") == 1.0
    assert cluster.metric("finops_node_gpu_capacity", node="e2e-l4-shared") == 1.0
    # A pod that ends leaves the inventory.
    cluster.kubectl(
        "patch",
        "pod",
        "mig-slice",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Succeeded"}}),
    )
    wait_until(lambda: allocation("mig-slice") == 0, what="a finished pod holds nothing")


def test_pods_are_read_in_pages_and_a_pod_that_ends_leaves_the_allocation(
    cluster: Cluster, ns: str, nodes: dict[str, str]
) -> None:
    """The operator's own list-and-watch of pods (not kopf's) against the real API server."""
    cluster.apply([gpu_workload("Pod", "ends-soon", ns, COMPLIANT)])
    run_on(cluster, cluster.get("pod", "ends-soon", ns), nodes["whole"])
    series = 'pod="ends-soon"'
    wait_until(lambda: series in cluster.metrics(), what="the running pod's allocation")
    cluster.kubectl(
        "patch", "pod", "ends-soon", "-n", ns, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"phase": "Succeeded"}}),
    )  # fmt: skip
    # It no longer matches the watch's field selector: the API server sends DELETED.
    wait_until(lambda: series not in cluster.metrics(), what="the ended pod's allocation gone")
    entries = [
        json.loads(line) for line in cluster.audit_log.read_text().splitlines() if line.strip()
    ]
    uris = [
        (e["verb"], e["requestURI"])
        for e in entries
        if e["user"]["username"] == OPERATOR_USER
        and (e.get("objectRef") or {}).get("resource") == "pods"
        and e["verb"] in ("list", "watch")
    ]
    lists = [uri for verb, uri in uris if verb == "list"]
    watches = [uri for verb, uri in uris if verb == "watch"]
    assert lists and all("limit=500" in uri and "fieldSelector=" in uri for uri in lists)
    assert watches and all(
        "allowWatchBookmarks=true" in uri and "resourceVersion=" in uri for uri in watches
    )
