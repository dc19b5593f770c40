"""The simulated world: nodes, pods, token streams and anomalies, as plain data.

A `Scenario` is a whole cluster over [start, end): nodes with GPU models, pods with
their cost labels, lifetimes, restarts and utilization curves, Jobs (training runs,
with retries), LLM gateway token streams with gateway restarts, and planted
anomalies. Build one by hand for small tests, or with `generation.generate_scenario`.

Times are integer Unix seconds (UTC). The world is deterministic: the noise in
utilization and token traffic comes from `stable_hash` of (pod, window) and of
(stream, hour), never from a random generator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from typing import Final

from finops_operator.domain import conventions
from finops_operator.domain.config import PricingConfig, TokenPreset

UNTAGGED: Final = conventions.UNTAGGED
COST_LABEL_NAMES: Final = ("team", "feature", "environment", "workload_type", "cost_center")

H100: Final = "NVIDIA-H100-80GB-HBM3"
A100: Final = "NVIDIA-A100-SXM4-80GB"
MI300X: Final = "AMD-MI300X"

RESOURCE_GPU: Final = "nvidia.com/gpu"
RESOURCE_SHARED: Final = "nvidia.com/gpu.shared"
RESOURCE_MIG_1G: Final = "nvidia.com/mig-1g.10gb"
RESOURCE_AMD: Final = "amd.com/gpu"
# NVIDIA's DRA driver: a node whose `resource` is this offers its GPUs as ResourceSlice
# devices, and its pods hold them through ResourceClaims (`Pod.claim`).
DRA_DRIVER: Final = conventions.DEFAULT_DRA_DRIVERS[0]

HOUR: Final = 3600
DAY: Final = 86400
_MASK64: Final = (1 << 64) - 1
# Hour-of-day shape of utilization and token traffic: low at night, high by day (UTC).
_DIURNAL: Final = tuple(math.sin(2 * math.pi * (hour - 9) / 24) for hour in range(24))


def stable_hash(*values: int) -> int:
    """A stateless 64-bit hash (splitmix64 over the values): the world's 'noise'."""
    x = 0x9E3779B97F4A7C15
    for value in values:
        x = (x ^ (value & _MASK64)) * 0xBF58476D1CE4E5B9 & _MASK64
        x ^= x >> 31
        x = x * 0x94D049BB133111EB & _MASK64
        x ^= x >> 29
    return x


