"""The ground truth: what each team of a scenario really used and owes in a period.

`ground_truth` computes it from the pods' intervals in continuous time (not from
samples), with exact fractions. It is written independently of
`finops_operator.domain.costs` (it never imports it), so that a test comparing a
report to it means something. The cost rules it follows are those of
docs/cost-model.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from fractions import Fraction

from finops_devtools.simulator.world import (
    COST_LABEL_NAMES,
    HOUR,
    UNTAGGED,
    Scenario,
    from_unix,
    stable_hash,
    to_unix,
)
from finops_operator.domain.config import PricingConfig


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
class SelfHostedTruth:
    """A served model in one namespace: its pods' GPU hours and cost, its tokens."""

    model: str
    namespace: str
    gpu_hours: Decimal
    gpu_cost: Decimal
    prompt_tokens: Decimal
    generation_tokens: Decimal

    @property
    def cost_per_1m_tokens(self) -> Decimal | None:
        tokens = self.prompt_tokens + self.generation_tokens
        if not tokens:
            return None
        with localcontext() as ctx:
            ctx.prec = 40
            return self.gpu_cost * 1_000_000 / tokens


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
    # (model, namespace) -> the served model's figures (vLLM servers).
    self_hosted: Mapping[tuple[str, str], SelfHostedTruth] = field(default_factory=dict)


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
        gpus = s.pod_gpus(pod)
        pod_hours = gpus * Fraction(seconds, HOUR)
        pod_price = price(node.gpu_model)
        # Busy time: the sum over windows of overlap x mean utilization of the devices.
        busy = 0
        lo, hi = max(pod.start, a), min(pod.end, b)
        curve = s.pod(pod.device_holder).utilization if pod.sharers else pod.utilization
        for window in range(lo // step, (hi - 1) // step + 1):
            inside = _overlap(window * step, window * step + step, lo, hi)
            # The devices' utilization, as dcgm-exporter reports it for their holder
            # (every pod sharing a DRA claim is as busy as its device).
            level = sum(
                curve.value(stable_hash(pod.device_holder, device, s.seed), window, step)
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
        count = Fraction(s.tokens3600(stream, a, b), HOUR)
        # The simulated gateway reports 3/4 of a stream's tokens as input, the rest as
        # output (to the token, at each sample), each priced at its direction's price.
        input_price = Fraction(prices.token_price(stream.model, "input"))
        output_price = Fraction(prices.token_price(stream.model, "output"))
        tokens[stream.team] += count
        token_cost[stream.team] += (count * 3 * input_price + count * output_price) / 4000

    served_hours: dict[tuple[str, str], Fraction] = defaultdict(Fraction)
    served_cost: dict[tuple[str, str], Fraction] = defaultdict(Fraction)
    served_tokens: dict[tuple[str, str], Fraction] = defaultdict(Fraction)
    for served in s.served_models:
        pod = s.pod(served.pod_uid)
        key = (served.model, pod.namespace)
        node = nodes[pod.node]
        seconds = _overlap(pod.start, pod.end, a, b)
        pod_hours = s.pod_gpus(pod) * Fraction(seconds, HOUR)
        served_hours[key] += pod_hours
        served_cost[key] += pod_hours * price(node.gpu_model)
        lo, hi = max(pod.start, a), min(pod.end, b)
        served_tokens[key] += Fraction(s.tokens3600(served.stream, lo, hi), HOUR)

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
        self_hosted={
            key: SelfHostedTruth(
                model=key[0],
                namespace=key[1],
                gpu_hours=_dec(served_hours[key]),
                gpu_cost=_dec(served_cost[key]),
                prompt_tokens=_dec(served_tokens[key] * 3 / 4),
                generation_tokens=_dec(served_tokens[key] / 4),
            )
            for key in sorted(served_hours)
        },
    )
