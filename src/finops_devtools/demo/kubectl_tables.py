"""Objects printed the way kubectl prints them: `kubectl get` tables and trimmed YAML.

`get_table` follows kubectl's default table output for custom resources: one
column per `additionalPrinterColumns` entry of priority 0 (the CRD's; copied here
and checked against `crds/` by the tests), NAME first, upper-case headers,
columns separated by three spaces, `<none>` for a missing value, and ages like
kubectl's (`45s`, `3m12s`, `5h`, `2d3h`). Plain functions over plain dicts.
"""

from __future__ import annotations

import contextlib
import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import yaml


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    json_path: str


COSTREPORT_COLUMNS: Final = (
    Column("Team", "string", ".spec.team"),
    Column("Period", "string", ".spec.period"),
    Column("GPU Hours", "number", ".status.gpuHours"),
    Column("Cost", "string", ".status.totalCost"),
    Column("Idle %", "number", ".status.idlePercent"),
    Column("Budget %", "number", ".status.budgetUsedPercent"),
    Column("Forecast", "string", ".status.forecastTotalCost"),
    Column("Age", "date", ".metadata.creationTimestamp"),
)
COSTPOLICY_COLUMNS: Final = (
    Column("Ready", "string", '.status.conditions[?(@.type=="Ready")].status'),
    Column("Rules Evaluating", "string", '.status.conditions[?(@.type=="RulesEvaluating")].status'),
    Column("Team", "string", ".spec.selector.team"),
    Column("Rules", "integer", ".status.ruleCount"),
    Column("Age", "date", ".metadata.creationTimestamp"),
)

_FILTER: Final = re.compile(r'^(\w+)\[\?\(@\.(\w+)==["\']([^"\']*)["\']\)\]$')


def json_path(obj: Any, path: str) -> Any:
    """The value at a CRD printer-column path (`.a.b`, `.a[?(@.k=="v")].b`), or None."""
    node = obj
    for step in re.findall(r"(?:[^.\[]|\[[^\]]*\])+", path):
        match = _FILTER.match(step)
        key = match.group(1) if match else step
        node = node.get(key) if isinstance(node, Mapping) else None
        if match and isinstance(node, list):
            _, field, wanted = match.groups()
            node = next(
                (i for i in node if isinstance(i, Mapping) and str(i.get(field)) == wanted), None
            )
        if node is None:
            return None
    return node


def human_duration(seconds: float) -> str:
    """kubectl's age of an object (k8s.io/apimachinery duration.HumanDuration)."""
    total = int(seconds)
    if total < -1:
        return "<invalid>"
    if total < 0:
        return "0s"
    if total < 120:
        return f"{total}s"
    minutes = total // 60
    if minutes < 10:
        return f"{minutes}m{total % 60}s" if total % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = total // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years, days = hours // 24 // 365, hours // 24 % 365
    if hours < 24 * 365 * 8:
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{years}y"


def _parse_time(text: str) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def cell(value: Any, column_type: str, now: datetime.datetime) -> str:
    if value is None or value == "":
        return "<none>"
    if column_type == "date" and isinstance(value, str):
        moment = _parse_time(value)
        return human_duration((now - moment).total_seconds()) if moment else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def get_table(
    objects: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    now: datetime.datetime,
    namespace_column: bool = False,
) -> str:
    """`kubectl get` output: sorted by (namespace and) name, or kubectl's empty message."""
    if not objects:
        return "No resources found"
    headers = (["NAMESPACE"] if namespace_column else []) + ["NAME"]
    headers += [column.name.upper() for column in columns]
    rows = []
    ordered = sorted(
        objects,
        key=lambda o: (
            str((o.get("metadata") or {}).get("namespace", "")),
            str((o.get("metadata") or {}).get("name", "")),
        ),
    )
    for obj in ordered:
        meta = obj.get("metadata") or {}
        row = [str(meta.get("namespace", ""))] if namespace_column else []
        row.append(str(meta.get("name", "")))
        row += [cell(json_path(obj, c.json_path), c.type, now) for c in columns]
        rows.append(row)
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
        for r in [headers, *rows]
    ]
    return "\n".join(lines)


def costreports_table(reports: Sequence[Mapping[str, Any]], now: datetime.datetime) -> str:
    """`kubectl get costreports`."""
    return get_table(reports, COSTREPORT_COLUMNS, now)


def costpolicies_table(
    policies: Sequence[Mapping[str, Any]], now: datetime.datetime, namespace: bool = False
) -> str:
    """`kubectl get costpolicies` (`-A` with `namespace`)."""
    return get_table(policies, COSTPOLICY_COLUMNS, now, namespace_column=namespace)


def to_yaml(obj: Any) -> str:
    """YAML as kubectl writes it: keys in the object's order, block style, long lines kept."""

    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
        style = "|" if "\n" in text else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)

    _Dumper.add_representer(str, _str)
    dumped: str = yaml.dump(
        obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=10_000
    )
    return dumped


_SERVER_FIELDS: Final = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
)


def abbreviated_rule(rule: Mapping[str, Any], rules_per_group: int = 1) -> str:
    """A PrometheusRule as YAML, trimmed for a terminal.

    Server-set metadata goes; each group keeps its first `rules_per_group` rules
    without annotations, and a comment counts what was left out.
    """
    meta = {k: v for k, v in (rule.get("metadata") or {}).items() if k not in _SERVER_FIELDS}
    owners = meta.pop("ownerReferences", None)
    if owners:
        meta["ownerReferences"] = [
            {k: v for k, v in o.items() if k in ("kind", "name", "controller")} for o in owners
        ]
    groups = []
    omitted = 0
    for group in (rule.get("spec") or {}).get("groups") or []:
        kept = []
        for entry in (group.get("rules") or [])[:rules_per_group]:
            kept.append({k: v for k, v in entry.items() if k != "annotations"})
        omitted += len(group.get("rules") or []) - len(kept)
        groups.append({"name": group.get("name"), "rules": kept})
    text = to_yaml(
        {
            "apiVersion": rule.get("apiVersion"),
            "kind": rule.get("kind"),
            "metadata": meta,
            "spec": {"groups": groups},
        }
    )
    if omitted:
        text += f"# ... and {omitted} more rule(s); annotations left out\n"
    return text


def events_table(events: list[dict[str, Any]], now: datetime.datetime) -> str:
    """`kubectl get events`: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE."""
    rows = [["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]]
    for event in events:
        seen = (
            event.get("lastTimestamp")
            or event.get("eventTime")
            or event.get("firstTimestamp")
            or (event.get("metadata") or {}).get("creationTimestamp")
        )
        age = "<unknown>"
        if isinstance(seen, str):
            with contextlib.suppress(ValueError):
                moment = datetime.datetime.fromisoformat(seen.replace("Z", "+00:00"))
                age = human_duration((now - moment).total_seconds())
        involved = event.get("involvedObject") or {}
        rows.append(
            [
                age,
                str(event.get("type", "")),
                str(event.get("reason", "")),
                f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
                str(event.get("message", "")),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("   ".join([*(r[i].ljust(widths[i]) for i in range(4)), r[4]]) for r in rows)
