"""GPUs through Dynamic Resource Allocation: claims, templates, sharing, MIG, other drivers."""

from __future__ import annotations

from decimal import Decimal

from finops_devtools.devcluster.reviews import COMPLETE_LABELS
from finops_operator.domain.config import Config, PricingConfig
from finops_operator.domain.conventions import DEFAULT_GPU_RESOURCES
from finops_operator.domain.gpus.allocation import (
    allocation_samples,
    pod_claim_names,
    pod_gpus,
    price_samples,
)
from finops_operator.domain.gpus.dra import claim_gpus, device_of, slice_devices
from finops_operator.domain.gpus.inventory import Inventory
from finops_operator.domain.workloads import GpuMatcher
from tests.support.dra import (
    DRIVER,
    allocated_claim,
    dra_pod,
    gpu_device,
    resource_slice,
)

IS_GPU = GpuMatcher(DEFAULT_GPU_RESOURCES)
H100 = "NVIDIA-H100-80GB-HBM3"
TEAM = COMPLETE_LABELS["resilio.tech/team"]


def inventory() -> Inventory:
    held = Inventory(IS_GPU)
    held.observe_slice(
        "ADDED",
        resource_slice(
            "gpu-node-1",
            [
                gpu_device("gpu-0"),
                gpu_device("gpu-1"),
                gpu_device("gpu-2-mig-1", "NVIDIA A100-SXM4-80GB", "3g.40gb"),
            ],
        ),
    )
    return held


def held(inv: Inventory, namespace: str, pod: str) -> list[tuple[str, str, Decimal]]:
    return [
        (values[3], values[4], amount)
        for values, amount in allocation_samples(
            [inv.pods[(namespace, pod)]], inv.nodes, inv.claimed
        )
    ]


def test_a_direct_claim_gives_the_pod_its_device_and_model() -> None:
    inv = inventory()
    inv.observe_claim("ADDED", allocated_claim("ml", "one-gpu", [("gpu-node-1", "gpu-0")], ["a"]))
    inv.observe_pod("ADDED", dra_pod("ml", "a", COMPLETE_LABELS, claim="one-gpu"))
    samples = allocation_samples([inv.pods[("ml", "a")]], inv.nodes, inv.claimed)
    assert samples == [
        (("ml", "a", "gpu-node-1", DRIVER, H100, *inv.pods[("ml", "a")].cost_labels), Decimal(1))
    ]
    assert TEAM in samples[0][0]


def test_a_template_claim_is_found_through_the_pods_status() -> None:
    inv = inventory()
    generated = "b-gpu-x7k2p"
    inv.observe_claim("ADDED", allocated_claim("ml", generated, [("gpu-node-1", "gpu-1")], ["b"]))
    pod = dra_pod("ml", "b", COMPLETE_LABELS, template="one-gpu", generated=generated)
    assert pod_claim_names(pod) == (generated,)
    inv.observe_pod("ADDED", pod)
    assert held(inv, "ml", "b") == [(DRIVER, H100, Decimal(1))]


def test_a_template_claim_not_yet_generated_holds_nothing() -> None:
    pod = dra_pod("ml", "b", COMPLETE_LABELS, template="one-gpu")
    assert pod_claim_names(pod) == ()
    assert pod_gpus(pod, IS_GPU) is None


def test_a_claim_shared_by_two_pods_is_split_equally() -> None:
    inv = inventory()
    inv.observe_claim(
        "ADDED", allocated_claim("ml", "shared", [("gpu-node-1", "gpu-0")], ["c1", "c2"])
    )
    for name in ("c1", "c2"):
        inv.observe_pod("ADDED", dra_pod("ml", name, COMPLETE_LABELS, claim="shared"))
        assert held(inv, "ml", name) == [(DRIVER, H100, Decimal("0.5"))]


def test_a_mig_device_is_priced_as_its_share_like_the_extended_resource() -> None:
    inv = inventory()
    inv.observe_claim("ADDED", allocated_claim("ml", "mig", [("gpu-node-1", "gpu-2-mig-1")], ["m"]))
    inv.observe_pod("ADDED", dra_pod("ml", "m", COMPLETE_LABELS, claim="mig"))
    assert held(inv, "ml", "m") == [(DRIVER, "NVIDIA-A100-SXM4-80GB", Decimal(3) / 7)]
    a30 = device_of(DRIVER, gpu_device("x", "NVIDIA A30", "1g.6gb")["attributes"])
    assert a30.share == Decimal(1) / 4


