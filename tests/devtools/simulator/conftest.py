"""The generated cluster the simulator's tests share."""

from __future__ import annotations

import pytest

from finops_devtools.simulator.generation import generate_scenario
from finops_devtools.simulator.world import Scenario
from tests.devtools.simulator.worlds import SMALL


@pytest.fixture(scope="module")
def small() -> Scenario:
    return generate_scenario(SMALL)
