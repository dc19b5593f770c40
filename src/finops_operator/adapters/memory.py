"""Give the C allocator's free pages back to the kernel once the initial sync is over.

The sync is the operator's memory peak: pages of listed objects, kopf's first
events, the audit's first writes, all alive at once. Python frees them, but
glibc's malloc keeps most of the freed pages mapped (in its arenas, one per
thread that allocated), so the RSS stays at the peak for the life of the
process although the live heap is a fraction of it (docs/benchmarks.md, Fleet
scale, has the figures). `malloc_trim(0)` returns those free pages. It is a
glibc call: on another C library (musl) it does not exist and nothing happens.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import resource
from pathlib import Path

logger = logging.getLogger(__name__)


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
