"""Grafana dashboard JSON, built in Python: panels on the 24-column grid, variables, tables.

The showback dashboards (`views/dashboards.py`) are written with these helpers so
that every panel has the same data source variable, ids and grid positions are
assigned in order, and every query is parsed while the dashboard is generated (a
PromQL typo fails `render --dashboards`, not a Grafana panel). The ConfigMap that
carries a dashboard to kube-prometheus-stack's Grafana sidecar is written here too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml

from finops_operator.domain import conventions
from finops_operator.domain.promql import check_expression

SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
FOLDER = "FinOps"
SIDECAR_LABEL = "grafana_dashboard"
FOLDER_ANNOTATION = "grafana_folder"


class Layout:
    """Places panels left to right on Grafana's 24-column grid."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_height = 0
        self.next_id = 1

    def place(self, width: int, height: int) -> dict[str, int]:
        if self.x + width > 24:
            self.newline()
        pos = {"h": height, "w": width, "x": self.x, "y": self.y}
        self.x += width
        self.row_height = max(self.row_height, height)
        return pos

    def newline(self) -> None:
        if self.x:
            self.y += self.row_height
        self.x = 0
        self.row_height = 0

    def id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def target(
    ref: str, expr: str, legend: str = "", instant: bool = False, table: bool = False
) -> dict[str, Any]:
    check_expression(grafana_free(expr))
    return {
        "datasource": DATASOURCE,
        "refId": ref,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "instant": instant,
        "range": not instant,
        "format": "table" if table else "time_series",
        "editorMode": "code",
    }


def grafana_free(expr: str) -> str:
    """The expression with Grafana's variables replaced, to check it parses while generating."""
    for name, value in (
        ("$__rate_interval", "5m"),
        ("$__interval", "5m"),
        ("$__range_s", "86400"),
        ("$__range", "1d"),
        ("$idle_threshold", "10"),
        ("$team", ".*"),
        ("$cost_center", ".*"),
        ("$cluster", ".*"),
    ):
        expr = expr.replace(name, value)
    return expr


def panel(
    layout: Layout,
    kind: str,
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    width: int,
    height: int,
    unit: str = "",
    **extra: Any,
) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": unit} if unit else {}
    defaults |= extra.pop("defaults", {})
    result: dict[str, Any] = {
        "id": layout.id(),
        "type": kind,
        "title": title,
        "description": description,
        "gridPos": layout.place(width, height),
        "datasource": DATASOURCE,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": extra.pop("overrides", [])},
        "options": extra.pop("options", {}),
    }
    result |= extra
    return result


def text_panel(layout: Layout, title: str, content: str, width: int, height: int) -> dict[str, Any]:
    return {
        "id": layout.id(),
        "type": "text",
        "title": title,
        "gridPos": layout.place(width, height),
        "options": {"mode": "markdown", "content": content},
    }


def row(layout: Layout, title: str) -> dict[str, Any]:
    layout.newline()
    result = {
        "id": layout.id(),
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"h": 1, "w": 24, "x": 0, "y": layout.y},
        "panels": [],
    }
    layout.y += 1
    return result


def datasource_variable() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
    }


def label_variable(name: str, label: str, metric: str, title: str) -> dict[str, Any]:
    query = f"label_values({metric}, {label})"
    return {
        "name": name,
        "label": title,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "hide": 0,
        "refresh": 2,
        "sort": 1,
        "regex": "",
        "options": [],
    }


def custom_variable(name: str, title: str, values: Sequence[str], current: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": title,
        "type": "custom",
        "query": ",".join(values),
        "current": {"selected": True, "text": current, "value": current},
        "options": [
            {"selected": value == current, "text": value, "value": value} for value in values
        ],
        "hide": 0,
        "multi": False,
        "includeAll": False,
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[dict[str, Any]],
    variables: list[dict[str, Any]],
    time_from: str,
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["finops", "gpu", "showback"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "timezone": "utc",
        "refresh": "",
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": variables},
        "panels": panels,
    }


def money_unit(currency: str) -> str:
    return {"USD": "currencyUSD", "EUR": "currencyEUR", "GBP": "currencyGBP"}.get(
        currency, f"suffix: {currency}"
    )


def bar_gauge(show_unfilled: bool = False) -> dict[str, Any]:
    """Options of a horizontal bar gauge of each series' last value."""
    options: dict[str, Any] = {
        "orientation": "horizontal",
        "displayMode": "gradient",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    }
    if show_unfilled:
        options["showUnfilled"] = True
    return options


def table_merge(names: dict[str, str], hidden: Sequence[str] = ("Time",)) -> list[dict[str, Any]]:
    """Grafana transformations: join the table queries on their labels, name the values."""
    return [
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {
                "excludeByName": dict.fromkeys(hidden, True),
                "renameByName": names,
            },
        },
    ]


class _Block(str):
    """A string written as a YAML literal block."""


class _Dumper(yaml.SafeDumper):
    pass


def _block(dumper: yaml.SafeDumper, value: _Block) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")


_Dumper.add_representer(_Block, _block)


def config_map(name: str, board: dict[str, Any]) -> str:
    """The ConfigMap the Grafana sidecar loads `board` from, as YAML with a header."""
    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"finops-dashboard-{name}",
            "namespace": conventions.OPERATOR_NAMESPACE,
            "labels": {
                SIDECAR_LABEL: "1",
                "app.kubernetes.io/name": "finops-operator",
                "app.kubernetes.io/component": "dashboards",
            },
            "annotations": {FOLDER_ANNOTATION: FOLDER},
        },
        "data": {f"finops-{name}.json": _Block(json.dumps(board, indent=2) + "\n")},
    }
    header = (
        f"# Grafana dashboard '{board['title']}', for kube-prometheus-stack's sidecar.\n"
        "# Generated by `finops-operator render --dashboards`; do not edit (docs/dashboards.md).\n"
    )
    return header + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=1000)
