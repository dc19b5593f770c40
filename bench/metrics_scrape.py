"""Benchmark one `/metrics` scrape of the GPU inventory at fleet scale, in this process.

Fills the operator's `Inventory` with N running GPU pods (one per GPU, cost
labels on each, 8 per node, as `bench/admission.py --pods` does) and measures,
in CPU seconds of this process (`time.process_time`, so other load on the
machine does not count):

- `per_scrape`: what the operator did before issue 14: a collector rendered by
  `prometheus_client.generate_latest` at every scrape (and gzip, level 9, as
  prometheus_client's own server packs it);
- `cached`: `InventoryExposition`: the first render (`cold`), a scrape when
  nothing changed (`unchanged`), one after one pod changed (`one_pod_changed`)
  and one after 1 % of the pods changed (`one_percent_changed`).

Also the text and gzip sizes, and the series per pod. With `--prometheus S`, a
real Prometheus (Debian's package) scrapes the operator's metrics server, as
the operator serves it, every 5 s for S seconds, once with no pod and once per
fleet size: what Prometheus pays (head series, heap in use, scrape duration)
is the difference. Prints one JSON object.

Run from the repository root:
    .venv/bin/python bench/metrics_scrape.py --pods 10000 50000 [--prometheus 60]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from aiohttp import web  # noqa: E402
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.core import GaugeMetricFamily  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402

from bench.admission import gpu_fleet, machine  # noqa: E402
from finops_devtools.devcluster import free_port  # noqa: E402
from finops_devtools.devcluster.prometheus_runner import (  # noqa: E402
    PrometheusServer,
    tools_available,
)
from finops_operator.adapters.metrics import InventoryExposition, OperatorMetrics  # noqa: E402
from finops_operator.adapters.webhook_server import metrics_app, start_site  # noqa: E402
from finops_operator.domain import conventions  # noqa: E402
from finops_operator.domain.config import Config  # noqa: E402
from finops_operator.domain.gpus.allocation import (  # noqa: E402
    ALLOCATION_LABELS,
    allocation_samples,
    capacity_samples,
    price_samples,
)
from finops_operator.domain.gpus.inventory import Inventory  # noqa: E402
from finops_operator.domain.policies.label_check import LabelPolicy  # noqa: E402

CONFIG = Config()


class PerScrapeCollector(Collector):
    """The collector the operator registered before issue 14, rendered at every scrape."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    def collect(self) -> Iterator[GaugeMetricFamily]:
        nodes = dict(self.inventory.nodes)
        allocation = GaugeMetricFamily(
            conventions.METRIC_POD_GPU_ALLOCATION, "GPUs held.", labels=ALLOCATION_LABELS
        )
        for values, held in allocation_samples(list(self.inventory.pods.values()), nodes):
            allocation.add_metric(values, float(held))
        yield allocation
        capacity = GaugeMetricFamily(
            conventions.METRIC_NODE_GPU_CAPACITY,
            "GPUs a node offers.",
            labels=("node", "gpu_model", "resource"),
        )
        for node_values, devices in capacity_samples(nodes):
            capacity.add_metric(node_values, float(devices))
        yield capacity
        price = GaugeMetricFamily(
            conventions.METRIC_GPU_HOURLY_PRICE, "Price.", labels=("gpu_model",)
        )
        for model, amount in price_samples(CONFIG.pricing, nodes):
            price.add_metric((model,), float(amount))
        yield price


