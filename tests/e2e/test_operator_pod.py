"""The operator as a cluster runs it: the Deployment's two pods on a real node.

A cluster of its own (`E2E_OPERATOR_AS=pod scripts/e2e-cluster.sh up`): kube-scheduler,
containerd and a kubelet next to the control plane, kwok keeping two tainted fake GPU
nodes Ready for the GPU pods (the real node runs only the operator), the image built
from the Dockerfile loaded into containerd, and manifests/ installed as shipped (through
tests/e2e/overlay-pod, which only adds hostAliases: no cluster DNS here). The
webhooks are called through their Service: kube-apiserver
(`--enable-aggregator-routing`) sends each admission request to a ready endpoint
of `finops-operator-webhook`, a pod IP on the node's bridge. Everything is read
the way a cluster admin would: kubectl, the pods' /metrics on their IPs, the Lease,
the EndpointSlice and the API server's audit log (each replica names itself in its
User-Agent). Runs first (conftest's module order), so it never shares the machine
with the session's other cluster. Needs root (a kubelet and containerd).
E2E_POD_CLUSTER_DIR names a folder where `E2E_OPERATOR_AS=pod scripts/e2e-cluster.sh up`
already ran, to reuse that cluster (it is left running). The tests change the
Deployment (scale, rollout, drain, a killed container) and run in file order.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    COMPLIANT,
    MODE,
    SCRIPT,
    TEAM,
    VIOLATIONS_ANNOTATION,
    AdmissionStream,
    Cluster,
    gpu_workload,
    is_ready,
    kube_chains,
    kwok_gpu_pod,
    metric_sum,
    no_other_node,
    pod_of,
    service_metrics,
    untagged_gpu_pod_refused,
    wait_until,
)

NAMESPACE = "finops-system"
SELECTOR = "app.kubernetes.io/name=finops-operator"
SERVICE = "finops-operator-webhook"
ENFORCE = "e2e-pod-enforce"
AUDIT = "e2e-pod-audit"
LEASE_SECONDS = 15  # the operator's default (`run --lease-seconds`), as the manifests leave it
RENEW_SECONDS = LEASE_SECONDS / 3
GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"  # the kwok nodes' (scripts/e2e-node.sh)
GPUS_PER_NODE = "4"


@pytest.fixture(scope="module")
def pod_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    reuse = os.environ.get("E2E_POD_CLUSTER_DIR")
    if reuse:
        directory = Path(reuse).resolve()
        started_here = not (directory / "cluster.json").exists()
    else:
        if os.geteuid() != 0:
            pytest.skip("E2E_OPERATOR_AS=pod runs a kubelet and containerd: it needs root")
        directory = tmp_path_factory.mktemp("e2e-pod")
        started_here = True
    env = dict(os.environ, E2E_OPERATOR_AS="pod")
    chains_before = kube_chains()
    if started_here:
        proc = subprocess.run(
            ["bash", str(SCRIPT), "up", str(directory)],
            capture_output=True,
            text=True,
            timeout=3000,
            env=env,
        )
        if proc.returncode != 0:
            down = subprocess.run(
                ["bash", str(SCRIPT), "down", str(directory)], capture_output=True, text=True
            )
            pytest.fail(
                f"E2E_OPERATOR_AS=pod scripts/e2e-cluster.sh up failed ({proc.returncode}):\n"
                f"{proc.stdout}\n{proc.stderr[-6000:]}\ndown: {down.stderr[-2000:]}"
            )
    info = json.loads((directory / "cluster.json").read_text())
    assert info["operator_as"] == "pod", info
    c = Cluster(info=info, dir=directory, started_here=started_here)
    try:
        yield c
    finally:
        if started_here and not reuse:
            down = subprocess.run(
                ["bash", str(SCRIPT), "down", str(directory)],
                capture_output=True,
                text=True,
                timeout=300,
            )
    if started_here and not reuse:
        assert down.returncode == 0, down.stderr[-3000:]
        # The kubelet's iptables chains are not left behind (unless another e2e node
        # on this machine runs and owns them).
        if no_other_node():
            assert kube_chains() == chains_before, down.stderr[-3000:]


# --- what a cluster admin reads ---------------------------------------------------


def pods(cluster: Cluster) -> list[dict[str, Any]]:
    return list(cluster.get("pods", None, NAMESPACE, "-l", SELECTOR)["items"])


def running(cluster: Cluster) -> list[dict[str, Any]]:
    """The operator's pods that are not being deleted."""
    return [p for p in pods(cluster) if not p["metadata"].get("deletionTimestamp")]


