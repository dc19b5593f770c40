"""What the demo prints and writes: kubectl-like tables and YAML, and the HTML showback."""

from __future__ import annotations

import datetime
import html.parser
import re
from typing import Any

import pytest
import yaml

from finops_devtools.demo import budget_for, events_table, refreshed_periods, simulated_window
from finops_operator.views.kubectl_tables import (
    COSTPOLICY_COLUMNS,
    COSTREPORT_COLUMNS,
    abbreviated_rule,
    cell,
    costpolicies_table,
    costreports_table,
    human_duration,
    json_path,
    to_yaml,
)
from finops_operator.views.showback_html import render_showback
from tests.support.crd_schema import validate_against_crd
from tests.support.paths import ROOT

NOW = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.UTC)


def report(
    scope: str, period: str, team: str | None, total: str, gpu: str, **status: Any
) -> dict[str, Any]:
    name = f"{re.sub('[^a-z-]', '', team or '') if scope == 'team' else scope}-{period}"
    spec: dict[str, Any] = {"scope": scope, "period": period}
    if team:
        spec["team"] = team
    return {
        "apiVersion": "finops.resilio.tech/v1alpha1",
        "kind": "CostReport",
        "metadata": {"name": name, "creationTimestamp": "2026-11-27T11:57:30Z"},
        "spec": spec,
        "status": {
            "currency": "USD",
            "gpuHours": 100.5,
            "idleGpuHours": 20.0,
            "idlePercent": 19.9,
            "gpuCost": gpu,
            "idleCost": "80.00",
            "tokenCost": "10.00",
            "sharedCost": "5.00",
            "totalCost": total,
            "dataThrough": "2026-11-27T11:00:00Z",
            **status,
        },
    }


def reports() -> list[dict[str, Any]]:
    top = [{"kind": "Job", "namespace": "search", "name": "finetune-7", "gpuHours": 40.0,
            "cost": "160.00"}]  # fmt: skip
    return [
        report("team", "2026-11", "search-platform", "415.00", "400.00", budget="500.00",
               budgetUsedPercent=80.0, topWorkloads=top),
        report("team", "2026-11", "<b>recsys</b>", "115.00", "100.00", idlePercent=45.0),
        report("untagged", "2026-11", "__untagged__", "15.00", "0.00"),
        report("cluster", "2026-11", None, "600.00", "500.00", topWorkloads=top,
               cluster={"capacityGpuHours": 400.0, "unallocatedGpuHours": 100.0,
                        "unallocatedCost": "50.00", "platformCost": "20.00",
                        "undistributedCost": "0.00"},
               breakdowns={"costCenter": [{"name": "cc-1042", "gpuHours": 90.0,
                                           "gpuCost": "400.00", "idleCost": "80.00"}]}),
        report("cluster", "2026-10", None, "900.00", "800.00"),
    ]  # fmt: skip


# ---------------------------------------------------------------- kubectl


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (119, "119s"), (120, "2m"), (121, "2m1s"),
        (599, "9m59s"), (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"),
        (3 * 3600 + 60, "3h1m"), (8 * 3600, "8h"), (47 * 3600, "47h"), (48 * 3600, "2d"),
        (49 * 3600, "2d1h"), (8 * 86400, "8d"), (729 * 86400, "729d"), (730 * 86400, "2y"),
        (731 * 86400, "2y1d"), (8 * 365 * 86400, "8y"),
    ],
)  # fmt: skip
def test_ages_read_as_kubectl_prints_them(seconds: int, shown: str) -> None:
    assert human_duration(seconds) == shown


@pytest.mark.parametrize(
    ("crd", "columns"),
    [
        ("costreports.finops.resilio.tech.yaml", COSTREPORT_COLUMNS),
        ("costpolicies.finops.resilio.tech.yaml", COSTPOLICY_COLUMNS),
    ],
)
def test_columns_are_the_crds_default_printer_columns(crd: str, columns: Any) -> None:
    spec = yaml.safe_load((ROOT / "crds" / crd).read_text())["spec"]
    declared = spec["versions"][0]["additionalPrinterColumns"]
    shown = [(c["name"], c["type"], c["jsonPath"]) for c in declared if not c.get("priority")]
    assert [(c.name, c.type, c.json_path) for c in columns] == shown


