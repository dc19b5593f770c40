"""A starting replica never admits what enforce refuses (issue 19, fail closed at start).

The attack: reviews sent to a replica from its first millisecond, before its namespace
index has loaded, were answered `allowed: true` for an untagged GPU pod in an enforce
namespace (325 of 326 with 3,000 namespaces): every namespace fell back to the default
mode. Here a second `finops-operator run` starts against the real control plane, with
a few hundred namespaces to list, while a client sends it that review over and over
from the moment the process exists. Every answer must be a refused connection, a 503
(so the webhook's `failurePolicy` decides) or a denial; and once ready it denies.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

from finops_devtools.devcluster.reviews import review, workload
from finops_operator.domain import conventions

from .conftest import MODE, Cluster, start_second_operator, stop_process

EXTRA_NAMESPACES = 300


def answers(port: int, body: bytes, stop: threading.Event, seen: list[Any]) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    url = f"https://127.0.0.1:{port}{conventions.VALIDATE_PATH}"
    while not stop.is_set():
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as answer:
                seen.append(json.loads(answer.read())["response"]["allowed"])
        except urllib.error.HTTPError as err:
            seen.append(err.code)
        except (OSError, ValueError):
            seen.append("unreachable")
            time.sleep(0.002)


def test_a_starting_replica_never_allows_an_untagged_gpu_pod_in_an_enforce_namespace(
    cluster: Cluster,
) -> None:
    tag = uuid.uuid4().hex[:6]
    enforce = f"e2e-start-{tag}"
    others = [f"e2e-start-{tag}-{i}" for i in range(EXTRA_NAMESPACES)]
    namespaces = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}} for name in others
    ]
    namespaces.append(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": enforce, "labels": {MODE: "enforce"}},
        }
    )
    cluster.apply(namespaces)
    body = json.dumps(review(workload("Pod", name="stealth", namespace=enforce))).encode()
    stop, seen = threading.Event(), []
    proc, _, port, log = start_second_operator(cluster, name=f"start-{tag}")
    client = threading.Thread(target=answers, args=(port, body, stop, seen), daemon=True)
    client.start()
    try:
        deadline = time.monotonic() + 120
        while seen[-3:] != [False, False, False]:
            assert time.monotonic() < deadline, (seen[-10:], log.read_text()[-3000:])
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.05)
    finally:
        stop.set()
        client.join(timeout=10)
        stop_process(proc)
        cluster.kubectl(
            "delete", "namespace", enforce, *others, "--wait=false", check=False, timeout=120
        )
    assert True not in seen, f"allowed while starting: {seen.count(True)} of {len(seen)}"
    assert {a for a in seen if a != "unreachable"} <= {503, False}, set(seen)
