"""The operator's matchConditions skip only calls whose answer would be a bare "allowed".

The API server calls a webhook only when every matchCondition is true. The two
conditions the operator writes (`webhook_conditions`) are evaluated here with
cel-python, as test_admission_policy.py evaluates the admission policies, over the
same seeded corpus (what the API server would send), each case also made
compliant, under every configured mode, in every namespace mode and with a
namespace that could supply every label. Wherever a condition is false (the
call skipped), the webhook's own answer (`admission.validate`, `admission.mutate`)
must be one that changes nothing: allowed, no warning, no audit annotation, no
patch. And plainly compliant objects of every kind must be skipped, or the
conditions would save nothing.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import Any

import celpy
import pytest

from finops_devtools.devcluster.reviews import COMPLETE_LABELS, workload
from finops_operator.domain import conventions
from finops_operator.domain.config import Config, LabelRule, Mode, parse_config
from finops_operator.domain.policies.admission import Decision, mutate, validate
from finops_operator.domain.policies.admission_policy import (
    GPU_CONDITION,
    MUTATING_CONDITION,
    VALIDATING_CONDITION,
)
from finops_operator.domain.policies.label_check import LabelPolicy
from finops_operator.domain.policies.webhook_conditions import (
    NAME_LABEL,
    OWNED,
    WebhookSettings,
    conditions_patch,
    desired_conditions,
    gpu_condition,
    webhook_settings,
)
from finops_operator.domain.workloads import (
    GpuMatcher,
    WorkloadKind,
    is_gpu_workload,
    pod_template,
)
from tests.domain.policies.test_admission_policy import CASES, _program, _request, _sendable
from tests.domain.policies.workload_corpus import USERS, Case

CUSTOM = parse_config(
    {
        "labels": {
            "resilio.tech/team": {"pattern": "^(ml|search)-[a-z]+$"},
            "acme.io/project": {"values": ["apollo", "gemini"]},
            "acme.io/owner": {},
            "resilio.tech/cost-center": None,
        },
    }
)
CUSTOM_LABELS = {
    **{k: v for k, v in COMPLETE_LABELS.items() if k != "resilio.tech/cost-center"},
    "resilio.tech/team": "ml-ranking",
    "acme.io/project": "apollo",
    "acme.io/owner": "alice",
}
CONFIGS = {**{f"mode {mode}": Config(mode=mode) for mode in Mode}, "custom rules": CUSTOM}
NAMESPACE_MODES = (None, "enforce", "audit", "off", "lax")


@functools.cache
def _expressions(name: str) -> dict[str, str]:
    desired = desired_conditions(CONFIGS[name])
    [validating] = desired[conventions.VALIDATING_WEBHOOK]
    [mutating] = desired[conventions.MUTATING_WEBHOOK]
    assert (validating["name"], mutating["name"]) == (VALIDATING_CONDITION, MUTATING_CONDITION)
    return {"validate": validating["expression"], "mutate": mutating["expression"]}


def called(config: str, webhook: str, obj: Mapping[str, Any], old: Any, operation: str) -> bool:
    """The condition as the API server evaluates it; an error fails (failurePolicy Fail)."""
    request = {
        "kind": {"group": "", "version": "v1", "kind": obj["kind"]},
        "operation": operation,
        "namespace": obj["metadata"]["namespace"],
        "name": obj["metadata"].get("name", ""),
    }
    bound = {
        "object": celpy.json_to_cel(dict(obj)),
        "oldObject": celpy.json_to_cel(old),
        "request": celpy.json_to_cel(request),
    }
    try:
        result = _program(_expressions(config)[webhook]).evaluate(bound)
    except celpy.CELEvalError as err:
        pytest.fail(f"the {webhook} condition failed to evaluate: {err}")
    assert isinstance(result, celpy.celtypes.BoolType), result
    return bool(result)


def _with_labels(case: Case, labels: Mapping[str, str]) -> Case:
    """The case with `labels` on its object's pods, everything else (annotations, owners,
    the old object) as it was."""
    obj = copy.deepcopy(case.obj)
    template = pod_template(obj)
    template.setdefault("metadata", {})["labels"] = {"app": "llm", **labels}
    return Case(obj, case.old, case.policy, case.namespaces, case.user)


SENDABLE = [case for case in CASES if _sendable(case) is not None]
COMPLIANT = [_with_labels(case, COMPLETE_LABELS) for case in SENDABLE]
ALL = SENDABLE + COMPLIANT


def _namespace_labels(case: Case, mode: str | None) -> dict[str, dict[str, str]]:
    """The case's namespace in `mode`, holding every label the configurations require,
    so that `/mutate` would fill whatever is missing."""
    labels: dict[str, str] = {**COMPLETE_LABELS, **CUSTOM_LABELS}
    if mode is not None:
        labels[conventions.MODE_NAMESPACE_LABEL] = mode
    return {case.obj["metadata"]["namespace"]: labels}


def _changes_nothing(decision: Decision) -> bool:
    return (
        decision.allowed
        and not decision.warnings
        and not decision.patch
        and not decision.audit_annotations
    )


def _check(config: str, case: Case) -> tuple[bool, bool]:
    """Every skipped call would have answered nothing; (validate skipped, mutate skipped)
    on CREATE."""
    obj, old = _sendable(case) or ({}, {})
    policy = LabelPolicy(CONFIGS[config])
    skipped = (False, False)
    for operation in ("CREATE", "UPDATE"):
        previous = old if operation == "UPDATE" else None
        skip_validate = not called(config, "validate", obj, previous, operation)
        skip_mutate = not called(config, "mutate", obj, previous, operation)
        for user in {case.user["username"]: case.user, USERS[0]["username"]: USERS[0]}.values():
            request = _request(obj, previous, operation, user)
            for mode in NAMESPACE_MODES:
                namespaces = _namespace_labels(case, mode)
                if skip_validate:
                    decision = validate(request, policy, namespaces)
                    assert _changes_nothing(decision), (config, operation, user, mode, decision)
                if skip_mutate:
                    decision = mutate(request, policy, namespaces)
                    assert _changes_nothing(decision), (config, operation, user, mode, decision)
        if operation == "CREATE":
            skipped = (skip_validate, skip_mutate)
    return skipped


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("index", range(len(ALL)))
def test_a_call_is_skipped_only_when_the_webhook_would_answer_nothing(
    config: str, index: int
) -> None:
    _check(config, ALL[index])


@pytest.mark.parametrize("config", CONFIGS)
def test_plainly_compliant_objects_of_every_kind_are_not_sent(config: str) -> None:
    labels = CUSTOM_LABELS if config == "custom rules" else COMPLETE_LABELS
    for kind in WorkloadKind:
        obj = workload(kind.value, labels=labels)
        for operation, old in (("CREATE", None), ("UPDATE", copy.deepcopy(obj))):
            assert not called(config, "validate", obj, old, operation), (kind, operation)
            assert not called(config, "mutate", obj, old, operation), (kind, operation)


def _annotated(obj: Mapping[str, Any]) -> bool:
    metas = (obj["metadata"], pod_template(obj).get("metadata") or {})
    return any(conventions.EXEMPT_ANNOTATION in (m.get("annotations") or {}) for m in metas)


def test_the_compliant_corpus_is_not_sent_unless_it_carries_an_exempt_annotation() -> None:
    results = [(case, _check("mode enforce", case)) for case in COMPLIANT]
    for case, (skip_validate, skip_mutate) in results:
        assert skip_mutate
        assert skip_validate == (not _annotated(case.obj))
    assert sum(skip for _, (skip, _) in results) > 60
    assert sum(not skip for _, (skip, _) in results) > 20


@pytest.mark.parametrize(
    ("change", "sent_to"),
    [
        ({"resilio.tech/team": None}, {"validate", "mutate"}),  # missing
        ({"resilio.tech/team": ""}, {"validate", "mutate"}),  # empty counts as missing
        ({"resilio.tech/environment": "prod"}, {"validate"}),  # invalid: nothing to fill
        ({"resilio.tech/cost-center": "1234"}, {"validate"}),
    ],
)
def test_each_label_problem_reaches_the_webhook_that_acts_on_it(
    change: dict[str, str | None], sent_to: set[str]
) -> None:
    labels = {k: v for k, v in {**COMPLETE_LABELS, **change}.items() if v is not None}
    obj = workload("Deployment", labels=labels)
    for webhook in ("validate", "mutate"):
        assert called("mode audit", webhook, obj, None, "CREATE") == (webhook in sent_to)


@pytest.mark.parametrize("where", ["object", "template"])
@pytest.mark.parametrize("value", ["true", "false", ""])
def test_an_exempt_annotation_of_any_value_sends_a_compliant_object_to_validate(
    where: str, value: str
) -> None:
    # Honoured or refused, an exemption is answered with a warning.
    obj = workload("Deployment", labels=COMPLETE_LABELS)
    meta = obj["metadata"] if where == "object" else pod_template(obj)["metadata"]
    meta["annotations"] = {conventions.EXEMPT_ANNOTATION: value}
    assert called("mode enforce", "validate", obj, None, "CREATE")
    assert not called("mode enforce", "mutate", obj, None, "CREATE")


def test_labels_on_the_object_but_not_on_its_pods_are_sent() -> None:
    obj = workload("Deployment", labels={})
    obj["metadata"]["labels"] = dict(COMPLETE_LABELS)
    assert called("mode enforce", "validate", obj, None, "CREATE")
    assert called("mode enforce", "mutate", obj, None, "CREATE")


def test_a_pattern_re2_cannot_run_writes_no_condition_so_everything_is_sent() -> None:
    config = Config(labels={"resilio.tech/team": LabelRule(pattern=r"^(?!test-)[a-z-]+$")})
    assert desired_conditions(config) == {
        conventions.VALIDATING_WEBHOOK: [],
        conventions.MUTATING_WEBHOOK: [],
    }


# --- the gpu-workload condition, from gpuResources ----------------------------------------

GPU_CONFIGS = {
    "default": Config(),
    "custom gpuResources": Config(
        gpu_resources=("nvidia.com/gpu", "example.com/gpu", "acme.io/tpu-v?", "vendor.io/accel-*")
    ),
}


def gpu_sent(config: str, obj: Mapping[str, Any] | None, old: Any, operation: str) -> bool:
    """The operator's `gpu-workload` for a configuration of GPU_CONFIGS."""
    return condition_true(gpu_condition(GPU_CONFIGS[config]), obj, old, operation)


