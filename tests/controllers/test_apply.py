"""get → create → (409) get again → patch if different, against the in-memory API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from finops_operator.controllers.apply import Applied, apply
from finops_operator.errors import KubeError
from finops_operator.ports import KubePort
from tests.support.fakes import FakeKube

RULES = ("monitoring.coreos.com", "v1", "prometheusrules")
REPORTS = ("finops.resilio.tech", "v1alpha1", "costreports")


def rule(spec: str = "a") -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "r", "namespace": "team"},
        "spec": {"groups": [spec]},
    }


def spec_patch(desired: Mapping[str, Any]) -> Any:
    def diff(current: Mapping[str, Any]) -> dict[str, Any] | None:
        return None if current.get("spec") == desired["spec"] else {"spec": desired["spec"]}

    return diff


async def test_an_absent_object_is_created_and_nothing_else() -> None:
    kube = FakeKube()
    result = await apply(kube, RULES, rule(), spec_patch(rule()))
    assert result.applied is Applied.CREATED
    assert kube.verbs() == ["get", "create"]
    stored = kube.stored(RULES, "team", "r")
    assert stored is not None and stored["spec"] == {"groups": ["a"]}


async def test_an_object_already_as_wanted_is_not_written() -> None:
    kube = FakeKube()
    kube.put(RULES, rule())
    result = await apply(kube, RULES, rule(), spec_patch(rule()))
    assert result.applied is Applied.UNCHANGED
    assert kube.verbs() == ["get"] and kube.writes == []


async def test_an_object_that_differs_gets_only_the_difference() -> None:
    kube = FakeKube()
    kube.put(RULES, rule("old"))
    result = await apply(kube, RULES, rule("new"), spec_patch(rule("new")))
    assert result.applied is Applied.PATCHED
    assert result.patch == {"spec": {"groups": ["new"]}}
    [write] = kube.writes
    assert (write.verb, write.namespace, write.name) == ("patch", "team", "r")
    assert write.body == {"spec": {"groups": ["new"]}}


async def test_a_known_current_object_spares_the_read() -> None:
    kube = FakeKube()
    kube.put(RULES, rule("old"))
    await apply(kube, RULES, rule("new"), spec_patch(rule("new")), current=rule("old"))
    assert kube.verbs() == ["patch"]


async def test_losing_the_create_race_reads_the_winner_and_patches_it() -> None:
    kube = FakeKube()
    winner = rule("theirs")
    # The winner's object appears between our read and our create.
    original_get = kube.get

    async def get_then_race(*args: Any) -> dict[str, Any] | None:
        found = await original_get(*args)
        if found is None and kube.stored(RULES, "team", "r") is None:
            kube.put(RULES, winner)
        return found

    kube.get = get_then_race  # type: ignore[method-assign]
    result = await apply(kube, RULES, rule("ours"), spec_patch(rule("ours")))
    assert result.applied is Applied.PATCHED
    assert [c.verb for c in kube.calls] == ["get", "create", "get", "patch"]
    assert kube.calls[1].error == 409
    stored = kube.stored(RULES, "team", "r")
    assert stored is not None and stored["spec"] == {"groups": ["ours"]}


async def test_a_409_whose_object_cannot_be_read_again_is_raised() -> None:
    kube = FakeKube()
    kube.fail_next(409, on="create")
    with pytest.raises(KubeError) as raised:
        await apply(kube, RULES, rule(), spec_patch(rule()))
    assert raised.value.status == 409
    assert kube.verbs() == ["get", "create", "get"]


@pytest.mark.parametrize("status", [0, 403, 500])
async def test_other_create_failures_are_raised_without_a_retry(status: int) -> None:
    kube = FakeKube()
    kube.fail_next(status, on="create")
    with pytest.raises(KubeError) as raised:
        await apply(kube, RULES, rule(), spec_patch(rule()))
    assert raised.value.status == status
    assert kube.verbs() == ["get", "create"] and kube.writes == []


async def test_an_outage_raises_status_0_on_the_first_call() -> None:
    kube: KubePort = FakeKube(outage=True)
    with pytest.raises(KubeError) as raised:
        await apply(kube, RULES, rule(), spec_patch(rule()))
    assert raised.value.status == 0


def report(figure: int) -> dict[str, Any]:
    return {
        "apiVersion": "finops.resilio.tech/v1alpha1",
        "kind": "CostReport",
        "metadata": {"name": "team-a-2026-11"},
        "spec": {"period": "2026-11"},
        "status": {"total": figure},
    }


def status_diff(figure: int) -> Any:
    def diff(current: Mapping[str, Any]) -> dict[str, Any] | None:
        want = {"total": figure}
        return None if current.get("status") == want else {"status": want}

    return diff


async def test_a_created_object_with_a_status_subresource_gets_its_status_patched() -> None:
    kube = FakeKube()
    result = await apply(kube, REPORTS, report(7), status_diff(7), status=True)
    assert result.applied is Applied.CREATED
    assert kube.verbs() == ["get", "create", "patch_status"]
    stored = kube.stored(REPORTS, None, "team-a-2026-11")
    assert stored is not None and stored["status"] == {"total": 7}
    assert "status" not in result.current  # the create dropped it, as the API server does


async def test_a_status_diff_writes_the_status_subresource_only() -> None:
    kube = FakeKube()
    kube.put(REPORTS, report(1))
    result = await apply(kube, REPORTS, report(2), status_diff(2), status=True)
    assert result.applied is Applied.PATCHED
    [write] = kube.writes
    assert write.verb == "patch_status" and write.body == {"status": {"total": 2}}


async def test_a_status_already_as_wanted_is_not_written() -> None:
    kube = FakeKube()
    kube.put(REPORTS, report(2))
    result = await apply(kube, REPORTS, report(2), status_diff(2), status=True)
    assert result.applied is Applied.UNCHANGED and kube.writes == []


# --- a stale cache (issue 13, item 10) ----------------------------------------------------


async def test_a_cached_object_the_api_lost_is_created_again() -> None:
    """The API came back empty; the cache still has the object: 404, then read and create."""
    kube = FakeKube()
    cached = kube.put(RULES, rule("old"))
    kube.objects.clear()
    result = await apply(kube, RULES, rule("new"), spec_patch(rule("new")), current=cached)
    assert result.applied is Applied.CREATED
    assert kube.verbs() == ["patch", "get", "create"]
    stored = kube.stored(RULES, "team", "r")
    assert stored is not None and stored["spec"] == {"groups": ["new"]}


async def test_a_lost_object_with_a_status_gets_its_status_again() -> None:
    kube = FakeKube()
    report = {"metadata": {"name": "ml"}, "spec": {}, "status": {"total": "1"}}
    cached = kube.put(REPORTS, report)
    kube.objects.clear()

    def status(current: Mapping[str, Any]) -> dict[str, Any] | None:
        wanted = {"total": "2"}
        return None if current.get("status") == wanted else {"status": wanted}

    result = await apply(kube, REPORTS, report, status, current=cached, status=True)
    assert result.applied is Applied.CREATED
    stored = kube.stored(REPORTS, None, "ml")
    assert stored is not None and stored["status"] == {"total": "2"}


async def test_a_404_twice_is_raised_not_looped() -> None:
    kube = FakeKube()
    kube.put(RULES, rule("old"))
    kube.fail_next(404, on="patch", times=2)
    with pytest.raises(KubeError) as caught:
        await apply(kube, RULES, rule("new"), spec_patch(rule("new")))
    assert caught.value.status == 404
    assert kube.verbs() == ["get", "patch", "get", "patch"]
