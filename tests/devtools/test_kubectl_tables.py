"""`kubectl get`-like tables and trimmed YAML, as the demo prints them."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from finops_devtools.demo.kubectl_tables import (
    COSTPOLICY_COLUMNS,
    COSTREPORT_COLUMNS,
    abbreviated_rule,
    cell,
    costpolicies_table,
    costreports_table,
    events_table,
    human_duration,
    json_path,
    to_yaml,
)
from tests.support.crd_schema import validate_against_crd
from tests.support.paths import ROOT
from tests.views.costreports import NOW, reports


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
        "NAME", "TEAM", "PERIOD", "GPU HOURS", "COST", "IDLE %", "BUDGET %", "FORECAST", "AGE",
    ]  # fmt: skip
    names = [line.split()[0] for line in lines[1:]]
    assert names == sorted(names) and len(names) == 5
    search = next(line.split() for line in lines if line.startswith("search-platform-"))
    assert search == ["search-platform-2026-11", "search-platform", "2026-11", "100.5", "415.00",
                      "19.9", "80", "<none>", "2m30s"]  # fmt: skip
    cluster = next(line.split() for line in lines if line.startswith("cluster-2026-11"))
    assert cluster[1] == "<none>" and cluster[6] == "<none>"
    header = lines[0]
    for line in lines[1:]:  # columns line up under their headers
        assert line[header.index("PERIOD") - 1] == " "
    assert costreports_table([], NOW) == "No resources found"


def test_kubectl_get_costpolicies_reads_the_ready_and_rules_evaluating_conditions() -> None:
    policy = {
        "metadata": {"name": "p", "namespace": "search",
                     "creationTimestamp": "2026-11-27T11:59:00Z"},
        "spec": {"selector": {"team": "search-platform"}},
        "status": {"ruleCount": 8, "conditions": [{"type": "Invalid", "status": "False"},
                                                  {"type": "Ready", "status": "False"},
                                                  {"type": "RulesEvaluating", "status": "False"}]},
    }  # fmt: skip
    lines = costpolicies_table([policy], NOW, namespace=True).splitlines()
    assert re.split(r"\s{3,}", lines[0]) == [
        "NAMESPACE", "NAME", "READY", "RULES EVALUATING", "TEAM", "RULES", "AGE",
    ]  # fmt: skip
    assert lines[1].split() == ["search", "p", "False", "False", "search-platform", "8", "60s"]


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
