"""Benchmark one month's `report` through Thanos Query over a fleet of simulated clusters.

Issue 22 asks what one month's `report` costs through Thanos for 50 clusters; this
measures it for a few fleet sizes (default 2 and 10) so that docs/multi-cluster.md
can extrapolate. Each cluster is the simulator's benchmark cluster of
bench/report.py (`ScenarioParams.benchmark`: 200 teams, about 5,400 pods in the
month, 5-minute scrape, two operator replicas), imported once with promtool and
then given to every cluster as hard links of the same TSDB blocks (blocks are
immutable): N clusters are N copies of the same month, which is the worst case for
the cluster label (every pod and node name exists in every cluster) and makes the
right answer known: every cluster's total equals the one cluster's, the fleet's is
N times it.

Per cluster: Debian's Prometheus 2.42 with external label `cluster="cNN"` and local
compaction off (`--storage.tsdb.min/max-block-duration=2h`, how Thanos wants a
sidecar's Prometheus), and a `thanos sidecar`; over them one `thanos query` with
`--query.replica-label=prometheus_replica`. The month's report runs exactly as
`finops-operator report` computes it (`usage_reader.report_period`), cold (the
processes just started) and warm, and once directly against one Prometheus (the
baseline, N=1 without Thanos). Figures: wall time, time per query, CPU seconds of
Thanos Query, of the sidecars and of the Prometheus servers during the report
(/proc/PID/stat), Thanos Query's peak RSS (VmHWM), and whether every cluster's
figure equals the baseline's to the cent. Prints one JSON object. Everything it
starts, it stops.

Run from the repository root, after scripts/build-thanos.sh:
    .venv/bin/python bench/fleet_query.py [--clusters 2 10] [--keep DIR] [--thanos PATH]
`--keep DIR` keeps the imported TSDB there; a later run with the same DIR skips
generation and import (minutes).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.admission import cpu_seconds  # noqa: E402
from bench.report import import_once, machine, run_report  # noqa: E402
from finops_devtools.devcluster.prometheus_runner import PrometheusServer, previous_month  # noqa: E402
from finops_devtools.devcluster.thanos_runner import ThanosProcess, prometheus_config  # noqa: E402
from finops_devtools.simulator.generation import ScenarioParams, generate_scenario  # noqa: E402
from finops_devtools.simulator.openmetrics import ExportOptions  # noqa: E402
from finops_operator.adapters.prometheus_api import PrometheusClient  # noqa: E402
from finops_operator.controllers.usage_reader import PeriodReport  # noqa: E402
from finops_operator.domain.config import PricingConfig, PrometheusConfig  # noqa: E402
from finops_operator.domain.costs.period import Period  # noqa: E402
from finops_operator.domain.money import display_money  # noqa: E402

# A sidecar's Prometheus keeps 2-hour blocks: Thanos (its compactor, over object
# storage) compacts, not Prometheus.
SIDECAR_BLOCKS = ("--storage.tsdb.min-block-duration=2h", "--storage.tsdb.max-block-duration=2h")
# Thanos Query's default --query.timeout is 2 minutes; a month over 10 clusters on
# 2 shared cores may need more, and a timeout would measure nothing.
QUERY_ARGS = ("--query.timeout=60m",)


def thanos_binary(given: Path | None) -> Path | None:
    if given is not None:
        return given if given.is_file() else None
    built = sorted(ROOT.glob(".cache/thanos/*/thanos"))
    return built[-1] if built else None


def link_blocks(source: Path, target: Path) -> int:
    """Hard links of the source TSDB's blocks in `target` (an empty data folder); how many."""
    count = 0
    for block in sorted(source.iterdir()):
        if (block / "meta.json").is_file():
            shutil.copytree(block, target / block.name, copy_function=os.link)
            count += 1
    return count


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


@dataclass
class Fleet:
    query: ThanosProcess
    sidecars: list[ThanosProcess]
    servers: list[PrometheusServer]

    def pids(self) -> dict[str, list[int]]:
        def of(processes: Sequence[Any]) -> list[int]:
            return [p.process.pid for p in processes if p.process is not None]

        return {
            "thanosQuery": of([self.query]),
            "sidecars": of(self.sidecars),
            "prometheus": of(self.servers),
        }


@contextmanager
def fleet(thanos: str, source: Path, workdir: Path, clusters: int) -> Iterator[Fleet]:
    """`clusters` Prometheus servers over links of `source`'s blocks, each with its sidecar,
    and a Thanos Query over the sidecars; all stopped on exit."""
    with ExitStack() as stack:
        servers, sidecars = [], []
        for index in range(clusters):
            name = f"c{index:02d}"
            server = PrometheusServer(
                workdir / name,
                extra_args=SIDECAR_BLOCKS,
                config=prometheus_config([("cluster", name)]),
            )
            link_blocks(source, server.data_dir)
            stack.enter_context(server.start(timeout=600))
            servers.append(server)
            sidecar = stack.enter_context(ThanosProcess.sidecar(thanos, workdir, server))
            sidecars.append(sidecar)
        endpoints = [sidecar.grpc for sidecar in sidecars]
        query = stack.enter_context(
            ThanosProcess.query(thanos, workdir, endpoints, ("prometheus_replica",), QUERY_ARGS)
        )
        yield Fleet(query, sidecars, servers)


