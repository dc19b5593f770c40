"""Which DRA kinds the operator watches: discovery decides, and a missing API is said once."""

from __future__ import annotations

import logging

import pytest

from finops_operator.controllers.watch_feeds import served_dra_kinds
from finops_operator.domain.config import Config
from tests.support.fakes import FakeKube

BOTH = frozenset({"resourceclaims", "resourceslices", "deviceclasses"})


def drivers(**config: object) -> list[str]:
    return list(Config.model_validate(config).gpu_dra_drivers)


async def test_claims_and_slices_are_watched_where_resource_k8s_io_v1_is_served() -> None:
    kube = FakeKube(served={"resource.k8s.io/v1": BOTH})
    assert await served_dra_kinds(kube, drivers()) == ["ResourceClaim", "ResourceSlice"]


async def test_without_the_api_nothing_is_watched_and_the_log_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    assert await served_dra_kinds(FakeKube(), drivers()) == []
    said = [r.getMessage() for r in caplog.records if "resource.k8s.io/v1" in r.getMessage()]
    assert len(said) == 1 and "not counted" in said[0]


async def test_without_gpu_drivers_nothing_is_watched_nor_asked() -> None:
    kube = FakeKube(served={"resource.k8s.io/v1": BOTH})
    assert await served_dra_kinds(kube, drivers(gpuDraDrivers=[])) == []
    assert kube.calls == []


async def test_discovery_that_fails_is_asked_again_until_the_api_answers() -> None:
    # Assuming DRA served would keep a replica on a cluster without it unready for ever.
    kube = FakeKube(served={}, outage=False)
    kube.fail_next(0, times=3)
    assert await served_dra_kinds(kube, drivers(), retry_seconds=0.001) == []
    assert [c.error for c in kube.calls] == [0, 0, 0, None]
    kube = FakeKube(served={"resource.k8s.io/v1": BOTH})
    kube.fail_next(503)
    kinds = await served_dra_kinds(kube, drivers(), retry_seconds=0.001)
    assert kinds == ["ResourceClaim", "ResourceSlice"]