def condition_true(
    condition: Mapping[str, str], obj: Mapping[str, Any] | None, old: Any, operation: str
) -> bool:
    """A webhook's matchCondition as the API server evaluates it; an error fails."""
    kind = (obj or old)["kind"]
    request = {"kind": {"group": "", "version": "v1", "kind": kind}, "operation": operation}
    bound = {
        "object": celpy.json_to_cel(None if obj is None else dict(obj)),
        "oldObject": celpy.json_to_cel(None if old is None else dict(old)),
        "request": celpy.json_to_cel(request),
    }
    try:
        result = _program(condition["expression"]).evaluate(bound)
    except celpy.CELEvalError as err:
        pytest.fail(f"the {condition['name']} condition failed to evaluate: {err}")
    assert isinstance(result, celpy.celtypes.BoolType), result
    return bool(result)


@pytest.mark.parametrize("resource", ["example.com/gpu", "acme.io/tpu-v4", "vendor.io/accel-x1"])
@pytest.mark.parametrize("kind", [k.value for k in WorkloadKind])
def test_a_configured_gpu_resource_is_sent_and_a_cpu_workload_is_not(
    resource: str, kind: str
) -> None:
    obj = workload(kind, resource=resource)
    assert gpu_sent("custom gpuResources", obj, None, "CREATE")
    assert not gpu_sent("default", obj, None, "CREATE")  # what the manifest alone would do
    cpu = workload(kind, gpus=None)
    assert not gpu_sent("custom gpuResources", cpu, None, "CREATE")
    assert gpu_sent("custom gpuResources", cpu, obj, "UPDATE")  # its GPU removed: still sent


