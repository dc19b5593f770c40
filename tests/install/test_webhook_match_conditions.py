"""The webhooks' CEL matchConditions, evaluated for real with cel-python.

The API server evaluates each webhook's `matchConditions` before it calls the
operator, with `object`, `oldObject` and `request` bound to the AdmissionRequest;
the webhook is called only when every condition is true. These tests bind the same
variables to AdmissionRequests for GPU and non-GPU objects of all seven workload
kinds, and check that the decision is exactly the operator's own
`is_gpu_workload`, object by object, so the two can never drift apart.

cel-python implements the CEL standard, not the Kubernetes extension libraries
(`quantity()`, `isSorted()`, ...). The expressions use only the standard, so the
expressions tested here are the ones the API server runs. Also, the API server
never sends a null field of a typed object (it omits the field) and sends every
quantity as a string in canonical form; these objects are written the same way,
plus the plain YAML numbers a manifest file may carry.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
from collections.abc import Iterator, Mapping
from typing import Any

import celpy
import pytest
import yaml
from celpy import celtypes

from finops_devtools.devcluster.reviews import CONTROLLER_PAIRS
from finops_operator.domain.config import Config
from finops_operator.domain.conventions import DEFAULT_GPU_RESOURCES
from finops_operator.domain.policies.admission import created_by_controller
from finops_operator.domain.policies.label_check import Requester
from finops_operator.domain.policies.owners import CONTROLLER_USERS, written_by_controller
from finops_operator.domain.policies.webhook_conditions import gpu_condition
from finops_operator.domain.workloads import GpuMatcher, is_gpu_workload
from tests.support.paths import ROOT


def _script(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_webhook_gpu_condition = _script("gen_webhook_gpu_condition")

WEBHOOKS_FILE = ROOT / "manifests" / "base" / "webhooks.yaml"
EXAMPLES = ROOT / "examples" / "manifests"
CONFIGURATIONS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
IS_GPU = GpuMatcher(DEFAULT_GPU_RESOURCES)

# kind -> (apiVersion, API resource): the seven kinds the webhooks are registered for.
KINDS = {
    "Pod": ("v1", "pods"),
    "Deployment": ("apps/v1", "deployments"),
    "StatefulSet": ("apps/v1", "statefulsets"),
    "DaemonSet": ("apps/v1", "daemonsets"),
    "ReplicaSet": ("apps/v1", "replicasets"),
    "Job": ("batch/v1", "jobs"),
    "CronJob": ("batch/v1", "cronjobs"),
}
LABELS = {
    "app": "ranker",
    "resilio.tech/team": "search-platform",
    "resilio.tech/feature": "ranking",
    "resilio.tech/environment": "production",
    "resilio.tech/workload-type": "inference",
    "resilio.tech/cost-center": "cc-1042",
}


# --- the conditions, compiled once -------------------------------------------------


def _shipped(configuration: str) -> list[dict[str, str]]:
    """The matchConditions of the manifests' webhook configuration of that kind."""
    docs = yaml.safe_load_all(WEBHOOKS_FILE.read_text(encoding="utf-8"))
    [config] = [doc for doc in docs if doc and doc.get("kind") == configuration]
    [hook] = config["webhooks"]
    return list(hook["matchConditions"])


@functools.cache
def _conditions(configuration: str) -> tuple[tuple[str, celpy.Runner], ...]:
    env = celpy.Environment()
    return tuple(
        (condition["name"], env.program(env.compile(condition["expression"])))
        for condition in _shipped(configuration)
    )


def _activation(request: Mapping[str, Any]) -> dict[str, Any]:
    """The variables the API server binds: the request, and its two objects by name."""
    bound = celpy.json_to_cel(dict(request))
    return {
        "object": bound[celtypes.StringType("object")],
        "oldObject": bound[celtypes.StringType("oldObject")],
        "request": bound,
    }


def _evaluate(name: str, program: celpy.Runner, activation: dict[str, Any]) -> bool:
    try:
        result = program.evaluate(activation)
    except celpy.CELEvalError as err:  # the API server would apply failurePolicy
        pytest.fail(f"matchCondition {name!r} failed to evaluate: {err}")
    if not isinstance(result, celtypes.BoolType):
        pytest.fail(f"matchCondition {name!r} returned {result!r}, not a bool")
    return bool(result)


