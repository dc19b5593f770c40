"""Which objects are GPU workloads, and where their pods' labels live, for every kind."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finops_operator.domain.conventions import DEFAULT_GPU_RESOURCES
from finops_operator.domain.workloads import (
    KIND_FOR_PLURAL,
    WORKLOAD_KINDS,
    GpuMatcher,
    WorkloadKind,
    asks_for_gpu,
    created_by_controller,
    dra_claims,
    gpu_requests,
    is_gpu_workload,
    is_workload,
    parse_quantity,
    pod_labels,
    pod_labels_path,
    pod_template,
)

DEFAULT = GpuMatcher(DEFAULT_GPU_RESOURCES)
API_VERSION = {"Pod": "v1", "Job": "batch/v1", "CronJob": "batch/v1"}


def pod_spec(resources: dict[str, Any], where: str = "containers") -> dict[str, Any]:
    return {where: [{"name": "main", "image": "x", "resources": resources}]}


def workload(
    kind: str, spec: dict[str, Any], labels: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A minimal object of `kind` whose pods get `spec` and `labels`."""
    pod: dict[str, Any] = {"metadata": {"labels": labels or {}}, "spec": spec}
    obj: dict[str, Any] = {
        "apiVersion": API_VERSION.get(kind, "apps/v1"),
        "kind": kind,
        "metadata": {"name": "w", "namespace": "ml"},
    }
    if kind == "Pod":
        obj["metadata"]["labels"] = pod["metadata"]["labels"]
        obj["spec"] = spec
    elif kind == "CronJob":
        obj["spec"] = {"schedule": "@daily", "jobTemplate": {"spec": {"template": pod}}}
    else:
        obj["spec"] = {"template": pod}
    return obj


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("1", Decimal(1), id="a plain string is a whole number"),
        pytest.param(2, Decimal(2), id="a YAML integer is read as is"),
        pytest.param(0, Decimal(0), id="the integer zero is zero"),
        pytest.param("0", Decimal(0), id="the string zero is zero"),
        pytest.param("500m", Decimal("0.5"), id="milli units are thousandths"),
        pytest.param("1k", Decimal(1000), id="decimal SI suffixes multiply"),
        pytest.param("1Ki", Decimal(1024), id="binary suffixes multiply by powers of two"),
        pytest.param("1e3", Decimal(1000), id="an exponent is understood"),
        pytest.param(" 2 ", Decimal(2), id="surrounding spaces are ignored"),
        pytest.param(0.5, Decimal("0.5"), id="a YAML float is read as a decimal"),
        pytest.param("lots", None, id="a word is not a quantity"),
        pytest.param("1.2.3", None, id="two decimal points are not a quantity"),
        pytest.param("", None, id="an empty string is not a quantity"),
        pytest.param(True, None, id="a boolean is not a quantity"),
        pytest.param(None, None, id="null is not a quantity"),
        pytest.param([1], None, id="a list is not a quantity"),
        pytest.param(float("nan"), None, id="NaN is not a quantity"),
        pytest.param(float("inf"), None, id="infinity is not a quantity"),
        # issue 13, item 6: hostile sizes give None, never an exception
        pytest.param("1e999999999999", None, id="an exponent beyond any quantity"),
        pytest.param("-1e999999999999", None, id="a negative exponent beyond any quantity"),
        pytest.param("9e18", Decimal("9e18"), id="just below 2**63"),
        pytest.param("1e19", None, id="above 2**63"),
        pytest.param("16Ei", None, id="a suffix that passes 2**63"),
        pytest.param(10**5000, None, id="an integer of 5000 digits"),
        pytest.param(1e300, None, id="a huge float"),
        pytest.param("1" * 200, None, id="a string of 200 digits"),
    ],
)
def test_parse_quantity(value: Any, expected: Decimal | None) -> None:
    assert parse_quantity(value) == expected


