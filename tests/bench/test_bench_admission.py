"""The admission benchmark runs end to end and checks every answer (correctness, never timing)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.paths import ROOT

BENCH = ROOT / "bench" / "admission.py"


def test_the_admission_benchmark_reports_its_figures_with_zero_errors() -> None:
    command = [
        sys.executable, str(BENCH),
        "--rate", "40", "--concurrency", "2", "--duration", "2", "--warmup", "0.5",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    for key in (
        "requests", "errors", "duration", "requests_per_second", "latency_ms",
        "concurrency", "rate", "server", "machine",
    ):  # fmt: skip
        assert key in report
    assert report["errors"] == 0
    assert report["requests"] > 0
    assert set(report["latency_ms"]) == {"p50", "p95", "p99", "max"}
    assert {"cpu", "nproc", "python"} <= set(report["machine"])
    assert report["concurrency"] == 2 and report["rate"] == 40
    assert "/mutate" in " ".join(report["mix"]) and "/validate" in " ".join(report["mix"])
    assert report["server"]["requests"] == report["requests"]
    assert report["server"]["alive_after_run"] is True
