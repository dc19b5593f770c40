"""Admission fails closed at start: no review is answered before the namespace index is loaded.

An attack round (issue 19) sent reviews from the first millisecond of a start, with
3,000 namespaces labelled `enforce` under an `audit` cluster default: 325 of 326 untagged
GPU pods were answered `allowed: true`, because every namespace looked like the
default until kopf's first list went through. Now the webhook answers 503 until then,
and the webhook's `failurePolicy: Fail` refuses.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from finops_devtools.devcluster.reviews import review, workload
from finops_operator.domain import conventions
from tests.support.kube_emulator import KubeEmulator, store_namespaces
from tests.support.operator_process import OperatorProcess

NAMESPACES = 3000


@pytest.fixture(scope="module")
def enforce_namespaces(cluster: KubeEmulator) -> KubeEmulator:
    """NAMESPACES namespaces in mode `enforce`: the first over HTTP, the rest stored directly."""

    def namespace(index: int) -> dict[str, Any]:
        labels = {conventions.MODE_NAMESPACE_LABEL: "enforce"}
        return {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": f"ns-{index:04d}", "labels": labels}}  # fmt: skip

    store_namespaces(cluster, NAMESPACES, namespace)
    return cluster


def test_reviews_from_the_first_millisecond_are_never_allowed_in_an_enforce_namespace(
    enforce_namespaces: KubeEmulator, tmp_path: Path
) -> None:
    process = OperatorProcess(enforce_namespaces, tmp_path, {"mode": "audit"})
    answers: list[tuple[int, object]] = []
    stop = threading.Event()

    def hammer() -> None:
        index = 0
        while not stop.is_set():
            index = (index + 1) % NAMESPACES
            body = json.dumps(review(workload("Pod", namespace=f"ns-{index:04d}"))).encode()
            try:
                status, answer = process.post("/validate", body)
            except OSError:  # not listening yet
                time.sleep(0.001)
                continue
            allowed = answer["response"]["allowed"] if status == 200 else None
            answers.append((status, allowed))

    sender = threading.Thread(target=hammer, daemon=True)
    sender.start()
    try:
        process.start(timeout=90, wait_ready=False)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(s == 200 for s, _ in answers[-5:]):
            time.sleep(0.05)
        time.sleep(0.5)  # a few answers more after the gate opened
    finally:
        stop.set()
        sender.join(timeout=20)
        process.stop()
    judged = [allowed for status, allowed in answers if status == 200]
    assert not any(judged), f"{judged.count(True)} of {len(judged)} answered allowed: true"
    assert judged, "the gate never opened"
    statuses = {status for status, _ in answers}
    assert 503 in statuses, f"no review reached the start-up window: {statuses}"
    assert statuses <= {200, 503}, statuses
    first_judged = next(i for i, (status, _) in enumerate(answers) if status == 200)
    assert all(status == 200 for status, _ in answers[first_judged:]), "the gate closed again"
