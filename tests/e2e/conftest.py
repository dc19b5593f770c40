"""End-to-end tests against a real Kubernetes control plane (issue 8).

One control plane per test session: `scripts/e2e-cluster.sh up DIR` builds it if
needed (e2e/controlplane, k8s.io/kubernetes), starts etcd, kube-apiserver and
kube-controller-manager on 127.0.0.1, installs the project with `kubectl apply -k`
and starts `finops-operator run` as the manifests' own ServiceAccount. Everything
here talks to it as a user would: kubectl, the operator's /metrics and its log.
Nothing imports `finops_operator`.

Set E2E_CLUSTER_DIR to a folder where `scripts/e2e-cluster.sh up` already ran to
reuse that cluster (it is then left running).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from finops_devtools.devcluster import free_port
from finops_devtools.devcluster.operator_runner import DRAIN_SECONDS
from tests.support.tools import BUILT_IN_BACKGROUND

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "e2e-cluster.sh"

TEAM = "resilio.tech/team"
FEATURE = "resilio.tech/feature"
ENVIRONMENT = "resilio.tech/environment"
WORKLOAD_TYPE = "resilio.tech/workload-type"
COST_CENTER = "resilio.tech/cost-center"
MODE = "finops.resilio.tech/mode"
VIOLATIONS_ANNOTATION = "finops.resilio.tech/violations"
OPERATOR_USER = "system:serviceaccount:finops-system:finops-operator"

COMPLIANT = {
    TEAM: "search-platform",
    FEATURE: "semantic-search",
    ENVIRONMENT: "production",
    WORKLOAD_TYPE: "inference",
    COST_CENTER: "cc-1042",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: needs the real control plane of scripts/e2e-cluster.sh (tests/e2e)"
    )


# One cluster for the whole session, so the order matters: counting webhook calls
# before GPU workloads exist, killing the leader late, judging RBAC before the API
# server is restarted (test_api_outage, last).
MODULE_ORDER = (
    "test_operator_pod",  # a cluster of its own (E2E_OPERATOR_AS=pod), gone before the next starts
    "test_helm_chart",  # the chart on a cluster of its own with a node, gone before the next
    "test_crds",
    "test_webhooks",
    "test_workloads",
    "test_dra",  # starts kube-scheduler for its own pods, stops it before the next module
    "test_prometheus_rules",
    "test_policy_lanes",
    "test_no_writes",
    "test_cost_reports",
    "test_monitoring_stack",
    "test_admission_policies",
    "test_policy_reports",
    "test_leader_election",
    "test_start_race",  # a second replica started under a stream of reviews
    "test_metrics_auth",  # before test_rbac: its reviews are among the operator's requests
    "test_config_map",  # restarts the operator with a bad ConfigMap, then a good one
    "test_least_privilege",
    "test_owner_claims",
    "test_fake_kube_contract",
    "test_rbac",
    # A second control plane; both operators replaced while it runs, then restored. Late,
    # because it waits for scripts/test.sh's background Thanos build (tests/support/tools.py).
    "test_fleet",
    "test_api_outage",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent

    def rank(item: pytest.Item) -> int:
        path = Path(str(item.fspath))
        tools = {tool for marker in item.iter_markers("needs_tool") for tool in marker.args}
        if tools & BUILT_IN_BACKGROUND.keys():
            return MODULE_ORDER.index("test_fleet")
        if here not in path.parents:
            return -1
        return MODULE_ORDER.index(path.stem) if path.stem in MODULE_ORDER else len(MODULE_ORDER)

    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
    items.sort(key=rank)  # stable: the order within a module is kept


class KubectlError(AssertionError):
    pass


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` in a /metrics text whose labels include `labels`
    (0 when none)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)", line)
        if not m or m.group(1) != name:
            continue
        found = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(m.group(4))
    return total


@dataclass
class Cluster:
    info: dict[str, Any]
    dir: Path
    started_here: bool
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def kubeconfig(self) -> str:
        return str(self.info["kubeconfig"])

    @property
    def operator_log(self) -> Path:
        return Path(self.info["logs"]) / "operator.log"

    @property
    def audit_log(self) -> Path:
        return Path(self.info["logs"]) / "audit.log"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = self.kubeconfig
        env["PATH"] = f"{self.info['bin']}:{env.get('PATH', '')}"
        env.pop("KUBECTL_EXTERNAL_DIFF", None)
        return env

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as cluster-admin; raise KubectlError (with its output) when check fails."""
        proc = subprocess.run(
            [self.info["kubectl"], *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise KubectlError(
                f"kubectl {' '.join(args)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def apply(
        self, objs: list[dict[str, Any]] | dict[str, Any], *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        docs = objs if isinstance(objs, list) else [objs]
        return self.kubectl("apply", "-f", "-", *args, input=yaml.safe_dump_all(docs), check=check)

    def get(
        self, resource: str, name: str | None = None, namespace: str | None = None, *args: str
    ) -> Any:
        cmd = ["get", resource, *([name] if name else []), "-o", "json", *args]
        if namespace:
            cmd += ["-n", namespace]
        return json.loads(self.kubectl(*cmd).stdout)

    def exists(self, resource: str, name: str, namespace: str | None = None) -> bool:
        cmd = ["get", resource, name, "-o", "name", "--ignore-not-found"]
        if namespace:
            cmd += ["-n", namespace]
        return bool(self.kubectl(*cmd).stdout.strip())

    def metrics(self, port: int | None = None) -> str:
        port = port or int(self.info["metrics_port"])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    def metric(self, name: str, port: int | None = None, **labels: str) -> float:
        """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
        return metric_sum(self.metrics(port), name, **labels)

    def namespace(self, name: str, labels: dict[str, str] | None = None) -> str:
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": labels or {}},
            }
        )
        return name

    def log_since(self, offset: int) -> str:
        return self.operator_log.read_bytes()[offset:].decode(errors="replace")

    def log_size(self) -> int:
        return self.operator_log.stat().st_size


def start_second_operator(
    cluster: Cluster,
    config: Path | None = None,
    name: str = "b",
    *,
    webhook_port: int | None = None,
    metrics_port: int | None = None,
) -> tuple[subprocess.Popen[bytes], int, int, Path]:
    """Another replica (a standby while the script's operator leads), with the installed
    configuration or `config`; its log is logs/operator-NAME.log. Free ports unless given
    (the webhooks keep calling the port of the script's operator, once it is stopped)."""
    metrics_port = metrics_port or free_port()
    webhook_port = webhook_port or free_port()
    log = Path(cluster.info["logs"]) / f"operator-{name}.log"
    env = dict(
        os.environ, KUBECONFIG=cluster.info["operator_kubeconfig"], POD_NAMESPACE="finops-system"
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(REPO / ".venv" / "bin" / "finops-operator"),
                "run",
                "--config",
                str(config or cluster.info["config"]),
                "--webhook-secret",
                "finops-operator-webhook-tls",
                "--webhook-host",
                "127.0.0.1",
                "--webhook-port",
                str(webhook_port),
                "--metrics-port",
                str(metrics_port),
                "--webhook-drain-seconds",
                DRAIN_SECONDS,
                "--namespace",
                "finops-system",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cluster.dir,
        )
    cluster.extra.append(proc)
    (Path(cluster.info["state"]) / f"extra-operator-{name}.pid").write_text(str(proc.pid))
    return proc, metrics_port, webhook_port, log


def restore_script_operator(cluster: Cluster, *extra: str) -> None:
    """Start the script's operator again after a module replaced it, first forgetting the
    state/extra-NAME.pid files of the processes the module stopped itself."""
    for name in extra:
        (Path(cluster.info["state"]) / f"extra-{name}.pid").unlink(missing_ok=True)
    subprocess.run(
        ["bash", str(SCRIPT), "operator", str(cluster.dir)],
        check=True,
        capture_output=True,
        timeout=180,
    )


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM a process a test started, SIGKILL after 20 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until(
    check: Callable[[], Any], timeout: float = 30, interval: float = 0.5, what: str = "condition"
) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except (KubectlError, AssertionError, OSError) as err:
            last = err
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true after {timeout}s (last: {last!r})")
        time.sleep(interval)


def gpu_workload(
    kind: str,
    name: str,
    namespace: str,
    labels: dict[str, str] | None = None,
    gpus: int | str = 1,
    resource: str = "nvidia.com/gpu",
    replicas: int = 1,
) -> dict[str, Any]:
    """A workload of one of the seven kinds asking for `gpus` of `resource`."""
    labels = dict(labels or {})
    container = {
        "name": "main",
        "image": "registry.invalid/gpu:1",
        "resources": {"limits": {resource: gpus}} if gpus not in (0, "0") else {},
    }
    spec: dict[str, Any] = {"containers": [container]}
    if kind == "Pod":
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": spec,
        }
    template = {"metadata": {"labels": {"app": name, **labels}}, "spec": spec}
    obj: dict[str, Any] = {
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
    }
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        obj["apiVersion"] = "apps/v1"
        obj["spec"] = {"selector": {"matchLabels": {"app": name}}, "template": template}
        if kind != "DaemonSet":
            obj["spec"]["replicas"] = replicas
        if kind == "StatefulSet":
            obj["spec"]["serviceName"] = name
    elif kind == "Job":
        spec["restartPolicy"] = "Never"
        obj["apiVersion"] = "batch/v1"
        obj["spec"] = {"template": template, "backoffLimit": 0}
    elif kind == "CronJob":
        spec["restartPolicy"] = "Never"
        obj["apiVersion"] = "batch/v1"
        obj["spec"] = {"schedule": "0 2 * * *", "jobTemplate": {"spec": {"template": template}}}
    else:
        raise ValueError(kind)
    return obj


def kwok_gpu_pod(cluster: Cluster, name: str, namespace: str, gpus: int) -> dict[str, Any]:
    """A tagged GPU Pod that tolerates the taint of the kwok GPU nodes of a pod-mode
    cluster (scripts/e2e-node.sh: nothing else lands there), so it runs on one."""
    pod = gpu_workload("Pod", name, namespace, dict(COMPLIANT), gpus=gpus)
    pod["spec"]["tolerations"] = [{"key": cluster.info["gpu_node_taint"], "operator": "Exists"}]
    pod["spec"]["terminationGracePeriodSeconds"] = 0
    return pod


def service_metrics(cluster: Cluster, namespace: str) -> str:
    """/metrics of one endpoint of the metrics Service `finops-operator` (plain HTTP), by
    the API server's Service proxy: without kube-proxy a ClusterIP leads nowhere."""
    path = f"/api/v1/namespaces/{namespace}/services/http:finops-operator:metrics/proxy/metrics"
    return cluster.kubectl("get", "--raw", path).stdout


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def pod_of(identity: str, candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The pod whose replica identity this is (`<pod name>-<6 hex>`: the hostname)."""
    for pod in candidates:
        if re.fullmatch(re.escape(pod["metadata"]["name"]) + r"-[0-9a-f]{6}", identity):
            return pod
    return None


def untagged_gpu_pod_refused(cluster: Cluster, namespace: str, timeout: float = 30) -> None:
    """An untagged GPU Pod in an enforce namespace is denied by the webhook (waiting for
    it to answer), naming the missing team label, and not stored."""

    def refused() -> subprocess.CompletedProcess[str] | None:
        proc = cluster.apply(gpu_workload("Pod", "untagged", namespace), check=False)
        return proc if proc.returncode != 0 and "denied the request" in proc.stderr else None

    proc = wait_until(refused, timeout=timeout, what="the untagged GPU pod refused")
    assert TEAM in proc.stderr, proc.stderr
    assert not cluster.exists("pod", "untagged", namespace)


class AdmissionStream:
    """Creates compliant and untagged GPU pods in an enforce namespace (server dry-run),
    one after the other, until stopped; records every outcome."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.results: list[tuple[str, int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            tagged = i % 2 == 0
            labels = dict(COMPLIANT) if tagged else {}
            obj = gpu_workload("Pod", f"s{i}", self.namespace, labels)
            proc = self.cluster.apply(obj, "--dry-run=server", check=False)
            self.results.append(("tagged" if tagged else "untagged", proc.returncode, proc.stderr))

    def __enter__(self) -> AdmissionStream:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def failures(self) -> list[tuple[str, int, str]]:
        """Every outcome but the right one: tagged admitted, untagged denied by the policy."""

        def right(kind: str, code: int, err: str) -> bool:
            if kind == "tagged":
                return code == 0
            return code != 0 and "denied the request" in err and TEAM in err

        return [r for r in self.results if not right(*r)]


def kube_chains() -> set[str]:
    """The KUBE-* iptables and ip6tables chains of the machine (`tool table chain`):
    a kubelet makes some (KUBE-KUBELET-CANARY, ...), and `down` must not leave them."""
    found: set[str] = set()
    for tool in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            proc = subprocess.run(
                [tool, "-w", "5", "-t", table, "-S"], capture_output=True, text=True, timeout=30
            )
            for line in proc.stdout.splitlines():
                if line.startswith("-N KUBE-"):
                    found.add(f"{tool} {table} {line.split()[1]}")
    return found


def no_other_node() -> bool:
    """No e2e node of another cluster runs on this machine (scripts/e2e-node.sh
    registers each in /run/finops-e2e/nodes): what one leaves is then checkable."""
    nodes = Path("/run/finops-e2e/nodes")
    return not nodes.is_dir() or not any(nodes.iterdir())


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    reuse = os.environ.get("E2E_CLUSTER_DIR")
    if reuse:
        directory = Path(reuse).resolve()
        started_here = not (directory / "cluster.json").exists()
    else:
        directory = tmp_path_factory.mktemp("e2e-cluster")
        started_here = True
    if started_here:
        cluster_up(directory)
    info = json.loads((directory / "cluster.json").read_text())
    c = Cluster(info=info, dir=directory, started_here=started_here)
    try:
        yield c
    finally:
        cluster_down(c, script=started_here and not reuse)


def cluster_up(directory: Path) -> Cluster:
    """`scripts/e2e-cluster.sh up DIR`; the test fails with the script's output when it does."""
    proc = subprocess.run(
        ["bash", str(SCRIPT), "up", str(directory)],
        capture_output=True,
        text=True,
        timeout=3000,
    )
    if proc.returncode != 0:
        subprocess.run(["bash", str(SCRIPT), "down", str(directory)], capture_output=True)
        pytest.fail(
            f"scripts/e2e-cluster.sh up failed ({proc.returncode}):\n{proc.stdout}\n"
            f"{proc.stderr[-6000:]}"
        )
    info = json.loads((directory / "cluster.json").read_text())
    return Cluster(info=info, dir=directory, started_here=True)


def cluster_down(c: Cluster, script: bool = True) -> None:
    """Kill the processes the tests added to `c`, then `scripts/e2e-cluster.sh down`."""
    for p in c.extra:
        if p.poll() is None:
            p.kill()
            p.wait()
    if script:
        subprocess.run(["bash", str(SCRIPT), "down", str(c.dir)], capture_output=True, timeout=120)
