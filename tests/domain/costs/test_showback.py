"""Showback, per team: compute_costs with expectations computed by hand (docs/cost-model.md)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.showback import CostReport, compute_costs, idle_percent
from finops_operator.domain.costs.usage import CapacityUsage, GpuUsage, TokenUsage
from finops_operator.domain.money import display_hours, display_money
from tests.domain.costs.prices import A100, H100, NOVEMBER, D, pricing


def usage() -> dict[str, Any]:
    return {
        "gpu_usage": [
            GpuUsage("a", H100, D(6), D(4), feature="chat", environment="production"),
            GpuUsage("a", H100, D(4), D(2), feature="embeddings", environment="production"),
            GpuUsage("b", A100, D(20), None, feature="ranking", workload_type="training"),
            GpuUsage("__untagged__", H100, D(5), D(5)),
        ],
        "token_usage": [
            TokenUsage("a", "gpt-4o", D(100_000)),
            TokenUsage("c", "llama-3-70b", D(50_000)),
        ],
        "capacity": [CapacityUsage(H100, D(20)), CapacityUsage(A100, D(20))],
    }


def assert_adds_up(report: CostReport) -> None:
    rows = [*report.teams, report.untagged]
    total = sum((row.total_cost for row in rows), D(0)) + report.cluster.undistributed_cost
    assert total == report.cluster.total_cost
    for row in [*rows, report.cluster]:
        assert row.total_cost == row.gpu_cost + row.token_cost + row.shared_cost


def test_dedicated_token_and_idle_cost_are_priced_per_model() -> None:
    report = compute_costs(period=NOVEMBER, pricing=pricing(), **usage())
    a, b, c = report.teams
    assert (a.team, a.gpu_hours, a.gpu_cost) == ("a", D(10), D(40))
    assert (a.idle_gpu_hours, a.idle_cost) == (D(4), D(16))
    assert (a.tokens, a.token_cost) == (D(100_000), D("1.00"))
    # A100 has no price of its own: the default applies; no utilization, nothing idle.
    assert (b.gpu_hours, b.gpu_cost, b.idle_gpu_hours) == (D(20), D(40), D(0))
    assert (c.gpu_cost, c.token_cost) == (D(0), D("0.1"))
    assert (report.untagged.gpu_cost, report.untagged.idle_gpu_hours) == (D(20), D(0))
    assert idle_percent(a) == D(40)


def test_proportional_split_gives_shared_and_unallocated_cost_by_gpu_cost() -> None:
    report = compute_costs(period=NOVEMBER, pricing=pricing(), **usage())
    cluster = report.cluster
    # 5 H100 hours nobody allocated (20 - 6 - 4 - 5) at 4.00, plus the whole month's 300.
    assert (cluster.unallocated_gpu_hours, cluster.unallocated_cost) == (D(5), D(20))
    assert (cluster.platform_cost, cluster.shared_cost) == (D(300), D(320))
    a, b, c = report.teams
    # GPU cost 40 : 40 : 20 (untagged) of 100.
    assert (a.shared_cost, b.shared_cost, report.untagged.shared_cost) == (D(128), D(128), D(64))
    assert c.shared_cost == 0  # tokens only: no GPU cost, no share
    assert (a.total_cost, b.total_cost, c.total_cost) == (D(169), D(168), D("0.1"))
    assert report.untagged.total_cost == D(84)
    assert cluster.total_cost == D("421.1")  # capacity 120 + tokens 1.10 + platform 300
    assert cluster.undistributed_cost == 0
    assert_adds_up(report)


def test_even_split_gives_every_row_with_usage_the_same_share() -> None:
    report = compute_costs(period=NOVEMBER, pricing=pricing(sharedSplit="even"), **usage())
    a, b, c = report.teams
    assert {a.shared_cost, b.shared_cost, c.shared_cost, report.untagged.shared_cost} == {D(80)}
    assert (a.total_cost, c.total_cost, report.untagged.total_cost) == (
        D(121),
        D("80.1"),
        D(100),
    )
    assert report.cluster.total_cost == D("421.1")
    assert_adds_up(report)


def test_shared_cost_stays_undistributed_when_no_team_has_gpu_cost() -> None:
    report = compute_costs(
        period=NOVEMBER, pricing=pricing(), token_usage=[TokenUsage("c", "gpt-4o", D(1000))]
    )
    (c,) = report.teams
    assert (c.shared_cost, c.total_cost) == (D(0), D("0.01"))
    assert report.cluster.undistributed_cost == D(300)
    assert report.cluster.total_cost == D("300.01")
    assert_adds_up(report)


def test_an_empty_cluster_costs_its_platform_and_its_idle_capacity() -> None:
    report = compute_costs(
        period=NOVEMBER, pricing=pricing(sharedSplit="even"), capacity=[CapacityUsage(H100, D(2))]
    )
    assert report.teams == []
    assert report.untagged.total_cost == 0
    assert report.cluster.undistributed_cost == report.cluster.total_cost == D(308)
    assert_adds_up(report)


def test_the_untagged_row_exists_even_without_untagged_usage() -> None:
    report = compute_costs(
        period=NOVEMBER, pricing=pricing(), gpu_usage=[GpuUsage("a", H100, D(1), D(1))]
    )
    assert report.untagged.team == "__untagged__"
    assert report.untagged.total_cost == 0
    assert report.row("a").shared_cost == D(300)


def test_breakdowns_split_a_teams_gpu_figures_by_each_cost_label() -> None:
    report = compute_costs(period=NOVEMBER, pricing=pricing(), **usage())
    a = report.row("a")
    assert a.breakdowns["feature"]["chat"].gpu_cost == D(24)
    assert a.breakdowns["feature"]["embeddings"].idle_gpu_hours == D(2)
    assert a.breakdowns["environment"]["production"].gpu_hours == D(10)
    assert a.breakdowns["workload_type"]["__untagged__"].gpu_cost == D(40)
    cluster = report.cluster.breakdowns
    assert cluster["workload_type"]["training"].gpu_cost == D(40)
    assert sum(cell.gpu_cost for cell in cluster["feature"].values()) == report.cluster.gpu_cost


def test_the_identity_holds_exactly_for_measured_hours_with_many_digits() -> None:
    rng = random.Random(5)
    models = [H100, A100, "AMD-MI300X"]
    gpu = [
        GpuUsage(
            rng.choice(["a", "b", "c", "__untagged__"]),
            rng.choice(models),
            D(str(rng.uniform(0, 50))),
            D(str(rng.uniform(0, 50))),
            feature=rng.choice(["x", "y"]),
        )
        for _ in range(200)
    ]
    tokens = [
        TokenUsage(rng.choice("abd"), "gpt-4o", D(str(rng.uniform(0, 1e6)))) for _ in range(9)
    ]
    capacity = [CapacityUsage(model, D(str(rng.uniform(0, 4000)))) for model in models]
    for how in ("proportional", "even"):
        report = compute_costs(
            period=Period(datetime(2026, 10, 7, 3, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)),
            pricing=pricing(sharedSplit=how, sharedMonthly="1234.56"),
            gpu_usage=gpu,
            token_usage=tokens,
            capacity=capacity,
        )
        assert_adds_up(report)
        shared = sum((row.shared_cost for row in [*report.teams, report.untagged]), D(0))
        assert shared + report.cluster.undistributed_cost == report.cluster.shared_cost


def test_money_is_rounded_only_for_display() -> None:
    report = compute_costs(
        period=NOVEMBER,
        pricing=pricing(gpuHourly={"default": "0.333"}, sharedMonthly="0"),
        gpu_usage=[GpuUsage("a", A100, D("0.5"), D("0.25"))],
    )
    (a,) = report.teams
    assert a.gpu_cost == D("0.1665")
    assert a.idle_cost == D("0.08325")
    assert display_money(a.gpu_cost) == "0.17"
    assert display_money(D("0.125")) == "0.12"  # half-even
    assert display_money(D("0.135")) == "0.14"
    assert display_money(D(3)) == "3.00"
    assert display_hours(D("1.23456")) == 1.235


def test_the_cost_model_agrees_with_the_simulators_ground_truth() -> None:
    """Usage measured straight from a simulated cluster gives the truth's figures."""
    from finops_devtools.simulator import generation, ground_truth, world

    start, end = datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 12, tzinfo=UTC)
    scenario = generation.generate_scenario(
        generation.ScenarioParams(start=start - timedelta(days=1), end=end, seed=8)
    )
    a, b = world.to_unix(start), world.to_unix(end)
    step = scenario.utilization_step
    gpu = []
    for pod in scenario.pods:
        lo, hi = max(pod.start, a), min(pod.end, b)
        if lo >= hi:
            continue
        gpus = D(pod.units) / D(scenario.node(pod.node).units_per_gpu)
        busy = D(0)
        for t in range(lo, hi, 60):  # a minute at a time: starts, ends and windows align
            levels = [
                pod.utilization.value(world.stable_hash(pod.uid, d, scenario.seed), t // step, step)
                for d in pod.devices
            ]
            busy += D(sum(levels)) / len(levels) / 100 / 60
        gpu.append(
            GpuUsage(
                pod.label("team"),
                scenario.node(pod.node).gpu_model,
                gpus * (hi - lo) / 3600,
                gpus * busy,
                **{name: pod.label(name) for name in world.COST_LABEL_NAMES[1:]},
            )
        )
    tokens = [
        TokenUsage(s.team, s.model, D(scenario.tokens3600(s, a, b)) / 3600)
        for s in scenario.token_streams
    ]
    capacity = [
        CapacityUsage(node.gpu_model, D(node.gpus * (b - a)) / 3600) for node in scenario.nodes
    ]
    for how in ("proportional", "even"):
        prices = scenario.pricing.model_copy(update={"shared_split": how})
        report = compute_costs(
            period=Period(start, end),
            pricing=prices,
            gpu_usage=gpu,
            token_usage=tokens,
            capacity=capacity,
        )
        truth = ground_truth.ground_truth(scenario, start, end, prices)
        rows = {row.team: row for row in [*report.teams, report.untagged] if row.total_cost}
        assert set(rows) == set(truth.teams)
        for team, expected in truth.teams.items():
            row = rows[team]
            for name in ("gpu_hours", "gpu_cost", "idle_gpu_hours", "idle_cost", "tokens"):
                assert getattr(row, name) == pytest.approx(getattr(expected, name), abs=D("1e-9"))
            for name in ("token_cost", "shared_cost", "total_cost"):
                assert getattr(row, name) == pytest.approx(getattr(expected, name), abs=D("1e-9"))
        assert report.cluster.total_cost == pytest.approx(truth.cluster.total_cost, abs=D("1e-9"))
        assert report.cluster.unallocated_gpu_hours == pytest.approx(
            truth.unallocated_gpu_hours, abs=D("1e-9")
        )


def test_the_platform_cost_can_be_prorated_from_the_start_of_the_data() -> None:
    """`pricing.sharedProration: data`: the month the operator was installed (data from
    the 21st of November) pays 10/30 of the monthly fee, not all of it."""
    config = pricing(sharedProration="data")
    gpu = [GpuUsage("a", H100, D(1))]
    from_21st = datetime(2026, 11, 21, tzinfo=UTC)
    partial = compute_costs(period=NOVEMBER, pricing=config, gpu_usage=gpu, platform_from=from_21st)
    assert partial.cluster.platform_cost == D(100)  # 300 a month x 10/30
    whole = compute_costs(period=NOVEMBER, pricing=config, gpu_usage=gpu)
    assert whole.cluster.platform_cost == D(300)
    assert config.shared_proration == "data" and pricing().shared_proration == "period"
