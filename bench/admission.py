"""Benchmark the admission webhook: `finops-operator run` answering AdmissionReviews over HTTPS.

Starts the test Kubernetes emulator and the operator (as the tests do), pins the
operator to one core and this load generator to another, then sends
AdmissionReviews for GPU Pods over HTTPS with keep-alive:

- a mix of compliant Pods (/validate, admitted), untagged Pods (/validate,
  denied) and, with `--mutate`, untagged Pods in a labelled namespace (/mutate,
  admitted with a patch);
- at `--concurrency` requests in flight at most, and with `--rate` at a fixed
  offered load (open loop: request i is due at start + i/rate, and its latency is
  counted from when it was due, so time spent waiting for a free connection is
  included), or as fast as the connections allow without `--rate` (closed loop);
- for `--duration` seconds after `--warmup` seconds whose results are dropped.

Every answer is checked (HTTP 200, the uid echoed, allowed as expected, a patch
when one is expected); anything else counts as an error. Prints one JSON object.

With `--pods N` the emulator holds N running GPU pods before the operator
starts (so its state, and its `/metrics`, carry N allocation series), and with
`--scrape-every S` `/metrics` is fetched (gzip, as Prometheus does) every S
seconds during the measured load: the figures then say what scrapes cost
admission (docs/benchmarks.md, "Admission while /metrics is scraped").

Run from the repository root:  .venv/bin/python bench/admission.py --rate 500 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime
import json
import os
import platform
import re
import signal
import ssl
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from finops_devtools.devcluster import eventually  # noqa: E402
from finops_devtools.devcluster.emulator import KubeEmulator  # noqa: E402
from finops_devtools.devcluster.operator_runner import OperatorProcess  # noqa: E402
from finops_devtools.devcluster.reviews import COMPLETE_LABELS, review, workload  # noqa: E402

UID_MARK = "00000000-0000-4000-8000-00000000b0b0"  # replaced by a fresh uid per request
LABELLED_NAMESPACE = "bench-labelled"
NAMESPACE_LABELS = {"resilio.tech/cost-center": "cc-900", "resilio.tech/team": "ranking"}
DURATION_METRIC = "finops_admission_duration_seconds"


@dataclass(frozen=True)
class Case:
    """One kind of request: where it goes, its body with a uid placeholder, what to expect."""

    name: str
    path: str
    template: str
    allowed: bool
    patch: bool = False

    def body(self, uid: str) -> bytes:
        return self.template.replace(UID_MARK, uid).encode()


def cases(mutate: bool) -> list[Case]:
    def template(obj: dict[str, Any]) -> str:
        body = review(obj)
        body["request"]["uid"] = UID_MARK
        return json.dumps(body)

    partial = {"resilio.tech/team": "search-platform", "resilio.tech/environment": "prod"}
    mix = [
        Case("compliant", "/validate", template(workload("Pod", labels=COMPLETE_LABELS)), True),
        Case("untagged", "/validate", template(workload("Pod")), False),
        Case("partly-tagged", "/validate", template(workload("Pod", labels=partial)), False),
    ]
    if mutate:
        obj = workload("Pod", namespace=LABELLED_NAMESPACE)
        mix.append(Case("inherit", "/mutate", template(obj), True, patch=True))
    return mix


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    sent: int = 0
    errors: int = 0
    first_errors: list[str] = field(default_factory=list)

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.first_errors) < 5:
            self.first_errors.append(what)


def check(case: Case, uid: str, status: int, payload: bytes) -> str | None:
    """None when the answer is right, else what is wrong with it."""
    if status != 200:
        return f"{case.name}: HTTP {status}"
    try:
        response = json.loads(payload)["response"]
    except (ValueError, KeyError, TypeError) as err:
        return f"{case.name}: unreadable answer ({err})"
    if response.get("uid") != uid:
        return f"{case.name}: uid {response.get('uid')!r} != {uid!r}"
    if response.get("allowed") is not case.allowed:
        return f"{case.name}: allowed={response.get('allowed')!r}, expected {case.allowed}"
    if case.patch:
        try:
            ops = json.loads(base64.b64decode(response["patch"]))
        except (KeyError, ValueError, TypeError) as err:
            return f"{case.name}: no readable patch ({err})"
        if not ops:
            return f"{case.name}: an empty patch"
    return None


def gpu_fleet(pods: int) -> list[dict[str, Any]]:
    """`pods` running 1-GPU pods with their cost labels on 8-GPU nodes, in 500 namespaces."""
    nodes = -(-pods // 8)
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": f"gpu-{n:05d}",
                "labels": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
            },
            "status": {"capacity": {"cpu": "96", "nvidia.com/gpu": "8"}},
        }
        for n in range(nodes)
    ]
    spaces = min(500, max(1, pods // 20))
    objects += [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"fleet-{n:04d}"}}
        for n in range(spaces)
    ]
    for index in range(pods):
        labels = {  # label values as varied as a fleet's: 50 teams, 400 features
            **COMPLETE_LABELS,
            "resilio.tech/team": f"team-{index % 50}",
            "resilio.tech/feature": f"feature-{index % 400}",
        }
        pod = workload("Pod", f"gpu-{index:06d}", f"fleet-{index % spaces:04d}", labels)
        pod["spec"]["nodeName"] = f"gpu-{index // 8:05d}"
        pod["status"] = {"phase": "Running"}
        objects.append(pod)
    return objects


@dataclass
class Scrapes:
    seconds: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    errors: int = 0


async def scrape_every(url: str, every: float, until: float, scrapes: Scrapes) -> None:
    """GET `url` (gzip) every `every` seconds until the loop time `until`, the first at once."""
    loop = asyncio.get_running_loop()
    headers = {"Accept-Encoding": "gzip"}
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        while loop.time() < until:
            started = loop.time()
            try:
                async with session.get(url, headers=headers) as answer:
                    body = await answer.read()
                    if answer.status != 200:
                        raise aiohttp.ClientError(f"HTTP {answer.status}")
                scrapes.seconds.append(loop.time() - started)
                scrapes.sizes.append(len(body))
            except (aiohttp.ClientError, TimeoutError):
                scrapes.errors += 1
            await asyncio.sleep(max(0.0, started + every - loop.time()))


async def load(
    url: str,
    tls: ssl.SSLContext,
    mix: list[Case],
    concurrency: int,
    rate: float | None,
    seconds: float,
    scrape: tuple[str, float, Scrapes] | None = None,
) -> tuple[Results, float]:
    """Send the mix for `seconds`; the results and the wall time actually taken."""
    results = Results()
    connector = aiohttp.TCPConnector(ssl=tls, limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10)
    headers = {"Content-Type": "application/json"}
    counter = iter(range(sys.maxsize))
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        while True:
            i = next(counter)
            if rate is not None:
                due = start + i / rate
                if due >= deadline:
                    return
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                    # On time, not held back by busy connections: count from the actual send,
                    # so that the event loop's timer granularity (epoll waits whole
                    # milliseconds) is not counted as webhook latency.
                    due = loop.time()
            else:
                due = loop.time()
                if due >= deadline:
                    return
            case = mix[i % len(mix)]
            uid = str(uuid.uuid4())
            results.sent += 1
            try:
                async with session.post(url + case.path, data=case.body(uid)) as answer:
                    payload = await answer.read()
                    status = answer.status
            except (aiohttp.ClientError, TimeoutError) as err:
                results.error(f"{case.name}: {type(err).__name__}: {err}")
                continue
            results.latencies.append(loop.time() - due)
            problem = check(case, uid, status, payload)
            if problem:
                results.error(problem)

    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=headers
    ) as session:
        scraping = []
        if scrape is not None:
            metrics_url, every, scrapes = scrape
            scraping.append(scrape_every(metrics_url, every, deadline, scrapes))
        await asyncio.gather(*(worker(session) for _ in range(concurrency)), *scraping)
    return results, loop.time() - start


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def histogram(text: str) -> dict[str, Any]:
    """The admission duration histogram, summed over webhooks: buckets, sum and count."""
    buckets: dict[float, float] = {}
    total = count = 0.0
    pattern = re.compile(rf"^{DURATION_METRIC}_(bucket|sum|count)\{{([^}}]*)\}} (\S+)$")
    for line in text.splitlines():
        match = pattern.match(line)
        if not match:
            continue
        part, labels, value = match.group(1), match.group(2), float(match.group(3))
        if part == "bucket":
            le = re.search(r'le="([^"]+)"', labels)
            assert le is not None
            bound = float(le.group(1))
            buckets[bound] = buckets.get(bound, 0.0) + value
        elif part == "sum":
            total += value
        else:
            count += value
    return {"buckets": buckets, "sum": total, "count": count}


def server_side(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Mean and bucket upper bounds for p50/p99 of the time the handler measured itself."""
    count: float = after["count"] - before["count"]
    if count <= 0:
        return {}
    cumulative: list[tuple[float, float]] = sorted(
        (bound, after["buckets"][bound] - before["buckets"].get(bound, 0.0))
        for bound in after["buckets"]
    )

    def upper_bound(fraction: float) -> float:
        for bound, seen in cumulative:
            if seen >= fraction * count:
                return bound * 1000
        return float("inf")

    return {
        "requests": int(count),
        "mean_ms": round((after["sum"] - before["sum"]) / count * 1000, 4),
        "p50_le_ms": upper_bound(0.50),
        "p99_le_ms": upper_bound(0.99),
    }


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """CPU time all cores of the machine spent busy so far, whichever process used it."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "cpu": model or platform.processor(),
        "nproc": os.cpu_count(),
        "memory": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def pin(pid: int, cores: set[int]) -> None:
    """Pin every thread of `pid` to `cores` (threads created later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task.name), cores)


