"""Benchmark the operator's write transport: the `kubernetes` client in threads vs aiohttp.

The decision it informs (docs/architecture.md, "One credential loader for the three
transports"): every write goes through `adapters.kube_api.KubeApi`, the official client
run in worker threads, while the lean watches read with aiohttp. This measures what
moving the writes to aiohttp would save, on the e2e control plane
(`scripts/e2e-cluster.sh up`, no operator): N JSON merge patches of one CostReport's
labels, at the same concurrency (KubeApi's 4 workers, 4 aiohttp requests in flight),
in wall time and in CPU seconds of this process (`time.process_time`, threads
included), with the same credentials (`adapters.kube_credentials.load`).

Run from the repository root:
    .venv/bin/python bench/api_transport.py [--patches 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.admission import machine  # noqa: E402
from finops_operator.adapters import kube_credentials  # noqa: E402
from finops_operator.adapters.kube_api import KubeApi  # noqa: E402
from finops_operator.adapters.list_watch import Connection  # noqa: E402
from finops_operator.domain import conventions  # noqa: E402

REPORTS = (conventions.API_GROUP, conventions.API_VERSION, "costreports")
NAME = "transport-bench"
IN_FLIGHT = 4  # KubeApi's default workers


def patch_of(index: int) -> dict[str, Any]:
    return {"metadata": {"labels": {"bench-step": str(index)}}}


async def through_client(api: KubeApi, patches: int) -> None:
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def one(index: int) -> None:
        async with slots:
            await api.patch(*REPORTS, None, NAME, patch_of(index))

    await asyncio.gather(*(one(i) for i in range(patches)))


async def through_aiohttp(connection: Connection, patches: int) -> None:
    group, version, plural = REPORTS
    url = f"{connection.server}/apis/{group}/{version}/{plural}/{NAME}"
    slots = asyncio.Semaphore(IN_FLIGHT)
    connector = aiohttp.TCPConnector(ssl=connection.ssl, limit=IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(index: int) -> None:
            headers = {"Content-Type": "application/merge-patch+json"}
            token = connection.authorization()
            if token:
                headers["Authorization"] = token
            async with slots, session.patch(url, json=patch_of(index), headers=headers) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"PATCH answered {r.status}")

        await asyncio.gather(*(one(i) for i in range(patches)))


def timed(job: Any) -> dict[str, float]:
    wall, cpu = time.monotonic(), time.process_time()
    asyncio.run(job())
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patches", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    script = ROOT / "scripts" / "e2e-cluster.sh"
    with tempfile.TemporaryDirectory(prefix="transport-bench-") as workdir:
        cluster = Path(workdir) / "cluster"
        env = {**os.environ, "E2E_NO_OPERATOR": "1"}
        up = [str(script), "up", str(cluster)]
        subprocess.run(up, env=env, check=True, timeout=1800, stdout=sys.stderr)
        try:
            credentials = kube_credentials.load(str(cluster / "kubeconfig"))
            api = KubeApi(credentials, name="bench")
            report = {
                "apiVersion": conventions.API_GROUP_VERSION,
                "kind": "CostReport",
                "metadata": {"name": NAME},
                "spec": {"scope": "cluster", "period": "2026-11"},
            }
            asyncio.run(api.create(*REPORTS, report))
            connection = Connection.of(credentials, "bench")
            results: dict[str, list[dict[str, float]]] = {"kubernetes_client": [], "aiohttp": []}
            for _ in range(args.rounds):
                results["kubernetes_client"].append(
                    timed(lambda: through_client(api, args.patches))
                )
                results["aiohttp"].append(timed(lambda: through_aiohttp(connection, args.patches)))
            api.close()
        finally:
            subprocess.run([str(script), "down", str(cluster)], check=False, timeout=120)
    summary = {
        name: {
            "patches_per_s": round(args.patches / min(r["wall_s"] for r in runs), 1),
            "cpu_ms_per_patch": round(1000 * min(r["cpu_s"] for r in runs) / args.patches, 3),
            "runs": runs,
        }
        for name, runs in results.items()
    }
    print(json.dumps({"machine": machine(), "patches": args.patches, **summary}, indent=2))
    return 0


if __name__ == "__main__":
    ssl.create_default_context()  # load the CA store before timing
    raise SystemExit(main())