def cpu(action: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """The least CPU time of `repeat` runs of `action`, and its last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.process_time()
        result = action()
        best = min(best, time.process_time() - started)
    return best, result


def measure(pods: int) -> dict[str, Any]:
    inventory = Inventory(LabelPolicy(CONFIG).is_gpu)
    fleet = gpu_fleet(pods)
    for obj in fleet:
        if obj["kind"] == "Node":
            inventory.observe_node("ADDED", obj)
        elif obj["kind"] == "Pod":
            inventory.observe_pod("ADDED", obj)
    assert len(inventory.pods) == pods, len(inventory.pods)

    registry = CollectorRegistry()
    registry.register(PerScrapeCollector(inventory))
    old_text_cpu, old_text = cpu(lambda: generate_latest(registry))
    old_gzip_cpu, old_packed = cpu(lambda: gzip.compress(generate_latest(registry)))

    own = OperatorMetrics()  # the registry's few series, rendered at every scrape
    exposition = InventoryExposition(inventory, CONFIG.pricing)

    def scrape() -> bytes:
        _, packed = exposition.render()
        return gzip.compress(generate_latest(own.registry), compresslevel=1, mtime=0) + packed

    started = time.process_time()
    body = scrape()
    cold = time.process_time() - started
    unchanged, _ = cpu(scrape, repeat=5)
    running = [obj for obj in fleet if obj["kind"] == "Pod"]

    def change(count: int) -> Callable[[], Any]:
        def run() -> Any:
            for obj in running[:count]:  # a new feature label: a new record, new lines
                obj["metadata"]["labels"]["resilio.tech/feature"] = f"f{time.perf_counter_ns()}"
                inventory.observe_pod("MODIFIED", obj)
            started = time.process_time()
            scrape()
            return time.process_time() - started

        return run

    one = min(change(1)() for _ in range(3))
    percent = min(change(max(1, pods // 100))() for _ in range(3))
    text, _ = exposition.render()
    series = text.count(f"\n{conventions.METRIC_POD_GPU_ALLOCATION}{{".encode())
    return {
        "pods": pods,
        "allocation_series": series,
        "series_per_pod": round(series / pods, 3),
        "text_bytes": len(text),
        "bytes_per_series": round(len(text) / series, 1),
        "per_scrape": {
            "text_cpu_seconds": round(old_text_cpu, 4),
            "text_and_gzip9_cpu_seconds": round(old_gzip_cpu, 4),
            "text_bytes": len(old_text),
            "gzip9_bytes": len(old_packed),
        },
        "cached": {
            "cold_cpu_seconds": round(cold, 4),
            "unchanged_cpu_seconds": round(unchanged, 5),
            "one_pod_changed_cpu_seconds": round(one, 4),
            "one_percent_changed_cpu_seconds": round(percent, 4),
            "gzip1_bytes": len(body),
        },
    }


def filled(pods: int) -> Inventory:
    inventory = Inventory(LabelPolicy(CONFIG).is_gpu)
    for obj in gpu_fleet(pods) if pods else []:
        if obj["kind"] == "Node":
            inventory.observe_node("ADDED", obj)
        elif obj["kind"] == "Pod":
            inventory.observe_pod("ADDED", obj)
    return inventory


async def scraped_by_prometheus(pods: int, seconds: float, workdir: Path) -> dict[str, Any]:
    """What a real Prometheus reports after scraping `pods` pods' series for `seconds`."""
    exposition = InventoryExposition(filled(pods), CONFIG.pricing)
    app = metrics_app(OperatorMetrics(), inventory=exposition)
    port = free_port()
    runner = await start_site(app, "127.0.0.1", port)
    prometheus = PrometheusServer(workdir)
    prometheus.port = free_port()
    jobs = {"operator": port, "prometheus": prometheus.port}  # its own figures too
    config = {
        "global": {"scrape_interval": "5s", "scrape_timeout": "5s"},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{target}"]}]}
            for job, target in jobs.items()
        ],
    }
    try:
        await asyncio.to_thread(prometheus.start, 60.0, True, yaml.safe_dump(config))
        await asyncio.sleep(seconds)

        def value(expr: str) -> float:
            found = prometheus.query(expr)
            return float(found[0]["value"][1]) if found else float("nan")

        return {
            "pods": pods,
            "head_series": await asyncio.to_thread(value, "prometheus_tsdb_head_series"),
            "heap_inuse_bytes": await asyncio.to_thread(value, "go_memstats_heap_inuse_bytes"),
            "scrape_seconds_first": await asyncio.to_thread(
                value, 'max_over_time(scrape_duration_seconds{job="operator"}[5m])'
            ),
            "scrape_seconds_last": await asyncio.to_thread(
                value, 'scrape_duration_seconds{job="operator"}'
            ),
            "rss_bytes": await asyncio.to_thread(
                value, 'process_resident_memory_bytes{job="prometheus"}'
            ),
            "samples_scraped": await asyncio.to_thread(
                value, 'scrape_samples_scraped{job="operator"}'
            ),
        }
    finally:
        await asyncio.to_thread(prometheus.stop)
        await runner.cleanup()


async def loop_stall(pods: int, scrapes: int = 5) -> dict[str, float]:
    """How long a scrape holds the event loop that answers admission, before and now.

    Both servers run on this process's event loop, as the operator's did; a
    thread fetches `/metrics` (gzip) `scrapes` times from each; a ticker on the
    loop records how late it woke (the worst delay any admission request on that
    loop would have seen). `before` renders with `generate_latest` in the handler,
    as the operator did; `now` is `metrics_app` with the cached inventory.
    """
    inventory = filled(pods)
    registry = CollectorRegistry()
    registry.register(PerScrapeCollector(inventory))

    async def before(_: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(generate_latest(registry)))

    old_app = web.Application()
    old_app.router.add_get("/metrics", before)
    now_app = metrics_app(
        OperatorMetrics(), inventory=InventoryExposition(inventory, CONFIG.pricing)
    )
    return {
        "before_max_stall_ms": await max_stall(old_app, scrapes),
        "now_max_stall_ms": await max_stall(now_app, scrapes),
    }


async def max_stall(app: web.Application, scrapes: int) -> float:
    """The longest the loop serving `app` was late, in ms, while a thread scrapes it."""
    port = free_port()
    runner = await start_site(app, "127.0.0.1", port)
    url = f"http://127.0.0.1:{port}/metrics"
    loop = asyncio.get_running_loop()
    warm = threading.Event()
    lateness = [0.0]
    done = asyncio.Event()

    async def tick() -> None:
        while not done.is_set():
            due = loop.time() + 0.001
            await asyncio.sleep(0.001)
            if warm.is_set():
                lateness[0] = max(lateness[0], loop.time() - due)

    def fetch() -> None:
        for index in range(scrapes + 1):  # the first renders everything: not counted
            request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
            with urllib.request.urlopen(request, timeout=120) as answer:
                answer.read()
            if index == 0:
                time.sleep(0.1)  # the ticker's first wake-up after the warm-up is not counted
                warm.set()

    ticker = asyncio.create_task(tick())
    await asyncio.to_thread(fetch)
    done.set()
    await ticker
    await runner.cleanup()
    return round(lateness[0] * 1000, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument(
        "--prometheus", type=float, default=0, help="seconds a real Prometheus scrapes"
    )
    args = parser.parse_args(argv)
    if any(n < 1 or n > 200_000 for n in args.pods):
        parser.error("--pods: between 1 and 200000")
    if args.prometheus and not tools_available():
        parser.error("--prometheus needs Debian's prometheus package (scripts/bootstrap.sh)")
    report: dict[str, Any] = {"runs": [measure(n) for n in args.pods], "machine": machine()}
    for run in report["runs"]:
        run["event_loop"] = asyncio.run(loop_stall(run["pods"]))
    if args.prometheus:
        with tempfile.TemporaryDirectory(prefix="finops-scrape-") as workdir:
            report["prometheus"] = [
                asyncio.run(scraped_by_prometheus(n, args.prometheus, Path(workdir) / str(n)))
                for n in [0, *args.pods]
            ]
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
