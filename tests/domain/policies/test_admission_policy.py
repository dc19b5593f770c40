"""The generated admission policies decide as the webhook does, evaluated for real with cel-python.

The API server evaluates a ValidatingAdmissionPolicy's `variables` in order, then
each validation, with `object`, `oldObject`, `request` and `namespaceObject`
bound. These tests do the same with cel-python over the seeded corpus of
workload_corpus.py (restricted to what the API server would send: string label
values it accepts, quantities as canonical strings, a namespace) and compare,
case by case, with `admission.validate`: denied or not, the deny message, and the
warnings, word for word. cel-python is standard CEL; the two Kubernetes library
functions the policies use (`join`, `split` of the strings library) are given
here with the library's meaning. The bindings' namespace selectors are checked
against `effective_mode` the same way.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping
from typing import Any

import celpy
import pytest
from celpy import celtypes

from finops_devtools.devcluster.reviews import (
    ALICE,
    CLUSTER_ADMIN,
    COMPLETE_LABELS,
    CONTROLLER_PAIRS,
    REPLICASET_CONTROLLER,
    TEAM_A_DEV,
    workload,
)
from finops_operator.domain.config import Config, LabelRule, Mode, parse_config
from finops_operator.domain.policies import admission_policy as ap
from finops_operator.domain.policies.admission import Outcome, Request, validate
from finops_operator.domain.policies.label_check import LabelPolicy, Requester
from finops_operator.domain.policies.verdict import effective_mode
from finops_operator.domain.workloads import pod_template
from finops_operator.errors import ConfigError
from tests.domain.policies.workload_corpus import USERS, Case, corpus

# The label values the API server accepts (metadata validation, before admission).
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def _join(items: Any, sep: Any = "") -> celtypes.StringType:
    return celtypes.StringType(str(sep).join(str(item) for item in items))


def _split(text: Any, sep: Any) -> celtypes.ListType:
    return celtypes.ListType([celtypes.StringType(p) for p in str(text).split(str(sep))])


FUNCTIONS = {"join": _join, "split": _split}
ENV = celpy.Environment()


@functools.cache
def _program(expression: str) -> celpy.Runner:
    return ENV.program(ENV.compile(expression), functions=FUNCTIONS)


def as_sent(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The object as the API server hands it to admission; None when it refuses it first."""
    sent = copy.deepcopy(dict(obj))
    for meta in _metadatas(sent):
        labels = meta.get("labels") or {}
        for key, value in list(labels.items()):
            if value is None:
                del labels[key]
            elif not isinstance(value, str) or not LABEL_VALUE.fullmatch(value):
                return None
    for spec in _specs(sent):
        for container in spec.get("containers") or []:
            for section in (container.get("resources") or {}).values():
                for name, quantity in list(section.items()):
                    if quantity == "lots":
                        return None
                    section[name] = str(quantity)
    return sent


