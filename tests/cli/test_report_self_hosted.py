"""Self-hosted models and OpenTelemetry GenAI tokens against a real Prometheus.

A simulated cluster whose gateway reports `gen_ai.client.token.usage` (as Envoy AI
Gateway does) and which serves two models with vLLM on its own H100s. The report
must find each team's token cost and each served model's cost per million tokens
within 0.5 % of the simulator's ground truth, and charging the gateway teams for
the self-hosted tokens must move GPU cost without changing the fleet's total.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from finops_devtools.simulator.generation import (
    SERVING_TEAM,
    NodePool,
    ScenarioParams,
    generate_scenario,
)
from finops_devtools.simulator.ground_truth import GroundTruth, ground_truth
from finops_devtools.simulator.openmetrics import ExportOptions
from finops_devtools.simulator.world import H100, Scenario
from finops_operator.adapters.prometheus_api import PrometheusClient
from finops_operator.controllers.serving_reader import Chargeback, read_serving, self_hosted
from finops_operator.controllers.usage_reader import report_period
from finops_operator.domain.config import Config, PricingConfig, PrometheusConfig, parse_config
from finops_operator.domain.costs.cost_queries import QueryNames
from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.self_hosted import SelfHostedModel
from finops_operator.domain.costs.serving_queries import ServingNames
from tests.cli.test_report import cli, config_file
from tests.support.prometheus_server import (
    PrometheusServer,
    backfilled_prometheus,
    needs_prometheus,
    recent_days,
)

pytestmark = needs_prometheus

TOLERANCE = 0.005
LLAMA = "llama-3.1-70b"
START, END = recent_days(2)
PRICING = PricingConfig.model_validate(
    {
        "gpuHourly": {"default": "2.00", H100: "4.00"},
        "tokensPer1k": {
            "default": "0.002",
            "gpt-4o": {"input": "0.0025", "output": "0.01"},
            "gpt-4o-mini": {"input": "0.00015", "output": "0.0006"},
            LLAMA: "0",
        },
        "sharedMonthly": "1000",
    }
)
OTEL = {"llmGateway": {"preset": "otel-genai"}}


@dataclass
class Cluster:
    scenario: Scenario
    prometheus: PrometheusServer
    truth: GroundTruth

    def client(self) -> PrometheusClient:
        return PrometheusClient(PrometheusConfig(url=self.prometheus.url))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    params = ScenarioParams(
        start=START - timedelta(hours=6),
        end=END + timedelta(hours=6),
        seed=1,
        teams=3,
        node_pools=(NodePool(H100, count=1),),
        pricing=PRICING,
        llm_models=("gpt-4o", LLAMA),
        gateway="otel-genai",
        self_hosted=True,
    )
    scenario = generate_scenario(params)
    options = ExportOptions(scrape_interval=60, operator_replicas=2)
    with backfilled_prometheus(tmp_path_factory.mktemp("prom"), scenario, options) as server:
        yield Cluster(scenario, server, ground_truth(scenario, START, END))


def _close(got: Decimal | None, want: Decimal | None) -> bool:
    assert got is not None and want is not None
    return abs(float((got - want) / want)) <= TOLERANCE


def test_the_token_cost_of_each_team_comes_from_the_otel_genai_metric(cluster: Cluster) -> None:
    names = QueryNames.from_config(parse_config(OTEL))
    report = report_period(cluster.client(), PRICING, Period(START, END), names=names)
    rows = {row.team: row for row in report.costs.teams}
    spenders = {team: t for team, t in cluster.truth.teams.items() if t.token_cost}
    assert len(spenders) >= 2
    for team, truth in spenders.items():
        assert _close(rows[team].tokens, truth.tokens), (team, rows[team].tokens, truth.tokens)
        assert _close(rows[team].token_cost, truth.token_cost), team
    # LiteLLM's counters are not there: read with the default preset, no token at all.
    litellm = report_period(cluster.client(), PRICING, Period(START, END))
    assert litellm.costs.cluster.token_cost == 0


def _served(cluster: Cluster, config: Config) -> dict[tuple[str, str], SelfHostedModel]:
    usage = read_serving(
        cluster.client(),
        Period(START, END),
        names=QueryNames.from_config(config),
        serving=ServingNames.from_config(config.self_hosted_models),
    )
    return {(m.model, m.namespace): m for m in self_hosted(usage, PRICING, config)}


def test_the_cost_per_million_tokens_of_each_served_model_matches_the_truth(
    cluster: Cluster,
) -> None:
    models = _served(cluster, parse_config(OTEL))
    assert (
        set(models)
        == set(cluster.truth.self_hosted)
        == {
            (LLAMA, SERVING_TEAM),
            ("qwen2.5-7b", SERVING_TEAM),
        }
    )
    for key, truth in cluster.truth.self_hosted.items():
        model = models[key]
        assert _close(model.gpu_cost, truth.gpu_cost), key
        assert _close(model.tokens, truth.prompt_tokens + truth.generation_tokens), key
        assert _close(model.cost_per_1m_tokens, truth.cost_per_1m_tokens), key


def test_report_json_lists_the_self_hosted_models_beside_their_api_price(
    cluster: Cluster, tmp_path: Path
) -> None:
    path = config_file(tmp_path, cluster.scenario, cluster.prometheus.url)
    document = json.loads(path.read_text())
    document |= OTEL | {"selfHostedModels": {"comparable": {LLAMA: "gpt-4o-mini"}}}
    path.write_text(json.dumps(document))
    period = ["--start", START.isoformat(), "--end", END.isoformat()]
    result = cli("--config", str(path), *period, "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = {row["model"]: row for row in json.loads(result.stdout)["selfHostedModels"]}
    llama, qwen = rows[LLAMA], rows["qwen2.5-7b"]
    assert list(llama) == [
        "model", "namespace", "cluster", "gpuHours", "gpuCost", "promptTokens", "generationTokens",
        "costPer1MTokens", "comparable",
    ]  # fmt: skip
    truth = cluster.truth.self_hosted[(LLAMA, SERVING_TEAM)]
    assert llama["namespace"] == SERVING_TEAM
    assert _close(Decimal(llama["costPer1MTokens"]), truth.cost_per_1m_tokens)
    tokens = llama["promptTokens"] + llama["generationTokens"]
    # gpt-4o-mini: 0.15 per 1M input, 0.60 per 1M output, for the same tokens.
    api = (
        Decimal(llama["promptTokens"]) * Decimal("0.15")
        + llama["generationTokens"] * Decimal("0.6")
    ) / tokens
    assert llama["comparable"]["model"] == "gpt-4o-mini"
    assert Decimal(llama["comparable"]["costPer1MTokens"]) == pytest.approx(
        api, abs=Decimal("0.0001")
    )
    assert qwen["comparable"] is None
    table = cli("--config", str(path), *period)
    assert table.returncode == 0, table.stderr
    assert "Self-hosted models" in table.stdout and "gpt-4o-mini" in table.stdout
    page = cli("--config", str(path), *period, "--format", "html")
    assert page.returncode == 0, page.stderr
    assert '<h2 id="self-hosted">Self-hosted models</h2>' in page.stdout
    assert f"<td>{llama['costPer1MTokens']}</td>" in page.stdout


def test_charging_the_consumers_moves_serving_cost_and_keeps_the_fleet_total(
    cluster: Cluster,
) -> None:
    config = parse_config(OTEL | {"selfHostedModels": {"chargeConsumers": True}})
    names = QueryNames.from_config(config)
    period = Period(START, END)
    off = report_period(cluster.client(), PRICING, period, names=names)
    chargeback = Chargeback.of(cluster.client(), config, names)
    assert chargeback is not None
    on = report_period(cluster.client(), PRICING, period, names=names, adjust=chargeback)
    assert abs(on.costs.cluster.total_cost - off.costs.cluster.total_cost) < Decimal("1e-6")
    assert abs(on.costs.cluster.gpu_cost - off.costs.cluster.gpu_cost) < Decimal("1e-6")
    before = {row.team: row for row in off.costs.teams}
    after = {row.team: row for row in on.costs.teams}
    moved = before[SERVING_TEAM].gpu_cost - after[SERVING_TEAM].gpu_cost
    gained = sum(
        (after[t].gpu_cost - before[t].gpu_cost for t in after if t != SERVING_TEAM), Decimal(0)
    )
    assert moved > 0 and abs(moved - gained) < Decimal("1e-6")
    # The days still add up to the period for every team.
    for team, row in after.items():
        assert abs(sum(on.daily.of(team), Decimal(0)) - row.total_cost) < Decimal("0.01"), team


@pytest.mark.parametrize(("name", "shown"), [(None, ""), ("eu-1", "eu-1")])
def test_a_single_prometheus_names_its_served_models_cluster_as_the_config_does(
    cluster: Cluster, tmp_path: Path, name: str | None, shown: str
) -> None:
    """One Prometheus read directly has no cluster label: the rows' `cluster` is
    config `cluster.name` (as the JSON `clusters` list names it), or "" without one."""
    path = config_file(tmp_path, cluster.scenario, cluster.prometheus.url)
    document = json.loads(path.read_text()) | OTEL | {"cluster": {"name": name}}
    path.write_text(json.dumps(document))
    period = ["--start", START.isoformat(), "--end", END.isoformat()]
    result = cli("--config", str(path), *period, "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {row["cluster"] for row in report["selfHostedModels"]} == {shown}
    assert len(report["selfHostedModels"]) == len(cluster.truth.self_hosted)
    assert [entry["name"] for entry in report["clusters"]] == [shown]
