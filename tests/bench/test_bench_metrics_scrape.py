"""The /metrics scrape benchmark runs and reports its figures (correctness, never timing)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.paths import ROOT

BENCH = ROOT / "bench" / "metrics_scrape.py"


def test_the_scrape_benchmark_reports_every_figure_for_every_size() -> None:
    command = [sys.executable, str(BENCH), "--pods", "200", "400"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [run["pods"] for run in report["runs"]] == [200, 400]
    for run in report["runs"]:
        assert run["allocation_series"] == run["pods"] and run["series_per_pod"] == 1.0
        assert run["text_bytes"] > 0 and run["per_scrape"]["text_bytes"] > 0
        assert set(run["cached"]) == {
            "cold_cpu_seconds",
            "unchanged_cpu_seconds",
            "one_pod_changed_cpu_seconds",
            "one_percent_changed_cpu_seconds",
            "gzip1_bytes",
        }
        assert set(run["event_loop"]) == {"before_max_stall_ms", "now_max_stall_ms"}
    assert {"cpu", "nproc", "python"} <= set(report["machine"])


def test_a_fleet_size_out_of_range_is_refused_with_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--pods", "0"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "--pods" in done.stderr
