"""Dynamic Resource Allocation objects as the API server holds them (`resource.k8s.io/v1`).

ResourceSlices with the attributes NVIDIA's DRA driver publishes (`type`,
`productName`, `profile`: NVIDIA/k8s-dra-driver-gpu, cmd/gpu-kubelet-plugin/
deviceinfo.go), allocated ResourceClaims and pods that use them: shared by the
unit tests of `domain/gpus/dra.py`, the inventory, `/metrics` and the e2e test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DRIVER = "gpu.nvidia.com"
H100 = "NVIDIA H100 80GB HBM3"  # NVML's productName; the model is NVIDIA-H100-80GB-HBM3


def gpu_device(name: str, product: str = H100, mig_profile: str = "") -> dict[str, Any]:
    """A device entry of a slice: a whole GPU, or a MIG device of `mig_profile`."""
    attributes: dict[str, Any] = {
        "type": {"string": "mig" if mig_profile else "gpu"},
        "productName": {"string": product},
        "uuid": {"string": f"GPU-{name}"},
    }
    if mig_profile:
        attributes["profile"] = {"string": mig_profile}
    return {"name": name, "attributes": attributes}


def resource_slice(
    node: str, devices: Sequence[dict[str, Any]], driver: str = DRIVER
) -> dict[str, Any]:
    """The ResourceSlice a kubelet plugin publishes for `node` (its pool is the node)."""
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": f"{node}-{driver}"},
        "spec": {
            "driver": driver,
            "nodeName": node,
            "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
            "devices": list(devices),
        },
    }


def allocated_claim(
    namespace: str,
    name: str,
    devices: Sequence[tuple[str, str]],
    reserved_for: Sequence[str] = (),
    driver: str = DRIVER,
) -> dict[str, Any]:
    """A ResourceClaim allocated `devices` ((pool, device) pairs), reserved for those pods."""
    results = [
        {"request": "gpu", "driver": driver, "pool": pool, "device": device}
        for pool, device in devices
    ]
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu"}}]}},
        "status": {
            "allocation": {"devices": {"results": results}},
            "reservedFor": [
                {"resource": "pods", "name": pod, "uid": f"uid-{pod}"} for pod in reserved_for
            ],
        },
    }


def dra_pod(
    namespace: str,
    name: str,
    labels: dict[str, str],
    claim: str = "",
    template: str = "",
    generated: str = "",
    node: str = "gpu-node-1",
) -> dict[str, Any]:
    """A running pod using `claim` directly, or one made from `template` (named `generated`)."""
    entry = {"name": "gpu"}
    entry.update({"resourceClaimName": claim} if claim else {"resourceClaimTemplateName": template})
    status: dict[str, Any] = {"phase": "Running"}
    if generated:
        status["resourceClaimStatuses"] = [{"name": "gpu", "resourceClaimName": generated}]
    return {
        "metadata": {"namespace": namespace, "name": name, "labels": labels},
        "spec": {
            "nodeName": node,
            "resourceClaims": [entry],
            "containers": [{"name": "main", "resources": {"claims": [{"name": "gpu"}]}}],
        },
        "status": status,
    }
