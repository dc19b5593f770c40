"""The scale benchmark runs end to end on a small fleet and its figures add up (never timing)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.paths import ROOT

BENCH = ROOT / "bench" / "scale.py"


def test_the_scale_benchmark_reports_every_figure_for_a_small_fleet() -> None:
    command = [sys.executable, str(BENCH), "--pods", "40", "--quiet", "1", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    fleet = report["fleet"]
    assert fleet["gpu_pods"] == 40 and fleet["other_pods"] == 20
    assert report["allocation_series"] == 40  # every running GPU pod, none of the others
    assert 0 < report["ready_seconds"] <= report["sync_seconds"]
    assert 0 < report["rss_synced_mb"] <= report["rss_peak_mb"]
    assert report["sync_cpu_seconds"] > 0
    requests = report["requests_during_sync"]
    # Pods come from the operator's own paged list and watch, nothing else lists them.
    assert requests["list pods"] == 1 and requests["watch pods"] == 1
    assert requests["create leases.coordination.k8s.io"] == 1
    assert report["events_posted"] >= requests.get("create events", 0)
    assert report["requests_total"]["create events"] == report["events_posted"]
    assert report["scrape"]["bytes"] > report["scrape"]["gzip_bytes"] > 0
    assert report["scrape"]["series"] >= 40
    assert report["emulator_cpu_seconds"] >= 0 and report["proxy_cpu_seconds"] > 0
