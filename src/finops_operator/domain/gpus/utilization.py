"""Where GPU utilization comes from, and the one PromQL fragment every reader uses.

The idle alert, the report's idle cost and the dashboards all need "how busy is
each pod's GPU", and on real stacks that question has three twists
(docs/install.md explains them):

- the GPU Operator's ServiceMonitor for dcgm-exporter keeps `honorLabels: false`,
  so the pod's labels arrive as `exported_namespace` / `exported_pod`, while a
  plain dcgm-exporter chart (`honorLabels: true`) keeps `namespace` / `pod`;
- on a MIG slice `DCGM_FI_DEV_GPU_UTIL` reads 0 or is missing, which would make
  every MIG pod look idle; `DCGM_FI_PROF_GR_ENGINE_ACTIVE` (0-1) is what DCGM
  reports per MIG instance (series with a `GPU_I_ID`);
- metrics differ in scale: percent (0-100) or ratio (0-1);
- a GPU handed out through Dynamic Resource Allocation carries dcgm-exporter's
  `dra_claim_namespace` / `dra_claim_name` labels (internal/pkg/transformation/
  const.go, set in kubernetes.go from the kubelet's pod-resources API), but its
  `namespace` / `pod` name one pod only, even when the claim is shared by
  several (dcgm-exporter maps each device to a single pod). Those series are
  joined through the operator's `finops_dra_claim_pods` (claim -> every pod in
  its `status.reservedFor`), so each sharing pod gets the device's utilization.

`pod_utilization` builds one expression that reads the MIG metric where a pod has
MIG series and the device metric elsewhere, renames the pod labels to
`namespace` / `pod`, and returns a fraction in [0, 1] per pod, so that every
caller joins it to `finops_pod_gpu_allocation` the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Final

from finops_operator.domain.config import GpuUtilization
from finops_operator.domain.conventions import METRIC_DRA_CLAIM_PODS
from finops_operator.domain.promql import number

# The label dcgm-exporter puts on series of a MIG instance (dcgm-exporter's
# internal/pkg/counters: GPU_I_ID, GPU_I_PROFILE); absent or empty on a whole GPU.
MIG_INSTANCE_LABEL: Final = "GPU_I_ID"
# dcgm-exporter's labels of a DRA-allocated device (internal/pkg/transformation/const.go),
# also the claim labels of the operator's `finops_dra_claim_pods`.
DRA_CLAIM_LABELS: Final = ("dra_claim_namespace", "dra_claim_name")


def _filters(matchers: Sequence[str], *more: str) -> str:
    every = [*matchers, *more]
    return "{" + ", ".join(every) + "}" if every else ""


def _as_pod_labels(expr: str, source: GpuUtilization) -> str:
    """`expr` with the scrape's pod labels copied to `namespace` and `pod`."""
    for target, label in (("namespace", source.namespace_label), ("pod", source.pod_label)):
        if label != target:
            expr = f'label_replace(\n  {expr},\n  "{target}", "$1", "{label}", "(.+)"\n)'
    return expr


def _one(
    metric: str,
    scale: Decimal,
    source: GpuUtilization,
    window: str,
    group: Sequence[str],
    matchers: Sequence[str],
) -> str:
    series = f"avg_over_time({metric}{_filters(matchers)}[{window}])"
    grouped = f"avg by ({', '.join(group)}) ({_as_pod_labels(series, source)})"
    return grouped if scale == 1 else f"{grouped} / {number(scale)}"


def _through_claims(
    metric: str,
    scale: Decimal,
    window: str,
    group: Sequence[str],
    matchers: Sequence[str],
    device_matchers: Sequence[str] = (),
) -> str:
    """`metric` of DRA devices, per pod reserving their claims (each sharer gets it all).

    `device_matchers` select among the device series only (a MIG instance's).
    """
    claim = [*DRA_CLAIM_LABELS, *(label for label in group if label not in ("namespace", "pod"))]
    dra_only = _filters(matchers, *device_matchers, f'{DRA_CLAIM_LABELS[1]}!=""')
    series = f"avg_over_time({metric}{dra_only}[{window}])"
    pods = f"max_over_time({METRIC_DRA_CLAIM_PODS}{_filters(matchers)}[{window}])"
    joined = (
        f"avg by ({', '.join(group)}) (\n"
        f"    avg by ({', '.join(claim)}) ({series})\n"
        f"  * on ({', '.join(claim)}) group_right ()\n"
        f"    max by ({', '.join(dict.fromkeys([*claim, *group]))}) ({pods})\n"
        f")"
    )
    return joined if scale == 1 else f"{joined} / {number(scale)}"


def pod_utilization(
    source: GpuUtilization,
    window: str,
    *,
    group: Sequence[str] = ("namespace", "pod"),
    matchers: Sequence[str] = (),
) -> str:
    """Each pod's mean utilization over `window` as a fraction (1 = fully busy), by `group`.

    `group` must hold `namespace` and `pod` (dashboards add `cluster`); `matchers`
    are extra label matchers such as `cluster=~"$cluster"`. Pods reserving a DRA
    claim are read through the claim first; then pods with MIG series from the MIG
    metric, every other pod from the device metric.
    """
    whole = _one(source.metric, source.scale, source, window, group, matchers)
    claimed = _through_claims(source.metric, source.scale, window, group, matchers)
    if not source.mig_metric:
        return f"(\n  {claimed}\nor\n  {whole}\n)"
    mig_only = (*matchers, f'{MIG_INSTANCE_LABEL}!=""')
    mig = _one(source.mig_metric, source.mig_scale, source, window, group, mig_only)
    mig_claimed = _through_claims(
        source.mig_metric, source.mig_scale, window, group, matchers, mig_only[-1:]
    )
    return f"(\n  {mig_claimed}\nor\n  {claimed}\nor\n  {mig}\nor\n  {whole}\n)"
