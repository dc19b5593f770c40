"""The monitoring stack as the charts install it: a real Prometheus Operator, then Prometheus.

Issue 9, part 4. Everything the operator writes for monitoring (the shared
recording rules, a CostPolicy's PrometheusRule, the ServiceMonitor of manifests/)
only works if a Prometheus Operator selects it the way kube-prometheus-stack
configures one, and if the rules match the series dcgm-exporter, kube-state-metrics
and LiteLLM really emit. This module shows both on the real control plane:

1. The Prometheus Operator, built from its Go module
   (scripts/build-prometheus-operator.sh), runs against the test API server with its
   own CRDs and a `Prometheus` whose selectors are kube-prometheus-stack's defaults
   (`release: kube-prometheus-stack` for ServiceMonitors and rules, every namespace).
2. There is no kubelet to run the Prometheus pod, so the test reads what the operator
   wrote for it - the Secret `prometheus-<name>` (prometheus.yaml.gz) and the
   ConfigMaps `prometheus-<name>-rulefiles-N` - and checks the rules and scrape jobs.
3. Prometheus, built from its Go module at the version the operator's module requires
   (v3.5.0; Debian's package has no Kubernetes service discovery), runs on exactly
   that configuration after what the config-reloader sidecar would do (`$(SHARD)`,
   `$(POD_NAME)`) and two rewrites (docs/testing-e2e.md): the rule file paths, and
   `kubeconfig_file` in each kubernetes_sd_config in place of the in-cluster
   credentials.
4. Stand-ins for dcgm-exporter, kube-state-metrics and LiteLLM
   (tests/support/upstream_exporters.py) are scraped through ServiceMonitors as the
   upstream charts ship them; the GPU Operator's is first left as shipped (not
   selected), then given the documented fix (`release` label, honorLabels false).
5. The idle, retry, budget and anomaly alerts fire in /api/v1/alerts, the policy's
   RulesEvaluating condition turns True, and `finops-operator report` matches the
   stand-ins' truth.

Endpoints cannot point at 127.0.0.1 (the API server refuses loopback addresses), so
the stand-ins and the operator listen on this machine's own address, found at run
time; traffic never leaves the machine.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from finops_devtools.devcluster import free_port
from tests.support.tools import require_tool
from tests.support.upstream_exporters import (
    GpuDevice,
    JobState,
    LlmUsage,
    PodState,
    StandInExporter,
    dcgm_exporter,
    kube_state_metrics,
    litellm,
)

from .conftest import (
    COMPLIANT,
    DRAIN_SECONDS,
    REPO,
    SCRIPT,
    TEAM,
    Cluster,
    restore_script_operator,
    stop_process,
    wait_until,
)
from .test_workloads import make_node, run_on

PROMTOOL = shutil.which("promtool")
BUILD = REPO / "scripts" / "build-prometheus-operator.sh"

RELEASE = "kube-prometheus-stack"
MONITORING = "monitoring"
# kube-prometheus-stack names its Prometheus "<fullname>-prometheus"; the operator
# then writes the Secret and ConfigMaps of that name with a "prometheus-" prefix.
PROMETHEUS_NAME = f"{RELEASE}-prometheus"
GPU_OPERATOR = "gpu-operator"
LITELLM_NS = "litellm"
NS = "e2e-stack"
NODE = "e2e-stack-h100"
H100 = "NVIDIA-H100-80GB-HBM3"
GPU_POD = "embedder-0"
DCGM_POD = "nvidia-dcgm-exporter-e2e"
REPLICA = "finops-operator-e2e-stack"  # the pod standing for the operator's replica
GPUS = 2
H100_PRICE = 4.5  # manifests/base/config.yaml, pricing.gpuHourly
# A team of its own: earlier modules leave GPU pods of COMPLIANT's team running.
TEAM_NAME = "monitoring-stack"
LABELS = {**COMPLIANT, TEAM: TEAM_NAME}
# The spend per hour the backfilled history shows, far under the live 2 x 4.50.
BASELINE_HOURLY = 1.0
HISTORY_HOURS = 48


def machine_address() -> str | None:
    """This machine's first global IPv4 address (Endpoints refuse loopback ones)."""
    proc = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True
    )
    m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", proc.stdout)
    return m.group(1) if m else None


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


# ----------------------------------------------------------------- what the charts ship


def prometheus_resource() -> dict[str, Any]:
    """The `Prometheus` of kube-prometheus-stack with its default values.

    prometheus-community/helm-charts, charts/kube-prometheus-stack/templates/prometheus/
    prometheus.yaml with values.yaml's `*SelectorNilUsesHelmValues: true`: every
    selector is `matchLabels: {release: <release name>}` and every namespace
    selector `{}`. Set here, unlike the chart: short scrape and evaluation intervals
    (the chart leaves them to the operator's 30s default). `version` is left to the
    operator's default (v3.5.0), the Prometheus built next to it.
    """
    release = {"matchLabels": {"release": RELEASE}}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": {
            "name": PROMETHEUS_NAME,
            "namespace": MONITORING,
            "labels": {"app": "kube-prometheus-stack-prometheus", "release": RELEASE},
        },
        "spec": {
            "replicas": 1,
            "scrapeInterval": "5s",
            "evaluationInterval": "5s",
            "serviceMonitorSelector": release,
            "serviceMonitorNamespaceSelector": {},
            "podMonitorSelector": release,
            "podMonitorNamespaceSelector": {},
            "probeSelector": release,
            "probeNamespaceSelector": {},
            "scrapeConfigSelector": release,
            "scrapeConfigNamespaceSelector": {},
            "ruleSelector": release,
            "ruleNamespaceSelector": {},
        },
    }


