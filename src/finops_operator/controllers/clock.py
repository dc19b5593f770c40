"""The system clock behind `ports.ClockPort`: what a controller's loop uses outside tests.

Loops take their clock as a port so that a unit test drives their waits and their
"now" instead of patching `asyncio.sleep` for the whole process.
"""

from __future__ import annotations

import asyncio
import datetime


class SystemClock:
    """UTC wall time and `asyncio.sleep`."""

    def now(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
