"""CostReport objects built from cost rows, as the API server will store them."""

from __future__ import annotations

import dataclasses
import datetime
import re
from dataclasses import replace
from decimal import Decimal
from typing import Any

import kubernetes_validate
import pytest
import yaml

from finops_operator.controllers.report_controller import budgets_of, months_to_refresh
from finops_operator.domain.config import Config
from finops_operator.domain.costs.allocation import allocate
from finops_operator.domain.costs.cost_reports import (
    ReportInput,
    desired_reports,
    fresh_status,
    report_name,
    stale_status,
    status_changed,
)
from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.pricing import JobCost
from finops_operator.domain.costs.showback import compute_costs
from finops_operator.domain.costs.trend import DailyCosts
from finops_operator.domain.costs.usage import CapacityUsage, GpuUsage, TokenUsage
from finops_operator.domain.rules.policy_reconciler import plan_policy, team_budget_scopes
from tests.support.crd_schema import served_schema, untyped_nodes, validate_against_crd
from tests.support.paths import ROOT

CRD = ROOT / "crds" / "costreports.finops.resilio.tech.yaml"
NOW = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.UTC)
LATER = NOW + datetime.timedelta(minutes=10)


def report_input(
    budgets: dict[str, Decimal] | None = None, scopes: dict[str, str] | None = None
) -> ReportInput:
    period = Period(datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC), NOW)
    costs = compute_costs(
        period=period,
        pricing=Config().pricing,
        gpu_usage=[
            GpuUsage("search", "H100", Decimal(100), Decimal(75), feature="rerank"),
            GpuUsage("search", "H100", Decimal(20), Decimal(20), feature="embed"),
            GpuUsage("__untagged__", "H100", Decimal(10), Decimal(0)),
        ],
        token_usage=[TokenUsage("search", "gpt-4o", Decimal(1_000_000))],
        capacity=[CapacityUsage("H100", Decimal(200))],
    )
    return ReportInput(
        period="2026-11",
        currency=costs.currency,
        teams=costs.teams,
        untagged=costs.untagged,
        cluster=costs.cluster,
        jobs=[JobCost("ml", "finetune-7b", "search", Decimal(40), Decimal("80"))],
        data_through=NOW,
        budgets=budgets or {},
        budget_scopes=scopes or {},
    )


