"""The series a scenario leaves in Prometheus, as OpenMetrics text.

`write_openmetrics` streams what the real exporters would have produced (the
operator, dcgm-exporter, a LiteLLM gateway or an OpenTelemetry GenAI one, vLLM
servers, kube-state-metrics), as scraped by
Prometheus, in the OpenMetrics text that `promtool tsdb create-blocks-from
openmetrics` backfills; `write_openmetrics_chunks` cuts it in daily files for
promtool. `ExportOptions` says how the series look once scraped (interval,
operator replicas, ServiceMonitor labels).
"""

from __future__ import annotations

import hashlib
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Final, TextIO

from finops_devtools.simulator.world import (
    COST_LABEL_NAMES,
    DAY,
    HOUR,
    Pod,
    Scenario,
    ServedModel,
    TokenStream,
    from_unix,
    stable_hash,
)
from finops_operator.domain import conventions
from finops_operator.domain.gpus.allocation import token_price_samples

# Series of other exporters, as they name them (DESIGN.md, "Metrics").
METRIC_DCGM_UTIL: Final = "DCGM_FI_DEV_GPU_UTIL"
METRIC_LITELLM_TOKENS: Final = "litellm_total_tokens_metric_total"
METRIC_LITELLM_INPUT_TOKENS: Final = "litellm_input_tokens_metric_total"
METRIC_LITELLM_OUTPUT_TOKENS: Final = "litellm_output_tokens_metric_total"
# OpenTelemetry GenAI's gen_ai.client.token.usage as Prometheus stores it (its _sum).
METRIC_GENAI_TOKEN_USAGE_SUM: Final = "gen_ai_client_token_usage_sum"
# vLLM's counters (vllm/v1/metrics/loggers.py), labelled model_name.
METRIC_VLLM_PROMPT_TOKENS: Final = "vllm:prompt_tokens_total"
METRIC_VLLM_GENERATION_TOKENS: Final = "vllm:generation_tokens_total"
METRIC_KSM_RESTARTS: Final = "kube_pod_container_status_restarts_total"
METRIC_KSM_REQUESTS: Final = "kube_pod_container_resource_requests"
METRIC_KSM_JOB_FAILED: Final = "kube_job_status_failed"
METRIC_KSM_POD_OWNER: Final = "kube_pod_owner"

JOB_OPERATOR: Final = "finops-operator"
JOB_DCGM: Final = "dcgm-exporter"
JOB_KSM: Final = "kube-state-metrics"
JOB_LITELLM: Final = "litellm"
JOB_GENAI_GATEWAY: Final = "envoy-ai-gateway"
JOB_VLLM: Final = "vllm"


@dataclass(frozen=True)
class ExportOptions:
    """How the series look once scraped.

    - `scrape_interval`: seconds between samples (15 to 300); samples fall on
      multiples of it (Unix time), like a Prometheus with one global interval.
    - `operator_replicas`: 1 or more; every `finops_*` series is written once per
      replica, differing only in the target labels `instance` (and `pod` where the
      series has no `pod` of its own), replica r > 0 scraped `replica_offset` x r
      seconds after replica 0.
    - `servicemonitor_labels`: the target labels a Prometheus Operator ServiceMonitor
      with `honorLabels: true` adds to the operator's series: `service`, `endpoint`,
      and `namespace`/`pod` of the operator pod on series that have none.
    - `external_labels`: (name, value) pairs added to every series, as a Thanos
      sidecar or a remote write adds a Prometheus' external labels (`cluster`,
      `prometheus_replica`): several clusters, or an HA pair, behind one endpoint.
    """

    scrape_interval: int = 60
    operator_replicas: int = 1
    replica_offset: int = 7
    servicemonitor_labels: bool = True
    operator_namespace: str = conventions.OPERATOR_NAMESPACE
    external_labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.scrape_interval <= 3600:
            raise ValueError("scrape_interval is in seconds, between 1 and 3600")
        if self.operator_replicas < 1:
            raise ValueError("at least one operator replica")
        if self.operator_replicas > 1 and self.replica_offset * self.operator_replicas >= (
            self.scrape_interval
        ):
            raise ValueError("replica_offset x replicas must stay below the scrape interval")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _series(name: str, labels: Mapping[str, str]) -> str:
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items())
    return f"{name}{{{inner}}} "


def _format(value: float | int | Fraction) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Fraction):
        if value.denominator == 1:
            return str(value.numerator)
        value = float(value)
    return repr(value)