def sent(configuration: str, request: Mapping[str, Any]) -> bool:
    """Whether the API server would call this webhook: every condition true, none failing."""
    activation = _activation(request)
    results = [_evaluate(name, program, activation) for name, program in _conditions(configuration)]
    return all(results)


def sent_to_both(request: Mapping[str, Any]) -> bool:
    """For objects no controller made, where the two webhooks must agree."""
    validating, mutating = (sent(configuration, request) for configuration in CONFIGURATIONS)
    assert validating == mutating, "the two webhooks disagree"
    return validating


def owned(obj: Mapping[str, Any], kind: str, *, controller: bool | None = True) -> dict[str, Any]:
    """`obj` with an ownerReference to a `kind`, as a controller sets it."""
    ref: dict[str, Any] = {
        "apiVersion": KINDS[kind][0] if kind in KINDS else "ray.io/v1",
        "kind": kind,
        "name": "ranker-7f9c6d",
        "uid": "6d8a5a1e-1f0b-4c43-9a55-5b1b3c1c2f10",
        "blockOwnerDeletion": True,
    }
    if controller is not None:
        ref["controller"] = controller
    made = copy.deepcopy(dict(obj))
    made["metadata"]["ownerReferences"] = [ref]
    return made


# --- realistic objects and AdmissionRequests ---------------------------------------


def container(
    name: str = "server",
    *,
    limits: Mapping[str, Any] | None = None,
    requests: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    made: dict[str, Any] = {"name": name, "image": f"ghcr.io/example/{name}:1.0.0"}
    resources = {}
    if requests is not None:
        resources["requests"] = dict(requests)
    if limits is not None:
        resources["limits"] = dict(limits)
    if resources:
        made["resources"] = resources
    return made


def pod_spec(*containers: dict[str, Any], init: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": list(containers), "restartPolicy": "Always"}
    if init:
        spec["initContainers"] = list(init)
    return spec


def workload(kind: str, spec: Mapping[str, Any] | None, name: str = "ranker") -> dict[str, Any]:
    """A `kind` object whose pods run `spec`, shaped as the API server stores it."""
    api_version, _ = KINDS[kind]
    obj: dict[str, Any] = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": "search", "labels": dict(LABELS)},
    }
    if spec is None:
        return obj
    spec = copy.deepcopy(dict(spec))
    if kind in ("Job", "CronJob"):
        spec["restartPolicy"] = "Never"
    template = {"metadata": {"labels": dict(LABELS)}, "spec": spec}
    selector = {"matchLabels": {"app": "ranker"}}
    if kind == "Pod":
        obj["spec"] = spec
    elif kind == "Deployment":
        obj["spec"] = {"replicas": 2, "selector": selector, "template": template}
    elif kind == "StatefulSet":
        obj["spec"] = {"serviceName": name, "selector": selector, "template": template}
    elif kind in ("DaemonSet", "ReplicaSet"):
        obj["spec"] = {"selector": selector, "template": template}
    elif kind == "Job":
        obj["spec"] = {"backoffLimit": 3, "template": template}
    else:
        job = {"spec": {"backoffLimit": 3, "template": template}}
        obj["spec"] = {"schedule": "0 3 * * *", "jobTemplate": job}
    return obj


ALICE = "alice@example.com"
REPLICASET_CONTROLLER = "system:serviceaccount:kube-system:replicaset-controller"


def admission_request(
    operation: str,
    obj: Mapping[str, Any] | None,
    old: Mapping[str, Any] | None = None,
    user: str = ALICE,
) -> dict[str, Any]:
    """An admission.k8s.io/v1 AdmissionRequest as the API server builds it."""
    kind = (obj or old or {}).get("kind", "Pod")
    api_version, resource = KINDS.get(kind, ("v1", "pods"))
    group, _, version = api_version.rpartition("/")
    options_kind = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions"}.get(
        operation, "DeleteOptions"
    )
    return {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "name": "ranker",
        "namespace": "search",
        "operation": operation,
        "userInfo": {"username": user, "groups": ["system:authenticated"]},
        "object": copy.deepcopy(obj) if obj is not None else None,
        "oldObject": copy.deepcopy(old) if old is not None else None,
        "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": options_kind},
    }


def domain_decision(obj: Mapping[str, Any] | None) -> bool:
    return obj is not None and is_gpu_workload(obj, IS_GPU)


