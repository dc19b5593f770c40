"""`helm install`, `upgrade` and `uninstall` of charts/finops-operator on a real node.

A cluster of its own (`E2E_OPERATOR_AS=pod E2E_NO_OPERATOR=1 scripts/e2e-cluster.sh
up`): the control plane, kube-scheduler, containerd and a kubelet, with the image
built from the Dockerfile loaded into the node and the kustomize install at 0
replicas. That install is deleted first (`kubectl delete -k`, also the way from a
kustomize install to the chart): the chart's cluster-wide objects (CRDs,
ClusterRoles, webhook configurations) have the same names. The Prometheus Operator
CRDs stay: the chart's ServiceMonitor and PrometheusRule need them.

The chart is installed with the values a real node needs here: the loaded image
(`pullPolicy: Never`) and `hostAliases` for the API server's names (no cluster DNS:
the same entries tests/e2e/overlay-pod patches in). Its two replicas run, one holds
the Lease, its webhooks refuse an untagged GPU pod through the Service, a tagged one
runs on a kwok GPU node and shows in the release's /metrics (its metrics Service);
`helm upgrade` of the configuration (enforce, and `metrics.secure`: the probes and
/metrics over HTTPS) rolls the pods while admission keeps answering;
`helm uninstall` removes everything but the CRDs, and pods are admitted again
without the webhooks. Runs second (conftest's module order), before the session's
cluster starts. Needs root. Helm itself comes from scripts/build-helm.sh.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import (
    COMPLIANT,
    MODE,
    SCRIPT,
    TEAM,
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

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "finops-operator"
OVERLAY_POD = REPO / "tests" / "e2e" / "overlay-pod" / "kustomization.yaml"
NAMESPACE = "finops-helm"
RELEASE = "finops"
ENFORCE = "e2e-helm-enforce"
SELECTOR = "app.kubernetes.io/name=finops-operator"
POD_GPUS = "finops_pod_gpu_allocation"

# Cluster-wide objects of the chart, by kubectl resource and name.
CLUSTER_SCOPED = [
    ("clusterrole", "finops-operator"),
    ("clusterrole", "finops-operator-webhook-certificate"),
    ("clusterrolebinding", "finops-operator"),
    ("clusterrolebinding", "finops-operator-webhook-certificate"),
    ("validatingwebhookconfiguration", "finops-operator"),
    ("mutatingwebhookconfiguration", "finops-operator"),
    ("validatingadmissionpolicy", "finops-operator-writes-only-its-annotation"),
    ("validatingadmissionpolicybinding", "finops-operator-writes-only-its-annotation"),
    ("validatingadmissionpolicy", "finops-operator-config-mode"),
    ("validatingadmissionpolicybinding", "finops-operator-config-mode"),
]
NAMESPACED = [
    ("deployment", "finops-operator"),
    ("service", "finops-operator"),
    ("service", "finops-operator-webhook"),
    ("serviceaccount", "finops-operator"),
    ("configmap", "finops-operator-config"),
    ("configmap", "finops-dashboard-leadership"),
    ("configmap", "finops-dashboard-engineering"),
    ("role", "finops-operator"),
    ("role", "finops-operator-webhook-certificate"),
    ("rolebinding", "finops-operator"),
    ("rolebinding", "finops-operator-webhook-certificate"),
    ("poddisruptionbudget", "finops-operator"),
    ("servicemonitor", "finops-operator"),
    ("prometheusrule", "finops-operator-health"),
    ("networkpolicy", "finops-operator"),
]
CRDS = ["costpolicies.finops.resilio.tech", "costreports.finops.resilio.tech"]


@pytest.fixture(scope="module")
def helm() -> str:
    built = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-helm.sh")],
        capture_output=True,
        text=True,
        timeout=3000,
    )
    if built.returncode != 0:
        pytest.fail(f"scripts/build-helm.sh failed:\n{built.stderr[-4000:]}")
    return built.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("E2E_OPERATOR_AS=pod runs a kubelet and containerd: it needs root")
    directory = tmp_path_factory.mktemp("e2e-helm")
    chains_before = kube_chains()
    env = {**os.environ, "E2E_OPERATOR_AS": "pod", "E2E_NO_OPERATOR": "1"}
    proc = subprocess.run(
        ["bash", str(SCRIPT), "up", str(directory)],
        capture_output=True,
        text=True,
        timeout=3000,
        env=env,
    )
    try:
        if proc.returncode != 0:
            pytest.fail(f"scripts/e2e-cluster.sh up failed:\n{proc.stdout}\n{proc.stderr[-6000:]}")
        info = json.loads((directory / "cluster.json").read_text())
        assert info["operator_as"] == "pod", info
        c = Cluster(info=info, dir=directory, started_here=True)
        # The kustomize install ran no pod (E2E_NO_OPERATOR=1: 0 replicas).
        assert c.get("deployment", "finops-operator", "finops-system")["spec"]["replicas"] == 0
        c.kubectl("delete", "-k", str(directory / "install"), "--wait=true", timeout=180)
        yield c
    finally:
        down = subprocess.run(
            ["bash", str(SCRIPT), "down", str(directory)],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert down.returncode == 0, down.stderr[-3000:]
    # The kubelet's iptables chains (KUBE-KUBELET-CANARY, ...) are not left behind,
    # unless another e2e node on this machine still runs and owns them.
    if no_other_node():
        assert kube_chains() == chains_before, down.stderr[-3000:]


def run_helm(
    helm: str, plane: Cluster, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [helm, "--kubeconfig", plane.kubeconfig, *args],
        capture_output=True,
        text=True,
        timeout=420,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(plane.dir),
            "HELM_CACHE_HOME": str(plane.dir / "helm-cache"),
            "HELM_CONFIG_HOME": str(plane.dir / "helm-config"),
            "HELM_DATA_HOME": str(plane.dir / "helm-data"),
        },
    )
    if check:
        assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def values_file(plane: Cluster, name: str, values: dict[str, Any]) -> str:
    file = plane.dir / f"{name}.yaml"
    file.write_text(yaml.safe_dump(values), encoding="utf-8")
    return str(file)


def stored_config(plane: Cluster) -> dict[str, Any]:
    config_map = plane.get("configmap", "finops-operator-config", NAMESPACE)
    loaded: dict[str, Any] = yaml.safe_load(config_map["data"]["config.yaml"])
    return loaded


def deployment(plane: Cluster) -> dict[str, Any]:
    found: dict[str, Any] = plane.get("deployment", "finops-operator", NAMESPACE)
    return found


def overlay_host_aliases() -> list[dict[str, Any]]:
    """The hostAliases tests/e2e/overlay-pod patches into the kustomize install."""
    overlay = yaml.safe_load(OVERLAY_POD.read_text(encoding="utf-8"))
    for patch in overlay["patches"]:
        for op in yaml.safe_load(patch["patch"]):
            if op["path"] == "/spec/template/spec/hostAliases":
                aliases: list[dict[str, Any]] = op["value"]
                return aliases
    raise AssertionError(f"no hostAliases patch in {OVERLAY_POD}")


def loaded_image(plane: Cluster) -> str:
    return (Path(plane.info["state"]) / "operator-image").read_text().strip()


def live_pods(plane: Cluster) -> list[dict[str, Any]]:
    found = plane.get("pods", None, NAMESPACE, "-l", SELECTOR)["items"]
    return [p for p in found if not p["metadata"].get("deletionTimestamp")]


def two_ready(plane: Cluster) -> list[dict[str, Any]]:
    def check() -> list[dict[str, Any]] | None:
        live = live_pods(plane)
        return live if len(live) == 2 and all(is_ready(p) for p in live) else None

    return list(wait_until(check, timeout=240, interval=1, what="two Ready operator pods"))


def is_running(pod: dict[str, Any]) -> bool:
    return bool(pod.get("status", {}).get("phase") == "Running")


def pod_scrape_status(pod: dict[str, Any]) -> int:
    """The HTTP status of an unauthenticated HTTPS scrape of the pod's /metrics."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the pod IP is not among the certificate's names
    url = f"https://{pod['status']['podIP']}:8080/metrics"
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code


