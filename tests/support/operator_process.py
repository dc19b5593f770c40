"""`finops-operator run` as a real process: see finops_devtools.devcluster.operator_runner."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from finops_devtools.devcluster import free_port
from finops_devtools.devcluster.emulator import KubeEmulator
from finops_devtools.devcluster.operator_runner import OperatorProcess
from finops_devtools.errors import OperatorError

__all__ = ["OperatorError", "OperatorProcess", "free_port", "running_operator"]


@contextlib.contextmanager
def running_operator(
    cluster: KubeEmulator,
    factory: pytest.TempPathFactory,
    config: dict[str, Any],
    **options: Any,
) -> Iterator[OperatorProcess]:
    """`finops-operator run` against `cluster` with `config`, stopped on exit, always."""
    process = OperatorProcess(cluster, factory.mktemp("operator"), config, **options)
    try:
        yield process.start()
    finally:
        process.stop()
