"""The Kubernetes API emulator of the tests: see finops_devtools.devcluster.emulator."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

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
    "store_namespaces",
]


def store_namespaces(
    cluster: KubeEmulator, count: int, namespace: Callable[[int], dict[str, Any]]
) -> None:
    """`count` namespaces, `namespace(i)` each: the first created over HTTP, the rest stored
    directly (creating each over HTTP costs the emulator time linear in what it holds)."""
    cluster.create(namespace(0))
    assert cluster.emulator is not None
    objects = cluster.emulator.objects
    first = namespace(0)["metadata"]["name"]
    resource = next(key[0] for key in objects if key[2] == first)
    for index in range(1, count):
        obj = namespace(index)
        obj["metadata"]["uid"] = str(uuid.uuid4())
        objects[(resource, None, obj["metadata"]["name"])] = obj