@pytest.fixture(scope="module")
def installed(helm: str, plane: Cluster) -> Cluster:
    image = loaded_image(plane)
    repository, tag = image.rsplit(":", 1)
    values = {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "hostAliases": overlay_host_aliases(),
    }
    run_helm(
        helm,
        plane,
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--create-namespace",
        "--values",
        values_file(plane, "install", values),
        "--wait",
        "--timeout",
        "5m",
    )
    return plane


def test_install_stores_every_object_of_the_chart(installed: Cluster) -> None:
    for crd in CRDS:
        assert installed.exists("crd", crd), crd
    for resource, name in CLUSTER_SCOPED:
        assert installed.exists(resource, name), (resource, name)
    for resource, name in NAMESPACED:
        assert installed.exists(resource, name, NAMESPACE), (resource, name)
    labels = deployment(installed)["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "Helm"
    assert labels["app.kubernetes.io/instance"] == RELEASE


def test_both_replicas_run_the_loaded_image_on_the_node(installed: Cluster) -> None:
    stored = deployment(installed)
    assert stored["spec"]["replicas"] == 2
    spec = stored["spec"]["template"]["spec"]
    assert spec["hostAliases"] == overlay_host_aliases()
    [container] = spec["containers"]
    assert container["image"] == loaded_image(installed)
    assert container["imagePullPolicy"] == "Never"
    assert container["args"] == [
        "run",
        "--config",
        "/etc/finops/config.yaml",
        "--config-map",
        "finops-operator-config",
        "--invalid-config",
        "safe-default",
        "--webhook-secret",
        "finops-operator-webhook-tls",
    ]
    for pod in two_ready(installed):
        assert pod["spec"]["nodeName"] == installed.info["node"]
        [status] = pod["status"]["containerStatuses"]
        assert status["ready"] and status["restartCount"] == 0, status
    # The operator of the release's namespace made its certificate there and put its
    # CA into the webhooks.
    assert installed.exists("secret", "finops-operator-webhook-tls", NAMESPACE)
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        [hook] = installed.get(kind, "finops-operator")["webhooks"]
        assert hook["clientConfig"].get("caBundle"), kind


def test_one_replica_holds_the_lease(installed: Cluster) -> None:
    live = two_ready(installed)

    def holder() -> dict[str, Any] | None:
        lease = installed.get("lease", "finops-operator", NAMESPACE)
        return pod_of(str(lease["spec"].get("holderIdentity", "")), live)

    wait_until(holder, timeout=60, what="the Lease held by one of the release's pods")


def test_the_webhooks_call_the_service_in_the_release_namespace(installed: Cluster) -> None:
    service = installed.get("service", "finops-operator-webhook", NAMESPACE)
    assert [p["port"] for p in service["spec"]["ports"]] == [443]
    for kind, path in (
        ("validatingwebhookconfiguration", "/validate"),
        ("mutatingwebhookconfiguration", "/mutate"),
    ):
        [webhook] = installed.get(kind, "finops-operator")["webhooks"]
        assert "url" not in webhook["clientConfig"]
        assert webhook["clientConfig"]["service"] == {
            "name": "finops-operator-webhook",
            "namespace": NAMESPACE,
            "path": path,
            "port": 443,
        }
        [names] = [
            e["values"]
            for e in webhook["namespaceSelector"]["matchExpressions"]
            if e["key"] == "kubernetes.io/metadata.name"
        ]
        assert NAMESPACE in names
    assert NAMESPACE in stored_config(installed)["exemptNamespaces"]


def test_an_untagged_gpu_pod_is_refused_through_the_service(installed: Cluster) -> None:
    installed.namespace(ENFORCE, {MODE: "enforce"})
    untagged_gpu_pod_refused(installed, ENFORCE, timeout=60)
    installed.apply(gpu_workload("Pod", "tagged", ENFORCE, dict(COMPLIANT)), "--dry-run=server")


def test_the_release_counts_a_gpu_pod_running_on_a_kwok_node(installed: Cluster) -> None:
    """What the chart's RBAC lets it watch (pods, nodes) reaches its metrics Service."""
    installed.namespace(ENFORCE, {MODE: "enforce"})
    installed.apply(kwok_gpu_pod(installed, "trainer", ENFORCE, 2))
    try:

        def running_on() -> str:
            pod = installed.get("pod", "trainer", ENFORCE)
            return str(pod["spec"].get("nodeName", "")) if is_running(pod) else ""

        node = wait_until(running_on, timeout=60, what="the GPU pod running on a kwok node")
        assert node in installed.info["gpu_nodes"], node
        labels = {"namespace": ENFORCE, "pod": "trainer", "node": node, "team": COMPLIANT[TEAM]}
        wait_until(
            lambda: metric_sum(service_metrics(installed, NAMESPACE), POD_GPUS, **labels) == 2,
            timeout=30,
            what=f"2 GPUs of the pod on the release's /metrics with {labels}",
        )
    finally:
        installed.kubectl("-n", ENFORCE, "delete", "pod", "trainer", "--ignore-not-found")


def test_the_rbac_binds_the_release_service_account(installed: Cluster) -> None:
    binding = installed.get("clusterrolebinding", "finops-operator")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "finops-operator", "namespace": NAMESPACE}
    ]
    can = installed.kubectl(
        "auth",
        "can-i",
        "patch",
        "deployments.apps",
        "-A",
        f"--as=system:serviceaccount:{NAMESPACE}:finops-operator",
        check=False,
    )
    assert can.stdout.strip() == "yes"
    cannot = installed.kubectl(
        "auth",
        "can-i",
        "delete",
        "deployments.apps",
        "-A",
        f"--as=system:serviceaccount:{NAMESPACE}:finops-operator",
        check=False,
    )
    assert cannot.stdout.strip() == "no"
    # Beyond RBAC: the policy that limits the operator's writes to its annotation names
    # the ServiceAccount of this release's namespace.
    policy = installed.get(
        "validatingadmissionpolicy", "finops-operator-writes-only-its-annotation"
    )
    [condition] = policy["spec"]["matchConditions"]
    assert f"system:serviceaccount:{NAMESPACE}:finops-operator" in condition["expression"]


