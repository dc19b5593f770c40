"""Benchmark `finops-operator report`: a month of a large simulated cluster in a real Prometheus.

Generates the simulator's benchmark cluster (`ScenarioParams.benchmark`: 200 teams,
about 5,000 pods) over last calendar month plus a day on each side (pods cross
both bounds), writes its series one file per day, imports them with promtool into
a fresh TSDB, starts Debian's Prometheus on 127.0.0.1 (default query limits), and
runs the report of that month exactly as the command does (`report_period`), cold
and then warm. Prints one JSON object: wall time, number of queries, the time
Prometheus spends on them (client-side per query, and Prometheus' own `stats=all`
timings and samples), teams, pods, samples, and the worst relative error against
the simulator's ground truth. Everything it starts, it stops.

Run from the repository root:  .venv/bin/python bench/report.py [--scrape 300] [--keep DIR]
The import of a month takes minutes; `--keep DIR` keeps the TSDB there and a later
run with the same DIR skips generation and import.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from finops_devtools.devcluster.prometheus_runner import PrometheusServer, previous_month  # noqa: E402
from finops_devtools.simulator.generation import ScenarioParams, generate_scenario  # noqa: E402
from finops_devtools.simulator.ground_truth import ground_truth  # noqa: E402
from finops_devtools.simulator.openmetrics import ExportOptions, write_openmetrics_chunks  # noqa: E402
from finops_devtools.simulator.world import Scenario  # noqa: E402
from finops_operator.adapters.prometheus_api import PrometheusClient  # noqa: E402
from finops_operator.controllers.usage_reader import PeriodReport, report_period  # noqa: E402
from finops_operator.domain.config import PrometheusConfig  # noqa: E402
from finops_operator.domain.costs.period import Period  # noqa: E402

FIELDS = ("gpu_hours", "gpu_cost", "idle_gpu_hours", "idle_cost", "token_cost", "total_cost")


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
    }


def run_report(url: str, pricing: Any, period: Period) -> tuple[PeriodReport, dict[str, Any]]:
    client = PrometheusClient(PrometheusConfig(url=url), timeout=1800)
    client.request_stats = True
    began = time.perf_counter()
    report = report_period(client, pricing, period)
    wall = time.perf_counter() - began
    queries = []
    for record in client.log:
        timings = record.stats.get("timings", {})
        samples = record.stats.get("samples", {})
        queries.append(
            {
                "kind": record.kind,
                "measure": record.expr.split("(", 1)[0].strip()
                + " ... "
                + record.expr.split("[", 1)[0].rsplit("(", 1)[-1],
                "clientSeconds": round(record.seconds, 3),
                "prometheusEvalSeconds": timings.get("evalTotalTime"),
                "prometheusExecSeconds": timings.get("execTotalTime"),
                "totalQueryableSamples": samples.get("totalQueryableSamples"),
                "peakSamples": samples.get("peakSamples"),
            }
        )
    figures = {
        "wallSeconds": round(wall, 3),
        "queries": len(client.log),
        "querySecondsClientSide": round(sum(r.seconds for r in client.log), 3),
        "prometheusEvalSeconds": round(
            sum(float(q["prometheusEvalSeconds"] or 0) for q in queries), 3
        ),
        "samplesQueried": sum(int(q["totalQueryableSamples"] or 0) for q in queries),
        "peakSamples": max(int(q["peakSamples"] or 0) for q in queries),
        "perQuery": queries,
    }
    return report, figures


def worst_errors(report: PeriodReport, truth: Any) -> dict[str, Any]:
    worst: dict[str, float] = {}
    for row in [*report.costs.teams, report.costs.untagged]:
        expected = truth.teams.get(row.team)
        if expected is None:
            continue
        for name in FIELDS:
            want, got = getattr(expected, name), getattr(row, name)
            if want:
                error = abs(float((got - want) / want)) * 100
                worst[name] = max(worst.get(name, 0.0), error)
    want = truth.cluster.total_cost
    cluster_error = abs(float((report.costs.cluster.total_cost - want) / want))
    return {
        "worstTeamErrorPercent": {name: round(value, 4) for name, value in worst.items()},
        "clusterTotalErrorPercent": round(cluster_error * 100, 4),
    }


def import_once(
    server: PrometheusServer, scenario: Scenario, options: ExportOptions
) -> dict[str, Any]:
    """Write the scenario's daily OpenMetrics files and import them into the server's
    TSDB, unless a previous run did (its `imported.json` beside the data): the figures."""
    marker = server.workdir / "imported.json"
    if marker.exists():
        return dict(json.loads(marker.read_text()))
    began = time.perf_counter()
    paths = write_openmetrics_chunks(scenario, server.workdir / "openmetrics", options)
    write_seconds = time.perf_counter() - began
    samples = 0
    for path in paths:
        with path.open("rb") as file:
            samples += sum(1 for line in file if not line.startswith(b"#"))
    began = time.perf_counter()
    for path in paths:
        server.backfill_file(path)
        path.unlink()
    imported = {
        "writeSeconds": round(write_seconds, 1),
        "importSeconds": round(time.perf_counter() - began, 1),
        "files": len(paths),
        "samples": samples,
    }
    marker.write_text(json.dumps(imported))
    return imported


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scrape", type=int, default=300, help="scrape interval, seconds")
    parser.add_argument("--replicas", type=int, default=2, help="operator replicas")
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the TSDB in this folder")
    args = parser.parse_args()

    month_start, month_end = previous_month()
    period = Period(month_start, month_end)
    params = ScenarioParams.benchmark(
        month_start - datetime.timedelta(days=1), month_end + datetime.timedelta(days=1)
    )
    began = time.perf_counter()
    scenario = generate_scenario(params)
    generate_seconds = time.perf_counter() - began
    options = ExportOptions(scrape_interval=args.scrape, operator_replicas=args.replicas)

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="finops-bench-report-"))
    server = PrometheusServer(workdir)
    try:
        imported = import_once(server, scenario, options)
        server.start(timeout=600)
        cold_report, cold = run_report(server.url, scenario.pricing, period)
        _, warm = run_report(server.url, scenario.pricing, period)
    finally:
        server.stop()
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)

    truth = ground_truth(scenario, month_start, month_end)
    in_month = sum(1 for pod in scenario.pods if pod.start < truth.end and pod.end > truth.start)
    result = {
        "benchmark": "report",
        "period": f"{month_start:%Y-%m}",
        "scrapeIntervalSeconds": args.scrape,
        "operatorReplicas": args.replicas,
        "teams": len(cold_report.costs.teams),
        "pods": in_month,
        "podsInScenario": len(scenario.pods),
        "jobs": len(cold_report.jobs),
        "samplesImported": imported["samples"],
        "generateSeconds": round(generate_seconds, 1),
        "import": imported,
        "cold": cold,
        "warm": warm,
        "accuracy": worst_errors(cold_report, truth),
        "clusterTotal": str(cold_report.costs.cluster.total_cost.quantize(Decimal("0.01"))),
        "machine": machine(),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