def objects(
    budgets: dict[str, Decimal] | None = None, scopes: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    return {
        obj["metadata"]["name"]: {**obj, "status": fresh_status(status, None, NOW)}
        for obj, status in desired_reports(report_input(budgets, scopes), NOW)
    }


def test_a_period_gives_a_report_per_team_plus_untagged_and_cluster() -> None:
    assert set(objects()) == {"search-2026-11", "untagged-2026-11", "cluster-2026-11"}


def test_every_report_is_valid_against_the_costreport_crd() -> None:
    for obj in objects({"search": Decimal(1000)}).values():
        validate_against_crd(obj, CRD)


def test_the_team_report_carries_its_figures_as_money_strings_and_hour_numbers() -> None:
    status = objects()["search-2026-11"]["status"]
    assert status["gpuHours"] == 120.0
    assert status["gpuCost"] == "240.00"
    assert status["idleGpuHours"] == 25.0
    assert status["idlePercent"] == pytest.approx(20.8, abs=0.05)
    assert status["tokenCost"] == "2.00"
    assert status["dataThrough"] == "2026-11-27T12:00:00Z"
    assert [b["name"] for b in status["breakdowns"]["feature"]] == ["rerank", "embed"]
    assert status["topWorkloads"] == [
        {"kind": "Job", "namespace": "ml", "name": "finetune-7b", "gpuHours": 40.0, "cost": "80.00"}
    ]


@pytest.mark.parametrize(
    ("scope", "percent"),
    [
        (None, 24.2),  # a policy's default scope: AI spend, GPU 240 + tokens 2
        ("all", 24.2),
        ("gpu", 24.0),
        ("tokens", 0.2),
    ],
)
def test_budget_use_is_the_spend_of_the_policys_scope_over_its_monthly_budget(
    scope: str | None, percent: float
) -> None:
    scopes = {"search": scope} if scope else None
    status = objects({"search": Decimal(1000)}, scopes)["search-2026-11"]["status"]
    assert (status["budget"], status["budgetUsedPercent"]) == ("1000.00", percent)
    assert "budgetUsedPercent" not in objects()["search-2026-11"]["status"]


def test_the_cluster_report_accounts_for_unallocated_capacity() -> None:
    cluster = objects()["cluster-2026-11"]["status"]["cluster"]
    assert cluster["capacityGpuHours"] == 200.0
    assert cluster["unallocatedGpuHours"] == 70.0


@pytest.mark.parametrize(
    ("team", "name"),
    [
        ("search-platform", "search-platform-2026-11"),
        ("Search_Platform", "search-platform-"),
        ("a" * 63, "a" * 39 + "-"),
    ],
    ids=["a valid team keeps its name", "an invalid one is folded", "a long one is cut"],
)
def test_report_names_are_valid_and_unique_per_team(team: str, name: str) -> None:
    produced = report_name("team", team, "2026-11")
    assert produced.startswith(name)
    assert len(produced) <= 63
    assert report_name("team", team.upper() + "x", "2026-11") != produced


def test_prometheus_away_keeps_the_figures_and_marks_them_stale() -> None:
    good = objects()["search-2026-11"]["status"]
    stale = stale_status(good, "PrometheusUnavailable", "cannot reach Prometheus", LATER)
    assert {k: v for k, v in stale.items() if k != "conditions"} == {
        k: v for k, v in good.items() if k != "conditions"
    }
    conditions = {c["type"]: c for c in stale["conditions"]}
    assert conditions["Stale"]["status"] == "True"
    assert conditions["Stale"]["reason"] == "PrometheusUnavailable"
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Stale"]["lastTransitionTime"] == "2026-11-27T12:10:00Z"


def test_a_good_read_after_an_outage_clears_stale() -> None:
    _, figures = desired_reports(report_input(), NOW)[0]
    good = fresh_status(figures, None, NOW)
    stale = stale_status(good, "PrometheusUnavailable", "down", LATER)
    again = fresh_status(figures, stale, LATER + datetime.timedelta(minutes=1))
    conditions = {c["type"]: c for c in again["conditions"]}
    assert conditions["Stale"]["status"] == "False"
    assert again["lastUpdated"] == good["lastUpdated"]  # the figures did not change


def test_an_unchanged_refresh_writes_nothing() -> None:
    _, figures = desired_reports(report_input(), NOW)[0]
    first = fresh_status(figures, None, NOW)
    assert not status_changed(first, fresh_status(figures, first, LATER))


def test_the_months_refreshed_are_the_current_and_the_previous() -> None:
    january = datetime.datetime(2027, 1, 3, tzinfo=datetime.UTC)
    assert [f"{p.start:%Y-%m}" for p in months_to_refresh(january)] == ["2027-01", "2026-12"]


def test_budgets_come_from_valid_policies_that_name_a_team() -> None:
    def policy(name: str, **spec: Any) -> dict[str, Any]:
        return {
            "apiVersion": "finops.resilio.tech/v1alpha1",
            "kind": "CostPolicy",
            "metadata": {"name": name, "namespace": "finops"},
            "spec": spec,
        }

    policies = {
        1: policy("a", selector={"team": "search"}, budget={"monthly": 20000, "currency": "USD"}),
        2: policy("b", budget={"monthly": 5, "currency": "USD"}),
        3: policy("c", selector={"team": "BAD TEAM"}, budget={"monthly": 7, "currency": "USD"}),
    }
    assert budgets_of(policies, Config()) == {"search": Decimal(20000)}
    # What the CostReport's budget % counts: the policy's scope, or all-in by `basis`.
    policies[4] = policy(
        "d",
        selector={"team": "vision"},
        scope="gpu",
        budget={"monthly": 9, "currency": "USD", "basis": "all-in"},
    )
    policies[5] = policy(
        "e", selector={"team": "chat"}, scope="tokens", budget={"monthly": 3, "currency": "USD"}
    )
    assert team_budget_scopes(policies.values(), Config()) == {
        "search": (Decimal(20000), "all"),
        "vision": (Decimal(9), "all-in"),
        "chat": (Decimal(3), "tokens"),
    }


def test_the_crd_is_a_valid_structural_cluster_scoped_apiextensions_v1_object() -> None:
    crd = yaml.safe_load(CRD.read_text(encoding="utf-8"))
    kubernetes_validate.validate(crd, "1.30.0", strict=True)
    assert crd["spec"]["scope"] == "Cluster"
    [version] = crd["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    columns = {column["name"] for column in version["additionalPrinterColumns"]}
    assert {"Team", "Period", "GPU Hours", "Cost", "Idle %", "Budget %", "Age"} <= columns
    assert untyped_nodes(served_schema(CRD)) == []


# --- issue 13, item 9: no team can take a scope report's name, nor another team's ------


@pytest.mark.parametrize("team", ["cluster", "untagged"])
def test_a_team_named_like_a_scope_never_overwrites_the_scope_report(team: str) -> None:
    scope_names = {report_name(scope, None, "2026-11") for scope in ("cluster", "untagged")}
    produced = report_name("team", team, "2026-11")
    assert produced not in scope_names
    assert produced.startswith(f"{team}-") and produced.endswith("-2026-11")


def test_a_team_named_like_another_teams_folded_name_gets_its_own() -> None:
    folded = report_name("team", "Search_Platform", "2026-11")
    impostor = folded.removesuffix("-2026-11")
    assert report_name("team", impostor, "2026-11") != folded


def test_report_names_are_collision_free_over_awkward_teams() -> None:
    teams = ["cluster", "untagged", "Cluster", "cluster-", "search", "Search", "search-2026-11"]
    teams += ["a" * 48, "a" * 49, "a" * 63, "x-deadbeef", "__untagged__", "", "-", "é"]
    teams += [report_name("team", t, "2026-11").removesuffix("-2026-11") for t in list(teams)]
    names = {t: report_name("team", t, "2026-11") for t in teams}
    names_scope = {report_name(s, None, "2026-11") for s in ("cluster", "untagged")}
    assert len(set(names.values())) == len(names)
    assert not set(names.values()) & names_scope
    for name in names.values():
        assert len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)


def test_the_desired_reports_of_a_team_called_cluster_are_all_kept() -> None:
    data = report_input()
    teams = [dataclasses.replace(data.teams[0], team="cluster")]
    reports = desired_reports(dataclasses.replace(data, teams=teams), NOW)
    names = [obj["metadata"]["name"] for obj, _ in reports]
    assert len(names) == len(set(names)) == 3


# --- issue 13, item 11: the budget of an Invalid policy is never applied --------------


def test_the_budget_of_a_policy_in_another_currency_is_not_applied() -> None:
    policy = {
        "apiVersion": "finops.resilio.tech/v1alpha1",
        "kind": "CostPolicy",
        "metadata": {"name": "eur", "namespace": "finops"},
        "spec": {"selector": {"team": "search"}, "budget": {"monthly": 7, "currency": "EUR"}},
    }
    assert not plan_policy(policy, Config()).valid  # its status says Invalid
    assert budgets_of({1: policy}, Config()) == {}


def allocated_reports() -> dict[str, dict[str, Any]]:
    """The reports of a month whose usage has cost centers, with the allocation."""
    period = Period(datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC), NOW)
    pricing = Config().pricing
    gpu = [
        GpuUsage("search", "H100", Decimal(100), Decimal(75), cost_center="cc-a"),
        GpuUsage("search", "H100", Decimal(1) / 3, None, cost_center="cc-b"),
        GpuUsage("recsys", "H100", Decimal(20), Decimal(20), cost_center="cc-b"),
        GpuUsage("__untagged__", "H100", Decimal(10), Decimal(0)),
    ]
    tokens = [
        TokenUsage("search", "gpt-4o", Decimal(1_000_001)),
        TokenUsage("chat", "gpt-4o", Decimal(333_333)),  # no GPU cost
    ]
    costs = compute_costs(
        period=period,
        pricing=pricing,
        gpu_usage=gpu,
        token_usage=tokens,
        capacity=[CapacityUsage("H100", Decimal(200))],
    )
    data = dataclasses.replace(
        report_input(),
        teams=costs.teams,
        untagged=costs.untagged,
        cluster=costs.cluster,
        allocation=allocate(costs, gpu, tokens, pricing),
    )
    return {obj["metadata"]["name"]: {**obj, "status": s} for obj, s in desired_reports(data, NOW)}


