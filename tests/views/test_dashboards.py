"""The showback dashboards (views/dashboards.py): valid ConfigMaps for Grafana's sidecar,
`render --dashboards` in the user's configuration, and queries that return data.

The committed ConfigMaps (manifests/dashboards/, the chart's copies) are the golden
output of the built-in configuration; the tests below read them, and check that
the view still writes them byte for byte.

Every query of every panel runs against a real Prometheus holding two simulated
days (four teams, two operator replicas, target labels as a ServiceMonitor adds
them). The recording rules the dashboards read are not evaluated on backfilled
data, so the module fixture evaluates them with `promtool tsdb create-blocks-from
rules` against that Prometheus, one pass per layer of rules (a rule cannot read
another rule's output in the same pass), restarting Prometheus after each pass to
load the new blocks. Grafana's variables are replaced as Grafana would: the "All"
value `.*`, `$__range` 1d, `$__rate_interval` 5m, the idle threshold 10.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from finops_devtools.simulator.generation import ScenarioParams, generate_scenario
from finops_devtools.simulator.ground_truth import ground_truth
from finops_devtools.simulator.openmetrics import ExportOptions
from finops_devtools.simulator.world import Scenario
from finops_operator.cli import main
from finops_operator.domain import conventions
from finops_operator.domain.config import Config
from finops_operator.domain.rules.recording_rules import render_recording_rules
from finops_operator.domain.token_sources import DEFAULT_SOURCE
from finops_operator.views import dashboards
from tests.support.paths import ROOT
from tests.support.prometheus_server import (
    PROMTOOL,
    PrometheusRunnerError,
    PrometheusServer,
    backfilled_prometheus,
    needs_prometheus,
    previous_month,
)
from tests.support.tools import require_tool

FOLDER = ROOT / "manifests" / "dashboards"
CHART_COPY = ROOT / "charts" / "finops-operator" / "files" / "dashboards"
WRAPPER = ROOT / "scripts" / "gen_dashboards.py"
FILES = ("leadership.yaml", "engineering.yaml")

# Two days inside the previous month, so that month-to-date never crosses a month bound.
START = previous_month()[0] + timedelta(days=9)
END = START + timedelta(days=2)
AT = START + timedelta(hours=36)  # instant queries: a day and a half of data behind it
RANGE = (START + timedelta(hours=25), END - timedelta(hours=1))  # range queries
STEP = "30m"
OPTIONS = ExportOptions(scrape_interval=300, operator_replicas=2)

ALL = ".*"
SUBSTITUTIONS = {
    "$__rate_interval": "5m",
    "$__interval": "5m",
    "$__range_s": "86400",
    "$__range": "1d",
    "$idle_threshold": "10",
}


def _config_maps() -> dict[str, dict[str, Any]]:
    return {name: yaml.safe_load((FOLDER / name).read_text(encoding="utf-8")) for name in FILES}


def _board(config_map: dict[str, Any]) -> dict[str, Any]:
    [(_key, text)] = config_map["data"].items()
    board: dict[str, Any] = json.loads(text)
    return board


CONFIG_MAPS = _config_maps()
BOARDS = {name: _board(doc) for name, doc in CONFIG_MAPS.items()}


def _query_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in board["panels"] if panel["type"] not in ("row", "text")]


def _targets(boards: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(id, panel, target) for every query of every panel."""
    return [
        (f"{board['uid']}/{panel['title']}/{target['refId']}", panel, target)
        for board in boards.values()
        for panel in _query_panels(board)
        for target in panel["targets"]
    ]


TARGETS = _targets(BOARDS)


def substitute(expr: str, **variables: str) -> str:
    """The query as Grafana sends it: variables replaced, "All" as `.*`."""
    values = {
        **SUBSTITUTIONS,
        **{f"${name}": ALL for name in ("team", "cost_center", "cluster")},
        **{f"${name}": value for name, value in variables.items()},
    }
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(name, values[name])
    # `$1` in label_replace is a regex capture, not a Grafana variable.
    assert not re.search(r"\$(?!1\")", expr), f"a variable was left in {expr}"
    return expr