def test_kubectl_get_costreports_table() -> None:
    crd = ROOT / "crds" / "costreports.finops.resilio.tech.yaml"
    objects = reports()
    for obj in objects:
        validate_against_crd(obj, crd)
    lines = costreports_table(objects, NOW).splitlines()
    assert re.split(r"\s{3,}", lines[0]) == [
        "NAME", "TEAM", "PERIOD", "GPU HOURS", "COST", "IDLE %", "BUDGET %", "AGE",
    ]  # fmt: skip
    names = [line.split()[0] for line in lines[1:]]
    assert names == sorted(names) and len(names) == 5
    search = next(line.split() for line in lines if line.startswith("search-platform-"))
    assert search == ["search-platform-2026-11", "search-platform", "2026-11", "100.5", "415.00",
                      "19.9", "80", "2m30s"]  # fmt: skip
    cluster = next(line.split() for line in lines if line.startswith("cluster-2026-11"))
    assert cluster[1] == "<none>" and cluster[6] == "<none>"
    header = lines[0]
    for line in lines[1:]:  # columns line up under their headers
        assert line[header.index("PERIOD") - 1] == " "
    assert costreports_table([], NOW) == "No resources found"


def test_kubectl_get_costpolicies_reads_the_ready_condition() -> None:
    policy = {
        "metadata": {"name": "p", "namespace": "search",
                     "creationTimestamp": "2026-11-27T11:59:00Z"},
        "spec": {"selector": {"team": "search-platform"}},
        "status": {"ruleCount": 8, "conditions": [{"type": "Invalid", "status": "False"},
                                                  {"type": "Ready", "status": "True"}]},
    }  # fmt: skip
    lines = costpolicies_table([policy], NOW, namespace=True).splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "READY", "TEAM", "RULES", "AGE"]
    assert lines[1].split() == ["search", "p", "True", "search-platform", "8", "60s"]


def test_cells_and_paths() -> None:
    assert json_path({"a": {"b.c": 1}}, ".a.x") is None
    assert json_path({"a": [{"k": "v", "x": 2}]}, '.a[?(@.k=="v")].x') == 2
    assert json_path({"a": [{"k": "w"}]}, '.a[?(@.k=="v")].x') is None
    assert cell(45.0, "number", NOW) == "45"
    assert cell(0.125, "number", NOW) == "0.125"
    assert cell(None, "string", NOW) == "<none>"
    assert cell(True, "boolean", NOW) == "true"
    assert cell("not a date", "date", NOW) == "not a date"


def test_abbreviated_rule_keeps_exprs_and_counts_what_it_left_out() -> None:
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "r", "namespace": "n", "uid": "x", "resourceVersion": "7",
                     "ownerReferences": [{"apiVersion": "v", "kind": "CostPolicy", "name": "p",
                                          "uid": "u", "controller": True}]},
        "spec": {"groups": [
            {"name": "g1", "rules": [{"alert": "A", "expr": "a\n> 1", "annotations": {"s": "t"}},
                                     {"alert": "B", "expr": "b"}]},
            {"name": "g2", "rules": [{"alert": "C", "expr": "c"}]},
        ]},
    }  # fmt: skip
    text = abbreviated_rule(rule)
    shown = yaml.safe_load(text)
    assert shown["metadata"] == {
        "name": "r", "namespace": "n",
        "ownerReferences": [{"kind": "CostPolicy", "name": "p", "controller": True}],
    }  # fmt: skip
    assert shown["spec"]["groups"] == [
        {"name": "g1", "rules": [{"alert": "A", "expr": "a\n> 1"}]},
        {"name": "g2", "rules": [{"alert": "C", "expr": "c"}]},
    ]
    assert "expr: |-\n" in text  # multi-line PromQL as a block
    assert text.rstrip().endswith("# ... and 1 more rule(s); annotations left out")
    assert "# ..." not in abbreviated_rule(rule, rules_per_group=5)
    assert yaml.safe_load(to_yaml({"k": "x: y"})) == {"k": "x: y"}


