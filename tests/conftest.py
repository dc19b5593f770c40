"""Shared fixtures: the Kubernetes emulator and the operator process.

Also the rule that CI never skips for a missing tool: a test marked
`@pytest.mark.needs_tool("promtool")` (tests/support/tools.py) is skipped where the
tool is missing and fails under `CI=true`, so a broken install step (scripts/bootstrap.sh,
scripts/build-image.sh) cannot pass as a green run with tests left out.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tests.support.kube_emulator import KubeEmulator
from tests.support.tools import require_tool


@pytest.fixture(scope="module")
def cluster() -> Iterator[KubeEmulator]:
    """One API emulator per test module, on loopback."""
    emulator = KubeEmulator().start()
    yield emulator
    emulator.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs_tool(*names): the test runs these tools (tests/support/tools.py); "
        "skipped where one is missing, failed under CI=true",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    # Threads' event loops stopped by the tests leave coroutines for the garbage collector.
    # Collected in the middle of pytest's terminal summary (which imports modules), their
    # finalizers once ended the session with CPython 3.11's "SystemError: AST constructor
    # recursion depth mismatch"; collected here, before the summary, they only warn.
    gc.collect()


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("needs_tool"):
        require_tool(*marker.args)