def _templates(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec") or {}
    job = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
    return [obj, spec.get("template") or {}, job]


def _metadatas(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [t.get("metadata") or {} for t in _templates(obj)]


def _specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [t.get("spec") or {} for t in _templates(obj)]


def evaluate(
    policy: Mapping[str, Any],
    obj: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    namespace_labels: Mapping[str, str],
    operation: str = "CREATE",
    user: Mapping[str, Any] | None = None,
) -> list[str]:
    """The messages of the validations that fail, as the API server would evaluate them:
    none when a matchCondition is false."""
    meta = obj["metadata"]
    request = {
        "kind": {"group": "", "version": "v1", "kind": obj["kind"]},
        "operation": operation,
        "namespace": meta["namespace"],
        "name": meta.get("name", ""),
        "userInfo": dict(user or ALICE),
    }
    bound: dict[str, Any] = {
        "object": celpy.json_to_cel(obj),
        "oldObject": celpy.json_to_cel(old),
        "request": celpy.json_to_cel(request),
        "namespaceObject": celpy.json_to_cel(
            {"metadata": {"name": meta["namespace"], "labels": dict(namespace_labels)}}
        ),
    }
    conditions = policy["spec"]["matchConditions"]
    if not all(_program(c["expression"]).evaluate(bound) for c in conditions):
        return []
    variables: dict[celtypes.StringType, Any] = {}
    for variable in policy["spec"]["variables"]:
        bound["variables"] = celtypes.MapType(variables)
        variables[celtypes.StringType(variable["name"])] = _program(
            variable["expression"]
        ).evaluate(bound)
    bound["variables"] = celtypes.MapType(variables)
    failed = []
    for validation in policy["spec"]["validations"]:
        if not _program(validation["expression"]).evaluate(bound):
            message = validation.get("message")
            if "messageExpression" in validation:
                message = str(_program(validation["messageExpression"]).evaluate(bound))
            failed.append(str(message))
    return failed


@functools.cache
def _policies(mode: Mode) -> tuple[dict[str, Any], dict[str, Any]]:
    config = Config(mode=mode)
    return ap.deny_policy(config), ap.warn_policy(config)


def _sendable(case: Case) -> tuple[dict[str, Any], dict[str, Any]] | None:
    if case.namespace is None or case.obj["apiVersion"].startswith("batch.volcano"):
        return None
    obj, old = as_sent(case.obj), as_sent(case.old)
    return None if obj is None or old is None else (obj, old)


def _compliant(kind: str) -> Case:
    obj = workload(kind, labels=COMPLETE_LABELS)
    return Case(obj, copy.deepcopy(obj), LabelPolicy(Config()), {"team-a": {}})


# The random corpus rarely draws five good labels: compliant objects of every kind besides.
REASONED = {"finops.resilio.tech/exempt": "true", "finops.resilio.tech/exempt-reason": "burn-in"}


def _exempted(case: Case, index: int) -> Case:
    """The case with a reasoned exemption on the object or its template, and on the old
    object in half of them (an update that keeps it), written by each user in turn."""
    obj, old = copy.deepcopy(case.obj), copy.deepcopy(case.old)
    for target in (obj, old) if index % 2 else (obj,):
        meta = target["metadata"] if index % 3 else pod_template(target).setdefault("metadata", {})
        meta.setdefault("annotations", {}).update(REASONED)
    return Case(obj, old, case.policy, case.namespaces, USERS[index % len(USERS)])


SENDABLE = [case for case in corpus(240, seed=23) if _sendable(case) is not None]
CASES = (
    SENDABLE
    + [_compliant(kind) for kind in ("Pod", "Deployment", "CronJob", "Job")]
    + [_exempted(case, index) for index, case in enumerate(SENDABLE[:72])]
)


def _request(
    obj: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    operation: str,
    user: Mapping[str, Any] | None = None,
) -> Request:
    meta = obj["metadata"]
    info = user or ALICE
    return Request(
        uid="u",
        operation=operation,
        kind=obj["kind"],
        namespace=meta["namespace"],
        name=meta["name"],
        sub_resource="",
        dry_run=False,
        object=obj,
        old_object=old,
        user=Requester(info["username"], tuple(info["groups"])),
    )


def test_the_sendable_corpus_still_covers_every_outcome() -> None:
    outcomes = set()
    for case in CASES:
        obj, old = _sendable(case) or ({}, {})
        for operation in ("CREATE", "UPDATE"):
            request = _request(obj, old if operation == "UPDATE" else None, operation)
            outcomes.add(validate(request, case.policy, case.namespaces).outcome)
    assert {Outcome.DENIED, Outcome.WARNED, Outcome.COMPLIANT, Outcome.EXEMPT} <= outcomes
    assert len(CASES) > 60


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
@pytest.mark.parametrize("index", range(len(CASES)))
def test_the_policies_decide_as_the_webhook(index: int, operation: str) -> None:
    case = CASES[index]
    obj, old = _sendable(case) or ({}, {})
    previous = old if operation == "UPDATE" else None
    user = case.user
    decision = validate(_request(obj, previous, operation, user), case.policy, case.namespaces)
    deny, warn = _policies(case.policy.config.mode)
    labels = case.namespaces.get(obj["metadata"]["namespace"], {})
    denied = evaluate(deny, obj, previous, labels, operation, user)
    warnings = evaluate(warn, obj, previous, labels, operation, user)
    assert bool(denied) == (decision.outcome is Outcome.DENIED), (decision, denied)
    if denied:
        assert denied == [decision.message]
    assert sorted(warnings) == sorted(decision.warnings)


def _selects(selector: Mapping[str, Any], name: str, labels: Mapping[str, str]) -> bool:
    """A label selector of In/NotIn expressions, as the API server applies it to a namespace."""
    labels = {**labels, "kubernetes.io/metadata.name": name}
    for term in selector["matchExpressions"]:
        value = labels.get(term["key"])
        inside = value is not None and value in term["values"]
        if inside != (term["operator"] == "In"):
            return False
    return True


@pytest.mark.parametrize("default", list(Mode))
@pytest.mark.parametrize("label", [None, "enforce", "audit", "off", "lax"])
@pytest.mark.parametrize("namespace", ["team-a", "kube-system"])
def test_the_bindings_select_the_namespaces_of_their_mode(
    default: Mode, label: str | None, namespace: str
) -> None:
    config = Config(mode=default)
    labels = {} if label is None else {"finops.resilio.tech/mode": label}
    mode = effective_mode(default, labels)
    exempt = namespace in config.exempt_namespaces
    objects = {o["metadata"]["name"]: o for o in ap.admission_policies(config)}
    enforce = objects[ap.DENY_BINDING]["spec"]["matchResources"]["namespaceSelector"]
    warn = objects[ap.WARN_BINDING]["spec"]["matchResources"]["namespaceSelector"]
    inherit = objects[ap.INHERIT_BINDING]["spec"]["matchResources"]["namespaceSelector"]
    assert _selects(enforce, namespace, labels) == (mode is Mode.ENFORCE and not exempt)
    assert _selects(warn, namespace, labels) == (mode is not Mode.OFF and not exempt)
    assert _selects(inherit, namespace, labels) == (mode is not Mode.OFF and not exempt)
    assert objects[ap.DENY_BINDING]["spec"]["validationActions"] == ["Deny"]
    assert objects[ap.WARN_BINDING]["spec"]["validationActions"] == ["Warn", "Audit"]


def test_custom_rules_globs_and_exempt_namespaces_reach_the_cel() -> None:
    config = parse_config(
        {
            "labels": {
                "resilio.tech/team": {"pattern": "^(ml|search)-[a-z]+$"},
                "acme.io/project": {"values": ["apollo", "gemini"]},
                "resilio.tech/cost-center": None,
            },
            "gpuResources": ["example.com/tpu-v[45]*", "acme.io/*-gpu"],
            "exemptNamespaces": ["sandbox"],
        }
    )
    policy = LabelPolicy(config)
    deny = ap.deny_policy(config)
    labels = {
        **COMPLETE_LABELS,
        "resilio.tech/team": "ml-ranking",
        "acme.io/project": "hermes",
    }
    for resource, gpu in [
        ("example.com/tpu-v4", True),
        ("example.com/tpu-v5e", True),
        ("example.com/tpu-v6", False),
        ("acme.io/big-gpu", True),
        ("nvidia.com/gpu", False),
    ]:
        obj = as_sent(workload("Job", labels=labels, resource=resource)) or {}
        decision = validate(_request(obj, None, "CREATE"), policy, {})
        denied = evaluate(deny, obj, None, {"finops.resilio.tech/mode": "enforce"})
        assert bool(denied) == gpu == (decision.outcome is Outcome.DENIED), resource
        if gpu:
            assert denied == [decision.message]
            assert "invalid acme.io/project='hermes' (must be one of apollo, gemini)" in denied[0]
    exempt = as_sent(workload("Job", namespace="sandbox", resource="acme.io/big-gpu")) or {}
    assert evaluate(deny, exempt, None, {"finops.resilio.tech/mode": "enforce"}) == []


def test_a_pattern_re2_cannot_run_is_a_configuration_error_naming_the_key() -> None:
    config = Config(labels={"resilio.tech/team": LabelRule(pattern=r"^(?!test-)[a-z-]+$")})
    with pytest.raises(ConfigError) as err:
        ap.admission_policies(config)
    assert "labels['resilio.tech/team'].pattern" in str(err.value)
    assert "negative lookahead" in str(err.value)


def test_mutating_objects_follow_the_served_version_and_can_be_left_out() -> None:
    config = Config()
    kinds = [o["kind"] for o in ap.admission_policies(config, mutating_version=None)]
    assert kinds == ["ValidatingAdmissionPolicy"] * 2 + ["ValidatingAdmissionPolicyBinding"] * 2
    objects = ap.admission_policies(config, mutating_version="v1")
    mutating = [o for o in objects if o["kind"].startswith("Mutating")]
    assert [o["apiVersion"] for o in mutating] == ["admissionregistration.k8s.io/v1"] * 2
    owner = {"apiVersion": "v1", "kind": "Namespace", "name": "finops-system", "uid": "u"}
    for obj in ap.admission_policies(config, owner=owner):
        assert obj["metadata"]["ownerReferences"] == [owner]
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "finops-operator"


@pytest.mark.parametrize(("kind", "owner_kind"), CONTROLLER_PAIRS)
def test_an_owner_claim_spares_only_what_the_controller_manager_writes(
    kind: str, owner_kind: str
) -> None:
    # Issue 19: an untagged GPU Job naming its user's real CronJob (name and uid) was
    # warned, not denied, by the policy as by the webhook. CEL reads no other object;
    # it checks the writer.
    group = "batch" if owner_kind in ("Job", "CronJob") else "apps"
    obj = workload(kind)
    obj["metadata"]["ownerReferences"] = [
        {
            "apiVersion": f"{group}/v1",
            "kind": owner_kind,
            "name": "o",
            "uid": "u",
            "controller": True,
        }
    ]
    deny, _ = _policies(Mode.ENFORCE)
    for user in (ALICE, TEAM_A_DEV, CLUSTER_ADMIN):
        assert evaluate(deny, obj, None, {}, user=user), user["username"]
    assert evaluate(deny, obj, None, {}, user=REPLICASET_CONTROLLER) == []