def pod_metrics(pod: dict[str, Any]) -> str:
    url = f"http://{pod['status']['podIP']}:8080/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def holder(cluster: Cluster) -> str:
    return str(cluster.get("lease", "finops-operator", NAMESPACE)["spec"]["holderIdentity"])


def endpoints(cluster: Cluster) -> list[dict[str, Any]]:
    slices = cluster.get(
        "endpointslices", None, NAMESPACE, "-l", f"kubernetes.io/service-name={SERVICE}"
    )["items"]
    return [e for s in slices for e in (s.get("endpoints") or [])]


def ready_endpoint_pods(cluster: Cluster) -> set[str]:
    return {
        e["targetRef"]["name"]
        for e in endpoints(cluster)
        if (e.get("conditions") or {}).get("ready") and e.get("targetRef")
    }


def audit_entries(cluster: Cluster) -> list[dict[str, Any]]:
    return [json.loads(line) for line in cluster.audit_log.read_text().splitlines() if line]


def wait_two_ready(cluster: Cluster, timeout: float = 180) -> list[dict[str, Any]]:
    def two() -> list[dict[str, Any]] | None:
        live = running(cluster)
        return live if len(live) == 2 and all(is_ready(p) for p in live) else None

    return list(wait_until(two, timeout=timeout, interval=1, what="two Ready operator pods"))


def compliant_pod(name: str) -> dict[str, Any]:
    return gpu_workload("Pod", name, ENFORCE, dict(COMPLIANT))


# --- the tests, in order ----------------------------------------------------------


def test_both_replicas_run_on_the_node_and_are_ready(pod_cluster: Cluster) -> None:
    c = pod_cluster
    deployment = c.get("deployment", "finops-operator", NAMESPACE)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["status"].get("readyReplicas") == 2, deployment["status"]
    live = wait_two_ready(c)
    image = (Path(c.info["state"]) / "operator-image").read_text().strip()
    for pod in live:
        assert pod["spec"]["nodeName"] == c.info["node"]
        (container,) = pod["spec"]["containers"]
        assert container["image"] == image
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["runAsUser"] == 65532
        (status,) = pod["status"]["containerStatuses"]
        assert status["ready"] and "running" in status["state"], status
        assert status["restartCount"] == 0, status
    # Both are the webhook Service's ready endpoints, by pod IP.
    assert ready_endpoint_pods(c) == {p["metadata"]["name"] for p in live}
    ips = {a for e in endpoints(c) for a in e["addresses"]}
    assert ips == {p["status"]["podIP"] for p in live}
    # The webhooks call the Service, as shipped, with the CA the operator injected.
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        (hook,) = c.get(kind, "finops-operator")["webhooks"]
        assert "url" not in hook["clientConfig"]
        assert hook["clientConfig"]["service"]["name"] == SERVICE
        assert hook["clientConfig"].get("caBundle")
    # The PodDisruptionBudget sees both.
    pdb = c.get("poddisruptionbudget", "finops-operator", NAMESPACE)
    assert pdb["status"]["currentHealthy"] == 2 and pdb["status"]["disruptionsAllowed"] == 1


def test_one_replica_leads_and_only_it_writes(pod_cluster: Cluster) -> None:
    c = pod_cluster
    live = wait_two_ready(c)
    leader = wait_until(
        lambda: pod_of(holder(c), live), timeout=60, what="the Lease held by one of the pods"
    )
    identity = holder(c)
    standby = next(p for p in live if p is not leader)
    wait_until(
        lambda: metric_sum(pod_metrics(leader), "finops_leader") == 1,
        timeout=30,
        what="finops_leader 1 on the Lease holder",
    )
    assert metric_sum(pod_metrics(standby), "finops_leader") == 0

    c.namespace(AUDIT, {MODE: "audit"})
    c.apply(gpu_workload("Job", "untagged", AUDIT, {TEAM: "search-platform"}))

    def annotated() -> bool:
        job = c.get("job", "untagged", AUDIT)
        return VIOLATIONS_ANNOTATION in (job["metadata"].get("annotations") or {})

    wait_until(annotated, timeout=60, what="the leader annotates the Job")

    def writes() -> list[dict[str, Any]]:
        return [
            e
            for e in audit_entries(c)
            if e["verb"] in ("create", "patch", "update")
            and e.get("objectRef", {}).get("namespace") == AUDIT
        ]

    found = wait_until(
        lambda: {e["objectRef"]["resource"] for e in writes()} >= {"jobs", "events"} and writes(),
        timeout=30,
        what="the operator's patch of the Job and its Event in the audit log",
    )
    agents = {e["userAgent"] for e in found}
    assert all(f"finops-operator/{identity} " in a for a in agents), (identity, agents)
    assert metric_sum(pod_metrics(standby), "finops_leader") == 0