def test_cost_centers_in_the_reports_carry_all_spend_and_add_up_to_each_total() -> None:
    reports = allocated_reports()
    for obj in reports.values():
        validate_against_crd(obj, CRD)
        status = obj["status"]
        rest = Decimal((status.get("cluster") or {}).get("undistributedCost", "0"))
        for dimension, entries in status["breakdowns"].items():
            for key in ("gpuCost", "idleCost", "tokenCost"):
                parts = sum(Decimal(entry[key]) for entry in entries)
                assert parts == Decimal(status[key]), (obj["metadata"]["name"], dimension, key)
            for key in ("sharedCost", "totalCost"):
                parts = sum(Decimal(entry[key]) for entry in entries) + rest
                assert parts == Decimal(status[key]), (obj["metadata"]["name"], dimension, key)
            for entry in entries:  # total = GPU + token + shared, to rounding
                parts = sum(Decimal(entry[key]) for key in ("gpuCost", "tokenCost", "sharedCost"))
                assert abs(Decimal(entry["totalCost"]) - parts) <= Decimal("0.02")
    centers = reports["cluster-2026-11"]["status"]["breakdowns"]["costCenter"]
    assert [entry["name"] for entry in centers] == ["cc-a", "cc-b", "__untagged__"]
    assert all(Decimal(entry["sharedCost"]) > 0 for entry in centers)
    # The tokens of a team without GPU cost are on its untagged cost center.
    chat = reports["chat-2026-11"]["status"]["breakdowns"]["costCenter"]
    assert [entry["name"] for entry in chat] == ["__untagged__"]
    assert chat[0]["tokenCost"] == reports["chat-2026-11"]["status"]["tokenCost"] != "0.00"