def test_a_resource_left_out_of_gpuresources_is_not_sent_and_a_dra_claim_still_is() -> None:
    assert not gpu_sent("custom gpuResources", workload("Pod", resource="amd.com/gpu"), None, "")
    assert not gpu_sent(
        "custom gpuResources", workload("Pod", resource="acme.io/tpu-v10"), None, ""
    )
    claimed = workload("Pod", gpus=None)
    claimed["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}]
    assert gpu_sent("custom gpuResources", claimed, None, "CREATE")


@pytest.mark.parametrize("config", GPU_CONFIGS)
def test_the_gpu_condition_decides_as_is_gpu_workload_over_the_corpus(config: str) -> None:
    matcher = GpuMatcher(GPU_CONFIGS[config].gpu_resources)
    decided = set()
    for case in SENDABLE:
        obj, old = _sendable(case) or ({}, {})
        expected = is_gpu_workload(obj, matcher)
        assert gpu_sent(config, obj, None, "CREATE") == expected, obj
        previous = is_gpu_workload(old, matcher)
        assert gpu_sent(config, obj, old, "UPDATE") == (expected or previous), (obj, old)
        decided.add(expected)
    assert decided == {True, False}


# --- the JSON Patch ----------------------------------------------------------------------

GPU = {"name": "gpu-workload", "expression": "gpu"}
STATIC = [{"name": "create-or-update", "expression": "true"}, GPU]
MODE_OFF = {"key": conventions.MODE_NAMESPACE_LABEL, "operator": "NotIn", "values": ["off"]}
EXEMPT = {"key": NAME_LABEL, "operator": "NotIn", "values": ["kube-system", "finops-system"]}
SELECTOR = {"matchExpressions": [EXEMPT, MODE_OFF]}


def _configuration(
    validating: list[dict[str, str]] | None, selector: dict[str, Any] | None = SELECTOR
) -> dict[str, Any]:
    hook: dict[str, Any] = {"name": conventions.VALIDATING_WEBHOOK}
    if validating is not None:
        hook["matchConditions"] = validating
    if selector is not None:
        hook["namespaceSelector"] = selector
    webhooks = [{"name": "someone-elses.example.com"}, hook]
    return {"metadata": {"resourceVersion": "42"}, "webhooks": webhooks}


def _settings(
    ours: list[dict[str, str]], gpu: dict[str, str] = GPU, exempt: tuple[str, ...] | None = None
) -> WebhookSettings:
    names = tuple(EXEMPT["values"]) if exempt is None else exempt
    return WebhookSettings({conventions.VALIDATING_WEBHOOK: ours}, gpu, names)


OURS = [{"name": VALIDATING_CONDITION, "expression": "a && b"}]
TESTED = {"op": "test", "path": "/metadata/resourceVersion", "value": "42"}


def test_the_conditions_go_after_the_manifests_own_at_the_version_read() -> None:
    assert conditions_patch(_configuration(STATIC), _settings(OURS)) == [
        TESTED,
        {"op": "add", "path": "/webhooks/1/matchConditions", "value": [*STATIC, *OURS]},
    ]
    [_, add] = conditions_patch(_configuration(None), _settings(OURS))
    assert add["value"] == [GPU, *OURS]


def test_conditions_in_step_write_nothing_and_stale_ones_are_replaced_or_removed() -> None:
    current = [*STATIC, *OURS]
    assert conditions_patch(_configuration(current), _settings(OURS)) == []
    stale = [{"name": VALIDATING_CONDITION, "expression": "old"}, *STATIC]
    [_, replace] = conditions_patch(_configuration(stale), _settings(OURS))
    assert replace["value"] == current
    [_, remove] = conditions_patch(_configuration(stale), _settings([]))
    assert remove["value"] == STATIC
    assert not {c["name"] for c in STATIC} & OWNED


def test_the_gpu_condition_is_replaced_in_place_and_the_others_are_kept_in_order() -> None:
    manifest = [
        {"name": "create-or-update", "expression": "true"},
        {"name": GPU_CONDITION, "expression": "the manifest's default"},
        {"name": "not-created-by-a-controller", "expression": "true"},
    ]
    [_, replace] = conditions_patch(_configuration(manifest), _settings(OURS))
    assert replace["value"] == [manifest[0], GPU, manifest[2], *OURS]


def test_the_exempt_namespaces_replace_the_name_list_and_keep_the_mode_expression() -> None:
    settings = _settings(OURS, exempt=("kube-system", "gpu-infra", "finops"))
    [_, selector] = conditions_patch(_configuration([*STATIC, *OURS]), settings)
    assert selector == {
        "op": "add",
        "path": "/webhooks/1/namespaceSelector",
        "value": {
            "matchExpressions": [{**EXEMPT, "values": list(settings.exempt_namespaces)}, MODE_OFF]
        },
    }
    [_, added] = conditions_patch(_configuration([*STATIC, *OURS], {}), settings)
    assert added["value"]["matchExpressions"] == [
        {"key": NAME_LABEL, "operator": "NotIn", "values": list(settings.exempt_namespaces)}
    ]


def test_settings_without_a_gpu_condition_or_exempt_namespaces_leave_those_alone() -> None:
    manifest = [{"name": GPU_CONDITION, "expression": "the manifest's"}, *OURS]
    configuration = _configuration(manifest, {"matchExpressions": [MODE_OFF]})
    ours_only = WebhookSettings({conventions.VALIDATING_WEBHOOK: []})
    assert conditions_patch(configuration, ours_only) == [
        TESTED,
        {"op": "add", "path": "/webhooks/1/matchConditions", "value": manifest[:1]},
    ]


def test_the_operator_always_exempts_its_own_namespace_once() -> None:
    assert webhook_settings(Config(), "finops-system").exempt_namespaces == (
        "kube-system",
        "finops-system",
    )
    custom = Config(exempt_namespaces=("kube-system", "gpu-infra"))
    assert webhook_settings(custom, "finops").exempt_namespaces == (
        "kube-system",
        "gpu-infra",
        "finops",
    )
    assert webhook_settings(Config(exempt_namespaces=()), "ops").exempt_namespaces == ("ops",)
