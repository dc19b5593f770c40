"""Self-hosted models: cost per million tokens, the API comparison, and the chargeback
that moves serving GPU hours to the consuming teams without counting a dollar twice."""

from __future__ import annotations

from dataclasses import replace

import pytest

from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.self_hosted import (
    ServingGpu,
    ServingTokens,
    charge_consumers,
    consumer_shares,
    self_hosted_models,
)
from finops_operator.domain.costs.showback import compute_costs
from finops_operator.domain.costs.trend import DayUsage, daily_costs
from finops_operator.domain.costs.usage import CapacityUsage, GpuUsage, TokenUsage
from tests.domain.costs.prices import A100, H100, NOVEMBER, D, pricing

LLAMA = "llama-3.1-70b"
SERVING = GpuUsage(
    team="ml-serving",
    gpu_model=H100,
    gpu_hours=D(1440),
    busy_gpu_hours=D(1000),
    feature="chat",
    environment="production",
    workload_type="inference",
    cost_center="cc-7",
)


def test_the_cost_per_million_tokens_is_the_serving_gpu_cost_over_all_tokens() -> None:
    # Two H100 for 720 h at 4/h = 5760; 4.8e9 prompt + 1.2e9 generated tokens.
    [model] = self_hosted_models(
        [ServingGpu(LLAMA, "serving", SERVING)],
        [ServingTokens(LLAMA, "serving", D(4_800_000_000), D(1_200_000_000))],
        pricing(),
    )
    assert (model.gpu_hours, model.gpu_cost, model.tokens) == (D(1440), D(5760), D(6e9))
    assert model.cost_per_1m_tokens == D("0.96")
    assert model.comparable_model is None and model.comparable_per_1m_tokens is None


def test_the_comparable_api_model_prices_prompt_and_generation_tokens_apart() -> None:
    prices = pricing(tokensPer1k={"gpt-4o": {"input": "0.0025", "output": "0.01"}})
    [model] = self_hosted_models(
        [ServingGpu(LLAMA, "serving", SERVING)],
        [ServingTokens(LLAMA, "serving", D(4_000_000), D(1_000_000))],
        prices,
        {LLAMA: "gpt-4o"},
    )
    # 4e6 x 2.5/1e6 + 1e6 x 10/1e6 = 20 for 5e6 tokens: 4 per million.
    assert model.comparable_cost == D(20)
    assert model.comparable_per_1m_tokens == D(4)


def test_a_model_without_tokens_has_no_cost_per_token_and_one_without_gpus_costs_nothing() -> None:
    models = self_hosted_models(
        [ServingGpu(LLAMA, "serving", SERVING)],
        [
            ServingTokens(LLAMA, "serving", D(0), D(0)),
            ServingTokens("qwen-7b", "cpu-serving", D(10), D(5)),
        ],
        pricing(),
    )
    by_model = {model.model: model for model in models}
    assert by_model[LLAMA].cost_per_1m_tokens is None
    assert by_model["qwen-7b"].gpu_cost == 0 and by_model["qwen-7b"].cost_per_1m_tokens == 0


def test_the_same_model_in_two_namespaces_is_two_rows() -> None:
    other = GpuUsage(team="research", gpu_model=A100, gpu_hours=D(10))
    models = self_hosted_models(
        [ServingGpu(LLAMA, "serving", SERVING), ServingGpu(LLAMA, "research", other)],
        [],
        pricing(),
    )
    assert [(m.namespace, m.gpu_cost) for m in models] == [
        ("research", D(20)),
        ("serving", D(5760)),
    ]


def test_shares_are_each_teams_gateway_tokens_over_the_tokens_vllm_served() -> None:
    tokens = [
        TokenUsage("search", LLAMA, D(300), "input"),
        TokenUsage("search", LLAMA, D(100), "output"),
        TokenUsage("ads", LLAMA, D(200)),
        TokenUsage("ads", "gpt-4o", D(999)),
        TokenUsage("__untagged__", LLAMA, D(50)),
    ]
    assert consumer_shares(tokens, {LLAMA: D(1000)}) == {
        LLAMA: {"ads": D("0.2"), "search": D("0.4")}
    }
    # The gateway counted more than vLLM (edges of the period): scaled to add up to 1.
    scaled = consumer_shares(tokens, {LLAMA: D(300)})[LLAMA]
    assert (round(scaled["ads"], 20), round(scaled["search"], 20)) == (
        round(D(1) / 3, 20),
        round(D(2) / 3, 20),
    )


def _month(charge: bool, llama_price: str) -> tuple[object, object]:
    prices = pricing(tokensPer1k={"default": "0.002", "gpt-4o": "0.01", LLAMA: llama_price})
    other = GpuUsage(team="search", gpu_model=H100, gpu_hours=D(100), busy_gpu_hours=D(50))
    gpu = [SERVING, other]
    tokens = [
        TokenUsage("search", LLAMA, D(1_500_000_000), "input"),
        TokenUsage("search", LLAMA, D(500_000_000), "output"),
        TokenUsage("ads", LLAMA, D(1_000_000_000)),
        TokenUsage("ads", "gpt-4o", D(1_000_000)),
    ]
    capacity = [CapacityUsage(H100, D(2000))]
    half = [
        Period(NOVEMBER.start, NOVEMBER.start.replace(day=16)),
        Period(NOVEMBER.start.replace(day=16), NOVEMBER.end),
    ]
    days = [
        DayUsage(
            window=window,
            gpu=[GpuUsage("ml-serving", H100, D(720)), GpuUsage("search", H100, D(50))],
            tokens=[TokenUsage(t.team, t.model, t.tokens / 2, t.direction) for t in tokens],
            capacity=[CapacityUsage(H100, D(1000))],
        )
        for window in half
    ]
    serving_day = ServingGpu(LLAMA, "serving", GpuUsage("ml-serving", H100, D(720)))
    if charge:
        moved = charge_consumers(
            gpu,
            tokens,
            days,
            prices,
            [ServingGpu(LLAMA, "serving", SERVING)],
            [[serving_day], [serving_day]],
            {LLAMA: D(6e9)},
        )
        gpu, days, prices = moved.gpu, moved.days, moved.pricing
    costs = compute_costs(
        period=NOVEMBER, pricing=prices, gpu_usage=gpu, token_usage=tokens, capacity=capacity
    )
    return costs, daily_costs(costs, tokens, days, prices)