def wait_for_clusters(url: str, clusters: int, at: datetime.datetime) -> float:
    """Seconds until Thanos Query sees every cluster (it finds its endpoints after it starts)."""
    client = PrometheusClient(PrometheusConfig(url=url), timeout=600)
    began = time.monotonic()
    while True:
        seen = client.evaluate("count by (cluster) (finops_gpu_hourly_price)", at)
        if len(seen) == clusters:
            return round(time.monotonic() - began, 1)
        if time.monotonic() - began > 300:
            raise SystemExit(f"Thanos Query saw {len(seen)} of {clusters} clusters after 300 s")
        time.sleep(1)


def measured(
    url: str, pricing: PricingConfig, period: Period, pids: dict[str, list[int]]
) -> tuple[PeriodReport, dict[str, Any]]:
    """The report through `url`, with the CPU seconds each kind of process spent on it."""
    before = {role: sum(cpu_seconds(pid) for pid in group) for role, group in pids.items()}
    report, figures = run_report(url, pricing, period)
    figures["cpuSeconds"] = {
        role: round(sum(cpu_seconds(pid) for pid in group) - before[role], 2)
        for role, group in pids.items()
    }
    figures["cpuSeconds"]["total"] = round(sum(figures["cpuSeconds"].values()), 2)
    for query in figures["perQuery"]:  # Thanos Query answers no `stats=all`
        for key in ("prometheusEvalSeconds", "prometheusExecSeconds"):
            if query[key] is None:
                del query[key]
    return report, figures


def cents(amount: Decimal) -> str:
    return display_money(amount)


def checked(report: PeriodReport, single: PeriodReport, clusters: int) -> dict[str, Any]:
    """Every cluster's total against the one cluster's, the fleet's against N times it."""
    want = cents(single.costs.cluster.total_cost)
    totals = {cluster.name: cents(cluster.costs.total_cost) for cluster in report.clusters}
    return {
        "clusters": len(totals),
        "everyClusterEqualsOneClusterToTheCent": len(totals) == clusters
        and all(total == want for total in totals.values()),
        "fleetTotal": cents(report.costs.cluster.total_cost),
        "fleetTotalEqualsNTimesOne": cents(report.costs.cluster.total_cost)
        == cents(single.costs.cluster.total_cost * clusters),
        "warnings": list(report.warnings),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clusters", type=int, nargs="+", default=[2, 10], help="fleet sizes")
    parser.add_argument("--scrape", type=int, default=300, help="scrape interval, seconds")
    parser.add_argument("--replicas", type=int, default=2, help="operator replicas")
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the imported TSDB here")
    parser.add_argument("--thanos", type=Path, help="the thanos binary (default: .cache/thanos)")
    args = parser.parse_args(argv)
    if any(n < 1 or n > 64 for n in args.clusters):
        parser.error("--clusters: each fleet size must be 1 to 64")
    thanos = thanos_binary(args.thanos)
    if thanos is None:
        print("fleet_query: no thanos binary: run scripts/build-thanos.sh first", file=sys.stderr)
        return 2

    month_start, month_end = previous_month()
    period = Period(month_start, month_end)
    margin = datetime.timedelta(days=1)
    scenario = generate_scenario(ScenarioParams.benchmark(month_start - margin, month_end + margin))
    # No platform cost: the fleet's total is then exactly the clusters' sum.
    pricing = scenario.pricing.model_copy(update={"shared_monthly": Decimal(0)})
    options = ExportOptions(scrape_interval=args.scrape, operator_replicas=args.replicas)

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="finops-bench-fleet-"))
    source = PrometheusServer(workdir / "source", extra_args=SIDECAR_BLOCKS)
    runs: list[dict[str, Any]] = []
    try:
        imported = import_once(source, scenario, options)
        with source.start(timeout=600):
            pids = {"prometheus": [source.process.pid] if source.process else []}
            single, direct_cold = measured(source.url, pricing, period, pids)
            _, direct_warm = measured(source.url, pricing, period, pids)
        for clusters in args.clusters:
            began = time.perf_counter()
            with fleet(str(thanos), source.data_dir, workdir / f"fleet-{clusters}", clusters) as f:
                started = round(time.perf_counter() - began, 1)
                found = wait_for_clusters(f.query.url, clusters, month_end - margin)
                report, cold = measured(f.query.url, pricing, period, f.pids())
                cold["thanosQueryPeakRssMiB"] = peak_rss_mib(f.pids()["thanosQuery"][0])
                _, warm = measured(f.query.url, pricing, period, f.pids())
                warm["thanosQueryPeakRssMiB"] = peak_rss_mib(f.pids()["thanosQuery"][0])
            runs.append(
                {
                    "clusters": clusters,
                    "startSeconds": started,
                    "storesFoundSeconds": found,
                    "check": checked(report, single, clusters),
                    "cold": cold,
                    "warm": warm,
                }
            )
            shutil.rmtree(workdir / f"fleet-{clusters}", ignore_errors=True)
    finally:
        source.stop()
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)

    result = {
        "benchmark": "fleet_query",
        "period": f"{month_start:%Y-%m}",
        "scrapeIntervalSeconds": args.scrape,
        "operatorReplicas": args.replicas,
        "thanos": str(thanos),
        "perCluster": {
            "teams": len(single.costs.teams),
            "samplesImported": imported["samples"],
            "totalCost": cents(single.costs.cluster.total_cost),
        },
        "import": imported,
        "direct": {"cold": direct_cold, "warm": direct_warm},
        "fleets": runs,
        "machine": machine(),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
