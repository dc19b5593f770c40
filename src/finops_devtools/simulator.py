"""A simulated GPU cluster: the metrics it would leave in Prometheus, and the truth.

Used by tests, benchmarks and the demo (docs/simulator.md). A `Scenario` is plain
data: nodes with GPU models, pods with their cost labels, lifetimes, restarts and
utilization curves, Jobs (training runs, with retries), LLM gateway token streams
with gateway restarts, and planted anomalies. `generate_scenario` builds one from a
seed (same seed, same scenario); tests may also build one by hand.

From a scenario:

- `write_openmetrics` streams the series the real exporters would have produced
  (the operator, dcgm-exporter, a LiteLLM gateway, kube-state-metrics), as scraped
  by Prometheus, in the OpenMetrics text that `promtool tsdb create-blocks-from
  openmetrics` backfills.
- `ground_truth` computes, from the pods' intervals in continuous time (not from
  samples), what each team really used and owes in a period. It is written
  independently of `finops_operator.domain.costs.cost_model` (it never imports it), with exact
  fractions, so that a test comparing a report to it means something.

Times are integer Unix seconds (UTC). The simulated world is deterministic: the
only randomness is in `generate_scenario` (a seeded `random.Random`) and in
stateless hashes of (pod, window) for utilization and of (stream, hour) for tokens.
"""

from __future__ import annotations

import math
import random
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from fractions import Fraction
from pathlib import Path
from typing import Final, TextIO

from finops_operator.domain import conventions
from finops_operator.domain.config import PricingConfig

UNTAGGED: Final = conventions.UNTAGGED
COST_LABEL_NAMES: Final = ("team", "feature", "environment", "workload_type", "cost_center")

H100: Final = "NVIDIA-H100-80GB-HBM3"
A100: Final = "NVIDIA-A100-SXM4-80GB"
MI300X: Final = "AMD-MI300X"

RESOURCE_GPU: Final = "nvidia.com/gpu"
RESOURCE_SHARED: Final = "nvidia.com/gpu.shared"
RESOURCE_MIG_1G: Final = "nvidia.com/mig-1g.10gb"
RESOURCE_AMD: Final = "amd.com/gpu"

# Series of other exporters, as they name them (DESIGN.md, "Metrics").
METRIC_DCGM_UTIL: Final = "DCGM_FI_DEV_GPU_UTIL"
METRIC_LITELLM_TOKENS: Final = "litellm_total_tokens_metric_total"
METRIC_KSM_RESTARTS: Final = "kube_pod_container_status_restarts_total"
METRIC_KSM_REQUESTS: Final = "kube_pod_container_resource_requests"
METRIC_KSM_JOB_FAILED: Final = "kube_job_status_failed"
METRIC_KSM_POD_OWNER: Final = "kube_pod_owner"

JOB_OPERATOR: Final = "finops-operator"
JOB_DCGM: Final = "dcgm-exporter"
JOB_KSM: Final = "kube-state-metrics"
JOB_LITELLM: Final = "litellm"

HOUR: Final = 3600
DAY: Final = 86400
_MASK64: Final = (1 << 64) - 1
# Hour-of-day shape of utilization and token traffic: low at night, high by day (UTC).
_DIURNAL: Final = tuple(math.sin(2 * math.pi * (hour - 9) / 24) for hour in range(24))


def _mix(*values: int) -> int:
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


