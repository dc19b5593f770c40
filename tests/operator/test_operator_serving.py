"""`finops-operator run` serving admission: readiness that means ready (issue 13, item 5)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path

import pytest

from finops_operator.domain import conventions
from tests.support.kube_emulator import KubeEmulator
from tests.support.operator_process import OperatorProcess
from tests.support.reviews import review, workload

NAMESPACES = 1500
OFF_EVERY = 17  # one namespace in 17 is in mode `off`: 89 of them


def namespace(index: int) -> dict[str, object]:
    labels = {"resilio.tech/cost-center": f"cc-{index}"}
    if index % OFF_EVERY == 0:
        labels[conventions.MODE_NAMESPACE_LABEL] = "off"
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": f"ns-{index:04d}", "labels": labels},
    }


@pytest.fixture(scope="module")
def many_namespaces(cluster: KubeEmulator) -> KubeEmulator:
    """The emulator with NAMESPACES namespaces: one created over HTTP, the rest stored
    directly (creating each over HTTP costs the emulator time linear in what it holds)."""
    cluster.create(namespace(0))
    assert cluster.emulator is not None
    objects = cluster.emulator.objects
    resource = next(key[0] for key in objects if key[2] == "ns-0000")
    for index in range(1, NAMESPACES):
        obj = namespace(index)
        obj["metadata"]["uid"] = str(uuid.uuid4())  # type: ignore[index]
        objects[(resource, None, f"ns-{index:04d}")] = obj
    assert len(cluster.list("Namespace")) == NAMESPACES
    return cluster


def test_readyz_fails_until_every_namespace_is_indexed_then_admission_is_right(
    many_namespaces: KubeEmulator, tmp_path: Path
) -> None:
    process = OperatorProcess(many_namespaces, tmp_path, {"mode": "enforce"})
    process.start(timeout=60, wait_ready=False)
    try:
        seen = [process.probe()]
        liveness = process.probe("/healthz")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            seen.append(process.probe())
            if seen[-1][0] == 200:
                break
            time.sleep(0.02)
        statuses = [status for status, _ in seen]
        assert statuses[-1] == 200, seen[-3:]
        assert statuses[0] == 503, "ready before the namespaces were listed"
        assert set(statuses[:-1]) == {503}
        assert "namespace" in seen[0][1].lower()
        assert liveness[0] == 200  # /healthz is liveness only: ok while not ready
        # Ready: every answer from now on knows every namespace.
        off = [i for i in range(NAMESPACES) if i % OFF_EVERY == 0]
        for index in off:
            obj = workload("Pod", namespace=f"ns-{index:04d}")
            response = process.review("/validate", review(obj))
            assert response["allowed"] is True, (index, response)
        for index in (1, 750, NAMESPACES - 1):
            obj = workload("Deployment", namespace=f"ns-{index:04d}")
            response = process.review("/mutate", review(obj))
            ops = json.loads(base64.b64decode(response["patch"]))
            assert {
                "op": "add",
                "path": "/spec/template/metadata/labels/resilio.tech~1cost-center",
                "value": f"cc-{index}",
            } in ops
        assert process.probe()[0] == 200
    finally:
        process.stop()