def test_events_table() -> None:
    events = [{"type": "Warning", "reason": "MissingCostLabels", "message": "Pod a/b lacks x",
               "involvedObject": {"kind": "StatefulSet", "name": "nb"},
               "lastTimestamp": "2026-11-27T11:59:55Z"}]  # fmt: skip
    lines = events_table(events, NOW).splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert lines[1].split() == ["5s", "Warning", "MissingCostLabels", "statefulset/nb", "Pod",
                                "a/b", "lacks", "x"]  # fmt: skip


# ---------------------------------------------------------------- demo helpers


def test_the_simulated_window_ends_at_the_last_full_hour() -> None:
    start, end = simulated_window(
        10, datetime.datetime(2026, 11, 27, 13, 27, 5, tzinfo=datetime.UTC)
    )
    assert end == datetime.datetime(2026, 11, 27, 13, tzinfo=datetime.UTC)
    assert end - start == datetime.timedelta(days=10)


def test_refreshed_periods() -> None:
    end = datetime.datetime(2026, 11, 27, 13, tzinfo=datetime.UTC)
    assert refreshed_periods(end - datetime.timedelta(days=10), end) == ["2026-11"]
    assert refreshed_periods(end - datetime.timedelta(days=30), end) == ["2026-11", "2026-10"]
    january = datetime.datetime(2027, 1, 2, tzinfo=datetime.UTC)
    assert refreshed_periods(january - datetime.timedelta(days=3), january) == [
        "2027-01",
        "2026-12",
    ]


def test_budget_for_is_round_and_leaves_headroom() -> None:
    from decimal import Decimal

    assert budget_for(Decimal("11291.66")) == Decimal(14200)
    assert budget_for(Decimal("0")) == Decimal(100)
    assert Decimal("11291.66") / budget_for(Decimal("11291.66")) < Decimal("0.8")


# ---------------------------------------------------------------- showback HTML


class _Balance(html.parser.HTMLParser):
    VOID = frozenset({"meta", "br", "img", "link", "input", "hr"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def test_the_showback_page_is_well_formed_and_self_contained() -> None:
    page = render_showback(reports(), NOW)
    parser = _Balance()
    parser.feed(page)
    assert parser.errors == [] and parser.stack == []
    tags = {tag for tag, _ in parser.tags}
    assert not tags & {"script", "link", "img", "iframe"}
    assert {"style", "svg", "table"} <= tags
    for _, attrs in parser.tags:
        assert not {"src", "href"} & set(attrs) or attrs.get("href", "").startswith("#")
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_the_showback_page_holds_the_team_table_and_the_rest() -> None:
    page = render_showback(reports(), NOW, note="Simulated data")
    assert page.index('id="period-2026-11"') < page.index('id="period-2026-10"')
    table = page[
        page.index('<table class="teams">') : page.index(
            "</table>", page.index('<table class="teams">')
        )
    ]
    assert table.index("search-platform") < table.index("&lt;b&gt;recsys&lt;/b&gt;")
    assert "untagged (no team label)" in table and "cluster total" in table
    assert "500.00 USD" in table and "80.0 %" in table  # budget and its use
    assert "<b>recsys</b>" not in page  # escaped
    assert "search/finetune-7" in page and "cc-1042" in page
    assert "600.00 USD" in page  # the headline total
    assert "2.5 % of spend" in page  # untagged share: 15 / 600
    # busy GPU, idle GPU, tokens, shared for 2 teams; untagged has no busy GPU cost
    assert page.count("<rect") == 4 + 4 + 3
    assert "Simulated data" in page


def test_an_empty_showback_page_says_so() -> None:
    assert "No CostReports with figures yet" in render_showback([], NOW)
