"""Stand-ins for dcgm-exporter, kube-state-metrics and LiteLLM's /metrics (tests/e2e).

The monitoring-stack e2e test (tests/e2e/test_monitoring_stack.py) has no GPUs, no
kubelet and no LiteLLM proxy, yet the operator's rules must match the series those
projects really emit. Each stand-in serves the Prometheus text format on a port of
its own, with metric names and label sets copied from the upstream sources
(docs/testing-e2e.md, "Stand-in exporters", cites each file):

- dcgm-exporter: `DCGM_FI_DEV_GPU_UTIL` (percent) from etc/default-counters.csv,
  `DCGM_FI_PROF_GR_ENGINE_ACTIVE` (ratio; MIG slices) from etc/dcp-metrics-included.csv,
  device labels `gpu`, `UUID`, `pci_bus_id`, `device`, `modelName`, `Hostname`,
  `DCGM_FI_DRIVER_VERSION` (+ `GPU_I_PROFILE`, `GPU_I_ID` on MIG) and the pod mapping
  labels `namespace`, `pod`, `container` (internal/pkg/transformation/const.go), and
  on a device allocated through DRA `dra_claim_name`, `dra_claim_namespace`,
  `dra_driver_name`, `dra_pool_name`, `dra_device_name` (same const.go, set in
  kubernetes.go; the Kubernetes docs' KubeletPodResourcesDynamicResources page
  shows such a series). dcgm-exporter maps a device to one pod only, so a shared
  claim's device names one of its pods;
- kube-state-metrics: `kube_pod_container_status_restarts_total`, `kube_pod_owner`,
  `kube_job_status_failed` with their documented labels (docs/metrics/workload/pod-metrics.md,
  job-metrics.md);
- LiteLLM: `litellm_input_tokens_metric_total`, `litellm_output_tokens_metric_total`,
  `litellm_total_tokens_metric_total` and `litellm_spend_metric_total` with the labels
  of litellm/types/integrations/prometheus.py (`team` is the team *id*, `team_alias` its name).

The values are the test's "truth": a test sets them and compares what Prometheus,
the alerts and `finops-operator report` make of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _labels(labels: dict[str, str]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in labels.items()) + "}"


def _family(name: str, kind: str, help_: str, samples: list[tuple[dict[str, str], float]]) -> str:
    lines = [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{_labels(lab)} {value:g}" for lab, value in samples]
    return "\n".join(lines) + "\n"


@dataclass
class GpuDevice:
    """One GPU (or MIG slice) as dcgm-exporter reports it, with the pod using it."""

    namespace: str
    pod: str
    container: str
    utilization_percent: float
    gpu: int = 0
    model_name: str = "NVIDIA H100 80GB HBM3"
    hostname: str = "gpu-node-1"
    mig_profile: str | None = None  # e.g. "1g.10gb": the device is a MIG slice
    dra_claim: tuple[str, str] | None = None  # (namespace, name) of the DRA claim holding it
    dra_device: str = "gpu-0"  # its name in the driver's ResourceSlice (pool: hostname)

    def labels(self) -> dict[str, str]:
        labels = {
            "gpu": str(self.gpu),
            "UUID": f"GPU-00000000-0000-0000-0000-{self.gpu:012d}",
            "pci_bus_id": f"00000000:{0x18 + self.gpu:02X}:00.0",
            "device": f"nvidia{self.gpu}",
            "modelName": self.model_name,
            "Hostname": self.hostname,
            "DCGM_FI_DRIVER_VERSION": "550.90.07",
        }
        if self.mig_profile:
            labels["GPU_I_PROFILE"] = self.mig_profile
            labels["GPU_I_ID"] = "1"
        labels.update(container=self.container, namespace=self.namespace, pod=self.pod)
        if self.dra_claim:
            labels.update(
                dra_claim_name=self.dra_claim[1],
                dra_claim_namespace=self.dra_claim[0],
                dra_device_name=self.dra_device,
                dra_driver_name="gpu.nvidia.com",
                dra_pool_name=self.hostname,
            )
        return labels


def dcgm_exporter(devices: list[GpuDevice]) -> str:
    # On a MIG slice DCGM_FI_DEV_GPU_UTIL is not reported; the profiling metric is.
    whole = [d for d in devices if not d.mig_profile]
    return _family(
        "DCGM_FI_DEV_GPU_UTIL",
        "gauge",
        "GPU utilization (in %).",
        [(d.labels(), d.utilization_percent) for d in whole],
    ) + _family(
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        "gauge",
        "Ratio of time the graphics engine is active.",
        [(d.labels(), d.utilization_percent / 100) for d in devices],
    )


@dataclass
class PodState:
    """What kube-state-metrics says about one pod: restarts and its owner."""

    namespace: str
    pod: str
    container: str = "main"
    restarts: int = 0
    owner_kind: str = "ReplicaSet"
    owner_name: str = "<none>"
    uid: str = "00000000-0000-0000-0000-000000000000"


@dataclass
class JobState:
    namespace: str
    job_name: str
    failed: int = 0


def kube_state_metrics(pods: list[PodState], jobs: list[JobState]) -> str:
    return (
        _family(
            "kube_pod_container_status_restarts_total",
            "counter",
            "The number of container restarts per container.",
            [
                (
                    {
                        "namespace": p.namespace,
                        "pod": p.pod,
                        "uid": p.uid,
                        "container": p.container,
                    },
                    p.restarts,
                )
                for p in pods
            ],
        )
        + _family(
            "kube_pod_owner",
            "gauge",
            "Information about the Pod's owner.",
            [
                (
                    {
                        "namespace": p.namespace,
                        "pod": p.pod,
                        "uid": p.uid,
                        "owner_kind": p.owner_kind,
                        "owner_name": p.owner_name,
                        "owner_is_controller": "true",
                    },
                    1,
                )
                for p in pods
            ],
        )
        + _family(
            "kube_job_status_failed",
            "gauge",
            "The number of pods which reached Phase Failed and the reason for failure.",
            [
                (
                    {
                        "namespace": j.namespace,
                        "job_name": j.job_name,
                        "reason": "BackoffLimitExceeded",
                    },
                    j.failed,
                )
                for j in jobs
            ],
        )
    )


@dataclass
class LlmUsage:
    """Token counters of one (team, model) through the LiteLLM proxy."""

    team_id: str
    team_alias: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    spend: float = 0.0

    def labels(self, with_requested_model: bool = True) -> dict[str, str]:
        labels = {
            "end_user": "",
            "hashed_api_key": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
            "api_key_alias": f"{self.team_alias}-key",
        }
        if with_requested_model:
            labels["requested_model"] = self.model
        labels.update(team=self.team_id, team_alias=self.team_alias, user="", model=self.model)
        return labels


def litellm(usage: list[LlmUsage]) -> str:
    return (
        _family(
            "litellm_input_tokens_metric_total",
            "counter",
            "Total number of input tokens from LLM requests",
            [(u.labels(), u.input_tokens) for u in usage],
        )
        + _family(
            "litellm_output_tokens_metric_total",
            "counter",
            "Total number of output tokens from LLM requests",
            [(u.labels(), u.output_tokens) for u in usage],
        )
        + _family(
            "litellm_total_tokens_metric_total",
            "counter",
            "Total number of input + output tokens from LLM requests",
            [(u.labels(), u.input_tokens + u.output_tokens) for u in usage],
        )
        + _family(
            "litellm_spend_metric_total",
            "counter",
            "Total spend on LLM requests",
            [(u.labels(with_requested_model=False), u.spend) for u in usage],
        )
    )


@dataclass
class StandInExporter:
    """An HTTP server answering GET /metrics with `render()` on (host, port)."""

    host: str
    port: int
    render: Callable[[], str]
    _server: ThreadingHTTPServer | None = field(default=None, init=False)
    scrapes: int = field(default=0, init=False)

    def start(self) -> StandInExporter:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = outer.render().encode()
                outer.scrapes += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def running(exporters: list[StandInExporter]) -> Iterator[list[StandInExporter]]:
    """Start them all; stop them all when the generator closes (for fixtures)."""
    try:
        yield [e.start() for e in exporters]
    finally:
        for e in exporters:
            e.stop()