def domain_validates(obj: Mapping[str, Any], user: str = ALICE) -> bool:
    """Whether the operator's validating decision can depend on this object at all."""
    made = created_by_controller(obj) and written_by_controller(Requester(user))
    return domain_decision(obj) and not made


# --- the cases ---------------------------------------------------------------------

CPU = {"cpu": "4", "memory": "16Gi"}

# sentence -> pod spec of a GPU workload
GPU_SPECS = {
    "nvidia.com/gpu in limits": pod_spec(container(limits={**CPU, "nvidia.com/gpu": "1"})),
    "nvidia.com/gpu in requests only": pod_spec(container(requests={**CPU, "nvidia.com/gpu": "1"})),
    "the only GPU in an init container": pod_spec(
        container(requests=CPU),
        init=(container("warmup", limits={"nvidia.com/gpu": "1"}),),
    ),
    "a MIG slice nvidia.com/mig-1g.10gb": pod_spec(
        container(limits={"nvidia.com/mig-1g.10gb": "1"})
    ),
    "a time-sliced nvidia.com/gpu.shared": pod_spec(
        container(limits={"nvidia.com/gpu.shared": "1"})
    ),
    "amd.com/gpu": pod_spec(container(limits={"amd.com/gpu": "2"})),
    "an Intel gpu.intel.com/i915": pod_spec(container(limits={"gpu.intel.com/i915": "1"})),
    "an Intel gpu.intel.com/xe": pod_spec(container(limits={"gpu.intel.com/xe": "1"})),
    "a DRA claim from a template": {
        **pod_spec(container(requests=CPU)),
        "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "single-gpu"}],
    },
    "a named DRA claim": {
        **pod_spec(container(requests=CPU)),
        "resourceClaims": [{"name": "gpu", "resourceClaimName": "shared-a100"}],
    },
    "a GPU in the second of two containers": pod_spec(
        container("proxy", requests={"cpu": "100m"}),
        container("trainer", limits={"nvidia.com/gpu": "8"}),
    ),
    "eight GPUs written as a YAML number": pod_spec(container(limits={"nvidia.com/gpu": 8})),
    # A manifest in CI may disagree with itself; the larger of the two counts.
    "requests of zero but limits of one": pod_spec(
        container(requests={"nvidia.com/gpu": "0"}, limits={"nvidia.com/gpu": "1"})
    ),
    "requests of one but limits of zero": pod_spec(
        container(requests={"nvidia.com/gpu": "1"}, limits={"nvidia.com/gpu": "0"})
    ),
}

# sentence -> pod spec of a workload without a GPU
NON_GPU_SPECS = {
    "CPU and memory only": pod_spec(container(requests=CPU, limits=CPU)),
    "nvidia.com/gpu: 0 as a number": pod_spec(container(limits={**CPU, "nvidia.com/gpu": 0})),
    "nvidia.com/gpu: '0' as a string": pod_spec(
        container(requests={"nvidia.com/gpu": "0"}, limits={"nvidia.com/gpu": "0"})
    ),
    "zero MIG slices": pod_spec(container(limits={"nvidia.com/mig-3g.40gb": "0"})),
    "no resources at all": pod_spec(container(), init=(container("setup"),)),
    "empty resources": pod_spec({"name": "server", "image": "nginx:1.27", "resources": {}}),
    "empty requests and limits": pod_spec(container(requests={}, limits={})),
    "resources that only look like GPUs": pod_spec(
        container(
            limits={
                "example.com/gpu": "1",
                "nvidia.com/gpu-memory": "1",
                "intel.com/gpu": "1",
                "gpu": "1",
                "hugepages-2Mi": "1Gi",
            }
        )
    ),
    "no containers listed": {"restartPolicy": "Always"},
    "a DRA claim entry without a source": {
        **pod_spec(container(requests=CPU)),
        "resourceClaims": [{"name": "gpu"}],
    },
    "an empty pod spec": {},
}