def selectorless_service(
    name: str, namespace: str, labels: dict[str, str], port_name: str, port: int
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"ports": [{"name": port_name, "port": port, "protocol": "TCP"}]},
    }


def endpoints(
    name: str, namespace: str, address: str, port_name: str, port: int, pod: str | None = None
) -> dict[str, Any]:
    """What the endpoints controller would write for a ready pod at `address`."""
    entry: dict[str, Any] = {"ip": address}
    if pod:
        entry["targetRef"] = {"kind": "Pod", "name": pod, "namespace": namespace}
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": namespace},
        "subsets": [
            {
                "addresses": [entry],
                "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            }
        ],
    }


def dcgm_service_monitor(labels: dict[str, str]) -> dict[str, Any]:
    """The GPU Operator's own ServiceMonitor for dcgm-exporter.

    NVIDIA/gpu-operator assets/state-dcgm-exporter/0500_service_monitor.yaml: label
    `app: nvidia-dcgm-exporter` only (no `release`), port gpu-metrics, no honorLabels
    (false). ClusterPolicy `dcgmExporter.serviceMonitor.additionalLabels` adds labels.
    """
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {
            "name": "nvidia-dcgm-exporter",
            "namespace": GPU_OPERATOR,
            "labels": {"app": "nvidia-dcgm-exporter", **labels},
        },
        "spec": {
            "endpoints": [{"port": "gpu-metrics", "path": "/metrics"}],
            "jobLabel": "app",
            "namespaceSelector": {"matchNames": [GPU_OPERATOR]},
            "selector": {"matchLabels": {"app": "nvidia-dcgm-exporter"}},
        },
    }


KSM_LABELS = {
    "app.kubernetes.io/name": "kube-state-metrics",
    "app.kubernetes.io/instance": RELEASE,
    "release": RELEASE,
}


def ksm_service_monitor() -> dict[str, Any]:
    """kube-state-metrics' ServiceMonitor as kube-prometheus-stack ships it.

    charts/kube-state-metrics/templates/servicemonitor.yaml with kube-prometheus-stack's
    values (`releaseLabel: true`, `prometheus.monitor.http.honorLabels: true`).
    """
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {
            "name": f"{RELEASE}-kube-state-metrics",
            "namespace": MONITORING,
            "labels": KSM_LABELS,
        },
        "spec": {
            "jobLabel": "app.kubernetes.io/name",
            "selector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "kube-state-metrics",
                    "app.kubernetes.io/instance": RELEASE,
                }
            },
            "endpoints": [{"port": "http", "honorLabels": True}],
        },
    }


def litellm_service_monitor() -> dict[str, Any]:
    """LiteLLM's /metrics (callbacks: ["prometheus"]), selected as docs/install.md says."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {
            "name": "litellm",
            "namespace": LITELLM_NS,
            "labels": {"app.kubernetes.io/name": "litellm", "release": RELEASE},
        },
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": "litellm"}},
            "endpoints": [{"port": "http", "path": "/metrics"}],
        },
    }


def cost_policy() -> dict[str, Any]:
    """Every alert type, with `for` and thresholds a test can wait for."""
    return {
        "apiVersion": "finops.resilio.tech/v1alpha1",
        "kind": "CostPolicy",
        "metadata": {"name": "stack", "namespace": NS},
        "spec": {
            "selector": {"team": TEAM_NAME},
            "anomaly": {
                "threshold": 100,
                "baseline": "1d",
                "minHistory": "2h",
                "for": "10s",
                "minHourlyCost": 2,
            },
            "budget": {"monthly": 1, "currency": "USD", "thresholds": [100], "forecast": False},
            # 5m: the shortest `for` a CostPolicy accepts for idle GPUs.
            "idle": {"maxUtilization": 10, "for": "5m"},
            "retries": {"maxRestartsPerHour": 2},
            "alerting": {"severity": "warning", "ruleLabels": {"release": RELEASE}},
        },
    }


# ----------------------------------------------------------------- the stack


@dataclass
class Stack:
    cluster: Cluster
    work: Path
    bin_dir: Path
    address: str
    operator_metrics_port: int
    prom_port: int
    exporters: ExporterState
    procs: list[subprocess.Popen[bytes]]
    prometheus_started: float = 0.0
    prometheus: subprocess.Popen[bytes] | None = None

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prom_port}"

    def generated_text(self) -> str:
        secret = self.cluster.get("secret", f"prometheus-{PROMETHEUS_NAME}", MONITORING)
        return gzip.decompress(base64.b64decode(secret["data"]["prometheus.yaml.gz"])).decode()

    def generated_config(self) -> dict[str, Any]:
        return dict(yaml.safe_load(self.generated_text()))

    def rule_files(self) -> dict[str, dict[str, str]]:
        """ConfigMap name -> {file name: content} of the operator's rule ConfigMaps."""
        found = self.cluster.get(
            "configmaps", None, MONITORING, "-l", f"prometheus-name={PROMETHEUS_NAME}"
        )
        return {cm["metadata"]["name"]: dict(cm.get("data") or {}) for cm in found["items"]}

    def require_prometheus(self) -> None:
        if not self.prometheus_started:
            pytest.fail(
                "Prometheus was not started: see "
                "test_prometheus_runs_on_the_generated_configuration"
            )

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        return list(get_json(url)["data"]["result"])

    def alerts(self) -> list[dict[str, Any]]:
        return list(get_json(f"{self.prometheus_url}/api/v1/alerts")["data"]["alerts"])


