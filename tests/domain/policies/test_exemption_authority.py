"""Exemptions need authority (issue 19, item 2), in the webhook and in the generated policies.

The attack: a namespace admin's ServiceAccount (`system:serviceaccount:team-a:dev`)
set `finops.resilio.tech/exempt: "true"` on an 8-GPU pod and it was admitted with
no warning. Now an exempt annotation counts only with a reason and, when a request
adds or changes it, only from a user `exemptions` allows. Each scenario is decided
by `admission.validate` and, word for word, by the ValidatingAdmissionPolicies'
CEL evaluated as the API server would (test_admission_policy.evaluate).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from finops_devtools.devcluster.reviews import (
    ALICE,
    CLUSTER_ADMIN,
    COMPLETE_LABELS,
    EXEMPT,
    EXEMPT_REASON,
    REPLICASET_CONTROLLER,
    TEAM_A_DEV,
    review,
    workload,
)
from finops_operator.domain.config import Config, Mode, parse_config
from finops_operator.domain.policies import admission
from finops_operator.domain.policies import admission_policy as ap
from finops_operator.domain.policies.admission import Outcome
from finops_operator.domain.policies.label_check import LabelPolicy
from finops_operator.domain.workloads import pod_template
from finops_operator.errors import ConfigError, MalformedReviewError
from tests.domain.policies.test_admission_policy import evaluate

ENFORCE = LabelPolicy(Config(mode=Mode.ENFORCE))
AUDIT = LabelPolicy(Config(mode=Mode.AUDIT))
REASONED = {EXEMPT: "true", EXEMPT_REASON: "vendor-paid benchmark (FIN-2211)"}
REFUSED_DEV = (
    "The exempt annotation is not honoured: system:serviceaccount:team-a:dev may not "
    "exempt (only exemptions.allowedGroups [system:masters] and exemptions.allowedUsers [] may)."
)
RS_CONTROLLER = REPLICASET_CONTROLLER


def eight_gpu_pod(annotations: Mapping[str, str] | None = None, **kw: Any) -> dict[str, Any]:
    return workload("Pod", gpus=8, annotations=dict(annotations or {}), **kw)


def validate(
    body: dict[str, Any], policy: LabelPolicy = ENFORCE, namespaces: Any = None
) -> admission.Decision:
    return admission.validate(admission.parse_review(body), policy, namespaces or {})


@dataclass(frozen=True)
class Scenario:
    obj: dict[str, Any]
    user: Mapping[str, Any]
    policy: LabelPolicy = ENFORCE
    old: dict[str, Any] | None = None

    @property
    def operation(self) -> str:
        return "CREATE" if self.old is None else "UPDATE"

    def body(self) -> dict[str, Any]:
        return review(self.obj, self.operation, old=self.old, user=self.user)


def _with(obj: dict[str, Any], **annotations: str) -> dict[str, Any]:
    changed = copy.deepcopy(obj)
    changed["metadata"].setdefault("annotations", {}).update(annotations)
    return changed


def _image_bump(obj: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(obj)
    pod_template(changed)["spec"]["containers"][0]["image"] = "vllm/vllm-openai:v0.6.4"
    return changed


def _unlabelled(obj: dict[str, Any], key: str = "resilio.tech/team") -> dict[str, Any]:
    changed = copy.deepcopy(obj)
    del pod_template(changed)["metadata"]["labels"][key]
    return changed


def _rs_pod(annotations: Mapping[str, str]) -> dict[str, Any]:
    pod = eight_gpu_pod(annotations)
    pod["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "llm-7d9", "uid": "u-1"}
        | {"controller": True}
    ]
    return pod


COMPLIANT_EXEMPT = workload("Deployment", labels=COMPLETE_LABELS, annotations=REASONED)
UNTAGGED_EXEMPT = workload("Deployment", annotations=REASONED)

SCENARIOS = {
    "self-exemption by a namespace admin": Scenario(eight_gpu_pod(REASONED), TEAM_A_DEV),
    "self-exemption in audit": Scenario(eight_gpu_pod(REASONED), TEAM_A_DEV, AUDIT),
    "a cluster admin with a reason": Scenario(eight_gpu_pod(REASONED), CLUSTER_ADMIN),
    "a cluster admin without a reason": Scenario(eight_gpu_pod({EXEMPT: "true"}), CLUSTER_ADMIN),
    "self-exemption of a compliant object": Scenario(COMPLIANT_EXEMPT, TEAM_A_DEV),
    "an unrelated update of an exempt workload": Scenario(
        _image_bump(UNTAGGED_EXEMPT), TEAM_A_DEV, old=UNTAGGED_EXEMPT
    ),
    "stripping labels under an exemption": Scenario(
        _unlabelled(COMPLIANT_EXEMPT), TEAM_A_DEV, old=COMPLIANT_EXEMPT
    ),
    "changing the reason": Scenario(
        _with(UNTAGGED_EXEMPT, **{EXEMPT_REASON: "mine now"}), ALICE, old=UNTAGGED_EXEMPT
    ),
    "adding an exemption to an old untagged workload": Scenario(
        _with(workload("Deployment"), **REASONED), TEAM_A_DEV, old=workload("Deployment")
    ),
    "a Pod its ReplicaSet made from an exempt template": Scenario(_rs_pod(REASONED), RS_CONTROLLER),
}
EXPECTED = {
    "self-exemption by a namespace admin": Outcome.DENIED,
    "self-exemption in audit": Outcome.WARNED,
    "a cluster admin with a reason": Outcome.EXEMPT,
    "a cluster admin without a reason": Outcome.DENIED,
    "self-exemption of a compliant object": Outcome.COMPLIANT,
    "an unrelated update of an exempt workload": Outcome.EXEMPT,
    "stripping labels under an exemption": Outcome.DENIED,
    "changing the reason": Outcome.DENIED,
    "adding an exemption to an old untagged workload": Outcome.WARNED,
    "a Pod its ReplicaSet made from an exempt template": Outcome.EXEMPT,
}


def test_a_namespace_admins_self_exemption_is_refused_in_enforce_naming_who_and_the_keys() -> None:
    decision = validate(SCENARIOS["self-exemption by a namespace admin"].body())
    assert not decision.allowed
    assert decision.message.startswith("Pod team-a/llm asks for a GPU but its cost labels")
    assert decision.message.endswith(REFUSED_DEV)
    assert f"finops: Pod team-a/llm: {REFUSED_DEV}" in decision.warnings


def test_a_namespace_admins_self_exemption_is_warned_in_audit() -> None:
    decision = validate(SCENARIOS["self-exemption in audit"].body(), AUDIT)
    assert (decision.allowed, decision.outcome) == (True, Outcome.WARNED)
    assert f"finops: Pod team-a/llm: {REFUSED_DEV}" in decision.warnings
    assert "finops: Pod team-a/llm: missing resilio.tech/team" in decision.warnings


def test_a_cluster_admins_exemption_with_a_reason_is_honoured_with_a_warning() -> None:
    decision = validate(SCENARIOS["a cluster admin with a reason"].body())
    assert (decision.allowed, decision.outcome) == (True, Outcome.EXEMPT)
    assert decision.warnings == (admission.exempt_note("Pod team-a/llm"),)


def test_an_exemption_without_a_reason_is_not_honoured_even_for_a_cluster_admin() -> None:
    decision = validate(SCENARIOS["a cluster admin without a reason"].body())
    assert not decision.allowed
    assert admission.UNREASONED_NOTE in decision.warnings


def test_users_and_service_accounts_named_in_the_configuration_may_exempt() -> None:
    config = parse_config(
        {
            "exemptions": {
                "allowedGroups": ["platform-admins"],
                "allowedUsers": ["system:serviceaccount:team-a:dev"],
            }
        }
    )
    policy = LabelPolicy(config)
    body = review(eight_gpu_pod(REASONED), user=TEAM_A_DEV)
    assert validate(body, policy).outcome is Outcome.EXEMPT
    admins = {"username": "bob", "groups": ["platform-admins"]}
    assert validate(review(eight_gpu_pod(REASONED), user=admins), policy).outcome is Outcome.EXEMPT
    masters = review(eight_gpu_pod(REASONED), user=CLUSTER_ADMIN)
    assert validate(masters, policy).outcome is Outcome.DENIED  # the list replaces the default


def test_an_unrelated_update_by_anyone_keeps_an_exemption_but_stripping_labels_does_not() -> None:
    kept = validate(SCENARIOS["an unrelated update of an exempt workload"].body())
    assert (kept.allowed, kept.outcome) == (True, Outcome.EXEMPT)
    stripped = validate(SCENARIOS["stripping labels under an exemption"].body())
    assert not stripped.allowed
    assert "missing resilio.tech/team" in stripped.message
    assert stripped.message.endswith(REFUSED_DEV)


def test_an_exemption_refused_leaves_the_namespace_defaults_to_the_mutating_webhook() -> None:
    namespaces = {"team-a": dict(COMPLETE_LABELS)}
    refused = admission.parse_review(review(eight_gpu_pod(REASONED), user=TEAM_A_DEV))
    assert admission.mutate(refused, ENFORCE, namespaces).outcome is Outcome.MUTATED
    honoured = admission.parse_review(review(eight_gpu_pod(REASONED), user=CLUSTER_ADMIN))
    assert admission.mutate(honoured, ENFORCE, namespaces).outcome is Outcome.EXEMPT


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_webhook_and_the_admission_policies_decide_each_scenario_alike(name: str) -> None:
    scenario = SCENARIOS[name]
    decision = validate(scenario.body(), scenario.policy)
    assert decision.outcome is EXPECTED[name], decision
    config = scenario.policy.config
    deny, warn = ap.deny_policy(config), ap.warn_policy(config)
    args = (scenario.obj, scenario.old, {}, scenario.operation, scenario.user)
    denied = evaluate(deny, *args)
    assert denied == ([decision.message] if decision.outcome is Outcome.DENIED else [])
    assert sorted(evaluate(warn, *args)) == sorted(decision.warnings)


@pytest.mark.parametrize(
    ("info", "problem"),
    [
        ("dev", "request.userInfo must be an object"),
        ({"username": 7}, "request.userInfo.username must be a string"),
        ({"username": "dev", "groups": "system:masters"}, "groups must be a list of strings"),
        ({"username": "dev", "groups": [None]}, "groups must be a list of strings"),
    ],
)
def test_a_malformed_user_info_is_refused_naming_it(info: Any, problem: str) -> None:
    body = review(eight_gpu_pod(REASONED))
    body["request"]["userInfo"] = info
    with pytest.raises(MalformedReviewError, match=problem):
        admission.parse_review(body)


def test_a_review_without_user_info_is_nobody_who_may_exempt() -> None:
    body = review(eight_gpu_pod(REASONED))
    del body["request"]["userInfo"]
    assert validate(body).outcome is Outcome.DENIED


@pytest.mark.parametrize(
    ("exemptions", "named"),
    [
        ({"allowedGroups": ["system:authenticated"]}, "exemptions.allowedGroups"),
        ({"allowedGroups": ["system:serviceaccounts"]}, "would let anyone exempt"),
        ({"allowedGroups": [""]}, "exemptions.allowedGroups"),
        ({"allowedUsers": ["system:serviceaccount:team-a"]}, "not a ServiceAccount user name"),
        ({"allowedUsers": ["system:serviceaccount:Team_A:dev"]}, "exemptions.allowedUsers"),
        ({"allowedUsers": [" alice"]}, "exemptions.allowedUsers"),
        ({"allowedPeople": ["alice"]}, "exemptions.allowedPeople: unknown key"),
    ],
)
def test_the_exemptions_configuration_refuses_what_would_let_anyone_exempt(
    exemptions: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        parse_config({"exemptions": exemptions})


def test_the_default_lets_only_system_masters_exempt() -> None:
    exemptions = Config().exemptions
    assert exemptions.allowed_groups == ("system:masters",)
    assert exemptions.allowed_users == ()
    assert exemptions.allows("kubernetes-admin", ("system:masters",))
    assert not exemptions.allows("system:serviceaccount:team-a:dev", ("system:serviceaccounts",))
