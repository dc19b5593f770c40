"""Giving free heap pages back after the sync: the resident set shrinks, nothing breaks."""

from __future__ import annotations

from finops_operator.adapters.memory import release_free_memory, resident_megabytes


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