def job_names(config: dict[str, Any]) -> list[str]:
    return [job["job_name"] for job in config.get("scrape_configs") or []]


def start_logged(
    name: str, cmd: list[str], cluster: Cluster, procs: list[subprocess.Popen[bytes]], **kw: Any
) -> subprocess.Popen[bytes]:
    logs = Path(cluster.info["logs"])
    with (logs / f"{name}.log").open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, **kw)
    procs.append(proc)
    (Path(cluster.info["state"]) / f"extra-{name}.pid").write_text(str(proc.pid))
    return proc


@pytest.fixture(scope="module")
def stack(cluster: Cluster) -> Iterator[Stack]:
    require_tool("promtool")
    address = machine_address()
    if address is None:
        pytest.skip("needs a non-loopback IPv4 address: Endpoints refuse 127.0.0.0/8")
    built = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True, timeout=3000)
    if built.returncode != 0:
        pytest.fail(f"scripts/build-prometheus-operator.sh failed:\n{built.stderr[-4000:]}")
    bin_dir = Path(built.stdout.strip().splitlines()[-1])
    work = Path(cluster.info["dir"]) / "stack"
    work.mkdir(exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    exporters: list[StandInExporter] = []
    stopped_script_operator = False
    remove_leftovers(cluster)
    try:
        # The Prometheus Operator's own CRDs, of the version built (kubectl apply
        # --server-side, as its README installs them), but for the two the project's
        # install already applied (scripts/fetch-upstream-crds.sh takes them from the
        # same module version), which stay as they are.
        crds = [
            c
            for c in sorted((bin_dir / "crds").glob("*.yaml"))
            if not cluster.exists("crd", f"{c.stem.split('_', 1)[1]}.monitoring.coreos.com")
        ]
        if crds:
            cluster.kubectl(
                "apply",
                "--server-side",
                *[a for c in crds for a in ("-f", str(c))],
                timeout=120,
            )
        cluster.kubectl(
            "wait",
            "--for",
            "condition=Established",
            "--timeout",
            "60s",
            "crd/prometheuses.monitoring.coreos.com",
            "crd/servicemonitors.monitoring.coreos.com",
        )
        for ns in (MONITORING, GPU_OPERATOR, LITELLM_NS):
            cluster.namespace(ns)
        cluster.namespace(NS, {TEAM: TEAM_NAME})  # the CostPolicy's lane: its team

        # The Prometheus Operator, as cluster-admin (the chart's ClusterRole is wider
        # than anything it needs here), watching every namespace.
        start_logged(
            "prometheus-operator",
            [
                str(bin_dir / "prometheus-operator"),
                f"--web.listen-address=127.0.0.1:{free_port()}",
                "--log-level=info",
            ],
            cluster,
            procs,
            env=dict(os.environ, KUBECONFIG=cluster.kubeconfig),
        )

        make_node(
            cluster,
            NODE,
            {"nvidia.com/gpu.product": H100, "nvidia.com/gpu.count": "8"},
            {"nvidia.com/gpu": "8"},
        )
        # dcgm-exporter's pod (a DaemonSet's, on the GPU node): the Endpoints name it,
        # so its target gets a `pod` label, which the DCGM series' own `pod` then
        # collides with (honorLabels false: exported_pod).
        exporter_pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": DCGM_POD,
                "namespace": GPU_OPERATOR,
                "labels": {"app": "nvidia-dcgm-exporter"},
            },
            "spec": {
                "containers": [
                    {
                        "name": "nvidia-dcgm-exporter",
                        "image": "registry.invalid/dcgm-exporter:e2e",
                        "ports": [{"name": "metrics", "containerPort": 9400}],
                    }
                ]
            },
        }
        cluster.apply(exporter_pod)
        run_on(cluster, exporter_pod, NODE)
        set_pod_ip(cluster, GPU_OPERATOR, DCGM_POD, address)
        # The stand-in exporters, on this machine's address.
        state = ExporterState()
        for render in (state.dcgm, state.ksm, state.litellm):
            exporters.append(StandInExporter(address, 0, render).start())
        dcgm, ksm, llm = exporters
        cluster.apply(
            [
                selectorless_service(
                    "nvidia-dcgm-exporter",
                    GPU_OPERATOR,
                    {"app": "nvidia-dcgm-exporter"},
                    "gpu-metrics",
                    9400,
                ),
                endpoints(
                    "nvidia-dcgm-exporter",
                    GPU_OPERATOR,
                    address,
                    "gpu-metrics",
                    dcgm.port,
                    pod=DCGM_POD,
                ),
                selectorless_service(
                    f"{RELEASE}-kube-state-metrics", MONITORING, KSM_LABELS, "http", 8080
                ),
                endpoints(f"{RELEASE}-kube-state-metrics", MONITORING, address, "http", ksm.port),
                selectorless_service(
                    "litellm", LITELLM_NS, {"app.kubernetes.io/name": "litellm"}, "http", 4000
                ),
                endpoints("litellm", LITELLM_NS, address, "http", llm.port),
                dcgm_service_monitor({}),
                ksm_service_monitor(),
                litellm_service_monitor(),
            ]
        )

        # An operator of our own (the script's listens on loopback only, and reads no
        # Prometheus): the shipped configuration with prometheus.url set to the
        # Prometheus started below.
        metrics_port = free_port()
        prom_port = free_port()
        config = yaml.safe_load(Path(cluster.info["config"]).read_text())
        config["prometheus"]["url"] = f"http://127.0.0.1:{prom_port}"
        config["prometheus"]["rulesCheckSeconds"] = 5
        (work / "config.yaml").write_text(yaml.safe_dump(config))
        subprocess.run(
            ["bash", str(SCRIPT), "stop-operator", str(cluster.dir)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        stopped_script_operator = True
        start_logged(
            "operator-stack",
            [
                str(REPO / ".venv" / "bin" / "finops-operator"),
                "run",
                "--config",
                str(work / "config.yaml"),
                "--webhook-secret",
                "finops-operator-webhook-tls",
                # all addresses: the webhooks call 127.0.0.1, Prometheus this address
                "--webhook-host",
                "0.0.0.0",
                "--webhook-port",
                str(cluster.info["webhook_port"]),
                "--metrics-port",
                str(metrics_port),
                "--webhook-drain-seconds",
                DRAIN_SECONDS,
                "--namespace",
                "finops-system",
            ],
            cluster,
            procs,
            env=dict(
                os.environ,
                KUBECONFIG=cluster.info["operator_kubeconfig"],
                POD_NAMESPACE="finops-system",
            ),
            cwd=work,
        )
        wait_until(
            lambda: cluster.metric("finops_leader", metrics_port) == 1,
            timeout=60,
            what="the stack's operator leads",
        )

        # A pod standing for the operator's replica, so that the manifests' own Service
        # (selector app.kubernetes.io/name: finops-operator) gets an endpoint: bound to a
        # fake node and reported Running at this machine's address, as a kubelet would.
        # No pod-template-hash label: the Deployment's ReplicaSet does not adopt it.
        replica = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": REPLICA,
                "namespace": "finops-system",
                "labels": {"app.kubernetes.io/name": "finops-operator"},
            },
            "spec": {
                "containers": [
                    {
                        "name": "operator",
                        "image": "registry.invalid/finops-operator:e2e",
                        "ports": [{"name": "metrics", "containerPort": metrics_port}],
                        # finops-system enforces the Pod Security "restricted" level.
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 65532,
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                    }
                ]
            },
        }
        cluster.apply(replica)
        run_on(cluster, replica, NODE)
        set_pod_ip(cluster, "finops-system", REPLICA, address)

        # The GPU workload the alerts are about: two H100s, idle, its container restarting.
        gpu_pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": GPU_POD, "namespace": NS, "labels": dict(LABELS)},
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "registry.invalid/gpu:1",
                        "resources": {"limits": {"nvidia.com/gpu": GPUS}},
                    }
                ]
            },
        }
        cluster.apply(gpu_pod)
        run_on(cluster, gpu_pod, NODE)
        set_pod_ip(cluster, NS, GPU_POD, address)
        wait_until(
            lambda: cluster.metric("finops_pod_gpu_allocation", metrics_port, pod=GPU_POD) == GPUS,
            timeout=60,
            what="the operator reports the GPU pod",
        )
        cluster.apply(cost_policy())

        yield Stack(cluster, work, bin_dir, address, metrics_port, prom_port, state, procs)
    finally:
        for proc in reversed(procs):
            stop_process(proc)
        for e in exporters:
            e.stop()
        for name in ("prometheus-operator", "operator-stack", "prometheus-stack"):
            (Path(cluster.info["state"]) / f"extra-{name}.pid").unlink(missing_ok=True)
        remove_leftovers(cluster)
        if stopped_script_operator:
            restore_script_operator(cluster)