def test_an_untagged_gpu_pod_is_refused_through_the_service(pod_cluster: Cluster) -> None:
    c = pod_cluster
    live = wait_two_ready(c)
    before = sum(metric_sum(pod_metrics(p), "finops_admission_requests_total") for p in live)
    c.namespace(ENFORCE, {MODE: "enforce"})
    untagged_gpu_pod_refused(c, ENFORCE)
    c.apply(compliant_pod("tagged"), "--dry-run=server")
    after = sum(metric_sum(pod_metrics(p), "finops_admission_requests_total") for p in live)
    # Answered by the pods behind the Service (the only webhook endpoints there are): the
    # untagged pod's /mutate and /validate (the compliant one is admitted without a call).
    assert after >= before + 2, (before, after)


def test_gpu_pods_run_on_the_kwok_nodes_and_show_in_the_allocation(pod_cluster: Cluster) -> None:
    c = pod_cluster
    gpu_nodes = set(c.info.get("gpu_nodes") or [])  # none from an `up` older than the kwok nodes
    assert len(gpu_nodes) == 2, c.info
    for name in gpu_nodes:  # kept Ready by kwok, offering 4 GPUs, tainted
        node = c.get("node", name)
        assert is_ready(node), node["status"].get("conditions")
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == GPUS_PER_NODE
        taints = {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []}
        assert taints == {(c.info["gpu_node_taint"], "NoSchedule")}, taints
    live = wait_two_ready(c)
    c.namespace(ENFORCE, {MODE: "enforce"})
    names = ("trainer-a", "trainer-b")
    try:
        # Admitted through the Service; 3 + 3 GPUs fit no single node, 5 fit none.
        c.apply(
            [kwok_gpu_pod(c, n, ENFORCE, 3) for n in names]
            + [kwok_gpu_pod(c, "too-big", ENFORCE, 5)]
        )

        def running() -> dict[str, str] | None:
            found = {p["metadata"]["name"]: p for p in c.get("pods", None, ENFORCE)["items"]}
            if all(found.get(n, {}).get("status", {}).get("phase") == "Running" for n in names):
                return {n: found[n]["spec"]["nodeName"] for n in names}
            return None

        placed = wait_until(running, timeout=60, what="kube-scheduler and kwok to run the pods")
        assert set(placed.values()) == gpu_nodes, placed

        def unschedulable() -> str:
            conditions = c.get("pod", "too-big", ENFORCE)["status"].get("conditions") or []
            return next(
                (x.get("message", "") for x in conditions if x.get("reason") == "Unschedulable"),
                "",
            )

        message = wait_until(unschedulable, timeout=30, what="the 5-GPU pod unschedulable")
        assert "Insufficient nvidia.com/gpu" in message, message

        def allocation(text: str, pod: str) -> float:
            labels = {"namespace": ENFORCE, "pod": pod, "team": COMPLIANT[TEAM]}
            labels |= {"node": placed.get(pod, ""), "gpu_model": GPU_PRODUCT}
            return metric_sum(text, "finops_pod_gpu_allocation", **labels)

        # Read through the metrics Service, then on each replica: both watch.
        wait_until(
            lambda: all(allocation(service_metrics(c, NAMESPACE), n) == 3 for n in names),
            timeout=30,
            what="3 GPUs per trainer on the Service's /metrics",
        )

        def both_trainers(pod: dict[str, Any]) -> str:
            text = pod_metrics(pod)
            return text if [allocation(text, n) for n in names] == [3, 3] else ""

        for pod in live:  # the Service answered from one: the other's watch may lag
            text = wait_until(
                lambda pod=pod: both_trainers(pod),
                timeout=30,
                what=f"3 GPUs per trainer on {pod['metadata']['name']}'s /metrics",
            )
            assert metric_sum(text, "finops_pod_gpu_allocation", pod="too-big") == 0
            for node_name in gpu_nodes:
                capacity = metric_sum(text, "finops_node_gpu_capacity", node=node_name)
                assert capacity == int(GPUS_PER_NODE), (node_name, capacity)
        # A pod that goes (kwok finishes its deletion) leaves the allocation.
        c.kubectl("-n", ENFORCE, "delete", "pod", names[0], "--wait=true", timeout=60)
        wait_until(
            lambda: allocation(service_metrics(c, NAMESPACE), names[0]) == 0,
            timeout=30,
            what=f"{names[0]} gone from /metrics",
        )
        assert allocation(service_metrics(c, NAMESPACE), names[1]) == 3
    finally:
        c.kubectl("-n", ENFORCE, "delete", "pod", *names, "too-big", "--ignore-not-found")