def to_unix(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("use timezone-aware datetimes (UTC)")
    return int(moment.timestamp())


def from_unix(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


@dataclass(frozen=True)
class Node:
    """A GPU node. `gpus` physical devices, each offered as `units_per_gpu` units of
    `resource`: 1 for whole GPUs, 7 for `nvidia.com/mig-1g.10gb` on a 7-slice device,
    the replica count for time-slicing (`nvidia.com/gpu.shared`)."""

    name: str
    gpu_model: str
    resource: str
    gpus: int
    units_per_gpu: int = 1
    ip: str = "10.0.0.1"
    start: int | None = None  # None: there for the whole scenario
    end: int | None = None


@dataclass(frozen=True)
class Utilization:
    """A pod's GPU utilization (0-100, an integer, as DCGM reports it), constant over
    each window of `Scenario.utilization_step` seconds: `base`, plus `amplitude` x a
    day-shaped sine, plus hashed noise in [-noise, noise], clamped to [0, 100]."""

    base: int = 50
    amplitude: int = 0
    noise: int = 0

    def value(self, key: int, window: int, step: int) -> int:
        level = self.base
        if self.amplitude:
            hour = (window * step) % DAY // HOUR
            level += round(self.amplitude * _DIURNAL[hour])
        if self.noise:
            level += stable_hash(key, window) % (2 * self.noise + 1) - self.noise
        return 100 if level > 100 else 0 if level < 0 else level


@dataclass(frozen=True)
class Pod:
    """A pod holding `units` of its node's GPU resource from `start` to `end` (seconds,
    end excluded), so `units / node.units_per_gpu` GPUs. `labels` maps the short cost
    label names (team, feature, ...) to values; a name left out is untagged."""

    uid: int
    namespace: str
    name: str
    node: str
    units: int
    start: int
    end: int
    labels: Mapping[str, str]
    container: str = "main"
    devices: tuple[int, ...] = (0,)  # device indices on the node (dcgm's `gpu` label)
    slice_id: int | None = None  # MIG instance id, for dcgm's GPU_I_ID
    utilization: Utilization = field(default_factory=Utilization)
    restarts: tuple[int, ...] = ()  # times of container restarts
    owner_kind: str = "ReplicaSet"
    owner_name: str = ""
    job: str | None = None  # the Job (training run) this pod is an attempt of
    failed: bool = False  # for Job pods: this attempt failed at `end`
    # DRA: the ResourceClaim (in the pod's namespace) its `units` devices come from, or
    # "" for an extended resource; `sharers` are the uids of every pod reserving a
    # shared claim (this one included, all with the same lifetime), empty when only
    # this pod does. A shared claim's devices are split equally among them.
    claim: str = ""
    sharers: tuple[int, ...] = ()

    def label(self, name: str) -> str:
        return self.labels.get(name) or UNTAGGED

    @property
    def device_holder(self) -> int:
        """The uid of the pod dcgm-exporter names on this pod's devices: itself, or for a
        shared claim the first of its sharers (dcgm-exporter maps a device to one pod)."""
        return min(self.sharers) if self.sharers else self.uid


@dataclass(frozen=True)
class TokenStream:
    """One `litellm_total_tokens_metric_total{team, model, hashed_api_key}` counter:
    about `hourly` tokens an hour (day-shaped), spread evenly within each hour."""

    team: str
    model: str
    api_key: str
    hourly: int
    key: int = 0


@dataclass(frozen=True)
class ServedModel:
    """A vLLM server: pod `pod_uid` serves `model` (vLLM's `model_name`) for its whole
    life, about `hourly` tokens an hour (day-shaped), 3/4 of them prompt tokens; its
    counters start at 0 when the pod starts."""

    pod_uid: int
    model: str
    hourly: int
    key: int = 0

    @property
    def stream(self) -> TokenStream:
        """Its traffic, shaped like a gateway stream (no team: no anomaly applies)."""
        return TokenStream(team="", model=self.model, api_key="", hourly=self.hourly, key=self.key)


@dataclass(frozen=True)
class Anomaly:
    """From `start`, `team` gets `gpu_factor` times its share of new pods and
    `token_factor` times its token traffic: the spend jump an alert should catch."""

    team: str
    start: int
    gpu_factor: float = 3.0
    token_factor: int = 4


@dataclass(frozen=True)
class Scenario:
    """A whole simulated cluster over [start, end) (Unix seconds)."""

    start: int
    end: int
    nodes: Sequence[Node]
    pods: Sequence[Pod]
    pricing: PricingConfig = field(default_factory=PricingConfig)
    token_streams: Sequence[TokenStream] = ()
    gateway_restarts: tuple[int, ...] = ()  # gateway restarts: every counter resets to 0
    gateway_start: int | None = None  # when the counters started; default: `start`
    anomalies: Sequence[Anomaly] = ()
    utilization_step: int = 300
    seed: int = 0
    # How the gateway reports tokens: LiteLLM's counters, or OpenTelemetry GenAI's
    # gen_ai.client.token.usage (as Envoy AI Gateway does), the team in `team`.
    gateway: TokenPreset = "litellm"
    served_models: Sequence[ServedModel] = ()

    def pod(self, uid: int) -> Pod:
        for pod in self.pods:
            if pod.uid == uid:
                return pod
        raise KeyError(uid)

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def pod_gpus(self, pod: Pod) -> Fraction:
        """GPUs the pod holds: a MIG 1g.10gb slice of a 7-slice device is 1/7, one of
        two pods sharing a claim of one GPU holds 1/2."""
        sharers = max(len(pod.sharers), 1)
        return Fraction(pod.units, self.node(pod.node).units_per_gpu * sharers)

    def tokens_in_hour(self, stream: TokenStream, hour: int) -> int:
        """Tokens of `stream` in the hour [hour*3600, hour*3600 + 3600)."""
        shape = 1 + 0.5 * _DIURNAL[hour % 24]
        jitter = 0.8 + 0.4 * (stable_hash(stream.key, hour) % 1001) / 1000
        tokens = int(stream.hourly * shape * jitter)
        for anomaly in self.anomalies:
            if anomaly.team == stream.team and hour * HOUR >= anomaly.start:
                tokens *= anomaly.token_factor
        return tokens

    @property
    def counters_start(self) -> int:
        return self.start if self.gateway_start is None else self.gateway_start

    def tokens3600(self, stream: TokenStream, a: int, b: int) -> int:
        """3600 x the tokens of `stream` in [a, b): an integer."""
        if b <= a:
            return 0
        total = 0
        hour = a // HOUR
        while hour * HOUR < b:
            lo = max(a, hour * HOUR)
            hi = min(b, hour * HOUR + HOUR)
            total += self.tokens_in_hour(stream, hour) * (hi - lo)
            hour += 1
        return total
