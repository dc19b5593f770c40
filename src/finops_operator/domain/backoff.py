"""Exponential backoff: how long to wait after so many failures in a row.

The CostReport refresh and the policy-report writer retry what failed, sooner at
first and less often the longer it lasts; both wait the same way, written here.
"""

from __future__ import annotations

# Past this many doublings every delay is capped anyway; a float would overflow at 1024.
_MAX_DOUBLINGS = 64


def backoff_delay(failures: int, first: float, most: float) -> float:
    """The wait after `failures` failures in a row: `first` after one, doubled each time
    after that, never more than `most` (however long the outage lasts)."""
    doublings = min(max(failures - 1, 0), _MAX_DOUBLINGS)
    return float(min(most, first * 2**doublings))