def _ticks(a: int, b: int, interval: int, offset: int = 0) -> range:
    """Scrape times in [a, b): multiples of `interval`, plus `offset`."""
    first = -((offset - a) // interval) * interval + offset  # ceil to the grid
    return range(first, b, interval)


def ksm_resource(resource: str) -> str:
    """kube-state-metrics' spelling of a resource name: nvidia.com/gpu -> nvidia_com_gpu."""
    return resource.replace(".", "_").replace("/", "_").replace("-", "_")


def write_openmetrics(
    scenario: Scenario,
    out: TextIO | str | Path,
    options: ExportOptions | None = None,
    window: tuple[int, int] | None = None,
) -> int:
    """Write the scenario's scraped series as OpenMetrics text; returns the sample count.

    Streams family by family, series by series (each series in time order), so memory
    stays flat whatever the size. Ends with `# EOF`. Timestamps are in seconds.
    `window` = (start, end) in Unix seconds keeps only the samples in [start, end).
    """
    if isinstance(out, str | Path):
        with Path(out).open("w", encoding="utf-8", buffering=1 << 20) as file:
            return write_openmetrics(scenario, file, options, window)
    writer = _Writer(
        scenario, out, options or ExportOptions(), window or (scenario.start, scenario.end)
    )
    writer.write_all()
    out.write("# EOF\n")
    return writer.samples


def write_openmetrics_chunks(
    scenario: Scenario,
    directory: str | Path,
    options: ExportOptions | None = None,
    chunk: int = DAY,
) -> list[Path]:
    """The same series cut in files of `chunk` seconds each (aligned to multiples of
    `chunk`, itself a multiple of 2 hours), for `promtool tsdb create-blocks-from
    openmetrics` file by file: promtool reads its whole input once per 2-hour block,
    so one file for a month is quadratic; daily files are linear. Empty files are
    not written. Returns the paths, in time order."""
    if chunk <= 0 or chunk % (2 * HOUR):
        raise ValueError("chunk must be a positive multiple of 7200 seconds (promtool's blocks)")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for lo in range(scenario.start // chunk * chunk, scenario.end, chunk):
        path = folder / f"{from_unix(lo):%Y%m%dT%H%M%SZ}.om"
        if write_openmetrics(scenario, path, options, (lo, lo + chunk)):
            paths.append(path)
        else:
            path.unlink()
    return paths


class _Writer:
    def __init__(
        self, scenario: Scenario, out: TextIO, options: ExportOptions, window: tuple[int, int]
    ) -> None:
        self.s, self.out, self.o = scenario, out, options
        self.lo, self.hi = max(window[0], scenario.start), min(window[1], scenario.end)
        self.samples = 0
        self.nodes = {node.name: node for node in scenario.nodes}

    def family(self, name: str, kind: str, help_text: str) -> None:
        family = name.removesuffix("_total") if kind == "counter" else name
        self.out.write(f"# HELP {family} {help_text}\n# TYPE {family} {kind}\n")

    def _external(self, prefix: str) -> str:
        """`name{labels} ` with the external labels added."""
        if not self.o.external_labels:
            return prefix
        extra = ",".join(f'{key}="{_escape(value)}"' for key, value in self.o.external_labels)
        head = prefix.rstrip().removesuffix("}")
        return f"{head}{',' if not head.endswith('{') else ''}{extra}}} "

    def emit(self, prefix: str, points: Iterable[tuple[int, str]]) -> None:
        prefix = self._external(prefix)
        lines = [f"{prefix}{value} {t}\n" for t, value in points]
        self.samples += len(lines)
        self.out.writelines(lines)

    def constant(self, prefix: str, value: str, a: int, b: int, offset: int = 0) -> None:
        prefix = self._external(prefix)
        ticks = _ticks(max(a, self.lo), min(b, self.hi), self.o.scrape_interval, offset)
        self.samples += len(ticks)
        self.out.writelines([f"{prefix}{value} {t}\n" for t in ticks])

    def replicas(self) -> Iterator[tuple[int, dict[str, str], dict[str, str]]]:
        """(offset, target labels, labels for series without namespace/pod) per replica."""
        for r in range(self.o.operator_replicas):
            target = {"job": JOB_OPERATOR, "instance": f"10.0.1.{10 + r}:8080"}
            own: dict[str, str] = {}
            if self.o.servicemonitor_labels:
                target |= {"service": JOB_OPERATOR, "endpoint": "metrics"}
                own = {
                    "namespace": self.o.operator_namespace,
                    "pod": f"{JOB_OPERATOR}-7d9f8b6c5-{'abcdefghij'[r % 10]}{r:04d}",
                }
            yield r * self.o.replica_offset, target, own

    def write_all(self) -> None:
        s = self.s
        self.family(conventions.METRIC_POD_GPU_ALLOCATION, "gauge", "GPUs held by a running pod.")
        for offset, target, _ in self.replicas():
            for pod in s.pods:
                node = self.nodes[pod.node]
                labels = {
                    "namespace": pod.namespace,
                    "pod": pod.name,
                    "node": pod.node,
                    "resource": node.resource,
                    "gpu_model": node.gpu_model,
                    **{name: pod.label(name) for name in COST_LABEL_NAMES},
                    **target,
                }
                value = _format(s.pod_gpus(pod))
                prefix = _series(conventions.METRIC_POD_GPU_ALLOCATION, labels)
                self.constant(prefix, value, pod.start, pod.end, offset)
        self.family(conventions.METRIC_NODE_GPU_CAPACITY, "gauge", "GPUs a node offers.")
        for offset, target, own in self.replicas():
            for node in s.nodes:
                labels = {
                    "node": node.name,
                    "gpu_model": node.gpu_model,
                    "resource": node.resource,
                    **target,
                    **own,
                }
                a = s.start if node.start is None else node.start
                b = s.end if node.end is None else node.end
                prefix = _series(conventions.METRIC_NODE_GPU_CAPACITY, labels)
                self.constant(prefix, str(node.gpus), a, b, offset)
        self.family(conventions.METRIC_GPU_HOURLY_PRICE, "gauge", "Price of one GPU hour.")
        for offset, target, own in self.replicas():
            for model, price in sorted(s.pricing.gpu_hourly.items()):
                prefix = _series(
                    conventions.METRIC_GPU_HOURLY_PRICE, {"gpu_model": model, **target, **own}
                )
                self.constant(prefix, str(price), self.lo, self.hi, offset)
        self.family(conventions.METRIC_TOKEN_PRICE, "gauge", "Price of 1,000 LLM tokens.")
        for offset, target, own in self.replicas():
            for model, direction, price in token_price_samples(s.pricing):
                prefix = _series(
                    conventions.METRIC_TOKEN_PRICE,
                    {"model": model, "direction": direction, **target, **own},
                )
                self.constant(prefix, str(price), self.lo, self.hi, offset)
        if any(pod.claim for pod in s.pods):
            self.write_claim_pods()
        self.write_dcgm()
        self.write_ksm()
        if s.gateway == "otel-genai":
            self.write_genai_tokens()
        else:
            self.write_tokens()
        self.write_vllm()

    def write_claim_pods(self) -> None:
        """The operator's claim-to-pod series: 1 per pod reserving a DRA claim."""
        self.family(conventions.METRIC_DRA_CLAIM_PODS, "gauge", "Pods reserving a DRA claim.")
        for offset, target, _ in self.replicas():
            for pod in self.s.pods:
                if not pod.claim:
                    continue
                labels = {
                    "dra_claim_namespace": pod.namespace,
                    "dra_claim_name": pod.claim,
                    "namespace": pod.namespace,
                    "pod": pod.name,
                    **target,
                }
                prefix = _series(conventions.METRIC_DRA_CLAIM_PODS, labels)
                self.constant(prefix, "1", pod.start, pod.end, offset)

    def write_dcgm(self) -> None:
        """dcgm-exporter's utilization of each pod's devices. A DRA device carries its
        claim and device labels and names one pod only: a shared claim's device is
        written once, for the first of its sharers (`Pod.device_holder`)."""
        s, step = self.s, self.s.utilization_step
        self.family(METRIC_DCGM_UTIL, "gauge", "GPU utilization (in %).")
        for pod in s.pods:
            if pod.device_holder != pod.uid:
                continue
            node = self.nodes[pod.node]
            ticks = _ticks(max(pod.start, self.lo), min(pod.end, self.hi), self.o.scrape_interval)
            if not ticks:
                continue
            for device in pod.devices:
                uuid = stable_hash(zlib.crc32(node.name.encode()), device) % 16**12
                labels = {
                    "gpu": str(device),
                    "UUID": f"GPU-{uuid:012x}",
                    "device": f"nvidia{device}",
                    "modelName": node.gpu_model.replace("-", " "),
                    "Hostname": node.name,
                }
                if pod.slice_id is not None:
                    labels |= {"GPU_I_PROFILE": node.resource.split("mig-")[1]}
                    labels |= {"GPU_I_ID": str(pod.slice_id)}
                if pod.claim:
                    labels |= {
                        "dra_claim_name": pod.claim,
                        "dra_claim_namespace": pod.namespace,
                        "dra_pool_name": node.name,
                        "dra_device_name": f"gpu-{device}",
                    }
                labels |= {
                    "namespace": pod.namespace,
                    "pod": pod.name,
                    "container": pod.container,
                    "job": JOB_DCGM,
                    "instance": f"{node.ip}:9400",
                }
                key = stable_hash(pod.uid, device, s.seed)
                curve = pod.utilization
                self.emit(
                    _series(METRIC_DCGM_UTIL, labels),
                    ((t, str(curve.value(key, t // step, step))) for t in ticks),
                )

    def write_ksm(self) -> None:
        s = self.s
        ksm = {"job": JOB_KSM, "instance": "10.0.2.10:8080"}
        self.family(
            METRIC_KSM_REQUESTS, "gauge", "The number of requested request resource by a container."
        )
        for pod in s.pods:
            if pod.claim:
                continue  # GPUs through DRA are no container resource request
            node = self.nodes[pod.node]
            labels = {
                "namespace": pod.namespace,
                "pod": pod.name,
                "container": pod.container,
                "node": pod.node,
                "resource": ksm_resource(node.resource),
                "unit": "integer",
                **ksm,
            }
            self.constant(_series(METRIC_KSM_REQUESTS, labels), str(pod.units), pod.start, pod.end)
        self.family(METRIC_KSM_RESTARTS, "counter", "The number of container restarts.")
        for pod in s.pods:
            labels = {"namespace": pod.namespace, "pod": pod.name, "container": pod.container}
            ticks = _ticks(max(pod.start, self.lo), min(pod.end, self.hi), self.o.scrape_interval)
            restarts = pod.restarts
            self.emit(
                _series(METRIC_KSM_RESTARTS, {**labels, **ksm}),
                ((t, str(_count_until(restarts, t))) for t in ticks),
            )
        self.family(METRIC_KSM_POD_OWNER, "gauge", "Information about the Pod's owner.")
        for pod in s.pods:
            labels = {
                "namespace": pod.namespace,
                "pod": pod.name,
                "owner_kind": pod.owner_kind,
                "owner_name": pod.owner_name,
                "owner_is_controller": "true",
                **ksm,
            }
            self.constant(_series(METRIC_KSM_POD_OWNER, labels), "1", pod.start, pod.end)
        self.family(METRIC_KSM_JOB_FAILED, "gauge", "The number of pods which reached Failed.")
        for (namespace, job), attempts in _jobs(s.pods).items():
            first = min(pod.start for pod in attempts)
            last = max(pod.end for pod in attempts)
            failures = sorted(pod.end for pod in attempts if pod.failed)
            ticks = _ticks(max(first, self.lo), min(last, self.hi), self.o.scrape_interval)
            labels = {"namespace": namespace, "job_name": job, **ksm}
            self.emit(
                _series(METRIC_KSM_JOB_FAILED, labels),
                ((t, str(_count_until(failures, t))) for t in ticks),
            )

    def write_tokens(self) -> None:
        """LiteLLM's three token counters (litellm/integrations/prometheus.py): total,
        input and output, labelled like LiteLLM labels them: `team` is the team_id,
        `team_alias` the team's name. Input is 3/4 of the total (rounded down) and
        output the rest, so input + output = total at every sample."""
        s = self.s
        resets = sorted(s.gateway_restarts)
        families = (
            (METRIC_LITELLM_TOKENS, "Total number of input + output tokens.", None),
            (METRIC_LITELLM_INPUT_TOKENS, "Total number of input tokens.", "input"),
            (METRIC_LITELLM_OUTPUT_TOKENS, "Total number of output tokens.", "output"),
        )
        for metric, help_text, direction in families:
            self.family(metric, "counter", help_text)
            for stream in s.token_streams:
                labels = {
                    "api_key_alias": f"{stream.team}-key",
                    "hashed_api_key": stream.api_key,
                    "model": stream.model,
                    "requested_model": stream.model,
                    "team": team_id(stream.team),
                    "team_alias": stream.team,
                    "job": JOB_LITELLM,
                    "instance": "10.0.3.10:4000",
                }
                samples = self._counter(stream, resets)
                if direction is not None:
                    samples = _split(samples, direction)
                self.emit(_series(metric, labels), samples)

    def write_genai_tokens(self) -> None:
        """The gateway's tokens as OpenTelemetry GenAI reports them (Envoy AI Gateway):
        the `_sum` of the histogram gen_ai.client.token.usage, one series per token
        type (`input` 3/4 of the tokens, rounded down, `output` the rest), model and
        team (the attribute the gateway copies from the caller's header). Simplified:
        only the `_sum` series, typed unknown (no buckets, no count); a gateway restart
        resets it like a counter."""
        s = self.s
        resets = sorted(s.gateway_restarts)
        self.family(METRIC_GENAI_TOKEN_USAGE_SUM, "unknown", "Sum of tokens per request.")
        for direction in ("input", "output"):
            for stream in s.token_streams:
                labels = {
                    "gen_ai_operation_name": "chat",
                    "gen_ai_provider_name": "openai",
                    "gen_ai_request_model": stream.model,
                    "gen_ai_token_type": direction,
                    "team": stream.team,
                    "job": JOB_GENAI_GATEWAY,
                    "instance": "10.0.3.20:1064",
                }
                samples = _split(self._counter(stream, resets), direction)
                self.emit(_series(METRIC_GENAI_TOKEN_USAGE_SUM, labels), samples)

    def write_vllm(self) -> None:
        """vLLM's prompt and generation token counters of each serving pod, labelled
        `model_name`, with the pod's `namespace` and `pod` as target labels (a
        PodMonitor's); from 0 when the pod starts, while it runs."""
        s = self.s
        if not s.served_models:
            return
        families = (
            (METRIC_VLLM_PROMPT_TOKENS, "Number of prefill tokens processed.", "input"),
            (METRIC_VLLM_GENERATION_TOKENS, "Number of generation tokens processed.", "output"),
        )
        for metric, help_text, direction in families:
            self.family(metric, "counter", help_text)
            for served in s.served_models:
                pod = s.pod(served.pod_uid)
                labels = {
                    "model_name": served.model,
                    "namespace": pod.namespace,
                    "pod": pod.name,
                    "job": JOB_VLLM,
                    "instance": f"10.0.5.{served.pod_uid % 250}:8000",
                }
                self.emit(_series(metric, labels), _split(self._served(served, pod), direction))

    def _served(self, served: ServedModel, pod: Pod) -> Iterator[tuple[int, str]]:
        """A vLLM server's total tokens since its pod started, at each scrape it lived."""
        s, stream = self.s, served.stream
        first = max(self.lo, pod.start)
        hour_start = first // HOUR * HOUR
        done3600 = s.tokens3600(stream, pod.start, hour_start) if hour_start > pod.start else 0
        for t in _ticks(first, min(self.hi, pod.end), self.o.scrape_interval):
            while t >= hour_start + HOUR:
                lo = max(hour_start, pod.start)
                done3600 += s.tokens_in_hour(stream, hour_start // HOUR) * (hour_start + HOUR - lo)
                hour_start += HOUR
            lo = max(hour_start, pod.start)
            now3600 = done3600 + s.tokens_in_hour(stream, hour_start // HOUR) * (t - lo)
            yield t, str(now3600 // HOUR)

    def _counter(self, stream: TokenStream, resets: list[int]) -> Iterator[tuple[int, str]]:
        """Counter samples: tokens since the gateway last (re)started, rounded down."""
        s = self.s
        origin = s.counters_start
        anchor = min(origin, s.start) // HOUR * HOUR
        # 3600 x tokens in [anchor, t), kept incrementally hour by hour.
        first = max(self.lo, origin)
        hour_start = first // HOUR * HOUR
        done3600 = s.tokens3600(stream, anchor, hour_start)
        hourly = s.tokens_in_hour(stream, hour_start // HOUR)
        since3600 = s.tokens3600(stream, anchor, origin)
        pending = [r for r in resets if r > origin]
        for t in _ticks(first, self.hi, self.o.scrape_interval):
            while t >= hour_start + HOUR:
                done3600 += hourly * HOUR
                hour_start += HOUR
                hourly = s.tokens_in_hour(stream, hour_start // HOUR)
            while pending and pending[0] <= t:
                since3600 = s.tokens3600(stream, anchor, pending.pop(0))
            now3600 = done3600 + hourly * (t - hour_start)
            yield t, str((now3600 - since3600) // HOUR)


def team_id(team: str) -> str:
    """A stable UUID-shaped team_id, as LiteLLM generates them, for a simulated team."""
    digest = hashlib.sha256(team.encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def _split(samples: Iterator[tuple[int, str]], direction: str) -> Iterator[tuple[int, str]]:
    """The input (3/4, rounded down) or output (the rest) part of total-token samples."""
    for t, total in samples:
        whole = int(total)
        part = whole * 3 // 4
        yield t, str(part if direction == "input" else whole - part)


def _count_until(times: Sequence[int], t: int) -> int:
    return sum(1 for moment in times if moment <= t)


def _jobs(pods: Iterable[Pod]) -> dict[tuple[str, str], list[Pod]]:
    jobs: dict[tuple[str, str], list[Pod]] = defaultdict(list)
    for pod in pods:
        if pod.job is not None:
            jobs[(pod.namespace, pod.job)].append(pod)
    return jobs