@pytest.mark.parametrize(
    ("patterns", "resource", "expected"),
    [
        pytest.param(DEFAULT_GPU_RESOURCES, "nvidia.com/gpu", True, id="a whole NVIDIA GPU"),
        pytest.param(DEFAULT_GPU_RESOURCES, "nvidia.com/gpu.shared", True, id="a time slice"),
        pytest.param(DEFAULT_GPU_RESOURCES, "nvidia.com/mig-1g.10gb", True, id="a small MIG slice"),
        pytest.param(DEFAULT_GPU_RESOURCES, "nvidia.com/mig-3g.40gb", True, id="a large MIG slice"),
        pytest.param(DEFAULT_GPU_RESOURCES, "amd.com/gpu", True, id="an AMD GPU"),
        pytest.param(DEFAULT_GPU_RESOURCES, "cpu", False, id="CPU is not a GPU"),
        pytest.param(DEFAULT_GPU_RESOURCES, "memory", False, id="memory is not a GPU"),
        pytest.param(DEFAULT_GPU_RESOURCES, "nvidia.com/gpux", False, id="a longer name differs"),
        pytest.param(DEFAULT_GPU_RESOURCES, "NVIDIA.com/gpu", False, id="names are case-sensitive"),
        pytest.param(DEFAULT_GPU_RESOURCES, "nvidia.com/mig", False, id="mig without a profile"),
        pytest.param(("gpu.intel.com/*",), "gpu.intel.com/i915", True, id="a configured pattern"),
        pytest.param(("gpu.intel.com/*",), "nvidia.com/gpu", False, id="configured list replaces"),
        pytest.param(("example.com/gpu-?",), "example.com/gpu-a", True, id="question mark is one"),
        pytest.param(("example.com/gpu-?",), "example.com/gpu-ab", False, id="but only one"),
    ],
)
def test_gpu_matcher(patterns: tuple[str, ...], resource: str, expected: bool) -> None:
    assert GpuMatcher(patterns)(resource) is expected


@pytest.mark.parametrize("kind", [pytest.param(k, id=f"for a {k}") for k in WORKLOAD_KINDS])
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            pod_spec({"limits": {"nvidia.com/gpu": 1}}),
            [("nvidia.com/gpu", 1)],
            id="a GPU limit makes a GPU workload",
        ),
        pytest.param(
            pod_spec({"requests": {"nvidia.com/gpu": "2"}}),
            [("nvidia.com/gpu", 2)],
            id="a GPU request makes a GPU workload",
        ),
        pytest.param(
            pod_spec({"limits": {"amd.com/gpu": 1}}, "initContainers"),
            [("amd.com/gpu", 1)],
            id="a GPU in an init container makes a GPU workload",
        ),
        pytest.param(
            pod_spec({"limits": {"nvidia.com/gpu": 0}}), [], id="zero GPUs make no GPU workload"
        ),
        pytest.param(
            pod_spec({"limits": {"cpu": "4", "memory": "8Gi"}}),
            [],
            id="CPU and memory make no GPU workload",
        ),
        pytest.param({"containers": []}, [], id="no containers make no GPU workload"),
    ],
)
def test_gpu_detection_for_every_kind(
    kind: str, spec: dict[str, Any], expected: list[tuple[str, int]]
) -> None:
    obj = workload(kind, spec)
    assert [(r.resource, r.quantity) for r in gpu_requests(obj, DEFAULT)] == expected
    assert is_gpu_workload(obj, DEFAULT) is bool(expected)


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        pytest.param({"limits": {"nvidia.com/gpu": "0"}}, [], id="a string zero is not a GPU"),
        pytest.param({"limits": {"nvidia.com/gpu": "500m"}}, ["0.500"], id="half a GPU is a GPU"),
        pytest.param({"limits": {"nvidia.com/gpu": "lots"}}, ["1"], id="garbage counts as one GPU"),
        pytest.param({"limits": {"nvidia.com/gpu": None}}, ["1"], id="null counts as one GPU"),
        pytest.param({"limits": {"nvidia.com/gpu": "-1"}}, [], id="a negative number is not a GPU"),
        pytest.param(
            {"requests": {"nvidia.com/gpu": 2}, "limits": {"nvidia.com/gpu": 2}},
            ["2"],
            id="equal request and limit are one claim",
        ),
        pytest.param(
            {"requests": {"nvidia.com/gpu": 1}, "limits": {"nvidia.com/gpu": 0}},
            ["1"],
            id="a request counts even when the limit says zero",
        ),
        pytest.param(
            {"requests": {"nvidia.com/gpu": 0}, "limits": {"nvidia.com/gpu": 4}},
            ["4"],
            id="the larger of request and limit is the claim",
        ),
        pytest.param(
            {"limits": {"nvidia.com/mig-1g.10gb": 1, "nvidia.com/mig-3g.40gb": 1}},
            ["1", "1"],
            id="two MIG profiles are two claims",
        ),
        pytest.param(
            {"limits": "nvidia.com/gpu"}, [], id="limits that are not a mapping are ignored"
        ),
        pytest.param({"limits": {1: 1}}, [], id="a resource name that is not a string is ignored"),
    ],
)
def test_gpu_quantities(resources: dict[str, Any], expected: list[str]) -> None:
    obj = workload("Pod", pod_spec(resources))
    assert [str(r.quantity) for r in gpu_requests(obj, DEFAULT)] == expected


