"""Waiting for what the operator does in the background, with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from finops_devtools.errors import DemoError


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise DemoError(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
