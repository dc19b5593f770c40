"""GPUs a pod holds through Dynamic Resource Allocation (`resource.k8s.io/v1`).

A pod that gets its GPU from a ResourceClaim asks for no extended resource, so
`allocation.pod_gpus` sees nothing in its containers. Three objects say what it
holds:

- the pod's `spec.resourceClaims`: a ResourceClaim by name (`resourceClaimName`)
  or a ResourceClaimTemplate (`resourceClaimTemplateName`), whose generated
  claim is named in `status.resourceClaimStatuses`;
- the ResourceClaim: `status.allocation.devices.results[]` names each device by
  `driver`, `pool` and `device`, and `status.reservedFor[]` the pods using it;
- the ResourceSlice that publishes the device (`spec.driver`, `spec.pool.name`,
  `spec.devices[].name`) with its attributes.

NVIDIA's DRA driver (`gpu.nvidia.com`, github.com/NVIDIA/k8s-dra-driver-gpu,
cmd/gpu-kubelet-plugin/deviceinfo.go) publishes on each device the attributes
`type` (`gpu`, `mig`, `vfio`), `productName` (NVML's name, e.g. `NVIDIA
A100-SXM4-80GB`, also on a MIG device: its parent's) and, on a MIG device,
`profile` (e.g. `1g.10gb`). The model is `productName` with spaces as dashes,
the spelling of GPU feature discovery's `nvidia.com/gpu.product` label, so that
one price list serves both paths. A MIG device is priced as its share of the
device, exactly as the `nvidia.com/mig-<profile>` resource is
(`allocation.in_devices`). A claim reserved by N pods is split equally among them.

Only devices of the configured drivers (`gpuDraDrivers`) count: a NIC or an FPGA
handed out through DRA is no GPU. Plain functions over plain data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from finops_operator.domain.gpus.allocation import UNKNOWN_MODEL, in_devices

MIG_TYPE: Final = "mig"

DeviceKey = tuple[str, str, str]  # (driver, pool, device)


@dataclass(frozen=True, slots=True)
class DraDevice:
    """What a ResourceSlice says of one GPU device: its model and its share of a device."""

    model: str
    share: Decimal  # 1 for a whole GPU, 1/7 for a 1g MIG slice of a 7-slice GPU
    physical: str = ""  # the physical GPU's UUID (a MIG device's `parentUUID`), if published


@dataclass(frozen=True, slots=True)
class DraClaim:
    """What the inventory keeps of an allocated ResourceClaim with GPU devices."""

    devices: tuple[DeviceKey, ...]  # the allocated devices of the GPU drivers
    reserved_for: tuple[str, ...]  # the names of the pods (same namespace) that reserve it


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _attribute(attributes: Mapping[str, Any], driver: str, name: str) -> str:
    """A string attribute, named plainly or qualified by the driver's domain."""
    for key in (name, f"{driver}/{name}"):
        value = _mapping(attributes.get(key)).get("string")
        if isinstance(value, str) and value:
            return value
    return ""


def device_of(driver: str, attributes: Mapping[str, Any]) -> DraDevice:
    """A published device's model and share, from NVIDIA-style attributes."""
    product = _attribute(attributes, driver, "productName")
    model = "-".join(product.split()) if product else UNKNOWN_MODEL
    profile = _attribute(attributes, driver, "profile")
    if _attribute(attributes, driver, "type") == MIG_TYPE and profile:
        share = in_devices(Decimal(1), f"nvidia.com/mig-{profile}", model, 1)
        return DraDevice(model, share, _attribute(attributes, driver, "parentUUID"))
    return DraDevice(model, Decimal(1), _attribute(attributes, driver, "uuid"))


def slice_devices(
    resource_slice: Mapping[str, Any], drivers: frozenset[str]
) -> dict[DeviceKey, DraDevice]:
    """The GPU devices a ResourceSlice publishes; empty for a slice of another driver."""
    spec = _mapping(resource_slice.get("spec"))
    driver = spec.get("driver")
    pool = _mapping(spec.get("pool")).get("name")
    if not isinstance(driver, str) or driver not in drivers or not isinstance(pool, str):
        return {}
    found = {}
    for device in _list(spec.get("devices")):
        name = _mapping(device).get("name")
        if isinstance(name, str) and name:
            attributes = _mapping(_mapping(device).get("attributes"))
            found[(driver, pool, name)] = device_of(driver, attributes)
    return found


def slice_capacity(
    resource_slice: Mapping[str, Any], devices: Mapping[DeviceKey, DraDevice]
) -> tuple[tuple[str, str, str, Decimal], ...]:
    """(node, model, driver, devices) a slice offers, counting each physical GPU once.

    A MIG-capable GPU may be published both whole and as its possible MIG devices,
    which share its capacity: devices with the same physical UUID count as one GPU.
    A device without one counts as its share. A slice without `nodeName` (a pool
    not bound to one node) is put on its pool's name.
    """
    spec = _mapping(resource_slice.get("spec"))
    node = spec.get("nodeName") or _mapping(spec.get("pool")).get("name") or ""
    physical: dict[tuple[str, str], set[str]] = {}
    shares: dict[tuple[str, str], Decimal] = {}
    for (driver, _, _), device in devices.items():
        group = (device.model, driver)
        if device.physical:
            physical.setdefault(group, set()).add(device.physical)
        else:
            shares[group] = shares.get(group, Decimal(0)) + device.share
    groups = sorted(physical.keys() | shares.keys())
    return tuple(
        (
            str(node),
            model,
            driver,
            len(physical.get((model, driver), ())) + shares.get((model, driver), Decimal(0)),
        )
        for model, driver in groups
    )


def claim_gpus(claim: Mapping[str, Any], drivers: frozenset[str]) -> DraClaim | None:
    """The GPU devices allocated to a ResourceClaim and its pods; None while it holds none."""
    status = _mapping(claim.get("status"))
    results = _mapping(_mapping(status.get("allocation")).get("devices")).get("results")
    devices = []
    for result in _list(results):
        result = _mapping(result)
        key = (result.get("driver"), result.get("pool"), result.get("device"))
        if key[0] in drivers and all(isinstance(part, str) and part for part in key):
            devices.append((str(key[0]), str(key[1]), str(key[2])))
    if not devices:
        return None
    pods = sorted(
        {
            str(consumer["name"])
            for consumer in map(_mapping, _list(status.get("reservedFor")))
            if consumer.get("resource") == "pods" and isinstance(consumer.get("name"), str)
        }
    )
    return DraClaim(tuple(devices), tuple(pods))


def held_through_claims(
    namespace: str,
    pod: str,
    claim_names: Iterable[str],
    claims: Mapping[tuple[str, str], DraClaim],
    devices: Mapping[DeviceKey, DraDevice],
) -> tuple[tuple[str, str, Decimal], ...]:
    """(driver, model, devices held) of a pod's claims, summed by driver and model.

    A claim not (yet) in the cache, or not allocated, holds nothing: a pending
    claim is no error. A device not (yet) published in a slice counts as one whole
    device of model `unknown`, priced at the default.
    """
    held: dict[tuple[str, str], Decimal] = {}
    for name in claim_names:
        claim = claims.get((namespace, name))
        if claim is None:
            continue
        sharers = len(set(claim.reserved_for) | {pod})
        for key in claim.devices:
            device = devices.get(key, DraDevice(UNKNOWN_MODEL, Decimal(1)))
            group = (key[0], device.model)
            held[group] = held.get(group, Decimal(0)) + device.share / sharers
    return tuple((driver, model, share) for (driver, model), share in sorted(held.items()))
