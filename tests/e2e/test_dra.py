"""GPUs through Dynamic Resource Allocation on the real control plane, allocated by the real
kube-scheduler, show in the operator's /metrics with their model and fraction, on their team.

The e2e control plane (Kubernetes 1.35, DRA GA) gets, for this module, the real
kube-scheduler (`node kube-scheduler`, scripts/build-node.sh) and kwok
(scripts/build-kwok.sh, out of cluster, with its own stages), which keeps the two fake
GPU Nodes Ready and runs the pods bound to them. The test publishes the ResourceSlices
NVIDIA's DRA driver would (its attributes: tests/support/dra.py) and DeviceClasses
selecting whole GPUs and MIG devices. The scheduler's DRA plugin allocates the claims
(`status.allocation`, `status.reservedFor`); kube-controller-manager's resourceclaim
controller makes the claim of a ResourceClaimTemplate.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from finops_devtools.devcluster import free_port
from tests.support.dra import DRIVER, gpu_device, resource_slice

from .conftest import COMPLIANT, REPO, TEAM, Cluster, stop_process, wait_until

NS = "e2e-dra"
A100 = "NVIDIA A100-SXM4-80GB"
H100_MODEL, A100_MODEL = "NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB"
# What the claims of `allocated_pods` imply, pod -> (GPU model, GPUs held): a whole GPU
# each for the direct and the templated claim, the shared claim's GPU split equally
# between the two pods reserving it, and a MIG 3g.40gb device, 3 of an A100's 7 slices.
HELD = {
    "direct": (H100_MODEL, Fraction(1)),
    "templated": (H100_MODEL, Fraction(1)),
    "sharer-a": (H100_MODEL, Fraction(1, 2)),
    "sharer-b": (H100_MODEL, Fraction(1, 2)),
    "mig": (A100_MODEL, Fraction(3, 7)),
}
NODES = {  # node -> the devices its slice publishes
    "e2e-dra-1": [gpu_device("gpu-0"), gpu_device("gpu-1"), gpu_device("gpu-2")],
    "e2e-dra-2": [gpu_device("gpu-0", A100, mig_profile="3g.40gb")],
}


def device_class(name: str, device_type: str) -> dict[str, Any]:
    selector = (
        f'device.driver == "{DRIVER}" && device.attributes["{DRIVER}"].type == "{device_type}"'
    )
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceClass",
        "metadata": {"name": name},
        "spec": {"selectors": [{"cel": {"expression": selector}}]},
    }


def claim_spec(device_class_name: str) -> dict[str, Any]:
    return {
        "devices": {
            "requests": [{"name": "gpu", "exactly": {"deviceClassName": device_class_name}}]
        }
    }


def pod(
    namespace: str, labels: dict[str, str], name: str, claim: str = "", template: str = ""
) -> dict[str, Any]:
    source = {"resourceClaimName": claim} if claim else {"resourceClaimTemplateName": template}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "resourceClaims": [{"name": "gpu", **source}],
            "containers": [
                {
                    "name": "main",
                    "image": "registry.example/train:1",
                    "resources": {"claims": [{"name": "gpu"}]},
                }
            ],
            "tolerations": [{"key": KWOK_LABEL, "operator": "Exists"}],
            "terminationGracePeriodSeconds": 0,
        },
    }


KWOK_LABEL = "e2e.finops.resilio.tech/kwok"  # the Nodes kwok keeps Ready and runs pods on


def built(script: str) -> str:
    """The folder a cached build script prints (it builds on its first run)."""
    return subprocess.run(
        ["bash", str(REPO / "scripts" / script)],
        capture_output=True,
        text=True,
        timeout=3000,
        check=True,
    ).stdout.strip()


@pytest.fixture(scope="module")
def scheduler(cluster: Cluster) -> Iterator[None]:
    """The real kube-scheduler and kwok against the e2e API server, for this module only."""
    node_bin, kwok_bin = built("build-node.sh"), built("build-kwok.sh")
    home = cluster.dir / "kwok-home"  # kwok reads ~/.kwok/kwok.yaml: none, its defaults
    home.mkdir(exist_ok=True)
    commands = {
        "kube-scheduler": [
            f"{node_bin}/node",
            "kube-scheduler",
            f"--kubeconfig={cluster.kubeconfig}",
            f"--authentication-kubeconfig={cluster.kubeconfig}",
            f"--authorization-kubeconfig={cluster.kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            "--leader-elect=false",
            "--profiling=false",
        ],
        "kwok": [
            f"{kwok_bin}/kwok",
            f"--kubeconfig={cluster.kubeconfig}",
            f"--manage-nodes-with-label-selector={KWOK_LABEL}=true",
            *(f"--config={stage}" for stage in sorted(Path(kwok_bin, "stages").glob("*.yaml"))),
            "--node-lease-duration-seconds=40",
            "--node-ip=127.0.0.1",
            f"--node-port={free_port()}",
            f"--server-address=127.0.0.1:{free_port()}",
        ],
    }
    procs, logs = [], []
    try:
        for name, command in commands.items():
            logs.append((cluster.dir / f"{name}-dra.log").open("wb"))
            env = {**cluster.env(), "HOME": str(home)}
            procs.append(
                subprocess.Popen(command, stdout=logs[-1], stderr=subprocess.STDOUT, env=env)
            )
        yield
    finally:
        for proc in reversed(procs):
            stop_process(proc)
        for log in logs:
            log.close()


def kwok_node(name: str) -> dict[str, Any]:
    """A GPU Node for kwok: it sets the conditions and heartbeats, the test its capacity."""
    resources = {"cpu": "64", "memory": "512Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {KWOK_LABEL: "true", "kubernetes.io/hostname": name, "type": "kwok"},
            "annotations": {"kwok.x-k8s.io/node": "fake"},
        },
        "spec": {"taints": [{"key": KWOK_LABEL, "value": "true", "effect": "NoSchedule"}]},
        "status": {"capacity": resources, "allocatable": resources},
    }


def ready(cluster: Cluster, node: str) -> None:
    """Until kwok reports the node Ready; then its registration taint goes, as
    scripts/e2e-node.sh does for the real node (no cloud-node controller here)."""

    def is_ready() -> bool:
        conditions = cluster.get("node", node).get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    wait_until(is_ready, timeout=60, what=f"kwok to report {node} Ready")
    cluster.kubectl("taint", "node", node, "node.kubernetes.io/not-ready:NoSchedule-", check=False)


def allocated_pods(
    cluster: Cluster, namespace: str, labels: dict[str, str], nodes: dict[str, list[Any]]
) -> dict[str, str]:
    """Nodes with their slices, the claims and pods, bound and allocated by kube-scheduler
    (which must be running), reported Running; pod name -> node."""
    cluster.namespace(namespace)
    for name, devices in nodes.items():
        cluster.apply(kwok_node(name))
        cluster.apply(resource_slice(name, devices))
    for name in nodes:
        ready(cluster, name)
    cluster.apply([device_class("e2e-gpu", "gpu"), device_class("e2e-mig", "mig")])
    claims: list[dict[str, Any]] = [
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceClaim",
            "metadata": {"name": name, "namespace": namespace},
            "spec": claim_spec(klass),
        }
        for name, klass in (("direct", "e2e-gpu"), ("shared", "e2e-gpu"), ("mig", "e2e-mig"))
    ]
    template = {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": "one-gpu", "namespace": namespace},
        "spec": {"spec": claim_spec("e2e-gpu")},
    }
    cluster.apply([*claims, template])
    pods = [
        pod(namespace, labels, "direct", claim="direct"),
        pod(namespace, labels, "templated", template="one-gpu"),
        pod(namespace, labels, "sharer-a", claim="shared"),
        pod(namespace, labels, "sharer-b", claim="shared"),
        pod(namespace, labels, "mig", claim="mig"),
    ]
    cluster.apply(pods)
    names = [p["metadata"]["name"] for p in pods]

    def scheduled() -> dict[str, Any] | None:
        found = {p["metadata"]["name"]: p for p in cluster.get("pods", None, namespace)["items"]}
        if all(found.get(name, {}).get("spec", {}).get("nodeName") for name in names):
            return found
        return None

    placed = wait_until(scheduled, timeout=90, what="kube-scheduler to bind the DRA pods")

    def running() -> bool:
        phases = {
            p["metadata"]["name"]: p["status"].get("phase")
            for p in cluster.get("pods", None, namespace)["items"]
        }
        return all(phases.get(name) == "Running" for name in names)

    wait_until(running, timeout=90, what="kwok to run the DRA pods")
    return {name: placed[name]["spec"]["nodeName"] for name in names}


@pytest.fixture(scope="module")
def dra_pods(cluster: Cluster, scheduler: None) -> dict[str, str]:
    return allocated_pods(cluster, NS, dict(COMPLIANT), NODES)


def test_the_scheduler_allocated_the_claims_as_dra_does(
    cluster: Cluster, dra_pods: dict[str, str]
) -> None:
    shared = cluster.get("resourceclaims", "shared", NS)
    assert {entry["name"] for entry in shared["status"]["reservedFor"]} == {"sharer-a", "sharer-b"}
    [result] = shared["status"]["allocation"]["devices"]["results"]
    assert result["driver"] == DRIVER and result["pool"] == dra_pods["sharer-a"]
    assert dra_pods["mig"] == "e2e-dra-2"  # the only MIG device is there


def test_the_team_holds_exactly_what_its_claims_imply(
    cluster: Cluster, dra_pods: dict[str, str]
) -> None:
    """Per GPU model, the team's allocation on /metrics is the claims' sum: no device
    counted twice (the shared one), none missed, none counted whole (the MIG slice)."""
    assert set(held_by_model()) == {H100_MODEL, A100_MODEL}
    wait_until(
        lambda: holds_exactly(cluster, {"namespace": NS}),
        timeout=60,
        what=f"the claims' {held_by_model()} GPUs on /metrics",
    )


def holds_exactly(cluster: Cluster, labels: dict[str, str], port: int | None = None) -> bool:
    """Whether the allocation with `labels` on /metrics is, per GPU model, the claims'."""
    return all(
        abs(cluster.metric("finops_pod_gpu_allocation", port, gpu_model=model, **labels) - held)
        < 1e-9
        for model, held in held_by_model().items()
    )


