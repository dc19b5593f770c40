"""The collector's pace, and free heap pages given back after the sync."""

from __future__ import annotations

import gc
import weakref

from finops_operator.adapters.memory import (
    YOUNG_GENERATION_THRESHOLD,
    pace_garbage_collector,
    release_after_sync,
    release_free_memory,
    resident_megabytes,
)


def test_freed_memory_that_the_allocator_kept_goes_back_to_the_kernel() -> None:
    before = resident_megabytes()
    assert before is not None and before > 0
    # 200 MB of objects, of which one in a hundred survives: free() alone cannot shrink a
    # heap with live objects all along it (the sync's pattern), so the pages stay resident.
    garbage = [bytearray(1000) for _ in range(200_000)]
    survivors = garbage[::100]
    peak = resident_megabytes()
    assert peak is not None and peak > before + 100
    del garbage
    kept = resident_megabytes()
    assert kept is not None and kept > peak - 50
    assert release_free_memory() is True
    after = resident_megabytes()
    assert after is not None and after < kept - 100
    assert len(survivors) == 2_000 and all(len(b) == 1000 for b in survivors)


def test_the_collector_leaves_a_page_of_fresh_objects_alone_and_still_collects_cycles() -> None:
    threshold = gc.get_threshold()
    try:
        pace_garbage_collector()
        assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, *threshold[1:])
        gc.collect()
        before = gc.get_stats()[0]["collections"]
        page = [{"metadata": {"name": f"p{i}"}, "spec": [i]} for i in range(10_000)]
        assert gc.get_stats()[0]["collections"] == before  # 20,000 containers: no collection
        del page

        class Cycle:
            def __init__(self) -> None:
                self.me = self

        gone = weakref.ref(Cycle())
        alive = [[] for _ in range(YOUNG_GENERATION_THRESHOLD + 1000)]  # enough allocations
        assert gone() is None  # a cycle is still found, at the new pace
        assert len(alive) > YOUNG_GENERATION_THRESHOLD
    finally:
        gc.set_threshold(*threshold)


async def test_free_pages_go_back_once_after_the_sync_not_before() -> None:
    synced = False
    checks = 0

    def ready() -> bool:
        nonlocal checks, synced
        checks += 1
        synced = synced or checks == 3
        return synced

    assert await release_after_sync(ready, settle_seconds=0, check_seconds=0) is True
    assert checks == 3
