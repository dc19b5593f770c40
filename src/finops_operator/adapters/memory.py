"""The operator's memory: the collector's pace, and free pages given back after the sync.

**The cyclic collector's pace.** CPython collects its youngest generation every
700 container allocations, and each collection walks every young object still
alive. A list page of 500 pods is some 100,000 new dicts, lists and strings,
none of them in a cycle and all freed by reference counting once the page is
handed out. Some 140 collections ran while each page was decoded, and with the
older generations they set off they doubled the time of a page at 50,000 GPU
pods (docs/benchmarks.md, Fleet scale). `pace_garbage_collector`
collects the youngest generation every 50,000 allocations instead: a page is
then mostly gone before the collector looks, and what a cycle leaks waits at
most that long.

**Free pages after the sync.**

The sync is the operator's memory peak: pages of listed objects, kopf's first
events, the audit's first writes, all alive at once. Python frees them, but
glibc's malloc keeps most of the freed pages mapped (in its arenas, one per
thread that allocated), so the RSS stays at the peak for the life of the
process although the live heap is a fraction of it (docs/benchmarks.md, Fleet
scale, has the figures). `malloc_trim(0)` returns those free pages. It is a
glibc call: on another C library (musl) it does not exist and nothing happens.
`release_after_sync` does it once, when the operator is first ready.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import resource
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)


YOUNG_GENERATION_THRESHOLD = 50_000


def pace_garbage_collector() -> None:
    """Collect the youngest generation every YOUNG_GENERATION_THRESHOLD allocations."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, older, oldest)


def release_free_memory() -> bool:
    """Collect garbage, then hand free heap pages back to the kernel; whether any were."""
    gc.collect()
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return False
    return bool(trim(0))


def resident_megabytes() -> float | None:
    """This process's resident set size (Linux), for the log line after a trim."""
    try:
        pages = int(Path("/proc/self/statm").read_text(encoding="ascii").split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * resource.getpagesize() / 2**20


async def release_after_sync(
    synced: Callable[[], bool], settle_seconds: float = 5.0, check_seconds: float = 1.0
) -> bool:
    """Once `synced()`, and the sync's first writes had `settle_seconds` to finish, give
    the freed pages back (`release_free_memory`); whether any were."""
    while not synced():
        await asyncio.sleep(check_seconds)
    before = resident_megabytes()
    await asyncio.sleep(settle_seconds)
    released = release_free_memory()
    logger.info("Synced: resident memory %s MB, %s MB after giving free pages back",
                f"{before:.0f}" if before else "?", f"{resident_megabytes() or 0:.0f}")  # fmt: skip
    return released
