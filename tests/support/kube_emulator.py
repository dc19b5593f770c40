"""The Kubernetes API emulator of the tests: see finops_devtools.devcluster.emulator."""

from __future__ import annotations

from finops_devtools.devcluster import eventually
from finops_devtools.devcluster.emulator import (
    COSTREPORTS,
    PLURAL_OF_KIND,
    RESOURCES,
    VERBS,
    KubeEmulator,
)
from finops_devtools.errors import WaitTimeoutError

__all__ = [
    "COSTREPORTS",
    "PLURAL_OF_KIND",
    "RESOURCES",
    "VERBS",
    "KubeEmulator",
    "WaitTimeoutError",
    "eventually",
]
