"""Usage records: idle GPU hours stay within what was allocated."""

from __future__ import annotations

from finops_operator.domain.costs.usage import GpuUsage
from tests.domain.costs.prices import H100, D


def test_utilization_above_allocation_counts_as_no_idle_time() -> None:
    assert GpuUsage("a", H100, D(1), D("1.02")).idle_gpu_hours == 0
    assert GpuUsage("a", H100, D(2), D("-1")).idle_gpu_hours == D(2)
