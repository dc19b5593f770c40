"""The operator's in-memory inventory of GPU pods and GPU nodes, fed by watch events.

Only running GPU pods and GPU nodes are kept, as small frozen records, so the
inventory of a 10,000-pod cluster stays small. Nothing here writes anywhere.
GPUs handed out through Dynamic Resource Allocation add two more caches: the
allocated ResourceClaims with GPU devices and the GPU devices of the
ResourceSlices (`dra`). A pod's DRA GPUs are resolved from them when read, so a
claim's allocation or a slice's attributes changing moves the pod's series too.

`version` moves only when a record changes (a pod's status update that leaves
its GPUs, node and labels alone keeps the record, and the version): `/metrics`
renders the inventory once per version, not once per scrape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from finops_operator.domain.conventions import DEFAULT_DRA_DRIVERS
from finops_operator.domain.gpus.allocation import NodeGpus, PodGpus, node_gpus, pod_gpus
from finops_operator.domain.gpus.dra import (
    DeviceKey,
    DraClaim,
    DraDevice,
    claim_gpus,
    held_through_claims,
    slice_capacity,
    slice_devices,
)
from finops_operator.domain.workloads import GpuMatcher

K = TypeVar("K")
V = TypeVar("V")


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


@dataclass
class Inventory:
    is_gpu: GpuMatcher
    dra_drivers: frozenset[str] = frozenset(DEFAULT_DRA_DRIVERS)
    pods: dict[tuple[str, str], PodGpus] = field(default_factory=dict)
    nodes: dict[str, NodeGpus] = field(default_factory=dict)
    claims: dict[tuple[str, str], DraClaim] = field(default_factory=dict)
    slices: dict[str, dict[DeviceKey, DraDevice]] = field(default_factory=dict)  # by slice name
    devices: dict[DeviceKey, DraDevice] = field(default_factory=dict)  # of every slice
    # What each slice offers: (node, model, driver, devices), for the capacity series.
    offered: dict[str, tuple[tuple[str, str, str, Decimal], ...]] = field(default_factory=dict)
    version: int = 0  # moves whenever a pod's, node's, GPU claim's or GPU slice's record changes

    def _keep(self, records: dict[K, V], key: K, record: V | None) -> None:
        """Store, replace or drop a record; the version moves only when it changed."""
        if record is None:
            if records.pop(key, None) is not None:
                self.version += 1
        elif records.get(key) != record:
            records[key] = record
            self.version += 1

    def observe_pod(self, event_type: str | None, pod: Mapping[str, Any]) -> None:
        held = None if event_type == "DELETED" else pod_gpus(pod, self.is_gpu)
        self._keep(self.pods, _key(pod), held)

    def observe_node(self, event_type: str | None, node: Mapping[str, Any]) -> None:
        name = str((node.get("metadata") or {}).get("name", ""))
        gpus = None if event_type == "DELETED" else node_gpus(node, self.is_gpu)
        self._keep(self.nodes, name, gpus)

    def observe_claim(self, event_type: str | None, claim: Mapping[str, Any]) -> None:
        held = None if event_type == "DELETED" else claim_gpus(claim, self.dra_drivers)
        self._keep(self.claims, _key(claim), held)

    def observe_slice(self, event_type: str | None, resource_slice: Mapping[str, Any]) -> None:
        name = _key(resource_slice)[1]
        found = {} if event_type == "DELETED" else slice_devices(resource_slice, self.dra_drivers)
        if self.slices.get(name, {}) == found:
            return
        for device in self.slices.pop(name, {}):
            self.devices.pop(device, None)
        self.offered.pop(name, None)
        if found:
            self.slices[name] = found
            self.devices.update(found)
            self.offered[name] = slice_capacity(resource_slice, found)
        self.version += 1

    def claimed(self, pod: PodGpus) -> tuple[tuple[str, str, Decimal], ...]:
        """(driver, model, devices) the pod holds through its ResourceClaims."""
        return held_through_claims(pod.namespace, pod.pod, pod.claims, self.claims, self.devices)

    def dra_capacity(self) -> list[tuple[tuple[str, str, str], Decimal]]:
        """(node, model, driver) and the GPUs the ResourceSlices offer there."""
        total: dict[tuple[str, str, str], Decimal] = {}
        for offered in self.offered.values():
            for node, model, driver, devices in offered:
                key = (node, model, driver)
                total[key] = total.get(key, Decimal(0)) + devices
        return sorted(total.items())

    def dra_models(self) -> set[str]:
        return {device.model for device in self.devices.values()}