def held_by_model() -> dict[str, Fraction]:
    """The GPUs the claims imply, by GPU model: 3 H100s and 3/7 of an A100."""
    by_model: dict[str, Fraction] = {}
    for model, held in HELD.values():
        by_model[model] = by_model.get(model, Fraction(0)) + held
    return by_model


@pytest.mark.parametrize(("pod_name", "model", "held"), [(p, *h) for p, h in HELD.items()])
def test_each_dra_pod_shows_in_metrics_with_its_model_and_fraction_on_its_team(
    cluster: Cluster, dra_pods: dict[str, str], pod_name: str, model: str, held: Fraction
) -> None:
    labels = {"pod": pod_name, "gpu_model": model, "resource": DRIVER, "team": COMPLIANT[TEAM]}
    labels["node"] = dra_pods[pod_name]
    value = wait_until(
        lambda: cluster.metric("finops_pod_gpu_allocation", **labels),
        timeout=60,
        what=f"{pod_name}'s allocation on /metrics with {labels}",
    )
    assert abs(value - float(held)) < 1e-9


def test_the_dra_nodes_offer_their_gpus_and_the_shared_claim_names_both_pods(
    cluster: Cluster, dra_pods: dict[str, str]
) -> None:
    assert cluster.metric("finops_node_gpu_capacity", node="e2e-dra-1", gpu_model=H100_MODEL) == 3
    for sharer in ("sharer-a", "sharer-b"):
        assert (
            cluster.metric(
                "finops_dra_claim_pods", dra_claim_name="shared", namespace=NS, pod=sharer
            )
            == 1
        )
