"""The OpenMetrics text: deterministic, on the scrape grid, per replica, with counter
resets, and backfilled by promtool.
"""

from __future__ import annotations

import itertools
import re
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from finops_devtools.simulator.generation import ScenarioParams, generate_scenario
from finops_devtools.simulator.ground_truth import ground_truth
from finops_devtools.simulator.openmetrics import (
    ExportOptions,
    write_openmetrics,
    write_openmetrics_chunks,
)
from finops_devtools.simulator.world import Scenario
from tests.devtools.simulator.worlds import SAMPLE, SMALL, openmetrics, samples
from tests.support.tools import require_tool


def test_the_same_seed_gives_the_same_metrics_and_truth(small: Scenario) -> None:
    again = generate_scenario(SMALL)
    options = ExportOptions(scrape_interval=300, operator_replicas=2)
    assert openmetrics(small, options) == openmetrics(again, options)
    assert ground_truth(small) == ground_truth(again)
    other = generate_scenario(ScenarioParams(start=SMALL.start, end=SMALL.end, seed=5))
    assert [p.name for p in other.pods] != [p.name for p in small.pods]


def test_series_are_in_time_order_on_the_scrape_grid_and_the_file_ends_with_eof(
    small: Scenario,
) -> None:
    text = openmetrics(small, ExportOptions(scrape_interval=120, operator_replicas=2))
    assert text.endswith("\n# EOF\n")
    seen: dict[str, int] = {}
    families: list[str] = []
    for line in text.splitlines():
        if line.startswith("# TYPE"):
            families.append(line.split()[2])
            continue
        match = SAMPLE.match(line)
        if not match:
            assert line.startswith("#"), line
            continue
        key = match.group(1) + match.group(2)
        t = int(match.group(4))
        assert small.start <= t < small.end
        assert t > seen.get(key, 0), f"out of order: {line}"
        seen[key] = t
        assert t % 120 in (0, 7), line  # replica 1 scrapes 7 s after replica 0
    assert len(families) == len(set(families)), "a metric family must be contiguous"


def test_two_operator_replicas_export_each_series_twice_with_their_own_target_labels(
    small: Scenario,
) -> None:
    text = openmetrics(small, ExportOptions(scrape_interval=300, operator_replicas=2))
    allocation = samples(text, "finops_pod_gpu_allocation")
    instances = defaultdict(set)
    for labels in allocation:
        pod_name = re.search(r'pod="([^"]+)"', labels)
        instance = re.search(r'instance="([^"]+)"', labels)
        assert pod_name and instance
        instances[pod_name.group(1)].add(instance.group(1))
        assert 'job="finops-operator"' in labels and 'service="finops-operator"' in labels
    assert set(map(frozenset, instances.values())) == {
        frozenset({"10.0.1.10:8080", "10.0.1.11:8080"})
    }
    prices = samples(text, "finops_gpu_hourly_price")
    assert len(prices) == 2 * len(small.pricing.gpu_hourly)
    assert all('namespace="finops-system"' in labels for labels in prices)
    assert len({re.search(r'pod="([^"]+)"', s).group(1) for s in prices}) == 2  # type: ignore[union-attr]


def test_gateway_restarts_show_as_counter_resets(small: Scenario) -> None:
    (restart,) = small.gateway_restarts
    text = openmetrics(small, ExportOptions(scrape_interval=60))
    counters = samples(text, "litellm_total_tokens_metric_total")
    assert len(counters) == len(small.token_streams)
    for points in counters.values():
        drops = [t for (_, a), (t, b) in itertools.pairwise(points) if int(b) < int(a)]
        assert drops == [restart]
        assert int(dict(points)[restart]) == 0


def test_restarts_and_failed_job_attempts_are_counted(small: Scenario) -> None:
    text = openmetrics(small, ExportOptions(scrape_interval=300))
    restarting = [p for p in small.pods if len(p.restarts) > 2]
    assert restarting, "the seed should plant a crash loop"
    restarts = samples(text, "kube_pod_container_status_restarts_total")
    crash = restarting[0]
    (points,) = [v for k, v in restarts.items() if f'pod="{crash.name}"' in k]
    assert int(points[-1][1]) == sum(1 for t in crash.restarts if t <= points[-1][0])
    failed_jobs = samples(text, "kube_job_status_failed")
    assert any(int(points[-1][1]) > 0 for points in failed_jobs.values())
    truth = ground_truth(small)
    retried = [job for job in truth.jobs.values() if job.failed_attempts]
    assert retried and all(job.cost >= job.gpu_hours * 2 > 0 for job in retried)


def test_promtool_backfills_the_openmetrics(small: Scenario, tmp_path: Path) -> None:
    require_tool("promtool")
    path = tmp_path / "small.om"
    count = write_openmetrics(small, path, ExportOptions(scrape_interval=300, operator_replicas=2))
    assert count > 10_000
    result = subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(path), str(tmp_path / "d")],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "d").iterdir())) >= 24  # 2-hour blocks over 2 days


def test_daily_chunks_hold_exactly_the_samples_of_the_whole_file(
    small: Scenario, tmp_path: Path
) -> None:
    options = ExportOptions(scrape_interval=300, operator_replicas=2)
    paths = write_openmetrics_chunks(small, tmp_path, options)
    assert [path.name for path in paths] == ["20261110T000000Z.om", "20261111T000000Z.om"]
    whole = openmetrics(small, options)
    for metric in ("finops_pod_gpu_allocation", "litellm_total_tokens_metric_total"):
        merged: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for path in paths:
            for labels, points in samples(path.read_text(), metric).items():
                merged[labels] += points
        assert merged == samples(whole, metric)
    with pytest.raises(ValueError, match="7200"):
        write_openmetrics_chunks(small, tmp_path, options, chunk=3600)
