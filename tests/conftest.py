"""Shared fixtures: the Kubernetes emulator and the operator process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kube_emulator import KubeEmulator
from tests.operator_process import OperatorProcess


@pytest.fixture
def cluster() -> Iterator[KubeEmulator]:
    emulator = KubeEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def start_operator(
    cluster: KubeEmulator, tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    started: list[OperatorProcess] = []

    def start(**config: Any) -> OperatorProcess:
        process = OperatorProcess(cluster, tmp_path / f"operator-{len(started)}", config)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()