# ---------------------------------------------------------------- the objects


@pytest.mark.parametrize("name", FILES)
def test_every_dashboard_config_map_is_a_valid_kubernetes_object(name: str) -> None:
    kubernetes_validate.validate(CONFIG_MAPS[name], "1.30", strict=True)


@pytest.mark.parametrize("name", FILES)
def test_every_config_map_carries_the_sidecar_label_and_the_folder_annotation(name: str) -> None:
    metadata = CONFIG_MAPS[name]["metadata"]
    assert metadata["labels"]["grafana_dashboard"] == "1"
    assert metadata["annotations"]["grafana_folder"] == "FinOps"
    assert metadata["namespace"] == conventions.OPERATOR_NAMESPACE


@pytest.mark.parametrize("name", FILES)
def test_every_config_map_holds_one_grafana_dashboard_with_panels_and_queries(name: str) -> None:
    [key] = CONFIG_MAPS[name]["data"]
    assert key.endswith(".json")
    board = BOARDS[name]
    assert board["title"] and board["uid"] and len(board["uid"]) <= 40
    assert 36 <= board["schemaVersion"] <= 41
    panels = _query_panels(board)
    assert len(panels) >= 6
    for panel in panels:
        assert panel["title"] and panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"]
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))


def test_the_two_dashboards_have_different_uids() -> None:
    assert len({board["uid"] for board in BOARDS.values()}) == len(BOARDS)