def _missing_fields() -> Iterator[tuple[str, dict[str, Any]]]:
    """Objects with spec fields left out, at every level above the pod spec."""
    for kind in KINDS:
        yield f"a {kind} without spec", workload(kind, None)
    for kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        bare = workload(kind, GPU_SPECS["nvidia.com/gpu in limits"])
        del bare["spec"]["template"]
        yield f"a {kind} without spec.template", bare
        bare = workload(kind, GPU_SPECS["nvidia.com/gpu in limits"])
        del bare["spec"]["template"]["spec"]
        yield f"a {kind} without spec.template.spec", bare
    for path in (("jobTemplate",), ("jobTemplate", "spec"), ("jobTemplate", "spec", "template")):
        bare = workload("CronJob", GPU_SPECS["nvidia.com/gpu in limits"])
        node = bare["spec"]
        for step in path[:-1]:
            node = node[step]
        del node[path[-1]]
        yield f"a CronJob without spec.{'.'.join(path)}", bare


MISSING_FIELDS = dict(_missing_fields())

QUANTITIES = ["1", 1, "2", "+1", "500m", "1k", "1e3", ".5", "0", 0, "00", "0.0", "0m", "0e3", "-1"]


def _examples() -> Iterator[tuple[str, dict[str, Any]]]:
    """The seven kinds in the project's real-world-shaped example manifests."""
    for file in sorted([*EXAMPLES.glob("*.yaml"), *EXAMPLES.glob("*.yml")]):
        for doc in yaml.safe_load_all(file.read_text(encoding="utf-8")):
            items = (doc or {}).get("items") if (doc or {}).get("kind") == "List" else [doc]
            for item in items or []:
                if isinstance(item, dict) and KINDS.get(item.get("kind"), ("",))[0] == item.get(
                    "apiVersion"
                ):
                    yield f"{file.name}: {item['kind']}/{item['metadata']['name']}", item


def _every_object() -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in KINDS:
        for sentence, spec in {**GPU_SPECS, **NON_GPU_SPECS}.items():
            yield f"{kind} with {sentence}", workload(kind, spec)
        for quantity in QUANTITIES:
            spec = pod_spec(container(limits={"nvidia.com/gpu": quantity}))
            yield f"{kind} with nvidia.com/gpu: {quantity!r}", workload(kind, spec)
    yield from MISSING_FIELDS.items()
    yield from _examples()


EVERY_OBJECT = dict(_every_object())


# --- what is sent --------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sentence", GPU_SPECS)
def test_a_gpu_workload_of_every_kind_is_sent_on_create(kind: str, sentence: str) -> None:
    obj = workload(kind, GPU_SPECS[sentence])
    assert sent_to_both(admission_request("CREATE", obj))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sentence", NON_GPU_SPECS)
def test_a_workload_without_a_gpu_is_never_sent(kind: str, sentence: str) -> None:
    obj = workload(kind, NON_GPU_SPECS[sentence])
    assert not sent_to_both(admission_request("CREATE", obj))
    assert not sent_to_both(admission_request("UPDATE", obj, obj))


@pytest.mark.parametrize("sentence", MISSING_FIELDS)
def test_an_object_missing_spec_fields_is_not_sent_and_raises_no_cel_error(sentence: str) -> None:
    assert not sent_to_both(admission_request("CREATE", MISSING_FIELDS[sentence]))


@pytest.mark.parametrize("kind", KINDS)
def test_an_update_that_keeps_the_gpus_is_sent(kind: str) -> None:
    old = workload(kind, GPU_SPECS["nvidia.com/gpu in limits"])
    new = workload(kind, GPU_SPECS["amd.com/gpu"])
    assert sent_to_both(admission_request("UPDATE", new, old))


@pytest.mark.parametrize("kind", KINDS)
def test_an_update_that_adds_a_gpu_is_sent(kind: str) -> None:
    old = workload(kind, NON_GPU_SPECS["CPU and memory only"])
    new = workload(kind, GPU_SPECS["nvidia.com/gpu in limits"])
    assert sent_to_both(admission_request("UPDATE", new, old))


@pytest.mark.parametrize("kind", KINDS)
def test_an_update_that_removes_the_gpus_is_still_sent(kind: str) -> None:
    # Decided: the old object counts too, so no GPU-related change is hidden from
    # the operator (which judges the new object and admits this one).
    old = workload(kind, GPU_SPECS["nvidia.com/gpu in limits"])
    new = workload(kind, NON_GPU_SPECS["CPU and memory only"])
    assert sent_to_both(admission_request("UPDATE", new, old))