def test_an_upgrade_rolls_the_pods_while_admission_keeps_answering(
    helm: str, installed: Cluster
) -> None:
    old = {p["metadata"]["name"] for p in two_ready(installed)}
    before = deployment(installed)["spec"]["template"]["metadata"]["annotations"]
    installed.namespace(ENFORCE, {MODE: "enforce"})
    with AdmissionStream(installed, ENFORCE) as stream:
        run_helm(
            helm,
            installed,
            "upgrade",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            # No --force-conflicts: on the default gpuResources the operator finds its
            # gpu-workload condition already in the chart's webhooks and leaves the field
            # Helm's (scripts/gen_webhook_gpu_condition.py, docs/admission.md).
            "--reuse-values",
            "--values",
            values_file(
                installed,
                "upgrade",
                {
                    "config": {"mode": "enforce"},
                    "dashboards": {"enabled": False},
                    "metrics": {"secure": True},
                },
            ),
            "--wait",
            "--timeout",
            "5m",
        )
        installed.kubectl(
            "-n", NAMESPACE, "rollout", "status", "deployment/finops-operator", timeout=300
        )
        wait_until(lambda: len(live_pods(installed)) == 2, timeout=60, what="the old pods gone")
    new = {p["metadata"]["name"] for p in two_ready(installed)}
    assert not new & old, (old, new)
    stored = deployment(installed)
    after = stored["spec"]["template"]["metadata"]["annotations"]
    assert after["checksum/config"] != before["checksum/config"]
    config = stored_config(installed)
    assert config["mode"] == "enforce"
    # The rest of the configuration is kept.
    assert config["pricing"]["gpuHourly"]["NVIDIA-L4"] == "0.80"
    assert not installed.exists("configmap", "finops-dashboard-leadership", NAMESPACE)
    # metrics.secure: the new pods passed their probes over HTTPS, and /metrics on a
    # pod's IP wants a token.
    assert config["metrics"] == {"secure": True}
    [endpoint] = installed.get("servicemonitor", "finops-operator", NAMESPACE)["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    for pod in live_pods(installed):
        assert pod_scrape_status(pod) == 401
    assert len(stream.results) >= 10, f"only {len(stream.results)} requests during the upgrade"
    assert stream.failures() == [], stream.failures()[:5]
    history = json.loads(
        run_helm(helm, installed, "history", RELEASE, "-n", NAMESPACE, "-o", "json").stdout
    )
    assert [entry["revision"] for entry in history] == [1, 2]


def test_an_upgrade_with_bad_values_is_refused_and_changes_nothing(
    helm: str, installed: Cluster
) -> None:
    before = installed.get("configmap", "finops-operator-config", NAMESPACE)
    proc = run_helm(
        helm,
        installed,
        "upgrade",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--reuse-values",
        "--set",
        "config.mode=enforced",
        check=False,
    )
    assert proc.returncode != 0
    assert "/config/mode" in proc.stderr and "'enforce', 'audit', 'off'" in proc.stderr, proc.stderr
    after = installed.get("configmap", "finops-operator-config", NAMESPACE)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    status = json.loads(
        run_helm(helm, installed, "status", RELEASE, "-n", NAMESPACE, "-o", "json").stdout
    )
    assert status["version"] == 2 and status["info"]["status"] == "deployed"


def test_uninstall_removes_everything_but_the_crds(helm: str, installed: Cluster) -> None:
    run_helm(helm, installed, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait")
    for resource, name in CLUSTER_SCOPED:
        assert not installed.exists(resource, name), (resource, name)
    for resource, name in NAMESPACED:
        assert not installed.exists(resource, name, NAMESPACE), (resource, name)
    wait_until(lambda: live_pods(installed) == [], timeout=90, what="the operator's pods gone")
    # Helm never deletes what crds/ installed: CostPolicies and CostReports survive.
    for crd in CRDS:
        assert installed.exists("crd", crd), crd
    releases = json.loads(run_helm(helm, installed, "list", "-A", "-o", "json").stdout)
    assert releases == []
    # No webhook is left to fail closed: an untagged GPU pod in the enforce namespace
    # is stored (it stays Pending: it does not tolerate the kwok GPU nodes' taint).
    installed.apply(gpu_workload("Pod", "after-uninstall", ENFORCE))
    assert installed.exists("pod", "after-uninstall", ENFORCE)