@pytest.mark.parametrize("name", FILES)
def test_the_datasource_is_a_prometheus_template_variable(name: str) -> None:
    variables = {v["name"]: v for v in BOARDS[name]["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] == "${datasource}"
            assert variable["definition"].startswith("label_values(")
            assert variable["allValue"] == ALL and variable["includeAll"]


def test_the_leadership_dashboard_filters_by_team_and_cost_center() -> None:
    variables = {v["name"] for v in BOARDS["leadership.yaml"]["templating"]["list"]}
    assert {"team", "cost_center"} <= variables


def _enclosing_call(expr: str, position: int) -> str:
    """The text before the innermost bracket still open at `position`: its function."""
    depth = 0
    for index in range(position - 1, -1, -1):
        char = expr[index]
        if char in ")]}":
            depth += 1
        elif char in "([{":
            if depth == 0:
                return expr[:index].rstrip()
            depth -= 1
    return ""


def test_every_query_reads_the_operator_series_through_max_by_or_per_target_integration() -> None:
    # `max by (<labels>) (series)` counts two replicas once and drops target labels;
    # `sum_over_time` / `count_over_time` are divided per target before a `max by`.
    raw = re.compile(r"finops_(pod_gpu_allocation|node_gpu_capacity|gpu_hourly_price)\b")
    for where, _panel, target in TARGETS:
        expr = target["expr"]
        for match in raw.finditer(expr):
            before = _enclosing_call(expr, match.start())
            assert re.search(r"(max by \([\w, ]+\)|sum_over_time|count_over_time)$", before), (
                f"{where}: {match.group(0)} read outside max by: ...{before[-80:]}"
            )


def test_the_kustomization_lists_both_dashboards() -> None:
    kustomization = yaml.safe_load((FOLDER / "kustomization.yaml").read_text(encoding="utf-8"))
    assert sorted(kustomization["resources"]) == sorted(FILES)


def test_the_committed_dashboards_are_what_the_view_writes() -> None:
    files = dashboards.render(Config())
    for name, content in files.items():
        assert (FOLDER / name).read_text(encoding="utf-8") == content, name
    for name in FILES:
        assert (CHART_COPY / name).read_text(encoding="utf-8") == files[name], name


def test_the_repository_wrapper_checks_both_folders() -> None:
    result = subprocess.run(
        [sys.executable, str(WRAPPER), "--check"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _render(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["render", "--dashboards", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _boards_in(folder: Path) -> dict[str, dict[str, Any]]:
    return {
        name: _board(yaml.safe_load((folder / name).read_text(encoding="utf-8"))) for name in FILES
    }


def _money_units(board: dict[str, Any]) -> set[str]:
    money = {"currencyUSD", "currencyEUR", "currencyGBP"}
    units = {panel["fieldConfig"]["defaults"].get("unit") for panel in _query_panels(board)}
    return {unit for unit in units if unit in money or str(unit).startswith("suffix:")}


@pytest.mark.parametrize(("currency", "unit"), [("EUR", "currencyEUR"), ("CHF", "suffix: CHF")])
def test_render_dashboards_writes_every_money_panel_in_the_configured_currency(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, currency: str, unit: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"pricing:\n  currency: {currency}\n", encoding="utf-8")
    code, _, err = _render(capsys, "--config", str(config), "--out", str(tmp_path / "out"))
    assert code == 0, err
    boards = _boards_in(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [*FILES, "kustomization.yaml"]
    )
    for board in boards.values():
        assert _money_units(board) == {unit}, board["uid"]
    # The built-in configuration is in US dollars: the same panels change unit.
    for board in BOARDS.values():
        assert _money_units(board) == {"currencyUSD"}, board["uid"]


def _token_panel(boards: dict[str, dict[str, Any]]) -> dict[str, Any]:
    [found] = [
        p for p in _query_panels(boards["leadership.yaml"])
        if p["title"] == "Tokens per hour by model"
    ]  # fmt: skip
    return found


def test_render_dashboards_with_the_otel_genai_preset_reads_the_otel_series(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("llmGateway:\n  preset: otel-genai\n", encoding="utf-8")
    code, _, err = _render(capsys, "--config", str(config), "--out", str(tmp_path))
    assert code == 0, err
    exprs = [t["expr"] for t in _token_panel(_boards_in(tmp_path))["targets"]]
    assert len(exprs) == 2
    for expr, direction in zip(exprs, ("input", "output"), strict=True):
        assert f'gen_ai_client_token_usage_sum{{gen_ai_token_type="{direction}"}}' in expr
        assert '"model", "$1", "gen_ai_request_model"' in expr
        assert "litellm" not in expr
    # The built-in preset reads LiteLLM's counters, one per direction.
    default = [t["expr"] for t in _token_panel(BOARDS)["targets"]]
    assert DEFAULT_SOURCE.input_metric in default[0] and DEFAULT_SOURCE.output_metric in default[1]
    assert all("gen_ai" not in expr for expr in default)


def test_render_dashboards_prints_both_config_maps_without_out(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _render(capsys)
    assert code == 0
    documents = [doc for doc in yaml.safe_load_all(out) if doc is not None]
    assert [doc["metadata"]["name"] for doc in documents] == [
        "finops-dashboard-leadership", "finops-dashboard-engineering",
    ]  # fmt: skip
    assert documents == [CONFIG_MAPS[name] for name in FILES]


def test_render_dashboards_check_exits_1_on_a_stale_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert _render(capsys, "--out", str(tmp_path))[0] == 0
    assert _render(capsys, "--out", str(tmp_path), "--check")[0] == 0
    (tmp_path / "leadership.yaml").write_text("stale\n", encoding="utf-8")
    code, _, err = _render(capsys, "--out", str(tmp_path), "--check")
    assert code == 1 and "leadership.yaml is out of date" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "groups"], "--format applies to PrometheusRules, not --dashboards"),
        (["--check"], "--check compares a folder: give --out DIR"),
        (["--recording-rules"], "give one of POLICY.yaml"),
    ],
)
def test_render_dashboards_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = _render(capsys, *args)
    assert code == 2 and message in err and not out
    assert "Traceback" not in err


def test_render_out_without_dashboards_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["render", "--recording-rules", "--out", str(tmp_path)])
    assert code == 2 and "--out and --check apply to --dashboards" in capsys.readouterr().err


def test_render_dashboards_with_a_bad_configuration_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("pricing:\n  currency: dollars\n", encoding="utf-8")
    code, out, err = _render(capsys, "--config", str(config))
    assert code == 2 and err.startswith("error:") and "currency" in err and not out


def test_render_dashboards_into_an_unwritable_place_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    code, _, err = _render(capsys, "--out", str(blocker / "dashboards"))
    assert code == 2 and "cannot read or write" in err and "Traceback" not in err


# ---------------------------------------------------------------- the queries


def _backfill_recording_rules(server: PrometheusServer, start: datetime, end: datetime) -> None:
    """Evaluate the shared recording rules over the backfilled period, layer by layer."""
    rules = {rule["record"]: rule for group in render_recording_rules() for rule in group["rules"]}
    layers = [
        [
            conventions.RULE_HEARTBEAT,
            conventions.RULE_GPU_ALLOCATION,
            conventions.RULE_GPU_COST_HOURLY,
            conventions.RULE_TOKEN_COST_HOURLY,
        ],
        [conventions.RULE_GPU_COST_LAST_HOUR, conventions.RULE_TOKEN_COST_LAST_HOUR],
        [
            conventions.RULE_GPU_COST_MONTH_TO_DATE,
            conventions.RULE_GPU_COST_LAST_DAY,
            conventions.RULE_TOKEN_COST_MONTH_TO_DATE,
            conventions.RULE_TOKEN_COST_LAST_DAY,
        ],
    ]
    assert sorted(name for layer in layers for name in layer) == sorted(rules), (
        "a recording rule is not backfilled"
    )
    for index, layer in enumerate(layers):
        rule_file = server.workdir / f"recording-rules-{index}.yaml"
        group = {"name": f"layer-{index}", "rules": [rules[name] for name in layer]}
        rule_file.write_text(yaml.safe_dump({"groups": [group]}), encoding="utf-8")
        output = server.workdir / f"recorded-{index}"
        result = subprocess.run(
            [PROMTOOL, "tsdb", "create-blocks-from", "rules", "--quiet", f"--url={server.url}",
             f"--start={int(start.timestamp())}", f"--end={int(end.timestamp())}",
             "--eval-interval=60s", f"--output-dir={output}", str(rule_file)],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise PrometheusRunnerError(f"promtool could not backfill {layer}:\n{result.stderr}")
        server.stop()
        for block in output.iterdir():
            shutil.move(str(block), str(server.data_dir / block.name))
        server.start(same_port=True)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return generate_scenario(ScenarioParams(start=START, end=END, seed=11))


@pytest.fixture(scope="module")
def prometheus(
    scenario: Scenario, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    require_tool("prometheus", "promtool")
    with backfilled_prometheus(tmp_path_factory.mktemp("prom"), scenario, OPTIONS) as server:
        _backfill_recording_rules(server, START, END)
        yield server


def run(server: PrometheusServer, panel: dict[str, Any], target: dict[str, Any], **variables: str
        ) -> list[dict[str, Any]]:  # fmt: skip
    """The target's result as Grafana would get it: instant at AT, or a range query."""
    expr = substitute(target["expr"], **variables)
    if target.get("instant"):
        result: list[dict[str, Any]] = server.query(expr, AT)
        return result
    data = server.api(
        "query_range", query=expr, start=str(RANGE[0].timestamp()),
        end=str(RANGE[1].timestamp()), step=panel.get("interval", STEP),
    )  # fmt: skip
    assert data["resultType"] == "matrix"
    matrix: list[dict[str, Any]] = data["result"]
    return matrix


def _values(result: list[dict[str, Any]]) -> list[float]:
    return [
        float(value)
        for series in result
        for _, value in (series["values"] if "values" in series else [series["value"]])
    ]


@needs_prometheus
@pytest.mark.parametrize(("panel", "target"), [t[1:] for t in TARGETS], ids=[t[0] for t in TARGETS])
def test_every_panel_query_parses_and_returns_data_over_the_simulated_cluster(
    prometheus: PrometheusServer, panel: dict[str, Any], target: dict[str, Any]
) -> None:
    result = run(prometheus, panel, target)
    assert result, f"no data: {substitute(target['expr'])}"
    values = _values(result)
    assert values and all(math.isfinite(value) for value in values), values[:10]


def test_no_dashboard_bakes_in_a_token_price_and_ai_spend_is_gpu_plus_tokens() -> None:
    # Prices come from the recording rules (finops_token_price_per_1k), never the board.
    for where, panel, target in TARGETS:
        if panel["title"] != "Tokens per hour by model":  # volumes, read at the gateway
            assert "litellm" not in target["expr"], where
        assert "label_replace(vector(" not in target["expr"], where
    leadership = BOARDS["leadership.yaml"]
    for title in ("AI spend, month to date", "AI spend, month-end forecast"):
        expr = _target(_panel("leadership.yaml", title))["expr"]
        assert conventions.RULE_GPU_COST_MONTH_TO_DATE in expr
        assert conventions.RULE_TOKEN_COST_MONTH_TO_DATE in expr
    token = _target(_panel("leadership.yaml", "Token spend"))["expr"]
    assert conventions.RULE_TOKEN_COST_HOURLY in token
    assert leadership["title"].startswith("FinOps / AI spend")


def test_the_engineering_dashboard_reads_utilization_as_configured() -> None:
    expr = _target(_panel("engineering.yaml", "GPU utilization by team"))["expr"]
    assert '"pod", "$1", "exported_pod", "(.+)"' in expr  # the GPU Operator preset
    assert 'DCGM_FI_PROF_GR_ENGINE_ACTIVE{cluster=~"$cluster", GPU_I_ID!=""}' in expr


@needs_prometheus
def test_the_token_spend_of_a_day_matches_the_ground_truth(
    prometheus: PrometheusServer, scenario: Scenario
) -> None:
    board = dashboards.leadership(scenario.pricing, DEFAULT_SOURCE)
    [(panel, target)] = [
        (p, t) for p in _query_panels(board) if p["title"] == "Token spend" for t in p["targets"]
    ]
    [sample] = run(prometheus, panel, target)
    truth = ground_truth(scenario, AT - timedelta(days=1), AT)
    expected = sum((team.token_cost for team in truth.teams.values()), Decimal(0))
    assert float(sample["value"][1]) == pytest.approx(float(expected), rel=0.02)


def _panel(board: str, title: str) -> dict[str, Any]:
    [found] = [p for p in _query_panels(BOARDS[board]) if p["title"] == title]
    return found


def _target(panel: dict[str, Any], ref: str = "A") -> dict[str, Any]:
    found: list[dict[str, Any]] = [t for t in panel["targets"] if t["refId"] == ref]
    assert len(found) == 1, ref
    return found[0]


@needs_prometheus
def test_the_untagged_spend_panel_returns_the_untagged_team_and_only_it(
    prometheus: PrometheusServer,
) -> None:
    panel = _panel("engineering.yaml", "Untagged spend per hour")
    result = run(prometheus, panel, _target(panel, "A"))
    assert [series["metric"].get("team") for series in result] == [conventions.UNTAGGED]
    assert max(_values(result)) > 0


@needs_prometheus
def test_the_untagged_pods_table_lists_only_pods_missing_a_cost_label(
    prometheus: PrometheusServer,
) -> None:
    panel = _panel("engineering.yaml", "Untagged GPU pods in the period")
    result = run(prometheus, panel, _target(panel))
    assert result
    for series in result:
        assert conventions.UNTAGGED in series["metric"].values(), series["metric"]
        assert "instance" not in series["metric"]
    pods = [(s["metric"]["namespace"], s["metric"]["pod"]) for s in result]
    assert len(pods) == len(set(pods)), "a pod counted once per replica"


@needs_prometheus
def test_the_spend_by_team_table_includes_the_untagged_team(
    prometheus: PrometheusServer,
) -> None:
    panel = _panel("leadership.yaml", "AI spend by team")
    teams = {series["metric"].get("team") for series in run(prometheus, panel, _target(panel))}
    assert conventions.UNTAGGED in teams and len(teams) >= 4


@needs_prometheus
def test_a_team_filter_narrows_every_team_panel_to_that_team(
    prometheus: PrometheusServer,
) -> None:
    for where, panel, target in TARGETS:
        if "{{team}}" not in target["legendFormat"] or "__untagged__" in target["expr"]:
            continue
        result = run(prometheus, panel, target, team="recsys")
        assert result, f"{where}: no data for one team"
        assert {series["metric"].get("team") for series in result} == {"recsys"}, where


@needs_prometheus
def test_busy_idle_and_unallocated_gpus_add_up_to_the_nodes_gpus_once(
    prometheus: PrometheusServer, scenario: Scenario
) -> None:
    panel = _panel("engineering.yaml", "GPUs: busy, allocated but idle, unallocated")
    total = 0.0
    for target in panel["targets"]:
        [series] = prometheus.query(substitute(target["expr"]), AT)
        total += float(series["value"][1])
    assert total == pytest.approx(sum(node.gpus for node in scenario.nodes), rel=1e-9)


@needs_prometheus
def test_spend_by_cost_center_adds_up_to_the_gpu_spend(prometheus: PrometheusServer) -> None:
    total_panel = _panel("leadership.yaml", "GPU spend")
    by_center = _panel("leadership.yaml", "GPU spend by cost center")
    [total] = _values(run(prometheus, total_panel, _target(total_panel)))
    parts = _values(run(prometheus, by_center, _target(by_center)))
    assert total > 0 and sum(parts) == pytest.approx(total, rel=1e-9)


@needs_prometheus
def test_the_variables_find_their_values(prometheus: PrometheusServer) -> None:
    for board in BOARDS.values():
        for variable in board["templating"]["list"]:
            if variable["type"] != "query":
                continue
            metric, label = re.fullmatch(
                r"label_values\((.+), (\w+)\)", variable["definition"]
            ).groups()  # type: ignore[union-attr]
            window = {"start": str(START.timestamp()), "end": str(END.timestamp())}
            assert prometheus.api("series", **{"match[]": metric}, **window), metric
            values = prometheus.api(f"label/{label}/values", **{"match[]": metric}, **window)
            if label == "cluster":
                continue  # a single Prometheus has no cluster label: "All" is the only choice
            assert values, variable["definition"]


@needs_prometheus
def test_a_days_gpu_spend_matches_the_ground_truth_with_two_replicas(
    prometheus: PrometheusServer, scenario: Scenario
) -> None:
    panel = _panel("leadership.yaml", "GPU spend")
    [spend] = _values(run(prometheus, panel, _target(panel)))
    truth = ground_truth(scenario, AT - timedelta(days=1), AT)
    # Backfilled pods linger for the 5-minute lookback after their last sample.
    assert spend == pytest.approx(float(truth.cluster.gpu_cost), rel=0.03)


@needs_prometheus
def test_the_cost_of_each_training_run_matches_the_ground_truth(
    prometheus: PrometheusServer, scenario: Scenario
) -> None:
    panel = _panel("engineering.yaml", "Cost per training run (Job)")
    costs = run(prometheus, panel, _target(panel, "A"))
    hours = run(prometheus, panel, _target(panel, "B"))
    truth = ground_truth(scenario, AT - timedelta(days=1), AT).jobs
    # Samples place a pod's start and end within a scrape interval (5 min here), so
    # a Job of a few minutes may fall between two scrapes; any longer one is listed.
    seen = {(s["metric"]["namespace"], s["metric"]["owner_name"]) for s in costs}
    assert {key for key, job in truth.items() if job.gpu_hours >= Decimal("0.1")} <= seen
    assert seen == {(s["metric"]["namespace"], s["metric"]["owner_name"]) for s in hours}
    for series in costs:
        job = truth[(series["metric"]["namespace"], series["metric"]["owner_name"])]
        assert float(series["value"][1]) == pytest.approx(float(job.cost), rel=0.02, abs=1)
    for series in hours:
        job = truth[(series["metric"]["namespace"], series["metric"]["owner_name"])]
        assert float(series["value"][1]) == pytest.approx(float(job.gpu_hours), rel=0.02, abs=0.3)
