"""The tools the tests run, where they are found, and the one way a test says it needs one.

`@pytest.mark.needs_tool("promtool")` on a test, a class or a module
(`pytestmark`), or `require_tool("prometheus")` inside a fixture (`require_file`
for a file a script fetches, such as the upstream CRDs): where the tool
is missing the test is skipped, and under `CI=true` it fails, whatever anyone
would have written as a skip's reason. The tools are those `scripts/bootstrap.sh`
installs (Debian's prometheus and chromium, the focus-validator), podman
(scripts/build-image.sh) and kubectl, so
a broken install step never passes as a green run with tests left out.
tests/conftest.py applies the marker.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final, NoReturn

import pytest

from finops_devtools.devcluster.prometheus_runner import PROMETHEUS, PROMTOOL

ROOT: Final = Path(__file__).resolve().parents[2]
CHROMIUM: Final = shutil.which("chromium") or "/usr/bin/chromium"
FOCUS_VALIDATOR: Final = ROOT / ".venv-focus" / "bin" / "focus-validator"


def _existing(path: Path | str) -> str | None:
    return str(path) if Path(path).exists() else None


def _thanos() -> str | None:
    built = sorted(ROOT.glob(".cache/thanos/*/thanos"))
    return str(built[-1]) if built else None


def _kubectl() -> str | None:
    built = sorted(ROOT.glob(".cache/controlplane/*/kubectl"))
    return shutil.which("kubectl") or (str(built[-1]) if built else None)


# Each tool: how it is found, and what puts it there.
TOOLS: Final[Mapping[str, tuple[Callable[[], str | None], str]]] = {
    "prometheus": (lambda: shutil.which(PROMETHEUS), "Debian's prometheus: scripts/bootstrap.sh"),
    "promtool": (lambda: shutil.which(PROMTOOL), "Debian's prometheus: scripts/bootstrap.sh"),
    "chromium": (lambda: _existing(CHROMIUM), "Debian's chromium: scripts/bootstrap.sh"),
    "focus-validator": (
        lambda: _existing(FOCUS_VALIDATOR),
        "scripts/focus-validator.sh, run by scripts/bootstrap.sh",
    ),
    "kubectl": (_kubectl, "on $PATH, or scripts/build-controlplane.sh"),
    "podman": (lambda: shutil.which("podman"), "scripts/build-image.sh installs it"),
    "thanos": (_thanos, "scripts/build-thanos.sh"),
}

needs_tool = pytest.mark.needs_tool


def tool_path(name: str) -> str | None:
    """Where the tool `name` is, or None when it is missing."""
    if name not in TOOLS:
        raise KeyError(f"unknown tool {name!r}: tests/support/tools.py knows {sorted(TOOLS)}")
    find, _ = TOOLS[name]
    return find()


def _missing(said: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"CI=true: something the tests need is missing: {said}", pytrace=False)
    pytest.skip(f"needs {said}")


# Built by hand, outside `.ci/run`, like the peers of the benchmarks: a missing one is a
# skip even under CI=true. Thanos's cold build took 20 to 37 minutes here
# (docs/multi-cluster.md), more than `.ci/run`'s cold budget leaves.
OUTSIDE_CI: Final = frozenset({"thanos"})


def require_tool(*names: str) -> None:
    """Skip (fail under CI=true) unless every tool in `names` is there; the tools built
    outside `.ci/run` (`OUTSIDE_CI`) are only ever a skip."""
    missing = [name for name in names if tool_path(name) is None]
    said = "; ".join(f"{name} ({TOOLS[name][1]})" for name in missing)
    if missing and set(missing) <= OUTSIDE_CI:
        pytest.skip(f"needs {said}, built outside .ci/run")
    if missing:
        _missing(said)


def require_file(path: Path, provided_by: str) -> None:
    """Skip (fail under CI=true) unless `path` is there; `provided_by` says what puts it there."""
    if not path.is_file():
        _missing(f"{path} ({provided_by})")