def test_gpu_requests_name_each_container_including_init_containers() -> None:
    spec = {
        "initContainers": [{"name": "warmup", "resources": {"limits": {"nvidia.com/gpu": 1}}}],
        "containers": [
            {"name": "server", "resources": {"limits": {"nvidia.com/gpu": 2}}},
            {"name": "sidecar", "resources": {"limits": {"cpu": 1}}},
            "not a container",
        ],
    }
    found = gpu_requests(workload("Pod", spec), DEFAULT)
    assert [(r.container, r.quantity) for r in found] == [("warmup", 1), ("server", 2)]


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        pytest.param("Pod", "metadata.labels", id="a Pod keeps its own labels"),
        pytest.param(
            "Deployment", "spec.template.metadata.labels", id="a Deployment its template's"
        ),
        pytest.param(
            "StatefulSet", "spec.template.metadata.labels", id="a StatefulSet its template's"
        ),
        pytest.param("DaemonSet", "spec.template.metadata.labels", id="a DaemonSet its template's"),
        pytest.param(
            "ReplicaSet", "spec.template.metadata.labels", id="a ReplicaSet its template's"
        ),
        pytest.param("Job", "spec.template.metadata.labels", id="a Job its template's"),
        pytest.param(
            "CronJob",
            "spec.jobTemplate.spec.template.metadata.labels",
            id="a CronJob its job template's pod template's",
        ),
    ],
)
def test_pod_labels_location(kind: str, path: str) -> None:
    assert ".".join(pod_labels_path(kind)) == path
    obj = workload(kind, {}, labels={"resilio.tech/team": "search"})
    if kind != "Pod":
        obj["metadata"]["labels"] = {"resilio.tech/team": "not-this-one"}
    assert pod_labels(obj) == {"resilio.tech/team": "search"}


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param({"kind": "Deployment"}, id="a Deployment without a spec"),
        pytest.param(
            {"kind": "Deployment", "spec": {"template": []}}, id="a template that is a list"
        ),
        pytest.param(
            {"kind": "Pod", "metadata": {"labels": "team=x"}}, id="labels that are a string"
        ),
        pytest.param({"kind": "Pod", "metadata": None}, id="null metadata"),
        pytest.param({"kind": "Service", "spec": {}}, id="a kind that has no pods"),
        pytest.param({}, id="an object without a kind"),
    ],
)
def test_odd_shapes_have_no_labels_and_no_gpus(obj: dict[str, Any]) -> None:
    assert pod_labels(obj) == {}
    assert gpu_requests(obj, DEFAULT) == []