def remove_leftovers(cluster: Cluster) -> None:
    """What this module created that would outlive it (or a failed run of it).

    Pods bound to a fake node are deleted with --force: no kubelet confirms the end
    of a pod that was set Running, so a graceful delete waits forever.
    """
    for ns, name in (("finops-system", REPLICA), (NS, GPU_POD), (GPU_OPERATOR, DCGM_POD)):
        cluster.kubectl(
            "delete",
            "pod",
            name,
            "-n",
            ns,
            "--ignore-not-found",
            "--force",
            "--grace-period=0",
            "--wait=false",
            check=False,
        )
    for kind, name, ns in (
        ("costpolicy", "stack", NS),
        ("prometheus", PROMETHEUS_NAME, MONITORING),
        ("servicemonitor", "nvidia-dcgm-exporter", GPU_OPERATOR),
        ("servicemonitor", f"{RELEASE}-kube-state-metrics", MONITORING),
        ("servicemonitor", "litellm", LITELLM_NS),
    ):
        cluster.kubectl(
            "delete", kind, name, "-n", ns, "--ignore-not-found", "--wait=false", check=False
        )


def set_pod_ip(cluster: Cluster, namespace: str, name: str, address: str) -> None:
    cluster.kubectl(
        "patch",
        "pod",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"podIP": address, "podIPs": [{"ip": address}]}}),
    )