@contextlib.contextmanager
def pinned(cores: set[int] | None) -> Iterator[None]:
    """Run the block with this thread pinned to `cores`, so that processes it forks inherit it."""
    if cores is None:
        yield
        return
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


def plan_cores() -> tuple[set[int] | None, set[int] | None]:
    """One core for the operator, the others for the load generator; no pinning on one core."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return None, None
    return {available[0]}, set(available[1:])


def _raise_interrupt(signum: int, _: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def wait_until_quiet(cluster: KubeEmulator, timeout: float, quiet: float = 3.0) -> None:
    """Wait until the operator's only requests are its Lease's, for `quiet` seconds.

    Once every pod is in `/metrics` the operator still has its first PolicyReports
    (one per namespace) and audit writes to send; the emulator serving them runs
    on the load generator's core, so measuring meanwhile would measure that.
    """
    assert cluster.emulator is not None
    log = cluster.emulator.log
    deadline = time.monotonic() + timeout
    seen = len(log)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        fresh = log[seen:]
        seen += len(fresh)
        if all("/leases/" in path for _, path in fresh):
            return
    raise SystemExit(f"the operator was still sending requests after {timeout:.0f} s")


def run(args: argparse.Namespace) -> dict[str, Any]:
    operator_cores, client_cores = plan_cores()
    if client_cores is not None:
        os.sched_setaffinity(0, client_cores)  # this thread, and the emulator thread it starts
    mix = cases(args.mutate)
    with tempfile.TemporaryDirectory(prefix="finops-bench-") as workdir:
        cluster = KubeEmulator().start()
        try:
            if args.pods:
                cluster.preload(gpu_fleet(args.pods))
            operator = OperatorProcess(cluster, Path(workdir), {"mode": "enforce"})
            with pinned(operator_cores):
                operator.start(timeout=60 + args.pods / 50)
            try:
                assert operator.process is not None
                pid = operator.process.pid
                if operator_cores is not None:
                    pin(pid, operator_cores)
                if args.mutate:
                    cluster.create(
                        {
                            "apiVersion": "v1",
                            "kind": "Namespace",
                            "metadata": {"name": LABELLED_NAMESPACE, "labels": NAMESPACE_LABELS},
                        }
                    )
                    probe = review(workload("Pod", namespace=LABELLED_NAMESPACE))
                    eventually(lambda: operator.review("/mutate", probe).get("patch"), timeout=30)
                url = f"https://localhost:{operator.webhook_port}"
                metrics_url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
                if args.pods:  # every pod in the operator's state before measuring
                    eventually(
                        lambda: operator.metrics().count('pod="gpu-') >= args.pods,
                        timeout=60 + args.pods / 50,
                    )
                wait_until_quiet(cluster, timeout=60 + args.pods / 50)
                scrapes = Scrapes()
                scrape = (metrics_url, args.scrape_every, scrapes) if args.scrape_every else None
                if args.warmup > 0:
                    asyncio.run(
                        load(url, operator.tls, mix, args.concurrency, args.rate, args.warmup)
                    )
                if operator_cores is not None:
                    pin(pid, operator_cores)  # any thread started during the warm-up
                before = histogram(operator.metrics())
                cpu_before = cpu_seconds(pid)
                client_before = time.process_time()
                machine_before = busy_seconds()
                results, elapsed = asyncio.run(
                    load(url, operator.tls, mix, args.concurrency, args.rate, args.duration, scrape)
                )
                cpu_used = cpu_seconds(pid) - cpu_before
                client_used = time.process_time() - client_before
                others = busy_seconds() - machine_before - cpu_used - client_used
                after = histogram(operator.metrics())
                alive = operator.process.poll() is None
            finally:
                operator.stop()
        finally:
            cluster.stop()
    ordered = sorted(results.latencies)
    report: dict[str, Any] = {
        "requests": results.sent,
        "errors": results.errors,
        "duration": round(elapsed, 3),
        "requests_per_second": round(len(ordered) / elapsed, 1),
        # answered requests (right or wrong) per second; latencies are of answered requests
        "latency_ms": {
            name: round(percentile(ordered, fraction) * 1000, 3)
            for name, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
        },
        "concurrency": args.concurrency,
        "rate": args.rate,
        "warmup": args.warmup,
        "mix": [f"{case.name} {case.path}" for case in mix],
        "pods_in_state": args.pods,
        "scrapes": {
            "every_seconds": args.scrape_every,
            "count": len(scrapes.seconds),
            "errors": scrapes.errors,
            "max_ms": round(max(scrapes.seconds, default=0.0) * 1000, 1),
            "gzip_bytes": max(scrapes.sizes, default=0),
        },
        "server": {
            **server_side(before, after),
            "cpu_utilisation": round(cpu_used / elapsed, 3),
            "alive_after_run": alive,
        },
        "load_generator_cpu_utilisation": round(client_used / elapsed, 3),
        # CPU (in cores) used meanwhile by every other process on the machine: other load
        # competing for the same cores makes latencies worse, so a clean run shows ~0.
        "other_processes_cpu": round(max(others, 0.0) / elapsed, 3),
        "pinning": {
            "operator": sorted(operator_cores) if operator_cores else None,
            "load_generator": sorted(client_cores) if client_cores else None,
        },
        "machine": machine(),
    }
    if results.first_errors:
        report["first_errors"] = results.first_errors
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight at most")
    parser.add_argument(
        "--rate", type=float, default=None, help="offered load in requests/s (default: flat out)"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds sent before measuring")
    parser.add_argument(
        "--mutate", action=argparse.BooleanOptionalAction, default=True, help="include /mutate"
    )
    parser.add_argument(
        "--pods", type=int, default=0, help="running GPU pods in the cluster (and /metrics)"
    )
    parser.add_argument(
        "--scrape-every",
        type=float,
        default=None,
        help="fetch /metrics every this many seconds while measuring",
    )
    args = parser.parse_args(argv)
    if args.pods < 0 or (args.scrape_every is not None and args.scrape_every <= 0):
        parser.error("--pods must be 0 or more and --scrape-every positive")
    if args.concurrency < 1 or args.duration <= 0 or (args.rate is not None and args.rate <= 0):
        parser.error("--concurrency, --duration and --rate must be positive")
    if args.duration > 600:
        parser.error("--duration is at most 600 seconds")
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in background
    try:
        report = run(args)
    except KeyboardInterrupt:
        print("interrupted; the operator and the emulator were stopped", file=sys.stderr)
        return 130
    print(json.dumps(report))
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
