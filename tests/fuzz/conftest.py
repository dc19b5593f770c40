"""A fixed example budget for the property-based tests, so that CI time stays bounded.

Every test in tests/fuzz runs under the `finops-ci` profile: 200 examples, no
per-example deadline (the shared CI machines are slow and uneven), and derandomized,
so a run is reproducible and a failure seen in CI is seen again locally. Set
HYPOTHESIS_PROFILE=finops-deep to search longer on a workstation.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "finops-ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "finops-deep",
    max_examples=5000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "finops-ci"))
