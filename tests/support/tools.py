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
import signal
import subprocess
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


# Built in the background by scripts/test.sh (the README's test command, `.ci/run`), whose
# cold build takes 6 to 37 minutes here (docs/multi-cluster.md): under that command a
# test that needs one waits for its build (`FINOPS_THANOS_BUILD_LOG` names the build's
# log); under a bare `pytest` a missing one is a skip, even with CI=true.
BACKGROUND_BUILD_TIMEOUT: Final = 3600  # seconds a test waits: a build that long has hung
BUILT_IN_BACKGROUND: Final = {"thanos": ("scripts/build-thanos.sh", "FINOPS_THANOS_BUILD_LOG")}


def _wait_for_background_build(name: str) -> None:
    script, log_variable = BUILT_IN_BACKGROUND[name]
    log = os.environ.get(log_variable)
    if not log:
        pytest.skip(f"needs {name} ({script}), which scripts/test.sh builds in the background")
    # The script takes the build's lock, so this waits for scripts/test.sh's build and
    # then answers from the cache (or builds, if that build failed).
    # A session of its own, so that a timeout stops the script and whatever it waits in
    # (its flock, its go build) together.
    waiting = subprocess.Popen(
        [str(ROOT / script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        _, stderr = waiting.communicate(timeout=BACKGROUND_BUILD_TIMEOUT)
        said, failed = stderr.strip()[-2000:], waiting.returncode != 0
    except subprocess.TimeoutExpired:
        os.killpg(waiting.pid, signal.SIGKILL)
        waiting.communicate()
        said, failed = f"still building after {BACKGROUND_BUILD_TIMEOUT} s", True
    if failed or tool_path(name) is None:
        lines = Path(log).read_text(errors="replace").splitlines() if Path(log).is_file() else []
        tail = "\n".join(lines[-20:])
        _missing(f"{name}: {script} failed ({said}); the background build's log {log}:\n{tail}")


def require_tool(*names: str) -> None:
    """Skip (fail under CI=true) unless every tool in `names` is there; a tool scripts/test.sh
    builds in the background (`BUILT_IN_BACKGROUND`) is waited for under that command."""
    for name in names:
        if name in BUILT_IN_BACKGROUND and tool_path(name) is None:
            _wait_for_background_build(name)
    missing = [name for name in names if tool_path(name) is None]
    if missing:
        _missing("; ".join(f"{name} ({TOOLS[name][1]})" for name in missing))


def require_file(path: Path, provided_by: str) -> None:
    """Skip (fail under CI=true) unless `path` is there; `provided_by` says what puts it there."""
    if not path.is_file():
        _missing(f"{path} ({provided_by})")
