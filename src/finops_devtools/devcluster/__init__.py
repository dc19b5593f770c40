"""A cluster on one machine, for the demo, the end-to-end tests and the benchmarks.

- `emulator`: a Kubernetes API (kmock's KubernetesEmulator) on loopback, in a
  background thread, with the API-server behaviours kopf relies on;
- `prometheus_runner`: a real Prometheus (Debian's `prometheus`) over a TSDB
  backfilled from the cluster simulator with promtool;
- `operator_runner`: `finops-operator run` as a real process against the emulator,
  with its own certificate and free ports;
- `api_server`: what kube-apiserver does with the admission webhooks (mutate,
  apply the patch, validate, then store), and kubectl's way of reporting it.

Everything listens on 127.0.0.1 only. kmock is needed by `emulator` (the `demo`
and `test` extras install it); nothing here is used by the operator itself.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from finops_devtools.errors import WaitTimeoutError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 20 s; nothing when there is no process or it is gone."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def log_tail(path: Path) -> str:
    """The last 5,000 characters of a process' log file, or '' when there is none."""
    try:
        return path.read_text(errors="replace")[-5000:]
    except OSError:
        return ""


def eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy; WaitTimeoutError with its last result."""
    deadline = time.monotonic() + timeout
    result = None
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise WaitTimeoutError(f"condition not met within {timeout}s; last result: {result!r}")


async def eventually_async(
    check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01
) -> Any:
    """`eventually` for a test on the event loop: polls without blocking the loop it waits on."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    result = None
    while loop.time() < deadline:
        result = check()
        if result:
            return result
        await asyncio.sleep(interval)
    raise WaitTimeoutError(f"condition not met within {timeout}s; last result: {result!r}")