# ---------------------------------------------------------------- the world


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
            level += _mix(key, window) % (2 * self.noise + 1) - self.noise
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

    def label(self, name: str) -> str:
        return self.labels.get(name) or UNTAGGED


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
    gateway_restarts: tuple[int, ...] = ()  # LiteLLM restarts: every counter resets to 0
    gateway_start: int | None = None  # when the counters started; default: `start`
    anomalies: Sequence[Anomaly] = ()
    utilization_step: int = 300
    seed: int = 0

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def pod_gpus(self, pod: Pod) -> Fraction:
        """GPUs the pod holds: a MIG 1g.10gb slice of a 7-slice device is 1/7."""
        return Fraction(pod.units, self.node(pod.node).units_per_gpu)

    def tokens_in_hour(self, stream: TokenStream, hour: int) -> int:
        """Tokens of `stream` in the hour [hour*3600, hour*3600 + 3600)."""
        shape = 1 + 0.5 * _DIURNAL[hour % 24]
        jitter = 0.8 + 0.4 * (_mix(stream.key, hour) % 1001) / 1000
        tokens = int(stream.hourly * shape * jitter)
        for anomaly in self.anomalies:
            if anomaly.team == stream.team and hour * HOUR >= anomaly.start:
                tokens *= anomaly.token_factor
        return tokens

    @property
    def counters_start(self) -> int:
        return self.start if self.gateway_start is None else self.gateway_start

    def tokens_until(self, stream: TokenStream, t: int) -> Fraction:
        """Tokens of `stream` from `counters_start` until `t` (exact; linear within hours)."""
        return Fraction(self._tokens3600(stream, self.counters_start, t), HOUR)

    def _tokens3600(self, stream: TokenStream, a: int, b: int) -> int:
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


# ---------------------------------------------------------------- generating a scenario


@dataclass(frozen=True)
class NodePool:
    """`count` identical nodes."""

    gpu_model: str
    resource: str = RESOURCE_GPU
    count: int = 1
    gpus: int = 8
    units_per_gpu: int = 1


@dataclass(frozen=True)
class ScenarioParams:
    """What `generate_scenario` builds. Durations are in hours unless named otherwise."""

    start: datetime
    end: datetime
    seed: int = 1
    teams: int = 4
    node_pools: Sequence[NodePool] = (
        NodePool(H100, count=2),
        NodePool(A100, RESOURCE_MIG_1G, count=1, gpus=2, units_per_gpu=7),
        NodePool(A100, RESOURCE_SHARED, count=1, gpus=2, units_per_gpu=4),
        NodePool(MI300X, RESOURCE_AMD, count=1),
    )
    pricing: PricingConfig = field(
        default_factory=lambda: PricingConfig.model_validate(
            {
                "gpuHourly": {"default": "2.00", H100: "4.00", A100: "3.00"},
                "tokensPer1k": {"default": "0.002", "gpt-4o": "0.01"},
                "sharedMonthly": "1000",
            }
        )
    )
    llm_models: Sequence[str] = ("gpt-4o", "llama-3-70b")
    mean_gap_hours: float = 2.0  # idle time between pods on a GPU slot
    untagged_share: float = 0.06  # pods missing at least one cost label
    crashloop_share: float = 0.04  # pods restarting every few minutes
    job_failure_share: float = 0.15  # Job attempts that fail and are retried
    idle_share: float = 0.1  # pods that hardly use their GPU
    anomaly: bool = True  # plant a spend jump for one team after 2/3 of the scenario
    gateway_restart: bool = True  # restart the LLM gateway once, at a random minute
    tokens_hourly: int = 200_000  # typical token traffic of one team's API key
    utilization_step: int = 300

    @classmethod
    def benchmark(cls, start: datetime, end: datetime, seed: int = 7) -> ScenarioParams:
        """A month of a large cluster: 200 teams, about 5,000 pods (a 1.5 GB file at 5 min)."""
        return cls(
            start=start,
            end=end,
            seed=seed,
            teams=200,
            node_pools=(
                NodePool(H100, count=8),
                NodePool(A100, count=4),
                NodePool(A100, RESOURCE_MIG_1G, count=1, gpus=8, units_per_gpu=7),
                NodePool(A100, RESOURCE_SHARED, count=1, gpus=8, units_per_gpu=4),
                NodePool(MI300X, RESOURCE_AMD, count=3),
            ),
            mean_gap_hours=4.0,
        )


