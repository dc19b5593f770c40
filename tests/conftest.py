"""Shared fixtures: the Kubernetes emulator and the operator process.

Also the rule that CI never skips for a missing tool: a test that skips because a
package `scripts/bootstrap.sh` installs is absent (Prometheus, Chromium), or something
`scripts/build-image.sh` installs and builds (podman, the image), fails under
`CI=true`, so a broken install step cannot pass as a green run with tests left out.
A skip reason names the script that provides what is missing.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

import pytest

from tests.support.kube_emulator import KubeEmulator

# The scripts CI runs before the tests (scripts/test.sh): what they provide is never absent.
PROVIDERS = ("scripts/bootstrap.sh", "scripts/build-image.sh")


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
    if report.skipped and os.environ.get("CI"):
        provider = next((s for s in PROVIDERS if s in str(report.longrepr)), None)
        if provider is not None:
            report.outcome = "failed"
            missing = report.longrepr
            report.longrepr = f"CI=true: something {provider} provides is missing ({missing})"
    return report
