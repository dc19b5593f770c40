"""The idle join on a real Prometheus: dcgm-exporter's `dra_claim_*` labels lead to every pod.

dcgm-exporter labels a DRA device with its claim and with one pod only, even when
the claim is shared (internal/pkg/transformation/kubernetes.go maps a device to a
single pod). `pod_utilization` joins the device's claim to every pod that reserves
it, through the operator's `finops_dra_claim_pods`.
"""

from __future__ import annotations

import time
from pathlib import Path

from finops_devtools.devcluster.prometheus_runner import PrometheusServer
from finops_operator.domain import conventions
from finops_operator.domain.config import DCGM_EXPORTER, GPU_OPERATOR
from finops_operator.domain.gpus.utilization import pod_utilization
from tests.support.prometheus_server import needs_prometheus
from tests.support.tools import require_tool
from tests.support.upstream_exporters import GpuDevice

pytestmark = needs_prometheus

SHARED = ("ml", "shared")
DEVICES = [
    # The shared claim's device: dcgm-exporter names one of its two pods.
    GpuDevice("ml", "sharer-a", "main", 40.0, gpu=0, dra_claim=SHARED),
    GpuDevice("ml", "own-claim", "main", 70.0, gpu=1, dra_claim=("ml", "own"), dra_device="gpu-1"),
    GpuDevice("ml", "extended", "main", 90.0, gpu=2),  # nvidia.com/gpu: no DRA labels
]
CLAIM_PODS = [(SHARED, "sharer-a"), (SHARED, "sharer-b"), (("ml", "own"), "own-claim")]


def _labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{key}="{value}"' for key, value in labels.items()) + "}"


def openmetrics(end: int, renamed: bool) -> str:
    """Ten minutes of the device series and the operator's claim -> pod series."""
    lines = [f"# TYPE {conventions.METRIC_GPU_UTILIZATION} gauge"]
    for device in DEVICES:
        labels = device.labels()
        if renamed:  # the GPU Operator's ServiceMonitor: honorLabels false
            labels["exported_namespace"] = labels.pop("namespace")
            labels["exported_pod"] = labels.pop("pod")
        for at in range(end - 600, end + 1, 30):
            lines.append(
                f"{conventions.METRIC_GPU_UTILIZATION}{_labels(labels)} "
                f"{device.utilization_percent} {at}"
            )
    lines.append(f"# TYPE {conventions.METRIC_DRA_CLAIM_PODS} gauge")
    for (namespace, claim), pod in CLAIM_PODS:
        labels = {
            "dra_claim_namespace": namespace,
            "dra_claim_name": claim,
            "namespace": namespace,
            "pod": pod,
        }
        for at in range(end - 600, end + 1, 30):
            lines.append(f"{conventions.METRIC_DRA_CLAIM_PODS}{_labels(labels)} 1 {at}")
    return "\n".join([*lines, "# EOF", ""])


def utilization_by_pod(tmp_path: Path, renamed: bool) -> dict[str, float]:
    require_tool("prometheus", "promtool")
    end = int(time.time()) - 120
    source = tmp_path / "series.om"
    source.write_text(openmetrics(end, renamed))
    with PrometheusServer(tmp_path / "prometheus") as server:
        server.backfill_file(source)
        server.start()
        expr = pod_utilization(GPU_OPERATOR if renamed else DCGM_EXPORTER, "10m")
        return {
            str(row["metric"]["pod"]): round(float(row["value"][1]), 6)
            for row in server.query(expr, at=end)
        }


def test_every_pod_sharing_a_dra_claim_gets_its_devices_utilization(tmp_path: Path) -> None:
    assert utilization_by_pod(tmp_path, renamed=False) == {
        "sharer-a": 0.4,
        "sharer-b": 0.4,  # named on no dcgm series: found through the claim
        "own-claim": 0.7,
        "extended": 0.9,
    }


def test_the_claim_join_holds_with_the_gpu_operators_renamed_labels(tmp_path: Path) -> None:
    assert utilization_by_pod(tmp_path, renamed=True) == {
        "sharer-a": 0.4,
        "sharer-b": 0.4,
        "own-claim": 0.7,
        "extended": 0.9,
    }