class PodStates:
    """Every state of the operator's pods the API server reported, from a watch: polling
    can miss a state the kubelet reports for less than one round of kubectl calls."""

    def __init__(self, cluster: Cluster) -> None:
        self.seen: dict[str, set[tuple[bool, bool]]] = {}  # name -> {(running, ready)}
        command = [cluster.info["kubectl"], "get", "pods", "-n", NAMESPACE, "-l", SELECTOR,
                   "--watch", "--output-watch-events", "-o", "json"]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=cluster.env()
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        decoder, buffer = json.JSONDecoder(), ""
        for line in self.process.stdout:
            buffer += line
            try:
                event, end = decoder.raw_decode(buffer.lstrip())
            except json.JSONDecodeError:
                continue  # the object is not whole yet
            buffer = buffer.lstrip()[end:]
            pod = event.get("object") or {}
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            running = any("running" in s.get("state", {}) for s in statuses)
            name = (pod.get("metadata") or {}).get("name", "")
            self.seen.setdefault(name, set()).add((running, is_ready(pod)))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.reader.join(timeout=10)


def test_a_starting_replica_stays_out_of_the_endpoints_until_ready(pod_cluster: Cluster) -> None:
    c = pod_cluster
    old = {p["metadata"]["name"] for p in wait_two_ready(c)}
    states = PodStates(c)
    c.kubectl("-n", NAMESPACE, "scale", "deployment/finops-operator", "--replicas=3")
    try:
        new_name = wait_until(
            lambda: next((n for n in {p["metadata"]["name"] for p in pods(c)} - old), None),
            timeout=30,
            what="a third pod",
        )
        seen_running_unready = False
        deadline = time.monotonic() + 180
        while True:
            assert time.monotonic() < deadline, "the third pod never became a ready endpoint"
            pod = c.get("pod", new_name, NAMESPACE)
            ready = is_ready(pod)
            in_endpoints = new_name in ready_endpoint_pods(c)
            statuses = pod["status"].get("containerStatuses") or []
            started = any("running" in s.get("state", {}) for s in statuses)
            if not ready:
                # Read after the pod: had it become ready in between, it would say so.
                assert not in_endpoints or is_ready(c.get("pod", new_name, NAMESPACE)), (
                    "a replica that is not Ready is a ready endpoint of the webhook Service"
                )
                if started:
                    seen_running_unready = True
                    # While it syncs, admission is answered by the two others.
                    c.apply(compliant_pod("while-starting"), "--dry-run=server")
            elif in_endpoints:
                break
            time.sleep(0.3)
        seen_running_unready |= (True, False) in states.seen.get(new_name, set())
        assert seen_running_unready, (
            "the new container was never seen running but not Ready",
            states.seen.get(new_name),
        )
        assert metric_sum(pod_metrics(c.get("pod", new_name, NAMESPACE)), "finops_leader") == 0
    finally:
        states.stop()
        c.kubectl("-n", NAMESPACE, "scale", "deployment/finops-operator", "--replicas=2")
    wait_two_ready(c)