def test_devices_of_other_drivers_are_no_gpus() -> None:
    drivers = frozenset({DRIVER})
    nic = resource_slice("gpu-node-1", [{"name": "eth1"}], driver="nic.example.com")
    assert slice_devices(nic, drivers) == {}
    claim = allocated_claim("ml", "nic", [("gpu-node-1", "eth1")], ["n"], driver="nic.example.com")
    assert claim_gpus(claim, drivers) is None
    inv = inventory()
    inv.observe_claim("ADDED", claim)
    inv.observe_pod("ADDED", dra_pod("ml", "n", COMPLETE_LABELS, claim="nic"))
    assert held(inv, "ml", "n") == []


def test_an_unallocated_claim_holds_nothing_and_is_no_error() -> None:
    pending = allocated_claim("ml", "pending", [], [])
    del pending["status"]
    assert claim_gpus(pending, frozenset({DRIVER})) is None
    inv = inventory()
    inv.observe_claim("ADDED", pending)
    inv.observe_pod("ADDED", dra_pod("ml", "p", COMPLETE_LABELS, claim="pending"))
    assert held(inv, "ml", "p") == []


def test_a_claim_missing_from_the_cache_holds_nothing_until_it_arrives() -> None:
    inv = inventory()
    inv.observe_pod("ADDED", dra_pod("ml", "late", COMPLETE_LABELS, claim="late"))
    assert held(inv, "ml", "late") == []
    version = inv.version
    inv.observe_claim("ADDED", allocated_claim("ml", "late", [("gpu-node-1", "gpu-0")], ["late"]))
    assert inv.version > version  # /metrics renders again
    assert held(inv, "ml", "late") == [(DRIVER, H100, Decimal(1))]
    inv.observe_claim("DELETED", allocated_claim("ml", "late", [], []))
    assert held(inv, "ml", "late") == []


def test_a_device_not_published_counts_whole_at_the_unknown_model() -> None:
    inv = Inventory(IS_GPU)
    inv.observe_claim("ADDED", allocated_claim("ml", "c", [("elsewhere", "gpu-9")], ["u"]))
    inv.observe_pod("ADDED", dra_pod("ml", "u", COMPLETE_LABELS, claim="c"))
    assert held(inv, "ml", "u") == [(DRIVER, "unknown", Decimal(1))]


def test_a_slice_removed_takes_its_devices_along() -> None:
    inv = inventory()
    assert inv.dra_models() == {H100, "NVIDIA-A100-SXM4-80GB"}
    inv.observe_slice("DELETED", resource_slice("gpu-node-1", []))
    assert inv.devices == {}


def test_dra_models_get_a_price_series() -> None:
    pricing = PricingConfig.model_validate({"gpuHourly": {"default": "2"}})
    models = [model for model, _ in price_samples(pricing, {}, inventory().dra_models())]
    assert H100 in models


def test_the_dra_drivers_are_configured_and_validated() -> None:
    assert Config().gpu_dra_drivers == (DRIVER,)
    assert Config.model_validate({"gpuDraDrivers": []}).gpu_dra_drivers == ()
    try:
        Config.model_validate({"gpuDraDrivers": ["Not A Driver"]})
    except ValueError as err:
        assert "not a DRA driver name" in str(err)
    else:
        raise AssertionError("an invalid driver name was accepted")


def test_a_slice_offers_each_physical_gpu_once_whole_or_partitioned() -> None:
    inv = Inventory(IS_GPU)
    whole = gpu_device("gpu-0")
    mig = [gpu_device(f"gpu-0-mig-{i}", mig_profile="1g.10gb") for i in range(7)]
    for device in mig:  # the possible MIG devices of gpu-0, published beside it
        device["attributes"]["parentUUID"] = whole["attributes"]["uuid"]
    inv.observe_slice("ADDED", resource_slice("gpu-node-1", [whole, *mig, gpu_device("gpu-1")]))
    inv.observe_slice("ADDED", resource_slice("gpu-node-2", [gpu_device("gpu-9")]))
    assert inv.dra_capacity() == [
        (("gpu-node-1", H100, DRIVER), Decimal(2)),
        (("gpu-node-2", H100, DRIVER), Decimal(1)),
    ]
    inv.observe_slice("DELETED", resource_slice("gpu-node-2", []))
    assert inv.dra_capacity() == [(("gpu-node-1", H100, DRIVER), Decimal(2))]