@pytest.mark.parametrize("kind", KINDS)
def test_a_delete_is_never_sent_even_of_a_gpu_workload(kind: str) -> None:
    # DELETE is not in the rules; the condition keeps it out even if someone adds it.
    old = workload(kind, GPU_SPECS["nvidia.com/gpu in limits"])
    assert not sent_to_both(admission_request("DELETE", None, old))


@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_the_gpu_condition_is_false_without_error_when_both_objects_are_null(
    configuration: str,
) -> None:
    activation = _activation(admission_request("CREATE", None))
    programs = dict(_conditions(configuration))
    assert not _evaluate("gpu-workload", programs["gpu-workload"], activation)


@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_the_gpu_condition_ignores_a_null_old_object_on_create(configuration: str) -> None:
    request = admission_request("CREATE", workload("Pod", GPU_SPECS["amd.com/gpu"]), None)
    assert request["oldObject"] is None
    programs = dict(_conditions(configuration))
    assert _evaluate("gpu-workload", programs["gpu-workload"], _activation(request))


# --- the cross-check with the operator's own rule --------------------------------------


@pytest.mark.parametrize("where", EVERY_OBJECT)
def test_the_match_conditions_decide_exactly_as_the_operators_is_gpu_workload(where: str) -> None:
    obj = EVERY_OBJECT[where]
    assert sent_to_both(admission_request("CREATE", obj)) == domain_decision(obj)


@pytest.mark.parametrize("where", EVERY_OBJECT)
def test_an_update_is_sent_exactly_when_the_old_or_the_new_object_is_a_gpu_workload(
    where: str,
) -> None:
    obj = EVERY_OBJECT[where]
    cpu_only = workload(obj["kind"], NON_GPU_SPECS["CPU and memory only"])
    gpu = workload(obj["kind"], GPU_SPECS["nvidia.com/gpu in limits"])
    assert sent_to_both(admission_request("UPDATE", obj, cpu_only)) == domain_decision(obj)
    assert sent_to_both(admission_request("UPDATE", cpu_only, obj)) == domain_decision(obj)
    assert sent_to_both(admission_request("UPDATE", obj, gpu))


def test_the_cross_check_covers_gpu_and_non_gpu_objects_of_all_seven_kinds() -> None:
    decided = {(obj["kind"], domain_decision(obj)) for obj in EVERY_OBJECT.values()}
    assert decided == {(kind, answer) for kind in KINDS for answer in (True, False)}


def test_the_cross_check_includes_the_example_manifests() -> None:
    assert EXAMPLES.is_dir(), f"{EXAMPLES} is part of the repository and must be there"
    examples = [where for where in EVERY_OBJECT if ".y" in where.split(":")[0]]
    assert len(examples) >= 10


def test_an_unparseable_quantity_is_the_one_known_disagreement_and_never_reaches_a_webhook() -> (
    None
):
    # The operator counts a quantity it cannot parse as a GPU (governance errs
    # towards checking); the CEL regular expression does not. The API server
    # cannot decode such an object, so it is refused before admission: the
    # disagreement never shows. Pinned here so that a change on either side is seen.
    obj = workload("Pod", pod_spec(container(limits={"nvidia.com/gpu": "lots"})))
    assert domain_decision(obj)
    assert not sent_to_both(admission_request("CREATE", obj))


def test_the_manifests_look_only_at_the_kinds_own_pod_spec_as_the_operator() -> None:
    # The shipped condition is the generated one: it reads the pod spec where the
    # request's kind keeps it, so a Deployment with a CronJob's path agrees too.
    obj = workload("Deployment", None)
    obj["spec"] = {"jobTemplate": {"spec": {"template": {"spec": GPU_SPECS["amd.com/gpu"]}}}}
    assert not domain_decision(obj)
    assert not sent_to_both(admission_request("CREATE", obj))


# --- the gpu-workload condition the operator writes from its configuration ------------

CUSTOM_GPUS = Config(gpu_resources=("nvidia.com/gpu", "example.com/gpu", "acme.io/tpu-v?"))