class ExporterState:
    """The truth the stand-ins serve: the GPU pod idle on two GPUs, restarting, LLM usage."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.devices = [
            GpuDevice(NS, GPU_POD, "main", utilization_percent=3.0, gpu=i, hostname=NODE)
            for i in range(GPUS)
        ]
        self.usage = [
            LlmUsage(
                "7d2c0b9e-3c1a-4b8e-9a57-0d6f5e2b1c44",
                TEAM_NAME,
                "gpt-4o",
                input_tokens=120_000,
                output_tokens=30_000,
                spend=0.6,
            ),
        ]

    def restarts(self) -> int:
        # A crash loop: one more restart every 5 seconds.
        return 1 + int((time.monotonic() - self.started) / 5)

    def dcgm(self) -> str:
        return dcgm_exporter(self.devices)

    def ksm(self) -> str:
        pod = PodState(NS, GPU_POD, "main", restarts=self.restarts(), owner_kind="<none>")
        return kube_state_metrics([pod], [JobState(NS, "nightly-finetune", 0)])

    def litellm(self) -> str:
        return litellm(self.usage)


# ----------------------------------------------------------------- the tests


def test_the_prometheus_operator_generates_config_for_the_chart_defaults(stack: Stack) -> None:
    cluster = stack.cluster
    cluster.apply(prometheus_resource())
    config = wait_until(
        lambda: (
            stack.generated_config()
            if cluster.exists("secret", f"prometheus-{PROMETHEUS_NAME}", MONITORING)
            else None
        ),
        timeout=90,
        what="the Prometheus Operator writes the Prometheus configuration",
    )
    # Selected: the operator's own ServiceMonitor (release label), kube-state-metrics
    # and LiteLLM. Not selected: the GPU Operator's, which has no release label.
    jobs = wait_until(
        lambda: (
            (names := job_names(stack.generated_config()))
            and "serviceMonitor/finops-system/finops-operator/0" in names
            and names
        ),
        timeout=60,
        what="a scrape job for the operator's ServiceMonitor",
    )
    assert f"serviceMonitor/{MONITORING}/{RELEASE}-kube-state-metrics/0" in jobs
    assert f"serviceMonitor/{LITELLM_NS}/litellm/0" in jobs
    assert not [j for j in jobs if "nvidia-dcgm-exporter" in j], jobs
    assert config["global"]["external_labels"]["prometheus"] == f"{MONITORING}/{PROMETHEUS_NAME}"


def test_the_operators_scrape_job_targets_its_metrics_service(stack: Stack) -> None:
    config = stack.generated_config()
    job = next(
        j
        for j in config["scrape_configs"]
        if j["job_name"] == "serviceMonitor/finops-system/finops-operator/0"
    )
    assert job["honor_labels"] is True
    assert job["scrape_interval"] == "30s" and job["metrics_path"] == "/metrics"
    sd = job["kubernetes_sd_configs"]
    assert sd[0]["role"] == "endpoints"
    assert sd[0]["namespaces"]["names"] == ["finops-system"]
    keeps = [r for r in job["relabel_configs"] if r.get("action") == "keep"]
    kept = {tuple(r["source_labels"]): r.get("regex") for r in keeps}
    # The Service's labels and its port named "metrics", as the ServiceMonitor selects them.
    assert any("app_kubernetes_io_name" in k[0] for k in kept), kept
    assert any("endpoint_port_name" in k[0] and v == "metrics" for k, v in kept.items()), kept


def test_the_rule_files_hold_the_recording_rules_and_the_policys_alerts(stack: Stack) -> None:
    def files() -> dict[str, str] | None:
        merged = {k: v for cm in stack.rule_files().values() for k, v in cm.items()}
        text = "\n".join(merged.values())
        if "finops:gpu_cost_hourly:sum" in text and "FinOpsGpuIdle" in text:
            return merged
        return None

    merged = wait_until(files, timeout=90, what="the finops rules in the rule ConfigMaps")
    recording = [n for n in merged if "finops-recording-rules" in n]
    policy = [n for n in merged if f"{NS}-costpolicy-stack" in n]
    assert recording and policy, sorted(merged)
    groups = yaml.safe_load(merged[policy[0]])["groups"]
    alerts = {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
    assert {
        "FinOpsSpendAnomaly",
        "FinOpsBudgetThreshold",
        "FinOpsGpuIdle",
        "FinOpsGpuRetryLoop",
    } <= alerts
    records = {
        r["record"]
        for g in yaml.safe_load(merged[recording[0]])["groups"]
        for r in g["rules"]
        if "record" in r
    }
    assert "finops:rule_evaluation:heartbeat" in records
    assert "finops:gpu_cost_hourly:avg1h" in records


def test_the_gpu_operators_servicemonitor_is_selected_once_fixed(stack: Stack) -> None:
    """ClusterPolicy dcgmExporter.serviceMonitor.additionalLabels: release (docs/install.md)."""
    stack.cluster.apply(dcgm_service_monitor({"release": RELEASE}))
    wait_until(
        lambda: (
            f"serviceMonitor/{GPU_OPERATOR}/nvidia-dcgm-exporter/0"
            in job_names(stack.generated_config())
        ),
        timeout=60,
        what="a scrape job for the GPU Operator's ServiceMonitor",
    )
    job = next(
        j
        for j in stack.generated_config()["scrape_configs"]
        if j["job_name"] == f"serviceMonitor/{GPU_OPERATOR}/nvidia-dcgm-exporter/0"
    )
    assert job.get("honor_labels", False) is False


def start_prometheus(stack: Stack) -> None:
    """Prometheus on the localized configuration and the module's TSDB."""
    stack.prometheus = start_logged(
        "prometheus-stack",
        [
            str(stack.bin_dir / "prometheus"),
            f"--config.file={stack.work / 'prometheus.yaml'}",
            f"--storage.tsdb.path={stack.work / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{stack.prom_port}",
        ],
        stack.cluster,
        stack.procs,
    )