def test_pod_template_of_a_pod_is_the_pod() -> None:
    obj = workload("Pod", {})
    assert pod_template(obj) is obj


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(
            {"kind": "Deployment", "apiVersion": "apps/v1"}, True, id="apps/v1 Deployment"
        ),
        pytest.param({"kind": "Pod", "apiVersion": "v1"}, True, id="core v1 Pod"),
        pytest.param({"kind": "CronJob", "apiVersion": "batch/v1"}, True, id="batch/v1 CronJob"),
        pytest.param({"kind": "Deployment"}, True, id="no apiVersion trusts the kind"),
        pytest.param(
            {"kind": "Deployment", "apiVersion": "extensions/v1beta1"}, True, id="legacy group"
        ),
        pytest.param(
            {"kind": "Job", "apiVersion": "batch.volcano.sh/v1alpha1"},
            False,
            id="a custom Job of another group is not a workload",
        ),
        pytest.param({"kind": "Pod", "apiVersion": "apps/v1"}, False, id="a Pod in apps is not"),
        pytest.param({"kind": "ConfigMap", "apiVersion": "v1"}, False, id="a ConfigMap is not"),
        pytest.param({"kind": ["Pod"]}, False, id="a kind that is not a string is not"),
    ],
)
def test_is_workload(obj: dict[str, Any], expected: bool) -> None:
    assert is_workload(obj) is expected


def test_kind_for_plural_covers_the_seven_kinds() -> None:
    assert sorted(KIND_FOR_PLURAL.values()) == sorted(WORKLOAD_KINDS)
    assert KIND_FOR_PLURAL["cronjobs"] == "CronJob"


def test_workload_kinds_is_derived_from_the_enum() -> None:
    assert list(WORKLOAD_KINDS) == [kind.value for kind in WorkloadKind]
    for kind in WorkloadKind:
        assert WORKLOAD_KINDS[kind] == (kind.group, kind.plural, kind.template_path)
        assert pod_labels_path(kind) == (*kind.template_path, "metadata", "labels")
    assert WorkloadKind.CRON_JOB.template_path == ("spec", "jobTemplate", "spec", "template")
    assert (WorkloadKind.POD.group, WorkloadKind.POD.plural) == ("", "pods")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Deployment", WorkloadKind.DEPLOYMENT),
        ("deployment", None),
        ("ConfigMap", None),
        (None, None),
        (["Pod"], None),
    ],
)
def test_workload_kind_of(value: Any, expected: WorkloadKind | None) -> None:
    assert WorkloadKind.of(value) is expected


def test_only_the_three_kinds_extensions_served_have_a_legacy_group() -> None:
    legacy = {kind for kind in WorkloadKind if kind.legacy_group == "extensions"}
    assert legacy == {WorkloadKind.DEPLOYMENT, WorkloadKind.DAEMON_SET, WorkloadKind.REPLICA_SET}


def ref(api_version: str | None, kind: str) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": "o", "uid": "u", "controller": True}


