"""Shared fixtures: the Kubernetes emulator and the operator process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.kube_emulator import KubeEmulator


@pytest.fixture(scope="module")
def cluster() -> Iterator[KubeEmulator]:
    """One API emulator per test module, on loopback."""
    emulator = KubeEmulator().start()
    yield emulator
    emulator.stop()
