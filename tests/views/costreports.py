"""CostReports as the operator writes them, for the views' tests: two months, odd names."""

from __future__ import annotations

import datetime
import re
from typing import Any

from finops_operator.domain.costs.allocation import Allocation
from finops_operator.domain.costs.cost_reports import ReportInput, desired_reports
from finops_operator.domain.costs.showback import CostReport

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


def operator_reports(
    costs: CostReport, now: datetime.datetime, allocation: Allocation | None = None
) -> list[dict[str, Any]]:
    """The CostReports (with status) the operator writes for `costs`, as of `now`."""
    data = ReportInput(
        period="2026-11",
        currency=costs.currency,
        teams=costs.teams,
        untagged=costs.untagged,
        cluster=costs.cluster,
        jobs=[],
        data_through=now,
        budgets={},
        allocation=allocation,
    )
    return [{**obj, "status": status} for obj, status in desired_reports(data, now)]