@pytest.mark.parametrize(
    ("kind", "refs", "expected"),
    [
        pytest.param("Pod", [ref("apps/v1", "ReplicaSet")], True, id="a ReplicaSet's Pod"),
        pytest.param("Pod", [ref("apps/v1", "StatefulSet")], True, id="a StatefulSet's Pod"),
        pytest.param("Pod", [ref("apps/v1", "DaemonSet")], True, id="a DaemonSet's Pod"),
        pytest.param("Pod", [ref("batch/v1", "Job")], True, id="a Job's Pod"),
        pytest.param("ReplicaSet", [ref("apps/v1", "Deployment")], True, id="a Deployment's RS"),
        pytest.param("Job", [ref("batch/v1", "CronJob")], True, id="a CronJob's Job"),
        # forged: no controller makes these pairs
        pytest.param("Pod", [ref("apps/v1", "Deployment")], False, id="a Pod of a Deployment"),
        pytest.param("Pod", [ref("batch/v1", "CronJob")], False, id="a Pod of a CronJob"),
        pytest.param("Pod", [ref("v1", "Pod")], False, id="a Pod of a Pod"),
        pytest.param("Deployment", [ref("apps/v1", "Deployment")], False, id="a Deployment"),
        pytest.param("CronJob", [ref("batch/v1", "CronJob")], False, id="a CronJob"),
        pytest.param("Job", [ref("batch/v1", "Job")], False, id="a Job of a Job"),
        pytest.param("Pod", [ref("v1", "ReplicaSet")], False, id="a ReplicaSet in the core group"),
        pytest.param("Pod", [ref("x.io/v1", "Job")], False, id="a Job of another group"),
        pytest.param("Pod", [ref(None, "ReplicaSet")], False, id="no apiVersion"),
        pytest.param("Pod", [{**ref("apps/v1", "ReplicaSet"), "controller": False}], False),
        pytest.param("Pod", [{**ref("apps/v1", "ReplicaSet"), "controller": "true"}], False),
        pytest.param("Pod", [ref("v1", "ConfigMap")], False, id="not a workload"),
        pytest.param("Pod", None, False, id="no owners"),
    ],
)
def test_created_by_controller(kind: str, refs: Any, expected: bool) -> None:
    obj = {"kind": kind, "metadata": {"name": "p", "ownerReferences": refs}}
    assert created_by_controller(obj) is expected


_QUANTITIES = st.one_of(
    st.sampled_from(["0", "1", "8", "-1", "500m", "0.5", "1e3", "1Ki", "x", "", "1.2.3", "2**70"]),
    st.integers(min_value=-3, max_value=3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
)
_RESOURCES = st.sampled_from(
    ["nvidia.com/gpu", "amd.com/gpu", "cpu", "memory", "nvidia.com/mig-1g.5gb"]
)
_SECTION = st.dictionaries(_RESOURCES, _QUANTITIES, max_size=3)
_CONTAINER = st.fixed_dictionaries(
    {"name": st.just("c")},
    optional={
        "resources": st.fixed_dictionaries({}, optional={"requests": _SECTION, "limits": _SECTION})
    },
)
_SPEC = st.fixed_dictionaries(
    {},
    optional={
        "containers": st.lists(_CONTAINER, max_size=3),
        "initContainers": st.lists(_CONTAINER, max_size=2),
        "resourceClaims": st.lists(
            st.fixed_dictionaries(
                {"name": st.just("gpu")}, optional={"resourceClaimName": st.just("c")}
            ),
            max_size=2,
        ),
    },
)


@given(kind=st.sampled_from([k.value for k in WorkloadKind]), spec=_SPEC)
def test_asks_for_gpu_is_exactly_a_gpu_request_or_a_dra_claim(
    kind: str, spec: dict[str, Any]
) -> None:
    # asks_for_gpu answers without building the requests: it must agree with them.
    obj = workload(kind, spec)
    expected = bool(gpu_requests(obj, DEFAULT)) or bool(dra_claims(obj))
    assert asks_for_gpu(obj, DEFAULT) is expected


def test_a_quantity_parsed_twice_is_the_same_number() -> None:
    # The text parse is cached: a cached answer must equal a fresh one, for hits and misses.
    for text in ("1", "500m", "8", "1Ki", "x", " 2 "):
        assert parse_quantity(text) == parse_quantity(text)
    assert parse_quantity("500m") == Decimal("0.5")
    assert parse_quantity("x") is None


def test_the_gpu_matcher_answers_the_same_from_memory_and_remembers_a_bounded_number() -> None:
    matcher = GpuMatcher(["nvidia.com/gpu", "nvidia.com/mig-*"])
    names = [f"example.com/r{i}" for i in range(5_000)] + ["nvidia.com/mig-1g.5gb", "cpu"]
    first = [matcher(name) for name in names]
    again = [matcher(name) for name in names]
    assert first == again
    assert matcher("nvidia.com/gpu") and matcher("nvidia.com/mig-1g.5gb")
    assert not matcher("cpu") and not matcher("example.com/r4999")
    assert len(matcher._known) <= 1024  # hostile objects cannot grow it without end