@functools.cache
def _compiled(expression: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(env.compile(expression))


def written_sends(config: Config, request: Mapping[str, Any]) -> bool:
    """Whether the `gpu-workload` the operator writes for `config` sends `request`."""
    program = _compiled(gpu_condition(config)["expression"])
    return _evaluate("gpu-workload", program, _activation(request))


def manifest_sends(request: Mapping[str, Any]) -> bool:
    programs = {name: dict(_conditions(name))["gpu-workload"] for name in CONFIGURATIONS}
    validating, mutating = (
        _evaluate("gpu-workload", program, _activation(request)) for program in programs.values()
    )
    assert validating == mutating
    return validating


def _requests(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """CREATE, and UPDATEs to, from and within GPU use, of `obj`."""
    cpu_only = workload(obj["kind"], NON_GPU_SPECS["CPU and memory only"])
    yield admission_request("CREATE", obj)
    yield admission_request("UPDATE", obj, cpu_only)
    yield admission_request("UPDATE", cpu_only, obj)
    yield admission_request("UPDATE", obj, obj)


@pytest.mark.parametrize("where", EVERY_OBJECT)
def test_the_default_configuration_writes_a_gpu_condition_deciding_as_the_manifests(
    where: str,
) -> None:
    # The manifests ship the default configuration's condition, so a webhook works
    # before the operator first starts; the operator then writes its own.
    for request in _requests(EVERY_OBJECT[where]):
        assert written_sends(Config(), request) == manifest_sends(request)


def test_the_manifests_ship_the_default_condition_byte_for_byte() -> None:
    # What the operator writes for the default configuration is already there: it
    # changes nothing, the field stays Helm's, and `helm upgrade` meets no conflict.
    # (The chart's copy is the same file: tests/install/test_helm_chart.py.)
    for configuration in CONFIGURATIONS:
        shipped = {c["name"]: c["expression"] for c in _shipped(configuration)}
        assert shipped["gpu-workload"] == gpu_condition(Config())["expression"], configuration


def test_the_generated_condition_files_are_up_to_date() -> None:
    assert gen_webhook_gpu_condition.main(["--check"]) == 0


def test_the_folded_scalar_reads_back_as_the_one_line_it_was_given() -> None:
    expression = gpu_condition(CUSTOM_GPUS)["expression"]
    text = gen_webhook_gpu_condition.folded(expression, "  ")
    assert len(text.splitlines()) > 3
    assert yaml.safe_load(text) == [{"name": "gpu-workload", "expression": expression}]
    with pytest.raises(ValueError, match="single inner spaces"):
        gen_webhook_gpu_condition.folded("a  b", "")


def _custom_objects() -> Iterator[tuple[str, dict[str, Any]]]:
    yield from EVERY_OBJECT.items()
    for kind in KINDS:
        for resource in ("example.com/gpu", "acme.io/tpu-v4", "acme.io/tpu-v40", "amd.com/gpu"):
            for quantity in ("1", "0"):
                spec = pod_spec(container(limits={**CPU, resource: quantity}))
                yield f"{kind} with {resource}: {quantity}", workload(kind, spec)


CUSTOM_OBJECTS = dict(_custom_objects())


@pytest.mark.parametrize("where", CUSTOM_OBJECTS)
def test_a_custom_gpu_resources_condition_decides_as_the_operator_with_that_configuration(
    where: str,
) -> None:
    obj = CUSTOM_OBJECTS[where]
    expected = is_gpu_workload(obj, GpuMatcher(CUSTOM_GPUS.gpu_resources))
    assert written_sends(CUSTOM_GPUS, admission_request("CREATE", obj)) == expected
    cpu_only = workload(obj["kind"], NON_GPU_SPECS["CPU and memory only"])
    assert written_sends(CUSTOM_GPUS, admission_request("UPDATE", cpu_only, obj)) == expected


def test_a_custom_gpu_resource_is_sent_only_once_the_operator_wrote_its_condition() -> None:
    # Issue: a GPU resource the manifest does not name was admitted without a call.
    obj = workload("Pod", pod_spec(container(limits={"example.com/gpu": "1"})))
    assert not manifest_sends(admission_request("CREATE", obj))
    assert written_sends(CUSTOM_GPUS, admission_request("CREATE", obj))
    assert not written_sends(CUSTOM_GPUS, admission_request("CREATE", None))


def test_the_written_condition_looks_only_at_the_kinds_own_pod_spec_as_the_operator() -> None:
    obj = workload("Deployment", None)
    obj["spec"] = {"jobTemplate": {"spec": {"template": {"spec": GPU_SPECS["amd.com/gpu"]}}}}
    assert not written_sends(Config(), admission_request("CREATE", obj))


# --- objects made by a controller --------------------------------------------------


@pytest.mark.parametrize(("kind", "owner"), CONTROLLER_PAIRS)
@pytest.mark.parametrize("user", sorted(CONTROLLER_USERS))
def test_a_gpu_workload_made_by_a_controller_goes_to_the_mutating_webhook_only(
    kind: str, owner: str, user: str
) -> None:
    obj = owned(workload(kind, GPU_SPECS["nvidia.com/gpu in limits"]), owner)
    request = admission_request("CREATE", obj, user=user)
    assert sent("MutatingWebhookConfiguration", request)
    assert not sent("ValidatingWebhookConfiguration", request)


@pytest.mark.parametrize(("kind", "owner"), CONTROLLER_PAIRS)
@pytest.mark.parametrize(
    "user",
    [
        ALICE,
        "system:serviceaccount:team-a:dev",
        "system:serviceaccount:kube-system:replicaset-controller-forged",
        "system:serviceaccount:team-a:replicaset-controller",
        "",
    ],
)
def test_an_owner_claim_written_by_anyone_else_goes_to_both_webhooks(
    kind: str, owner: str, user: str
) -> None:
    # Issue 19: a Job claiming its user's real CronJob (name and uid) was never sent.
    obj = owned(workload(kind, GPU_SPECS["nvidia.com/gpu in limits"]), owner)
    assert sent_to_both(admission_request("CREATE", obj, user=user))


def test_an_owner_claim_without_user_info_goes_to_both_webhooks() -> None:
    obj = owned(workload("Pod", GPU_SPECS["nvidia.com/gpu in limits"]), "ReplicaSet")
    request = admission_request("CREATE", obj)
    del request["userInfo"]["username"]
    assert sent_to_both(request)


@pytest.mark.parametrize(
    ("sentence", "controller", "owner"),
    [
        ("an owner that is not the controller", False, "ReplicaSet"),
        ("an owner reference without the controller field", None, "ReplicaSet"),
        ("a controller of a kind the operator does not know", True, "RayCluster"),
    ],
)
def test_a_gpu_workload_with_other_owners_goes_to_both_webhooks(
    sentence: str, controller: bool | None, owner: str
) -> None:
    obj = owned(workload("Pod", GPU_SPECS["amd.com/gpu"]), owner, controller=controller)
    assert sent_to_both(admission_request("CREATE", obj))


@pytest.mark.parametrize(
    ("kind", "owner", "api_version"),
    [
        ("Pod", "Deployment", "apps/v1"),
        ("Pod", "CronJob", "batch/v1"),
        ("Pod", "ReplicaSet", "v1"),
        ("Pod", "Job", "apps/v1"),
        ("Pod", "ReplicaSet", "apps/x/v1"),
        ("Deployment", "Deployment", "apps/v1"),
        ("StatefulSet", "StatefulSet", "apps/v1"),
        ("DaemonSet", "ReplicaSet", "apps/v1"),
        ("CronJob", "CronJob", "batch/v1"),
        ("ReplicaSet", "StatefulSet", "apps/v1"),
        ("Job", "Job", "batch/v1"),
    ],
)
def test_a_forged_controller_owner_goes_to_both_webhooks(
    kind: str, owner: str, api_version: str
) -> None:
    # Issue 13: a bare GPU Pod claiming a Deployment was never sent, so never denied.
    obj = owned(workload(kind, GPU_SPECS["nvidia.com/gpu in limits"]), owner)
    obj["metadata"]["ownerReferences"][0]["apiVersion"] = api_version
    assert not created_by_controller(obj)
    assert sent_to_both(admission_request("CREATE", obj))


@pytest.mark.parametrize("owner", ["ReplicaSet", "Deployment", "Job", "CronJob", "RayCluster"])
@pytest.mark.parametrize("where", EVERY_OBJECT)
@pytest.mark.parametrize("user", [ALICE, REPLICASET_CONTROLLER])
def test_the_validating_webhook_is_called_exactly_when_the_operator_could_deny(
    where: str, owner: str, user: str
) -> None:
    # Without owners, the cross-check above already shows both webhooks agree.
    obj = owned(EVERY_OBJECT[where], owner)
    request = admission_request("CREATE", obj, user=user)
    assert sent("ValidatingWebhookConfiguration", request) == domain_validates(obj, user)
    assert sent("MutatingWebhookConfiguration", request) == domain_decision(obj)
