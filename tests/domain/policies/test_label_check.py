"""The label check: missing and invalid cost labels, exemptions, and how problems are told."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from finops_operator.domain.config import Config, LabelRule, parse_config
from finops_operator.domain.policies.label_check import (
    InvalidLabel,
    LabelPolicy,
    Violations,
    check_labels,
    exemption,
    object_ref,
    violation_message,
)

TEAM = "resilio.tech/team"
FEATURE = "resilio.tech/feature"
ENV = "resilio.tech/environment"
TYPE = "resilio.tech/workload-type"
CC = "resilio.tech/cost-center"
ALL = (TEAM, FEATURE, ENV, TYPE, CC)

GOOD: dict[str, Any] = {
    TEAM: "search-platform",
    FEATURE: "semantic-search",
    ENV: "production",
    TYPE: "inference",
    CC: "cc-4120",
}
RULES = Config().labels
POLICY = LabelPolicy(Config())
GPU_SPEC = {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": 1}}}]}


def with_labels(**changes: Any) -> dict[str, Any]:
    """GOOD with some keys changed; a value of ... removes the key."""
    labels = dict(GOOD)
    for short, value in changes.items():
        key = f"resilio.tech/{short.replace('_', '-')}"
        if value is ...:
            labels.pop(key)
        else:
            labels[key] = value
    return labels


REASONED = {
    "finops.resilio.tech/exempt": "true",
    "finops.resilio.tech/exempt-reason": "vendor benchmark",
}


def gpu_deployment(
    labels: dict[str, Any],
    namespace: str | None = "ml",
    annotations: dict[str, Any] | None = None,
    template_annotations: dict[str, Any] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "vllm"}
    if namespace is not None:
        meta["namespace"] = namespace
    if annotations is not None:
        meta["annotations"] = annotations
    template_meta: dict[str, Any] = {"labels": labels}
    if template_annotations is not None:
        template_meta["annotations"] = template_annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {"template": {"metadata": template_meta, "spec": GPU_SPEC}},
    }


@pytest.mark.parametrize(
    ("labels", "missing", "invalid"),
    [
        pytest.param(GOOD, (), {}, id="all five valid labels are compliant"),
        pytest.param({}, ALL, {}, id="no labels at all miss all five in rule order"),
        pytest.param(with_labels(team=...), (TEAM,), {}, id="an absent key is missing"),
        pytest.param(with_labels(team=""), (TEAM,), {}, id="an empty value counts as missing"),
        pytest.param(with_labels(team=None), (TEAM,), {}, id="a null value counts as missing"),
        pytest.param(
            with_labels(environment="prod"), (), {ENV: "prod"}, id="a value outside the list"
        ),
        pytest.param(
            with_labels(cost_center="1234"), (), {CC: "1234"}, id="a cost center without cc-"
        ),
        pytest.param(
            with_labels(team="ML-Research"), (), {TEAM: "ML-Research"}, id="uppercase in a team"
        ),
        pytest.param(
            with_labels(team="search-"), (), {TEAM: "search-"}, id="a team ending in a dash"
        ),
        pytest.param(with_labels(team="a" * 64), (), {TEAM: "a" * 64}, id="a 64-character team"),
        pytest.param(with_labels(team="a" * 63), (), {}, id="a 63-character team is fine"),
        pytest.param(
            with_labels(cost_center="cc-12\n"),
            (),
            {CC: "cc-12\n"},
            id="a trailing newline does not slip past a dollar anchor",
        ),
        pytest.param(with_labels(cost_center=4120), (), {CC: "4120"}, id="an integer value"),
        pytest.param(with_labels(team=True), (), {TEAM: "true"}, id="a boolean value"),
        pytest.param(with_labels(feature=1.5), (), {FEATURE: "1.5"}, id="a float value"),
        pytest.param(
            with_labels(feature=datetime.date(2024, 11, 4)),
            (),
            {FEATURE: "2024-11-04"},
            id="a date value",
        ),
        pytest.param(with_labels(feature={"a": 1}), (), {FEATURE: '{"a":1}'}, id="a mapping value"),
        pytest.param(
            with_labels(team=..., environment="prod"),
            (TEAM,),
            {ENV: "prod"},
            id="missing and invalid together",
        ),
        pytest.param(
            {**GOOD, "app": "vllm", "resilio.tech/other": "X"},
            (),
            {},
            id="keys without a rule are not checked",
        ),
    ],
)
def test_check_labels(
    labels: dict[str, Any], missing: tuple[str, ...], invalid: dict[str, str]
) -> None:
    found = check_labels(labels, RULES)
    assert found.missing == missing
    assert {key: bad.value for key, bad in found.invalid.items()} == invalid
    assert bool(found) is bool(missing or invalid)


def test_a_non_string_value_is_told_to_be_quoted() -> None:
    found = check_labels(with_labels(cost_center=4120), RULES)
    assert found.invalid[CC].rule == "must be a string; quote it in YAML"


@pytest.mark.parametrize(
    ("rule", "value", "accepted", "described"),
    [
        pytest.param(LabelRule(pattern="^x$"), "x", True, "must match ^x$", id="a pattern"),
        pytest.param(
            LabelRule(values=("a", "b")), "c", False, "must be one of a, b", id="a list of values"
        ),
        pytest.param(
            LabelRule(pattern="^[a-z]+$", values=("a", "B")),
            "B",
            False,
            "must be one of a, B and must match ^[a-z]+$",
            id="a value must satisfy both the list and the pattern",
        ),
        pytest.param(LabelRule(), "anything", True, "must not be empty", id="no rule but presence"),
        pytest.param(
            LabelRule(pattern="cc-[0-9]+"), "xcc-1", False, "must match cc-[0-9]+", id="whole"
        ),
    ],
)
def test_label_rule(rule: LabelRule, value: str, accepted: bool, described: str) -> None:
    assert rule.accepts(value) is accepted
    assert rule.describe() == described


@pytest.mark.parametrize(
    ("config", "obj", "exempt"),
    [
        pytest.param(
            Config(), gpu_deployment({}, namespace="kube-system"), True, id="kube-system by default"
        ),
        pytest.param(
            Config(),
            gpu_deployment({}, namespace="finops-system"),
            True,
            id="the operator's own namespace by default",
        ),
        pytest.param(Config(), gpu_deployment({}, namespace="ml"), False, id="other namespaces"),
        pytest.param(
            Config(), gpu_deployment({}, namespace=None), False, id="an unknown namespace is not"
        ),
        pytest.param(
            parse_config({"exemptNamespaces": ["sandbox"]}),
            gpu_deployment({}, namespace="kube-system"),
            False,
            id="a configured list replaces the default",
        ),
        pytest.param(
            parse_config({"exemptNamespaces": ["sandbox"]}),
            gpu_deployment({}, namespace="sandbox"),
            True,
            id="a configured namespace is exempt",
        ),
        pytest.param(
            Config(),
            gpu_deployment({}, annotations=REASONED),
            True,
            id="the annotation on the object",
        ),
        pytest.param(
            Config(),
            gpu_deployment({}, template_annotations=REASONED),
            True,
            id="the annotation on the pod template",
        ),
        pytest.param(
            Config(),
            gpu_deployment({}, annotations={"finops.resilio.tech/exempt": "true"}),
            False,
            id="true without a reason does not exempt",
        ),
        pytest.param(
            Config(),
            gpu_deployment({}, annotations={**REASONED, "finops.resilio.tech/exempt-reason": ""}),
            False,
            id="true with an empty reason does not exempt",
        ),
        pytest.param(
            Config(),
            gpu_deployment(
                {},
                annotations={"finops.resilio.tech/exempt": "true"},
                template_annotations={"finops.resilio.tech/exempt-reason": "elsewhere"},
            ),
            False,
            id="the reason must be beside the annotation",
        ),
        pytest.param(
            Config(),
            gpu_deployment({}, annotations={"finops.resilio.tech/exempt": ""}),
            False,
            id="an empty value does not exempt",
        ),
        pytest.param(
            Config(),
            gpu_deployment({}, annotations={"finops.resilio.tech/exempt": "false"}),
            False,
            id="false does not exempt",
        ),
        pytest.param(
            Config(),
            gpu_deployment({}, template_annotations={"finops.resilio.tech/exempt": "True"}),
            False,
            id="True (capitalised) does not exempt",
        ),
        pytest.param(
            Config(),
            gpu_deployment({}, annotations={"finops.resilio.tech/exempt": "vendor benchmark"}),
            False,
            id="a reason in place of true does not exempt",
        ),
        pytest.param(
            Config(),
            gpu_deployment({}, annotations={"finops.resilio.tech/other": "x"}),
            False,
            id="another annotation is not",
        ),
        pytest.param(
            Config(),
            gpu_deployment({}, annotations=["finops.resilio.tech/exempt"]),  # type: ignore[arg-type]
            False,
            id="annotations that are a list do not crash",
        ),
    ],
)
def test_exemption(config: Config, obj: dict[str, Any], exempt: bool) -> None:
    namespace = obj["metadata"].get("namespace")
    assert (exemption(obj, namespace, config) is not None) is exempt
    assert bool(LabelPolicy(config).check_workload(obj)) is not exempt


def test_exemption_says_why() -> None:
    obj = gpu_deployment(
        {},
        annotations={
            "finops.resilio.tech/exempt": "true",
            "finops.resilio.tech/exempt-reason": "vendor benchmark",
        },
    )
    assert (
        exemption(obj, "ml", Config())
        == "annotated finops.resilio.tech/exempt=true: vendor benchmark"
    )
    assert (
        exemption(obj, "kube-system", Config())
        == "namespace kube-system is exempt by configuration"
    )


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(gpu_deployment({}), ALL, id="a GPU Deployment without labels misses all five"),
        pytest.param(gpu_deployment(GOOD), (), id="a GPU Deployment with good labels is compliant"),
        pytest.param(
            {**gpu_deployment({}), "metadata": {"name": "v", "namespace": "ml", "labels": GOOD}},
            ALL,
            id="labels on the Deployment itself do not count",
        ),
        pytest.param(
            {
                "kind": "Deployment",
                "metadata": {"name": "cpu"},
                "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}},
            },
            (),
            id="a Deployment without GPUs is never checked",
        ),
        pytest.param(
            {"kind": "ConfigMap", "metadata": {"name": "c"}, "spec": GPU_SPEC},
            (),
            id="a non-workload kind is never checked",
        ),
        pytest.param(
            {**gpu_deployment({}), "apiVersion": "example.com/v1"},
            (),
            id="a Deployment of another API group is never checked",
        ),
    ],
)
def test_check_workload(obj: dict[str, Any], expected: tuple[str, ...]) -> None:
    assert POLICY.check_workload(obj).missing == expected


def test_check_workload_prefers_the_namespace_it_is_given() -> None:
    obj = gpu_deployment({}, namespace="ml")
    assert not POLICY.check_workload(obj, "kube-system")
    assert POLICY.check_workload(obj, "ml")


def test_needs_labels_follows_the_configured_gpu_resources() -> None:
    policy = LabelPolicy(parse_config({"gpuResources": ["example.com/tpu"]}))
    assert not policy.needs_labels(gpu_deployment({}))


def violations(missing: tuple[str, ...] = (), **invalid: str) -> Violations:
    keys = {"env": ENV, "team": TEAM, "cc": CC}
    return Violations(missing, {keys[k]: InvalidLabel(v, "rule") for k, v in invalid.items()})


@pytest.mark.parametrize(
    ("after", "before", "subset"),
    [
        pytest.param(violations(), violations(), True, id="nothing is a subset of nothing"),
        pytest.param(violations(), violations((TEAM,)), True, id="fixing a problem adds none"),
        pytest.param(violations((TEAM,)), violations((TEAM, CC)), True, id="fewer missing keys"),
        pytest.param(violations((TEAM,)), violations(), False, id="a newly missing key is new"),
        pytest.param(violations((TEAM,)), violations((CC,)), False, id="another missing key"),
        pytest.param(violations(env="prod"), violations(env="prod"), True, id="same bad value"),
        pytest.param(violations(env="dev"), violations(env="prod"), False, id="another bad value"),
        pytest.param(violations(env="prod"), violations(), False, id="a newly invalid value"),
        pytest.param(
            violations(env="prod"), violations((ENV,)), False, id="a missing key made invalid"
        ),
        pytest.param(
            violations((ENV,)), violations(env="prod"), False, id="an invalid key made missing"
        ),
    ],
)
def test_is_subset_of(after: Violations, before: Violations, subset: bool) -> None:
    assert after.is_subset_of(before) is subset


def test_annotation_is_compact_stable_json() -> None:
    one = Violations((TEAM, CC), {ENV: InvalidLabel("prod", "r"), TEAM: InvalidLabel("X", "r")})
    other = Violations((TEAM, CC), {TEAM: InvalidLabel("X", "r"), ENV: InvalidLabel("prod", "r")})
    assert one.annotation() == other.annotation()
    assert one.annotation() == (
        '{"invalid":{"resilio.tech/environment":"prod","resilio.tech/team":"X"},'
        '"missing":["resilio.tech/team","resilio.tech/cost-center"]}'
    )
    assert json.loads(one.annotation()) == one.as_dict()


def test_as_dict_is_the_lint_json_shape() -> None:
    found = check_labels(with_labels(team=..., environment="prod"), RULES)
    assert found.as_dict() == {"missing": [TEAM], "invalid": {ENV: "prod"}}


def test_problems_name_each_key_and_rule() -> None:
    found = check_labels(with_labels(team=..., environment="prod"), RULES)
    assert found.problems() == [
        "missing resilio.tech/team",
        "invalid resilio.tech/environment='prod' (must be one of production, staging, development)",
    ]


@pytest.mark.parametrize(
    ("kind", "namespace", "name", "ref"),
    [
        pytest.param("Pod", "ml", "nb", "Pod ml/nb", id="namespaced"),
        pytest.param("Pod", None, "nb", "Pod nb", id="without a namespace"),
        pytest.param("Job", "ml", None, "Job ml/(unnamed)", id="without a name"),
    ],
)
def test_object_ref(kind: str, namespace: str | None, name: str | None, ref: str) -> None:
    assert object_ref(kind, namespace, name) == ref


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        pytest.param("Pod", "metadata.labels", id="a Pod is told to set its own labels"),
        pytest.param(
            "Deployment", "spec.template.metadata.labels", id="a Deployment its template's"
        ),
        pytest.param(
            "CronJob",
            "spec.jobTemplate.spec.template.metadata.labels",
            id="a CronJob its pod template's",
        ),
    ],
)
def test_violation_message_is_one_line_naming_object_keys_rules_and_fix(
    kind: str, path: str
) -> None:
    found = check_labels(with_labels(team=..., cost_center="1234\nx"), RULES)
    message = violation_message(kind, "ml", "vllm", found)
    assert "\n" not in message
    assert message.startswith(f"{kind} ml/vllm asks for a GPU")
    assert "missing resilio.tech/team" in message
    assert "invalid resilio.tech/cost-center='1234\\nx' (must match ^cc-[0-9]+$)" in message
    assert f"Set them under {path}" in message
