"""Shared fixtures: the Kubernetes emulator and the operator process.

Also the rule that CI never skips for a missing tool: a test that skips because a
package `scripts/bootstrap.sh` installs is absent (Prometheus, Chromium) fails under
`CI=true`, so a broken install step cannot pass as a green run with tests left out.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

import pytest

from tests.support.kube_emulator import KubeEmulator


@pytest.fixture(scope="module")
def cluster() -> Iterator[KubeEmulator]:
    """One API emulator per test module, on loopback."""
    emulator = KubeEmulator().start()
    yield emulator
    emulator.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and os.environ.get("CI") and "scripts/bootstrap.sh" in str(report.longrepr):
        report.outcome = "failed"
        missing = report.longrepr
        report.longrepr = f"CI=true: a tool scripts/bootstrap.sh installs is missing ({missing})"
    return report
