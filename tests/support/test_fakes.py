"""The in-memory API keeps the semantics the controllers rely on (those of KubeApi)."""

from __future__ import annotations

from typing import Any

import pytest

from finops_operator.errors import KubeError, PrometheusError
from tests.support.fakes import FakeKube, FakePrometheus, merge_patch

LEASES = ("coordination.k8s.io", "v1", "leases")
REPORTS = ("finops.resilio.tech", "v1alpha1", "costreports")


def lease() -> dict[str, Any]:
    return {"metadata": {"name": "l", "namespace": "ns"}, "spec": {"holderIdentity": "a"}}


def test_merge_patch_follows_rfc_7386() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": None, "e": 4}, "d": [1]}) == {
        "a": {"c": 2, "e": 4},
        "d": [1],
    }


async def test_every_write_bumps_the_resource_version_and_a_stale_guard_is_a_409() -> None:
    kube = FakeKube()
    created = await kube.create(*LEASES, lease())
    patched = await kube.patch(*LEASES, "ns", "l", {"spec": {"holderIdentity": "b"}})
    assert int(patched["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    with pytest.raises(KubeError) as raised:
        stale = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}}
        await kube.patch(*LEASES, "ns", "l", {**stale, "spec": {"holderIdentity": "c"}})
    assert raised.value.status == 409
    assert kube.calls[-1].error == 409 and len(kube.writes) == 2


async def test_absent_objects_read_as_none_refuse_patches_and_delete_quietly() -> None:
    kube = FakeKube()
    assert await kube.get(*LEASES, "ns", "l") is None
    with pytest.raises(KubeError) as raised:
        await kube.patch(*LEASES, "ns", "l", {"spec": {}})
    assert raised.value.status == 404
    await kube.delete(*LEASES, "ns", "l")
    with pytest.raises(KubeError):
        await kube.patch_workload("Deployment", "ns", "gone", {})


async def test_a_status_subresource_is_written_only_through_status_patches() -> None:
    kube = FakeKube()
    body = {"metadata": {"name": "r"}, "spec": {"a": 1}, "status": {"x": 1}}
    assert "status" not in await kube.create(*REPORTS, body)
    await kube.patch(*REPORTS, None, "r", {"status": {"x": 2}, "spec": {"a": 2}})
    stored = kube.stored(REPORTS, None, "r") or {}
    assert stored["spec"] == {"a": 2} and "status" not in stored
    await kube.patch(*REPORTS, None, "r", {"status": {"x": 3}, "spec": {"a": 3}}, status=True)
    stored = kube.stored(REPORTS, None, "r") or {}
    assert (stored["spec"], stored["status"]) == ({"a": 2}, {"x": 3})


async def test_injected_failures_hit_the_named_verb_once_and_an_outage_hits_all() -> None:
    kube = FakeKube()
    kube.fail_next(500, on="create")
    assert await kube.get(*LEASES, "ns", "l") is None
    with pytest.raises(KubeError):
        await kube.create(*LEASES, lease())
    await kube.create(*LEASES, lease())
    kube.outage = True
    with pytest.raises(KubeError) as raised:
        await kube.get(*LEASES, "ns", "l")
    assert raised.value.status == 0


def test_the_fake_prometheus_answers_by_expression_and_fails_on_demand() -> None:
    prometheus = FakePrometheus(answers={"up": [{"metric": {}, "value": [0, "1"]}]})
    assert prometheus.evaluate("up", 0) == [{"metric": {}, "value": [0, "1"]}]
    assert prometheus.evaluate_range("other", 0, 1, 1) == []
    prometheus.fail_next()
    with pytest.raises(PrometheusError, match="cannot reach"):
        prometheus.evaluate("up", 0)
    assert [q.expr for q in prometheus.log] == ["up", "other"]