# The environment of the Prometheus pod's config-reloader: the StatefulSet sets
# SHARD (0: one shard) and POD_NAME on it.
POD_ENV = {"SHARD": "0", "POD_NAME": f"prometheus-{PROMETHEUS_NAME}-0"}


def envsubst(text: str, env: dict[str, str]) -> str:
    """What prometheus-config-reloader does before Prometheus reads the file.

    The operator writes `$(SHARD)` (sharding keep rule) and `$(POD_NAME)` (external
    label prometheus_replica) into the Secret; the reloader sidecar replaces each
    `$(NAME)` with its environment variable. Without it every target is dropped.
    """
    missing = sorted(set(re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", text)) - set(env))
    assert not missing, f"the generated config expects {missing} in the environment"
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env[m.group(1)], text)


def localize(config: dict[str, Any], rules_dir: Path, kubeconfig: str) -> dict[str, Any]:
    """The two rewrites that let Prometheus run here on the operator's configuration.

    - rule_files: /etc/prometheus/rules/<ConfigMap>/*.yaml (the pod's mounts) become
      the folder the ConfigMaps were written to;
    - every kubernetes_sd_config gets `kubeconfig_file` (the test API server and a
      token) instead of the in-cluster service-account credentials it would use.
    Nothing else changes: jobs, relabelings, intervals and honor_labels are as generated.
    """
    config = json.loads(json.dumps(config))
    config["rule_files"] = [
        str(rules_dir / Path(p).parent.name / Path(p).name) for p in config.get("rule_files") or []
    ]
    for job in config.get("scrape_configs") or []:
        for sd in job.get("kubernetes_sd_configs") or []:
            assert "api_server" not in sd, sd
            sd["kubeconfig_file"] = kubeconfig
    return config


def write_rules(stack: Stack, rules_dir: Path) -> str:
    shutil.rmtree(rules_dir, ignore_errors=True)
    texts = []
    for cm, data in stack.rule_files().items():
        (rules_dir / cm).mkdir(parents=True, exist_ok=True)
        for name, text in data.items():
            (rules_dir / cm / name).write_text(text)
            texts.append(text)
    return "\n".join(texts)


def backfill_history(rules_text: str, tsdb: Path) -> None:
    """HISTORY_HOURS of hourly GPU spend at BASELINE_HOURLY for the team, ending now.

    `finops:gpu_cost_hourly:avg1h` as if the recording rules had been evaluated here
    for two days (every 2 minutes): the anomaly needs a baseline, the budget a
    month-to-date. The raw series it is recorded from are not written, so the live
    `avg1h` is the live spend from the first evaluation on. The token rules' series
    are left out: the stand-in LiteLLM's counters stay still, so token spend is 0.
    """
    assert PROMTOOL
    name = "finops:gpu_cost_hourly:avg1h"
    assert name in rules_text
    labels = (
        f'team="{TEAM_NAME}",feature="{COMPLIANT["resilio.tech/feature"]}",'
        f'environment="{COMPLIANT["resilio.tech/environment"]}",'
        f'workload_type="{COMPLIANT["resilio.tech/workload-type"]}",'
        f'cost_center="{COMPLIANT["resilio.tech/cost-center"]}"'
    )
    end = int(time.time()) - 30
    stamps = range(end - HISTORY_HOURS * 3600, end, 120)
    lines = [f"# TYPE {name} gauge"]
    lines += [f"{name}{{{labels}}} {BASELINE_HOURLY} {t}" for t in stamps]
    lines.append("# EOF")
    (tsdb.parent / "history.om").write_text("\n".join(lines) + "\n")
    subprocess.run(
        [
            PROMTOOL,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(tsdb.parent / "history.om"),
            str(tsdb),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )


def test_prometheus_runs_on_the_generated_configuration(stack: Stack) -> None:
    cluster = stack.cluster
    rules_dir = stack.work / "rules"
    rules_text = write_rules(stack, rules_dir)
    config = localize(
        yaml.safe_load(envsubst(stack.generated_text(), POD_ENV)), rules_dir, cluster.kubeconfig
    )
    (stack.work / "prometheus.yaml").write_text(yaml.safe_dump(config))
    tsdb = stack.work / "tsdb"
    shutil.rmtree(tsdb, ignore_errors=True)
    tsdb.mkdir()
    backfill_history(rules_text, tsdb)
    # Until a Prometheus evaluates the rules, the policy does not claim it is.
    before = wait_until(
        lambda: condition(cluster, "RulesEvaluating"), timeout=60, what="RulesEvaluating set"
    )
    assert before["status"] != "True", before
    stack.prometheus_started = time.time()
    start_prometheus(stack)

    def up() -> dict[str, str] | None:
        targets = get_json(f"{stack.prometheus_url}/api/v1/targets")["data"]["activeTargets"]
        health = {t["scrapePool"]: t["health"] for t in targets}
        want = [
            "serviceMonitor/finops-system/finops-operator/0",
            f"serviceMonitor/{GPU_OPERATOR}/nvidia-dcgm-exporter/0",
            f"serviceMonitor/{MONITORING}/{RELEASE}-kube-state-metrics/0",
            f"serviceMonitor/{LITELLM_NS}/litellm/0",
        ]
        if all(health.get(w) == "up" for w in want):
            return health
        errors = {t["scrapePool"]: t.get("lastError") for t in targets}
        raise AssertionError(f"targets: {health}, errors: {errors}")

    health = wait_until(up, timeout=90, interval=1, what="every target up")
    assert health
    # The operator's target is the replica's pod at this machine's address.
    finops = stack.query('up{job="finops-operator"}')
    assert (
        finops
        and finops[0]["metric"]["instance"] == f"{stack.address}:{stack.operator_metrics_port}"
    )


def test_dcgm_series_arrive_with_exported_pod_labels(stack: Stack) -> None:
    """honorLabels false: the target's namespace wins, the pod's own become exported_*."""
    stack.require_prometheus()
    series = wait_until(
        lambda: stack.query("DCGM_FI_DEV_GPU_UTIL"), timeout=60, what="DCGM series scraped"
    )
    for s in series:
        assert s["metric"]["exported_namespace"] == NS
        assert s["metric"]["exported_pod"] == GPU_POD
        assert s["metric"]["namespace"] == GPU_OPERATOR
    # kube-state-metrics with honorLabels true keeps the pod's namespace.
    restarts = wait_until(
        lambda: stack.query("kube_pod_container_status_restarts_total"),
        timeout=60,
        what="kube-state-metrics series scraped",
    )
    assert restarts[0]["metric"]["namespace"] == NS and restarts[0]["metric"]["pod"] == GPU_POD


def test_the_recording_rules_are_evaluated(stack: Stack) -> None:
    stack.require_prometheus()
    wait_until(
        lambda: stack.query("finops:rule_evaluation:heartbeat"),
        timeout=60,
        what="the recording rules' heartbeat",
    )
    cost = wait_until(
        lambda: stack.query(f'finops:gpu_cost_hourly:sum{{team="{TEAM_NAME}"}}'),
        timeout=90,
        what="the team's hourly GPU cost",
    )
    assert float(cost[0]["value"][1]) == pytest.approx(GPUS * H100_PRICE)
    # The policy's RulesEvaluating condition reads the heartbeat from this Prometheus.
    evaluating = wait_until(
        lambda: (c := condition(stack.cluster, "RulesEvaluating")).get("status") == "True" and c,
        timeout=60,
        what="RulesEvaluating True",
    )
    assert evaluating["reason"] == "HeartbeatFound"


def condition(cluster: Cluster, kind: str) -> dict[str, Any]:
    body = cluster.get("costpolicies", "stack", NS)
    found = {c["type"]: c for c in (body.get("status") or {}).get("conditions") or []}
    return dict(found.get(kind) or {})


def firing(stack: Stack, name: str) -> list[dict[str, Any]]:
    return [
        a for a in stack.alerts() if a["labels"].get("alertname") == name and a["state"] == "firing"
    ]


@pytest.mark.parametrize(
    "alert",
    # FinOpsGpuIdle last: its `for` is 5m, the others fire within a minute or two.
    ["FinOpsGpuRetryLoop", "FinOpsBudgetThreshold", "FinOpsSpendAnomaly", "FinOpsGpuIdle"],
)
def test_the_alert_fires(stack: Stack, alert: str) -> None:
    stack.require_prometheus()
    if alert == "FinOpsBudgetThreshold":
        now = datetime.now(UTC)
        if now.day == 1 and now.hour == 0:
            pytest.skip("the first hour of a month has no full hour of spend yet")
    timeout = 480 if alert == "FinOpsGpuIdle" else 240
    found = wait_until(
        lambda: firing(stack, alert), timeout=timeout, interval=2, what=f"{alert} firing"
    )
    labels = found[0]["labels"]
    assert labels["team"] == TEAM_NAME
    assert labels["costpolicy"] == f"{NS}/stack"
    if alert in ("FinOpsGpuIdle", "FinOpsGpuRetryLoop"):
        assert labels.get("pod") == GPU_POD or labels.get("exported_pod") == GPU_POD, labels


# ----------------------------------------------------------------- the report

# Series whose live label sets (as the generated scrape jobs made them) are written
# back in time for the report; counters grow at TOKENS_PER_HOUR, the rest keep their
# live value.
REPORTED = (
    "finops_pod_gpu_allocation",
    "finops_gpu_hourly_price",
    "finops_node_gpu_capacity",
    "finops_token_price_per_1k",
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
    "kube_pod_owner",
    "litellm_input_tokens_metric_total",
    "litellm_output_tokens_metric_total",
    "litellm_total_tokens_metric_total",
    "litellm_spend_metric_total",
)
TOKENS_PER_HOUR = {"input": 60_000, "output": 15_000}
REPORT_HOURS = 2


def om_labels(metric: dict[str, str]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"')

    return ",".join(f'{k}="{esc(v)}"' for k, v in sorted(metric.items()) if k != "__name__")


def counter_rate(name: str) -> float:
    """Per second, for the LiteLLM counters of the backfill (0: a gauge)."""
    per_hour = {
        "litellm_input_tokens_metric_total": TOKENS_PER_HOUR["input"],
        "litellm_output_tokens_metric_total": TOKENS_PER_HOUR["output"],
        "litellm_total_tokens_metric_total": sum(TOKENS_PER_HOUR.values()),
        "litellm_spend_metric_total": 1.0,
    }
    return per_hour.get(name, 0) / 3600


def test_report_matches_the_exporters_truth(stack: Stack) -> None:
    """`finops-operator report` on series labelled exactly as the generated scrape jobs
    label them. A report needs whole hours and the module has minutes, so the live
    series' label sets are written for the hours before Prometheus started (promtool),
    Prometheus is started again on that TSDB, and the report of two whole hours is
    compared with what the operator and the stand-ins export."""
    assert PROMTOOL and stack.prometheus_started
    live = {name: stack.query(name) for name in REPORTED}
    assert live["finops_pod_gpu_allocation"], "the operator's series are scraped"
    assert live["litellm_input_tokens_metric_total"], "LiteLLM's series are scraped"
    end = int(stack.prometheus_started) - 60
    begin = end - (REPORT_HOURS + 2) * 3600
    lines: list[str] = []
    for name, series in live.items():
        rate = counter_rate(name)
        if series:
            lines.append(f"# TYPE {name} {'counter' if rate else 'gauge'}")
        for s in series:
            labels = om_labels(s["metric"])
            value = float(s["value"][1])
            for t in range(begin, end, 30):
                v = (t - begin) * rate if rate else value
                lines.append(f"{name}{{{labels}}} {v:g} {t}")
    lines.append("# EOF")
    history = stack.work / "report-history.om"
    history.write_text("\n".join(lines) + "\n")
    assert stack.prometheus is not None
    stop_process(stack.prometheus)
    subprocess.run(
        [
            PROMTOOL,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(history),
            str(stack.work / "tsdb"),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    start_prometheus(stack)
    wait_until(
        lambda: stack.query("finops_pod_gpu_allocation"),
        timeout=60,
        what="Prometheus answers again",
    )

    window_end = end // 3600 * 3600
    window_start = window_end - REPORT_HOURS * 3600

    def iso(t: int) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    proc = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "finops-operator"),
            "report",
            "--config",
            str(stack.work / "config.yaml"),
            "--prometheus-url",
            stack.prometheus_url,
            "--start",
            iso(window_start),
            "--end",
            iso(window_end),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    rows = {row["team"]: row for row in report["teams"]}
    assert TEAM_NAME in rows, rows
    row = rows[TEAM_NAME]
    # Two H100s for two hours at the shipped 4.50 per GPU hour.
    assert Decimal(row["gpuHours"]) == GPUS * REPORT_HOURS
    assert Decimal(row["gpuCost"]) == Decimal("4.50") * GPUS * REPORT_HOURS
    # Token cost lands on the team's alias, never on LiteLLM's team id: 2 hours of
    # 60,000 input and 15,000 output tokens, each direction at its configured price.
    prices = yaml.safe_load((stack.work / "config.yaml").read_text())["pricing"]["tokensPer1k"]
    model = stack.exporters.usage[0].model

    def price(direction: str) -> Decimal:
        entry = prices.get(model, prices["default"])
        return Decimal(entry[direction] if isinstance(entry, dict) else entry)

    expected = sum(
        Decimal(TOKENS_PER_HOUR[d] * REPORT_HOURS) * price(d) / 1000 for d in ("input", "output")
    )
    assert Decimal(row["tokenCost"]) == expected.quantize(Decimal("0.01")), (row, expected)
    assert not [t for t in rows if t == stack.exporters.usage[0].team_id]