def test_each_report_carries_its_daily_spend_adding_up_to_its_total() -> None:
    from finops_operator.domain.costs.trend import DayUsage, daily_costs

    period = Period(datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC), NOW)
    midnight = datetime.datetime(2026, 11, 27, tzinfo=datetime.UTC)
    days = [
        Period(
            period.start + datetime.timedelta(days=i), period.start + datetime.timedelta(days=i + 1)
        )
        for i in range(26)
    ] + [Period(midnight, NOW)]
    gpu = [
        GpuUsage("search", "H100", Decimal(100) / 27),
        GpuUsage("__untagged__", "H100", Decimal(1) / 3),
    ]
    usage = [DayUsage(window, gpu) for window in days]
    pricing = Config().pricing.model_copy(update={"shared_monthly": Decimal("1000")})
    whole = [GpuUsage("search", "H100", Decimal(100)), GpuUsage("__untagged__", "H100", Decimal(9))]
    costs = compute_costs(
        period=period,
        pricing=pricing,
        gpu_usage=whole,
        capacity=[CapacityUsage("H100", Decimal(2000))],
    )
    data = dataclasses.replace(
        report_input(),
        teams=costs.teams,
        untagged=costs.untagged,
        cluster=costs.cluster,
        daily=daily_costs(costs, [], usage, pricing),
    )
    for obj, status in desired_reports(data, NOW):
        validate_against_crd({**obj, "status": status}, CRD)
        daily = status["daily"]
        assert [entry["date"] for entry in daily] == [f"2026-11-{d:02d}" for d in range(1, 28)]
        assert sum(Decimal(entry["totalCost"]) for entry in daily) == Decimal(status["totalCost"])
        assert all(re.fullmatch(r"[0-9]+\.[0-9]{2}", entry["totalCost"]) for entry in daily)
    without = desired_reports(report_input(), NOW)
    assert all("daily" not in status for _, status in without)  # no days, no field


def test_reports_say_when_their_data_starts_and_forecast_the_month_end() -> None:
    days = tuple(
        Period(
            datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC) + datetime.timedelta(days=i),
            datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC) + datetime.timedelta(days=i + 1),
        )
        for i in range(27)
    )
    measured = (False,) * 6 + (True,) * 21  # the operator came on the 7th
    data = replace(report_input(), daily=DailyCosts(days, {}, measured))
    statuses = {obj["metadata"]["name"]: status for obj, status in desired_reports(data, NOW)}
    for status in statuses.values():
        assert status["dataFrom"] == "2026-11-07T00:00:00Z" and status["partialPeriod"] is True
    cluster = statuses["cluster-2026-11"]
    # 20.5 days of data (the 7th to the 27th, 12:00) of the month's 24 to go: run rate.
    elapsed, ahead = Decimal("20.5"), Decimal("3.5")
    total = Decimal(cluster["totalCost"])
    assert Decimal(cluster["forecastTotalCost"]) == (total * (elapsed + ahead) / elapsed).quantize(
        Decimal("0.01")
    )


def test_reports_carry_unit_economics_and_the_budget_basis() -> None:
    found = objects({"search": Decimal(10_000)}, {"search": "all-in"})
    search = found["search-2026-11"]["status"]
    assert search["tokens"] == 1_000_000
    assert Decimal(search["costPer1kTokens"]) > 0 and Decimal(search["costPerBusyGpuHour"]) > 0
    assert search["budgetBasis"] == "total cost (GPU + token + shared)"
    total = Decimal(search["totalCost"])
    assert search["budgetUsedPercent"] == float(round(total * 100 / 10_000, 1))
    default = objects({"search": Decimal(10_000)})["search-2026-11"]["status"]
    assert default["budgetBasis"] == "GPU + token cost (shared cost not included)"
    for obj in found.values():
        validate_against_crd(obj, CRD)