def test_a_rolling_update_fails_no_admission(pod_cluster: Cluster) -> None:
    c = pod_cluster
    old = {p["metadata"]["name"] for p in wait_two_ready(c)}
    with AdmissionStream(c, ENFORCE) as stream:
        time.sleep(3)
        c.kubectl(
            "-n",
            NAMESPACE,
            "patch",
            "deployment/finops-operator",
            "--type=merge",
            "-p",
            json.dumps({"spec": {"template": {"metadata": {"annotations": {"e2e/rollout": "1"}}}}}),
        )
        c.kubectl("-n", NAMESPACE, "rollout", "status", "deployment/finops-operator", timeout=300)
        wait_until(lambda: len(pods(c)) == 2, timeout=60, what="the old pods gone")
        time.sleep(3)
    new = {p["metadata"]["name"] for p in wait_two_ready(c)}
    assert not new & old, (old, new)
    assert len(stream.results) >= 20, f"only {len(stream.results)} requests during the rollout"
    assert stream.failures() == [], stream.failures()[:5]


def test_a_drain_keeps_one_replica_by_the_disruption_budget(pod_cluster: Cluster) -> None:
    c = pod_cluster
    before = {p["metadata"]["name"] for p in wait_two_ready(c)}
    node = c.info["node"]
    try:
        # The only node is cordoned, so an evicted replica's replacement stays Pending:
        # after one eviction the budget (minAvailable 1) allows none.
        drain = c.kubectl(
            "drain",
            node,
            f"--pod-selector={SELECTOR}",
            "--delete-emptydir-data",
            "--timeout=20s",
            check=False,
            timeout=90,
        )
        assert drain.returncode != 0, drain.stdout
        assert "disruption budget" in drain.stderr, drain.stderr
        left = [p for p in running(c) if p["metadata"]["name"] in before]
        assert len(left) == 1 and is_ready(left[0]), [p["metadata"]["name"] for p in left]
        pending = [p for p in running(c) if p["metadata"]["name"] not in before]
        assert pending and all(p["status"]["phase"] == "Pending" for p in pending), pending
        # The one replica left answers admission alone, through the Service.
        assert ready_endpoint_pods(c) == {left[0]["metadata"]["name"]}
        c.apply(compliant_pod("during-drain"), "--dry-run=server")
        refused = c.apply(gpu_workload("Pod", "during-drain", ENFORCE), check=False)
        assert refused.returncode != 0 and "denied the request" in refused.stderr, refused.stderr
    finally:
        c.kubectl("uncordon", node)
    wait_two_ready(c)


def test_killing_the_leader_hands_over_within_the_lease(pod_cluster: Cluster) -> None:
    c = pod_cluster
    live = wait_two_ready(c)
    leader = wait_until(lambda: pod_of(holder(c), live), timeout=60, what="a leader pod")
    first = holder(c)
    transitions = int(
        c.get("lease", "finops-operator", NAMESPACE)["spec"].get("leaseTransitions", 0)
    )
    (status,) = leader["status"]["containerStatuses"]
    container_id = status["containerID"].removeprefix("containerd://")
    ctr = ["ctr", "--address", c.info["containerd_socket"], "-n", "k8s.io"]
    killed_at = time.monotonic()
    subprocess.run([*ctr, "tasks", "kill", "-s", "SIGKILL", container_id], check=True, timeout=30)

    new = wait_until(
        lambda: holder(c) != first and holder(c),
        timeout=LEASE_SECONDS + RENEW_SECONDS + 20,
        interval=0.2,
        what="a new Lease holder",
    )
    elapsed = time.monotonic() - killed_at
    # The Lease ran out (duration after the last renewal, at most one renewal
    # period before the kill), then the next round of a replica took it.
    assert elapsed <= LEASE_SECONDS + 2 * RENEW_SECONDS + 3, elapsed
    spec = c.get("lease", "finops-operator", NAMESPACE)["spec"]
    assert int(spec.get("leaseTransitions", 0)) == transitions + 1
    new_pod = pod_of(new, running(c))
    assert new_pod is not None, new
    new_name = new_pod["metadata"]["name"]
    wait_until(
        lambda: metric_sum(pod_metrics(c.get("pod", new_name, NAMESPACE)), "finops_leader") == 1,
        timeout=15,
        what="finops_leader 1 on the new holder",
    )

    # The killed container was restarted by the kubelet, in the same pod, and is ready again.
    def restarted() -> bool:
        pod = c.get("pod", leader["metadata"]["name"], NAMESPACE)
        (s,) = pod["status"]["containerStatuses"]
        return bool(s["restartCount"] == 1 and is_ready(pod))

    wait_until(restarted, timeout=120, interval=1, what="the killed container restarted and Ready")
    # Admission still answers through the Service.
    c.apply(compliant_pod("after-kill"), "--dry-run=server")
