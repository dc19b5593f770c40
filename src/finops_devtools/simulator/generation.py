"""Generating a scenario: a seeded, plausible GPU cluster from a few parameters.

`generate_scenario(ScenarioParams(...))` fills each GPU slot of each node with pods
one after another, from before the scenario to past its end: teams weighted by
size, workload types with their own durations, Jobs whose attempts fail and are
retried, crash-looping pods, pods missing cost labels, nearly idle pods, token
streams per team and model, a gateway restart and a planted spend jump. The only
randomness is a `random.Random` seeded with `params.seed`: the same params give
the same scenario.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from finops_devtools.simulator.world import (
    A100,
    COST_LABEL_NAMES,
    DAY,
    DRA_DRIVER,
    H100,
    HOUR,
    MI300X,
    RESOURCE_AMD,
    RESOURCE_GPU,
    RESOURCE_MIG_1G,
    RESOURCE_SHARED,
    Anomaly,
    Node,
    Pod,
    Scenario,
    ServedModel,
    TokenStream,
    Utilization,
    stable_hash,
    to_unix,
)
from finops_operator.domain.config import PricingConfig, TokenPreset


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
    gateway: TokenPreset = "litellm"  # how the gateway reports tokens
    # Serve SELF_HOSTED_MODELS with vLLM on a node of their own (team ml-serving).
    self_hosted: bool = False
    # GPUs through DRA: a node of 4 H100s published by NVIDIA's DRA driver, with DRA_TEAM's
    # pods holding them through a direct claim, a templated one and one shared by two.
    dra: bool = False

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


# The models served with vLLM when `self_hosted`: (model, GPUs per pod, tokens an hour,
# hours between rollouts, which replace the pod).
SELF_HOSTED_MODELS: Final = (
    ("llama-3.1-70b", 2, 6_000_000, 100),
    ("qwen2.5-7b", 1, 2_000_000, 70),
)
SERVING_TEAM: Final = "ml-serving"
DRA_TEAM: Final = "dra-research"
# Hours between the DRA pods' rollouts (each rollout replaces all four pods).
DRA_ROLLOUT_HOURS: Final = 30


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
            api_key=f"sk-{stable_hash(params.seed, index, k) % 16**8:08x}",
            hourly=int(params.tokens_hourly * team.weight * rng.uniform(0.5, 1.5)),
            key=stable_hash(params.seed, index, k, 7),
        )
        for index, team in enumerate(teams)
        for k, model in enumerate(rng.sample(list(params.llm_models), rng.randint(1, 2)))
    ]
    served: list[ServedModel] = []
    if params.self_hosted:
        node = Node(
            name="serve-h100-0", gpu_model=H100, resource=RESOURCE_GPU, gpus=4, ip="10.0.9.10"
        )
        nodes.append(node)
        served = _serving_pods(params, builder, node, start, end)
    if params.dra:
        node = Node(name="dra-h100-0", gpu_model=H100, resource=DRA_DRIVER, gpus=4, ip="10.0.8.10")
        nodes.append(node)
        _dra_pods(params, builder, node, start, end)
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
        gateway=params.gateway,
        served_models=served,
    )


def _serving_pods(
    params: ScenarioParams, builder: _PodBuilder, node: Node, start: int, end: int
) -> list[ServedModel]:
    """vLLM pods on `node`, one model per group of devices, each pod replaced by the
    next at every rollout (from a day before the scenario to past its end); the fourth
    device stays free (unallocated capacity)."""
    served = []
    device = 0
    for index, (model, gpus, hourly, every) in enumerate(SELF_HOSTED_MODELS):
        devices = tuple(range(device, device + gpus))
        device += gpus
        t = start - DAY + index * 1800
        rollout = 0
        while t < end:
            rollout += 1
            name = (
                f"{model.replace('.', '-')}-{stable_hash(params.seed, index, rollout) % 16**5:05x}"
            )
            builder.add_pod(
                name=name,
                namespace=SERVING_TEAM,
                node=node.name,
                units=gpus,
                start=t,
                end=t + every * HOUR,
                labels={
                    "team": SERVING_TEAM,
                    "feature": "chat",
                    "environment": "production",
                    "workload_type": "inference",
                    "cost_center": "cc-1900",
                },
                devices=devices,
                slice_id=None,
                utilization=Utilization(base=70, amplitude=20, noise=5),
                owner_kind="ReplicaSet",
                owner_name=f"{model.replace('.', '-')}-rs",
                restarts=(),
            )
            served.append(
                ServedModel(
                    pod_uid=len(builder.pods),
                    model=model,
                    hourly=hourly,
                    key=stable_hash(params.seed, index, rollout, 11),
                )
            )
            t += every * HOUR
    return served


def _dra_pods(
    params: ScenarioParams, builder: _PodBuilder, node: Node, start: int, end: int
) -> None:
    """DRA_TEAM's pods on `node` at every rollout: one on a claim of its own (device 0),
    one on a claim made from a ResourceClaimTemplate (device 1), two sharing one claim
    (device 2, half each); device 3 stays free (unallocated capacity)."""
    labels = {
        "team": DRA_TEAM,
        "feature": "finetune",
        "environment": "production",
        "workload_type": "training",
        "cost_center": "cc-1950",
    }
    t = start - DAY + 900
    rollout = 0
    while t < end:
        rollout += 1
        suffix = f"{stable_hash(params.seed, rollout, 13) % 16**5:05x}"
        first = len(builder.pods) + 1
        pods = (  # name, claim, device, sharers
            (f"direct-{suffix}", f"direct-{suffix}", 0, ()),
            (f"templated-{suffix}", f"templated-{suffix}-gpu-{suffix[:3]}", 1, ()),
            (f"sharer-a-{suffix}", f"shared-{suffix}", 2, (first + 2, first + 3)),
            (f"sharer-b-{suffix}", f"shared-{suffix}", 2, (first + 2, first + 3)),
        )
        for index, (name, claim, device, sharers) in enumerate(pods):
            builder.add_pod(
                name=name,
                namespace=DRA_TEAM,
                node=node.name,
                units=1,
                start=t,
                end=t + DRA_ROLLOUT_HOURS * HOUR,
                labels=labels,
                devices=(device,),
                slice_id=None,
                utilization=Utilization(base=60 - 10 * min(index, 2), amplitude=15, noise=5),
                owner_kind="ReplicaSet",
                owner_name=f"dra-{index}-rs",
                restarts=(),
                claim=claim,
                sharers=sharers,
            )
        t += DRA_ROLLOUT_HOURS * HOUR


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
                        name=f"{job}-{stable_hash(self.jobs, attempt) % 36**5:05x}",
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
                name = f"{feature}-{wtype}-{stable_hash(len(self.pods)) % 16**10:010x}"
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

    def add_pod(self, **fields: object) -> None:
        """A pod placed by the caller (the vLLM servers), numbered after the others."""
        self._add(**fields)
