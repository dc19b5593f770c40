"""Small worlds built by hand, and readers of the OpenMetrics text, for the simulator's tests."""

from __future__ import annotations

import io
import re
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

from finops_devtools.simulator.generation import ScenarioParams
from finops_devtools.simulator.openmetrics import (
    ExportOptions,
    write_openmetrics,
)
from finops_devtools.simulator.world import (
    H100,
    Node,
    Pod,
    Scenario,
    Utilization,
    to_unix,
)
from finops_operator.domain.config import PricingConfig

D = Decimal
T0 = to_unix(datetime(2026, 11, 10, tzinfo=UTC))
HOUR = 3600
PRICES = PricingConfig.model_validate(
    {"gpuHourly": {"default": "2", H100: "4"}, "tokensPer1k": {"default": "0.002"}}
)
SAMPLE = re.compile(r"^(\w+)\{(.*)\} (\S+) (\d+)$")


def tiny(*pods: Pod, nodes: tuple[Node, ...] | None = None, **extra: object) -> Scenario:
    return Scenario(
        start=T0,
        end=T0 + 6 * HOUR,
        nodes=nodes or (Node("gpu-a", H100, "nvidia.com/gpu", gpus=8),),
        pods=pods,
        pricing=PRICES,
        **extra,  # type: ignore[arg-type]
    )


def pod(start: int, end: int, *, units: int = 2, node: str = "gpu-a", **extra: object) -> Pod:
    fields: dict[str, object] = {
        "uid": 1,
        "namespace": "search",
        "name": "ranker-0",
        "node": node,
        "units": units,
        "start": start,
        "end": end,
        "labels": {
            "team": "search",
            "feature": "ranking",
            "environment": "production",
            "workload_type": "inference",
            "cost_center": "cc-1",
        },
        "devices": tuple(range(units)),
        "utilization": Utilization(base=25),
    } | extra
    return Pod(**fields)  # type: ignore[arg-type]


def openmetrics(scenario: Scenario, options: ExportOptions | None = None) -> str:
    buffer = io.StringIO()
    write_openmetrics(scenario, buffer, options)
    return buffer.getvalue()


def samples(text: str, metric: str) -> dict[str, list[tuple[int, str]]]:
    """Series (by their label text) of `metric` -> [(timestamp, value)] in file order."""
    series: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and match.group(1) == metric:
            series[match.group(2)].append((int(match.group(4)), match.group(3)))
    return series


SMALL = ScenarioParams(
    start=datetime(2026, 11, 10, tzinfo=UTC), end=datetime(2026, 11, 12, tzinfo=UTC), seed=4
)