_TEAM_NAMES: Final = (
    "search-platform", "recsys", "llm-core", "vision", "speech", "ads-ranking",
    "fraud", "forecasting", "robotics", "translation",
)  # fmt: skip
_FEATURES: Final = (
    "ranking", "embeddings", "chat", "summarize", "ocr", "asr", "retrieval",
    "finetune", "eval", "pretrain", "moderation", "autocomplete",
)  # fmt: skip
_ENVIRONMENTS: Final = (("production", 5), ("staging", 3), ("development", 2))
# Median duration in hours and spread (sigma of the log) by workload type.
_DURATIONS: Final = {
    "training": (10.0, 0.9),
    "inference": (40.0, 0.8),
    "notebook": (3.0, 0.7),
    "batch": (0.7, 0.8),
}


@dataclass(frozen=True)
class _Team:
    name: str
    features: tuple[str, ...]
    cost_center: str
    weight: float


def generate_scenario(params: ScenarioParams) -> Scenario:
    """A scenario from `params`; the same params (seed included) give the same scenario."""
    rng = random.Random(params.seed)
    start, end = to_unix(params.start), to_unix(params.end)
    if end <= start:
        raise ValueError("the scenario must end after it starts")
    teams = [
        _Team(
            name=_TEAM_NAMES[i] if i < len(_TEAM_NAMES) else f"team-{i:03d}",
            features=tuple(rng.sample(_FEATURES, rng.randint(1, 3))),
            cost_center=f"cc-{1000 + i // 3}",
            weight=1 / (i + 1) ** 0.7,
        )
        for i in range(params.teams)
    ]
    anomalies: list[Anomaly] = []
    if params.anomaly and len(teams) > 1:
        at = start + (end - start) * 2 // 3 // HOUR * HOUR
        anomalies.append(Anomaly(team=teams[1].name, start=at))

    nodes: list[Node] = []
    for pool_index, pool in enumerate(params.node_pools):
        for i in range(pool.count):
            kind = {RESOURCE_MIG_1G: "mig", RESOURCE_SHARED: "shared", RESOURCE_AMD: "amd"}
            prefix = kind.get(pool.resource, "gpu")
            nodes.append(
                Node(
                    name=f"{prefix}-{pool.gpu_model.split('-')[1].lower()}-{pool_index}-{i}",
                    gpu_model=pool.gpu_model,
                    resource=pool.resource,
                    gpus=pool.gpus,
                    units_per_gpu=pool.units_per_gpu,
                    ip=f"10.0.{10 + pool_index}.{10 + i}",
                )
            )

    builder = _PodBuilder(params, rng, teams, anomalies, start, end)
    for node in nodes:
        for slot in _slots(node, rng):
            builder.fill(node, *slot)

    streams = [
        TokenStream(
            team=team.name,
            model=model,
            api_key=f"sk-{_mix(params.seed, index, k) % 16**8:08x}",
            hourly=int(params.tokens_hourly * team.weight * rng.uniform(0.5, 1.5)),
            key=_mix(params.seed, index, k, 7),
        )
        for index, team in enumerate(teams)
        for k, model in enumerate(rng.sample(list(params.llm_models), rng.randint(1, 2)))
    ]
    restarts: tuple[int, ...] = ()
    if params.gateway_restart:
        restarts = (start + rng.randrange((end - start) // 3, (end - start) * 2 // 3) // 60 * 60,)
    return Scenario(
        start=start,
        end=end,
        nodes=nodes,
        pods=sorted(builder.pods, key=lambda pod: (pod.start, pod.uid)),
        pricing=params.pricing,
        token_streams=streams,
        gateway_restarts=restarts,
        gateway_start=start - 6 * HOUR,
        anomalies=anomalies,
        utilization_step=params.utilization_step,
        seed=params.seed,
    )


def _slots(node: Node, rng: random.Random) -> Iterator[tuple[int, tuple[int, ...], int | None]]:
    """(units, devices, MIG slice id) of each independent GPU slot of a node."""
    if node.units_per_gpu > 1:
        for device in range(node.gpus):
            for unit in range(node.units_per_gpu):
                slice_id = unit if node.resource.startswith("nvidia.com/mig-") else None
                yield 1, (device,), slice_id
        return
    layouts = [[node.gpus], [1] * node.gpus]
    if node.gpus % 2 == 0:
        half = node.gpus // 2
        layouts += [[half, half], [half, *([1] * half)]]
    device = 0
    for size in rng.choice(layouts):
        yield size, tuple(range(device, device + size)), None
        device += size


class _PodBuilder:
    def __init__(
        self,
        params: ScenarioParams,
        rng: random.Random,
        teams: list[_Team],
        anomalies: list[Anomaly],
        start: int,
        end: int,
    ) -> None:
        self.params, self.rng, self.teams = params, rng, teams
        self.anomalies, self.start, self.end = anomalies, start, end
        self.pods: list[Pod] = []
        self.jobs = 0

    def _team(self, t: int) -> _Team:
        weights = [team.weight for team in self.teams]
        for anomaly in self.anomalies:
            if t >= anomaly.start:
                for i, team in enumerate(self.teams):
                    if team.name == anomaly.team:
                        weights[i] *= anomaly.gpu_factor
        return self.rng.choices(self.teams, weights)[0]

    def _workload_type(self, units: int, shared: bool) -> str:
        if shared:
            return self.rng.choice(("inference", "notebook", "notebook", "batch"))
        if units >= 4:
            return self.rng.choice(("training", "training", "training", "inference"))
        return self.rng.choice(("training", "inference", "inference", "notebook", "batch"))

    def fill(self, node: Node, units: int, devices: tuple[int, ...], slice_id: int | None) -> None:
        """Pods one after another on one slot, from before the scenario to after it."""
        rng = self.rng
        gap = self.params.mean_gap_hours * HOUR
        t = self.start - rng.randrange(0, 2 * DAY) // 60 * 60
        while t < self.end:
            team = self._team(t)
            wtype = self._workload_type(units, node.units_per_gpu > 1)
            median, sigma = _DURATIONS[wtype]
            duration = max(60, int(rng.lognormvariate(math.log(median * HOUR), sigma)) // 60 * 60)
            labels = {
                "team": team.name,
                "feature": rng.choice(team.features),
                "environment": rng.choices(
                    [e for e, _ in _ENVIRONMENTS], [w for _, w in _ENVIRONMENTS]
                )[0],
                "workload_type": wtype,
                "cost_center": team.cost_center,
            }
            if rng.random() < self.params.untagged_share:
                dropped = rng.sample(COST_LABEL_NAMES, rng.randint(1, 3))
                if rng.random() < 0.5 and "team" not in dropped:
                    dropped.append("team")
                for name in dropped:
                    labels.pop(name, None)
            if rng.random() < self.params.idle_share:
                curve = Utilization(base=rng.randint(0, 6), amplitude=0, noise=2)
            else:
                curve = Utilization(
                    base=rng.randint(35, 90), amplitude=rng.randint(0, 20), noise=rng.randint(0, 8)
                )
            common = {
                "namespace": team.name,
                "node": node.name,
                "units": units,
                "labels": labels,
                "devices": devices,
                "slice_id": slice_id,
                "utilization": curve,
            }
            feature = labels.get("feature", "app")
            if wtype in ("training", "batch"):
                self.jobs += 1
                job = f"{feature}-{wtype}-{self.jobs:05d}"
                attempts = 1
                while attempts < 4 and rng.random() < self.params.job_failure_share:
                    attempts += 1
                for attempt in range(attempts):
                    failed = attempt < attempts - 1
                    length = max(60, duration // 4 // 60 * 60) if failed else duration
                    self._add(
                        name=f"{job}-{_mix(self.jobs, attempt) % 36**5:05x}",
                        start=t,
                        end=t + length,
                        owner_kind="Job",
                        owner_name=job,
                        job=job,
                        failed=failed,
                        restarts=(),
                        **common,
                    )
                    t += length + (60 if failed else 0)
            else:
                name = f"{feature}-{wtype}-{_mix(len(self.pods)) % 16**10:010x}"
                restarts: tuple[int, ...] = ()
                if rng.random() < self.params.crashloop_share:
                    every = rng.randrange(300, 1800, 60)
                    restarts = tuple(range(t + every, t + duration, every))
                elif rng.random() < 0.1:
                    restarts = (t + rng.randrange(0, duration, 60),)
                self._add(
                    name=name,
                    start=t,
                    end=t + duration,
                    owner_kind="ReplicaSet",
                    owner_name=name.rsplit("-", 1)[0] + "-rs",
                    restarts=restarts,
                    **common,
                )
                t += duration
            t += max(60, int(rng.expovariate(1 / gap)) // 60 * 60)

    def _add(self, **fields: object) -> None:
        self.pods.append(Pod(uid=len(self.pods) + 1, **fields))  # type: ignore[arg-type]


# ---------------------------------------------------------------- OpenMetrics


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
    """

    scrape_interval: int = 60
    operator_replicas: int = 1
    replica_offset: int = 7
    servicemonitor_labels: bool = True
    operator_namespace: str = conventions.OPERATOR_NAMESPACE

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

    def emit(self, prefix: str, points: Iterable[tuple[int, str]]) -> None:
        lines = [f"{prefix}{value} {t}\n" for t, value in points]
        self.samples += len(lines)
        self.out.writelines(lines)

    def constant(self, prefix: str, value: str, a: int, b: int, offset: int = 0) -> None:
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
        self.write_dcgm()
        self.write_ksm()
        self.write_tokens()

    def write_dcgm(self) -> None:
        s, step = self.s, self.s.utilization_step
        self.family(METRIC_DCGM_UTIL, "gauge", "GPU utilization (in %).")
        for pod in s.pods:
            node = self.nodes[pod.node]
            ticks = _ticks(max(pod.start, self.lo), min(pod.end, self.hi), self.o.scrape_interval)
            if not ticks:
                continue
            for device in pod.devices:
                labels = {
                    "gpu": str(device),
                    "UUID": f"GPU-{_mix(zlib.crc32(node.name.encode()), device) % 16**12:012x}",
                    "device": f"nvidia{device}",
                    "modelName": node.gpu_model.replace("-", " "),
                    "Hostname": node.name,
                }
                if pod.slice_id is not None:
                    labels |= {"GPU_I_PROFILE": node.resource.split("mig-")[1]}
                    labels |= {"GPU_I_ID": str(pod.slice_id)}
                labels |= {
                    "namespace": pod.namespace,
                    "pod": pod.name,
                    "container": pod.container,
                    "job": JOB_DCGM,
                    "instance": f"{node.ip}:9400",
                }
                key = _mix(pod.uid, device, s.seed)
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
        s = self.s
        self.family(METRIC_LITELLM_TOKENS, "counter", "Total number of input + output tokens.")
        resets = sorted(s.gateway_restarts)
        for stream in s.token_streams:
            labels = {
                "api_key_alias": f"{stream.team}-key",
                "hashed_api_key": stream.api_key,
                "model": stream.model,
                "team": stream.team,
                "team_alias": stream.team,
                "job": JOB_LITELLM,
                "instance": "10.0.3.10:4000",
            }
            self.emit(_series(METRIC_LITELLM_TOKENS, labels), self._counter(stream, resets))

    def _counter(self, stream: TokenStream, resets: list[int]) -> Iterator[tuple[int, str]]:
        """Counter samples: tokens since the gateway last (re)started, rounded down."""
        s = self.s
        origin = s.counters_start
        anchor = min(origin, s.start) // HOUR * HOUR
        # 3600 x tokens in [anchor, t), kept incrementally hour by hour.
        first = max(self.lo, origin)
        hour_start = first // HOUR * HOUR
        done3600 = s._tokens3600(stream, anchor, hour_start)
        hourly = s.tokens_in_hour(stream, hour_start // HOUR)
        since3600 = s._tokens3600(stream, anchor, origin)
        pending = [r for r in resets if r > origin]
        for t in _ticks(first, self.hi, self.o.scrape_interval):
            while t >= hour_start + HOUR:
                done3600 += hourly * HOUR
                hour_start += HOUR
                hourly = s.tokens_in_hour(stream, hour_start // HOUR)
            while pending and pending[0] <= t:
                since3600 = s._tokens3600(stream, anchor, pending.pop(0))
            now3600 = done3600 + hourly * (t - hour_start)
            yield t, str((now3600 - since3600) // HOUR)


def _count_until(times: Sequence[int], t: int) -> int:
    return sum(1 for moment in times if moment <= t)


def _jobs(pods: Iterable[Pod]) -> dict[tuple[str, str], list[Pod]]:
    jobs: dict[tuple[str, str], list[Pod]] = defaultdict(list)
    for pod in pods:
        if pod.job is not None:
            jobs[(pod.namespace, pod.job)].append(pod)
    return jobs


# ---------------------------------------------------------------- ground truth


@dataclass(frozen=True)
class TeamTruth:
    """What one team (or `__untagged__`, or the whole cluster) used and owes."""

    team: str
    gpu_hours: Decimal
    gpu_cost: Decimal
    idle_gpu_hours: Decimal
    idle_cost: Decimal
    tokens: Decimal
    token_cost: Decimal
    shared_cost: Decimal
    total_cost: Decimal
    # dimension (feature, environment, workload_type, cost_center) -> value -> hours
    gpu_hours_by: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)
    gpu_cost_by: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)


@dataclass(frozen=True)
class JobTruth:
    namespace: str
    job: str
    team: str
    gpu_hours: Decimal
    cost: Decimal
    failed_attempts: int


@dataclass(frozen=True)
class GroundTruth:
    """The exact figures for [start, end). `teams` includes `__untagged__` when it has
    usage; `cluster` sums the rows, with `shared_cost` = platform + unallocated cost
    and `total_cost` = capacity cost + token cost + platform cost."""

    start: int
    end: int
    currency: str
    teams: Mapping[str, TeamTruth]
    cluster: TeamTruth
    capacity_gpu_hours: Decimal
    capacity_gpu_hours_by_model: Mapping[str, Decimal]
    allocated_gpu_hours_by_model: Mapping[str, Decimal]
    unallocated_gpu_hours: Decimal
    unallocated_cost: Decimal
    platform_cost: Decimal
    undistributed_cost: Decimal
    jobs: Mapping[tuple[str, str], JobTruth]
    restarts: Mapping[str, int]  # container restarts in the period, by team


def _dec(value: Fraction) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 40
        return Decimal(value.numerator) / Decimal(value.denominator)


def _overlap(a: int, b: int, c: int, d: int) -> int:
    return max(0, min(b, d) - max(a, c))


def _monthly_fraction(a: int, b: int) -> Fraction:
    """How many calendar months [a, b) spans: each month counts overlap / its length."""
    total = Fraction(0)
    moment = from_unix(a)
    cursor = a
    while cursor < b:
        month = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        following = (month + timedelta(days=32)).replace(day=1)
        month_start, month_end = to_unix(month), to_unix(following)
        upto = min(b, month_end)
        total += Fraction(upto - cursor, month_end - month_start)
        cursor = upto
        moment = following
    return total


def ground_truth(
    scenario: Scenario,
    start: datetime | int | None = None,
    end: datetime | int | None = None,
    pricing: PricingConfig | None = None,
) -> GroundTruth:
    """The exact usage and cost in [start, end) (default: the whole scenario).

    From the pods' intervals in continuous time: a pod running across a bound counts
    only inside. Idle GPU hours integrate allocated x (1 - utilization/100) over the
    utilization windows. Tokens are the tokens processed (gateway restarts lose none).
    Shared cost follows docs/cost-model.md: `pricing.sharedMonthly` prorated by
    calendar month plus unallocated capacity cost, split over every row with usage
    (`__untagged__` included) by GPU cost or evenly.
    """
    s = scenario
    prices = pricing or s.pricing
    a = s.start if start is None else start if isinstance(start, int) else to_unix(start)
    b = s.end if end is None else end if isinstance(end, int) else to_unix(end)
    if b <= a:
        raise ValueError("the period must end after it starts")
    nodes = {node.name: node for node in s.nodes}
    step = s.utilization_step

    def price(model: str) -> Fraction:
        return Fraction(prices.gpu_hourly.get(model, prices.gpu_hourly["default"]))

    hours: dict[str, Fraction] = defaultdict(Fraction)
    cost: dict[str, Fraction] = defaultdict(Fraction)
    idle: dict[str, Fraction] = defaultdict(Fraction)
    idle_cost: dict[str, Fraction] = defaultdict(Fraction)
    by_hours: dict[str, dict[str, dict[str, Fraction]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(Fraction))
    )
    by_cost: dict[str, dict[str, dict[str, Fraction]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(Fraction))
    )
    allocated_by_model: dict[str, Fraction] = defaultdict(Fraction)
    job_hours: dict[tuple[str, str], Fraction] = defaultdict(Fraction)
    job_cost: dict[tuple[str, str], Fraction] = defaultdict(Fraction)
    job_team: dict[tuple[str, str], str] = {}
    job_failed: dict[tuple[str, str], int] = defaultdict(int)
    restarts: dict[str, int] = defaultdict(int)

    for pod in s.pods:
        seconds = _overlap(pod.start, pod.end, a, b)
        team = pod.labels.get("team") or UNTAGGED
        restarts[team] += sum(1 for moment in pod.restarts if a <= moment < b)
        if pod.job is not None and pod.failed and a <= pod.end < b:
            job_failed[(pod.namespace, pod.job)] += 1
        if not seconds:
            continue
        node = nodes[pod.node]
        gpus = Fraction(pod.units, node.units_per_gpu)
        pod_hours = gpus * Fraction(seconds, HOUR)
        pod_price = price(node.gpu_model)
        # Busy time: the sum over windows of overlap x mean utilization of the devices.
        busy = 0
        lo, hi = max(pod.start, a), min(pod.end, b)
        for window in range(lo // step, (hi - 1) // step + 1):
            inside = _overlap(window * step, window * step + step, lo, hi)
            level = sum(
                pod.utilization.value(_mix(pod.uid, device, s.seed), window, step)
                for device in pod.devices
            )
            busy += inside * level
        busy_hours = gpus * Fraction(busy, 100 * len(pod.devices) * HOUR)
        hours[team] += pod_hours
        cost[team] += pod_hours * pod_price
        idle[team] += pod_hours - busy_hours
        idle_cost[team] += (pod_hours - busy_hours) * pod_price
        allocated_by_model[node.gpu_model] += pod_hours
        for dimension in COST_LABEL_NAMES[1:]:
            by_hours[team][dimension][pod.label(dimension)] += pod_hours
            by_cost[team][dimension][pod.label(dimension)] += pod_hours * pod_price
        if pod.job is not None:
            key = (pod.namespace, pod.job)
            job_hours[key] += pod_hours
            job_cost[key] += pod_hours * pod_price
            job_team[key] = team

    tokens: dict[str, Fraction] = defaultdict(Fraction)
    token_cost: dict[str, Fraction] = defaultdict(Fraction)
    for stream in s.token_streams:
        count = Fraction(s._tokens3600(stream, a, b), HOUR)
        model_price = Fraction(
            prices.tokens_per_1k.get(stream.model, prices.tokens_per_1k["default"])
        )
        tokens[stream.team] += count
        token_cost[stream.team] += count * model_price / 1000

    capacity: dict[str, Fraction] = defaultdict(Fraction)
    for node in s.nodes:
        node_a = s.start if node.start is None else node.start
        node_b = s.end if node.end is None else node.end
        capacity[node.gpu_model] += node.gpus * Fraction(_overlap(node_a, node_b, a, b), HOUR)
    unallocated = {
        model: max(capacity[model] - allocated_by_model.get(model, Fraction(0)), Fraction(0))
        for model in capacity
    }
    unallocated_cost = sum(
        (hours_ * price(model) for model, hours_ in unallocated.items()), Fraction(0)
    )
    platform = Fraction(prices.shared_monthly) * _monthly_fraction(a, b)
    pool = platform + unallocated_cost

    names = sorted(set(hours) | set(tokens))
    used = [name for name in names if hours.get(name) or tokens.get(name)]
    if prices.shared_split == "even":
        weights = {name: Fraction(1) for name in used}
    else:
        weights = {name: cost[name] for name in used if cost.get(name, 0) > 0}
    weight_sum = sum(weights.values(), Fraction(0))
    shared = {name: pool * w / weight_sum for name, w in weights.items()} if weight_sum else {}
    undistributed = pool - sum(shared.values(), Fraction(0))

    def row(name: str) -> TeamTruth:
        total = cost[name] + token_cost[name] + shared.get(name, Fraction(0))
        return TeamTruth(
            team=name,
            gpu_hours=_dec(hours[name]),
            gpu_cost=_dec(cost[name]),
            idle_gpu_hours=_dec(idle[name]),
            idle_cost=_dec(idle_cost[name]),
            tokens=_dec(tokens[name]),
            token_cost=_dec(token_cost[name]),
            shared_cost=_dec(shared.get(name, Fraction(0))),
            total_cost=_dec(total),
            gpu_hours_by={
                d: {v: _dec(x) for v, x in sorted(m.items())} for d, m in by_hours[name].items()
            },
            gpu_cost_by={
                d: {v: _dec(x) for v, x in sorted(m.items())} for d, m in by_cost[name].items()
            },
        )

    teams = {name: row(name) for name in names}

    def total(values: Mapping[str, Fraction]) -> Fraction:
        return sum(values.values(), Fraction(0))

    cluster = TeamTruth(
        team="cluster",
        gpu_hours=_dec(total(hours)),
        gpu_cost=_dec(total(cost)),
        idle_gpu_hours=_dec(total(idle)),
        idle_cost=_dec(total(idle_cost)),
        tokens=_dec(total(tokens)),
        token_cost=_dec(total(token_cost)),
        shared_cost=_dec(pool),
        total_cost=_dec(total(cost) + total(token_cost) + pool),
    )
    return GroundTruth(
        start=a,
        end=b,
        currency=prices.currency,
        teams=teams,
        cluster=cluster,
        capacity_gpu_hours=_dec(total(capacity)),
        capacity_gpu_hours_by_model={m: _dec(h) for m, h in sorted(capacity.items())},
        allocated_gpu_hours_by_model={m: _dec(h) for m, h in sorted(allocated_by_model.items())},
        unallocated_gpu_hours=_dec(total(unallocated)),
        unallocated_cost=_dec(unallocated_cost),
        platform_cost=_dec(platform),
        undistributed_cost=_dec(undistributed),
        jobs={
            key: JobTruth(
                namespace=key[0],
                job=key[1],
                team=job_team[key],
                gpu_hours=_dec(job_hours[key]),
                cost=_dec(job_cost[key]),
                failed_attempts=job_failed.get(key, 0),
            )
            for key in sorted(job_hours)
        },
        restarts=dict(sorted(restarts.items())),
    )
