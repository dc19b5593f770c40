"""`helm install`, `upgrade` and `uninstall` of charts/finops-operator on a real API server.

A control plane of its own (scripts/e2e-cluster.sh up, E2E_NO_OPERATOR=1), not the
session's: the chart's cluster-wide objects (CRDs, ClusterRoles, webhook
configurations) have the names the kustomize install already uses there. The
kustomize install that `up` makes is deleted first (`kubectl delete -k`), which is
also the way from a kustomize install to the chart. The Prometheus Operator CRDs
stay: the chart's ServiceMonitor and PrometheusRule need them.

The control plane runs no pods, so the tests check what the API server stores and
validates: the Deployment, Services, webhook configurations calling the Service,
RBAC, ConfigMap, PDB, monitoring objects, and that uninstall removes them (all but
the CRDs, which Helm never deletes). Helm itself comes from scripts/build-helm.sh.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import SCRIPT, Cluster

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "finops-operator"
NAMESPACE = "finops-helm"
RELEASE = "finops"

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
    directory = tmp_path_factory.mktemp("e2e-helm")
    env = {**os.environ, "E2E_NO_OPERATOR": "1"}
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
        c = Cluster(info=info, dir=directory, started_here=True)
        c.kubectl("delete", "-k", str(directory / "install"), "--wait=true", timeout=180)
        yield c
    finally:
        subprocess.run(
            ["bash", str(SCRIPT), "down", str(directory)], capture_output=True, timeout=120
        )


def run_helm(
    helm: str, plane: Cluster, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [helm, "--kubeconfig", plane.kubeconfig, *args],
        capture_output=True,
        text=True,
        timeout=300,
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


@pytest.fixture(scope="module")
def installed(helm: str, plane: Cluster) -> Cluster:
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
        values_file(plane, "install", {"image": {"repository": "registry.invalid/finops"}}),
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


def test_the_deployment_is_the_one_the_values_describe(installed: Cluster) -> None:
    stored = deployment(installed)
    assert stored["spec"]["replicas"] == 2
    [container] = stored["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.invalid/finops:0.1.0"
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
    assert stored["spec"]["template"]["spec"]["serviceAccountName"] == "finops-operator"


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


def test_upgrade_changes_replicas_and_config_and_rolls_the_pods(
    helm: str, installed: Cluster
) -> None:
    before = deployment(installed)["spec"]["template"]["metadata"]["annotations"]
    run_helm(
        helm,
        installed,
        "upgrade",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--reuse-values",
        "--values",
        values_file(
            installed,
            "upgrade",
            {"replicas": 3, "config": {"mode": "enforce"}, "dashboards": {"enabled": False}},
        ),
    )
    stored = deployment(installed)
    assert stored["spec"]["replicas"] == 3
    after = stored["spec"]["template"]["metadata"]["annotations"]
    assert after["checksum/config"] != before["checksum/config"]
    config = stored_config(installed)
    assert config["mode"] == "enforce"
    # The rest of the configuration is kept.
    assert config["pricing"]["gpuHourly"]["NVIDIA-L4"] == "0.80"
    assert not installed.exists("configmap", "finops-dashboard-leadership", NAMESPACE)
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
    # Helm never deletes what crds/ installed: CostPolicies and CostReports survive.
    for crd in CRDS:
        assert installed.exists("crd", crd), crd
    releases = json.loads(run_helm(helm, installed, "list", "-A", "-o", "json").stdout)
    assert releases == []
