"""The in-memory FakeKube against the real API server: the same cases, the same answers.

The controllers' unit tests trust `tests/support/fakes.FakeKube` to answer as
kube-apiserver does: None for what is absent, 409 on creating what exists or on
a patch guarded by a stale resourceVersion, 404 on patching what is absent, a
status subresource that a plain patch cannot touch. Each case here runs once
against the fake and once against `adapters.kube_api.KubeApi` on the e2e
control plane, so the fake cannot drift from the server unnoticed.

What the fake leaves out on purpose: schema validation and pruning (the cases
use fields the CRDs declare) and admission (the Job here asks for no GPU, so no
webhook judges it).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from finops_operator.adapters import kube_credentials
from finops_operator.adapters.kube_api import KubeApi
from finops_operator.domain import conventions
from finops_operator.errors import KubeError
from finops_operator.ports import KubePort
from tests.e2e.conftest import Cluster
from tests.support.fakes import FakeKube

REPORTS = (conventions.API_GROUP, conventions.API_VERSION, "costreports")


@dataclass
class Side:
    """One implementation of the port, and how to seed a workload into it."""

    port: KubePort
    seed_workload: Callable[[str, str, dict[str, Any]], None]  # kind, namespace, object


def real_side(cluster: Cluster) -> tuple[Side, KubeApi]:
    api = KubeApi(kube_credentials.load(cluster.kubeconfig), name="contract")

    def seed(kind: str, namespace: str, obj: dict[str, Any]) -> None:
        cluster.apply({**obj, "metadata": {**obj["metadata"], "namespace": namespace}})

    return Side(api, seed), api


def fake_side() -> Side:
    fake = FakeKube()

    def seed(kind: str, namespace: str, obj: dict[str, Any]) -> None:
        fake.put_workload(kind, namespace, obj["metadata"]["name"], obj)

    return Side(fake, seed)


@pytest.fixture(scope="module")
def namespace(cluster: Cluster) -> str:
    return cluster.namespace(f"contract-{uuid.uuid4().hex[:6]}")


@pytest.fixture(params=["fake", "real"])
async def side(request: pytest.FixtureRequest, cluster: Cluster) -> AsyncIterator[Side]:
    if request.param == "fake":
        yield fake_side()
        return
    real, api = real_side(cluster)
    try:
        yield real
    finally:
        api.close()


def report(name: str) -> dict[str, Any]:
    return {
        "apiVersion": conventions.API_GROUP_VERSION,
        "kind": "CostReport",
        "metadata": {"name": name, "labels": {"contract": "yes"}},
        "spec": {"scope": "cluster", "period": "2026-11"},
        "status": {"totalCost": "1.00"},
    }


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_a_get_of_what_is_absent_is_none(side: Side) -> None:
    assert await side.port.get(*REPORTS, None, unique("absent")) is None


async def test_a_create_returns_the_stored_object_without_its_status(side: Side) -> None:
    name = unique("create")
    try:
        stored = await side.port.create(*REPORTS, report(name))
        assert stored["metadata"]["name"] == name
        assert stored["metadata"]["resourceVersion"] and stored["metadata"]["uid"]
        assert "status" not in stored  # the status subresource ignores it on create
        got = await side.port.get(*REPORTS, None, name)
        assert got is not None and got["spec"] == report(name)["spec"]
    finally:
        await side.port.delete(*REPORTS, None, name)


async def test_creating_what_exists_is_409(side: Side) -> None:
    name = unique("twice")
    try:
        await side.port.create(*REPORTS, report(name))
        with pytest.raises(KubeError) as refused:
            await side.port.create(*REPORTS, report(name))
        assert refused.value.status == 409
    finally:
        await side.port.delete(*REPORTS, None, name)


async def test_patching_what_is_absent_is_404(side: Side) -> None:
    with pytest.raises(KubeError) as refused:
        await side.port.patch(*REPORTS, None, unique("absent"), {"metadata": {"labels": {}}})
    assert refused.value.status == 404


async def test_a_stale_resource_version_guards_a_patch(side: Side) -> None:
    name = unique("guard")
    try:
        first = await side.port.create(*REPORTS, report(name))
        version = first["metadata"]["resourceVersion"]
        second = await side.port.patch(
            *REPORTS, None, name, {"metadata": {"labels": {"step": "one"}}}
        )
        assert second["metadata"]["resourceVersion"] != version
        with pytest.raises(KubeError) as refused:
            await side.port.patch(
                *REPORTS,
                None,
                name,
                {"metadata": {"resourceVersion": version, "labels": {"step": "two"}}},
            )
        assert refused.value.status == 409
        current = await side.port.get(*REPORTS, None, name)
        assert current is not None and current["metadata"]["labels"]["step"] == "one"
    finally:
        await side.port.delete(*REPORTS, None, name)


async def test_status_changes_only_through_the_status_subresource(side: Side) -> None:
    name = unique("status")
    try:
        await side.port.create(*REPORTS, report(name))
        plain = await side.port.patch(*REPORTS, None, name, {"status": {"totalCost": "2.00"}})
        assert "status" not in plain
        patched = await side.port.patch(
            *REPORTS, None, name, {"status": {"totalCost": "3.00"}}, status=True
        )
        assert patched["status"] == {"totalCost": "3.00"}
        ignored = await side.port.patch(
            *REPORTS, None, name, {"metadata": {"labels": {"x": "y"}}}, status=True
        )
        assert "x" not in ignored["metadata"].get("labels", {})
    finally:
        await side.port.delete(*REPORTS, None, name)


async def test_a_merge_patch_null_removes_a_key(side: Side) -> None:
    name = unique("null")
    try:
        await side.port.create(*REPORTS, report(name))
        patched = await side.port.patch(
            *REPORTS, None, name, {"metadata": {"labels": {"contract": None}}}
        )
        assert "contract" not in (patched["metadata"].get("labels") or {})
    finally:
        await side.port.delete(*REPORTS, None, name)


async def test_deleting_what_is_absent_is_quiet(side: Side) -> None:
    await side.port.delete(*REPORTS, None, unique("absent"))


async def test_workloads_patch_and_read_back(side: Side, namespace: str) -> None:
    name = unique("job")
    assert await side.port.get_workload("Pod", namespace, name) is None
    with pytest.raises(KubeError) as refused:
        await side.port.patch_workload("Pod", namespace, name, {"metadata": {"labels": {}}})
    assert refused.value.status == 404
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}],
                }
            },
        },
    }
    side.seed_workload("Job", namespace, job)
    await side.port.patch_workload(
        "Job", namespace, name, {"metadata": {"annotations": {"finops.resilio.tech/x": "1"}}}
    )
    stored = await side.port.get_workload("Job", namespace, name)
    assert stored is not None
    assert stored["metadata"]["annotations"]["finops.resilio.tech/x"] == "1"
    assert stored["spec"]["suspend"] is True


async def test_an_event_of_a_name_already_posted_is_409(side: Side, namespace: str) -> None:
    name = unique("event")
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {
            "kind": "ConfigMap",
            "name": "any",
            "namespace": namespace,
            "apiVersion": "v1",
        },
        "reason": "Contract",
        "message": "posted once",
        "type": "Normal",
    }
    await side.port.create_event(namespace, event)
    with pytest.raises(KubeError) as refused:
        await side.port.create_event(namespace, event)
    assert refused.value.status == 409


async def test_a_secret_is_created_once(side: Side, namespace: str) -> None:
    name = unique("secret")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"k": "dg=="},
    }
    assert await side.port.get_secret(namespace, name) is None
    await side.port.create_secret(namespace, secret)
    found = await side.port.get_secret(namespace, name)
    assert found is not None and found["data"] == {"k": "dg=="}
    with pytest.raises(KubeError) as refused:
        await side.port.create_secret(namespace, secret)
    assert refused.value.status == 409