@pytest.mark.parametrize("llama_price", ["0", "0.002"])
def test_charging_consumers_moves_gpu_cost_and_never_adds_a_dollar(llama_price: str) -> None:
    off, _ = _month(False, llama_price)
    on, daily = _month(True, llama_price)
    rows_off = {row.team: row for row in off.teams}  # type: ignore[attr-defined]
    rows_on = {row.team: row for row in on.teams}  # type: ignore[attr-defined]
    # search sent 2e9 of the 6e9 tokens: a third of 5760; ads 1e9: a sixth.
    assert rows_on["search"].gpu_cost == rows_off["search"].gpu_cost + D(1920)
    assert rows_on["ads"].gpu_cost == D(960)
    assert rows_on["ml-serving"].gpu_cost == D(5760) - D(1920) - D(960)
    # Their self-hosted tokens carry no API price any more; gpt-4o's still does.
    assert rows_on["ads"].token_cost == D(10)
    assert rows_on["search"].token_cost == 0
    # Fleet total: the GPU cost is the same; only the API price the off mode put on
    # self-hosted tokens (if any) is gone, never added.
    api_priced = D(3e9) * D(llama_price) / 1000
    assert on.cluster.gpu_cost == off.cluster.gpu_cost  # type: ignore[attr-defined]
    assert on.cluster.total_cost == off.cluster.total_cost - api_priced  # type: ignore[attr-defined]
    # The days still add up to the period, team by team.
    for team, row in rows_on.items():
        assert sum(daily.of(team), D(0)) == pytest.approx(row.total_cost, abs=D("0.01"))  # type: ignore[attr-defined]


def test_the_same_model_in_two_clusters_is_two_rows_each_with_its_own_tokens() -> None:
    in_b = replace(SERVING, cluster="b", gpu_hours=D(720))
    models = self_hosted_models(
        [
            ServingGpu(LLAMA, "serving", replace(SERVING, cluster="a")),
            ServingGpu(LLAMA, "serving", in_b),
        ],
        [
            ServingTokens(LLAMA, "serving", D(4_000_000), D(1_000_000), cluster="a"),
            ServingTokens(LLAMA, "serving", D(1_000_000), D(0), cluster="b"),
        ],
        pricing(),
    )
    assert [(m.cluster, m.gpu_cost, m.cost_per_1m_tokens) for m in models] == [
        ("a", D(5760), D(1152)),
        ("b", D(2880), D(2880)),
    ]


def test_charged_hours_stay_in_the_cluster_that_used_them() -> None:
    """Two clusters' serving rows of the same labels: each loses its own share, and the
    consumers' rows carry the cluster the hours were used in."""
    a, b = replace(SERVING, cluster="a"), replace(SERVING, cluster="b", gpu_hours=D(720))
    moved = charge_consumers(
        [a, b],
        [TokenUsage("search", LLAMA, D(1000))],
        [],
        pricing(),
        [ServingGpu(LLAMA, "serving", a), ServingGpu(LLAMA, "serving", b)],
        [],
        {LLAMA: D(4000)},
    )
    hours: dict[tuple[str, str], D] = {}
    for row in moved.gpu:
        hours[(row.cluster, row.team)] = hours.get((row.cluster, row.team), D(0)) + row.gpu_hours
    assert hours == {
        ("a", "ml-serving"): D(1080),
        ("a", "search"): D(360),
        ("b", "ml-serving"): D(540),
        ("b", "search"): D(180),
    }


def test_a_serving_sum_a_float_ulp_above_its_allocation_row_moves_all_of_it() -> None:
    """Prometheus sums the serving pods' hours and the team's rows in another order:
    the serving figure may exceed the row it comes from by a float rounding. That is
    the whole row, not hours from nowhere (a refused report)."""
    served = replace(SERVING, gpu_hours=SERVING.gpu_hours + D("2E-13"))
    moved = charge_consumers(
        [SERVING],
        [TokenUsage("search", LLAMA, D(4000))],
        [],
        pricing(),
        [ServingGpu(LLAMA, "serving", served)],
        [],
        {LLAMA: D(4000)},
    )
    assert {row.team: row.gpu_hours for row in moved.gpu if row.gpu_hours} == {
        "search": SERVING.gpu_hours
    }
    # More than a rounding is still refused: hours that no allocation row holds.
    with pytest.raises(ValueError, match="beyond their allocation rows"):
        charge_consumers(
            [SERVING],
            [TokenUsage("search", LLAMA, D(4000))],
            [],
            pricing(),
            [ServingGpu(LLAMA, "serving", replace(SERVING, gpu_hours=D("1440.001")))],
            [],
            {LLAMA: D(4000)},
        )
