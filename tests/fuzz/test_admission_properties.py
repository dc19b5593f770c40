"""Properties of the pure admission handling, over generated AdmissionReviews (issue 13).

- Answering never raises anything but MalformedReviewError, and the answer is JSON.
- Every JSONPatch the mutating webhook returns applies to the object, and the
  patched object then carries the labels it inherited.
- The validating webhook and `lint` agree: the same violations, denied exactly when
  lint has a finding in enforce mode on an object no controller made.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from finops_operator.cli.lint import LintResult, lint_objects
from finops_operator.domain.config import Config, Mode
from finops_operator.domain.policies import admission
from finops_operator.domain.policies.label_check import LabelPolicy
from finops_operator.domain.policies.owners import written_by_controller
from finops_operator.domain.policies.verdict import judge
from finops_operator.domain.workloads import created_by_controller, pod_labels
from finops_operator.errors import MalformedReviewError
from tests.fuzz.strategies import as_review, namespace_labels, reviews, workloads

POLICIES = {mode: LabelPolicy(Config(mode=mode)) for mode in Mode}


def answer(body: Any, policy: LabelPolicy, namespaces: Any) -> tuple[dict[str, Any], ...]:
    """What the webhook server would send back for /validate and /mutate."""
    try:
        request = admission.parse_review(body)
    except MalformedReviewError as err:
        return (admission.malformed_review(err),)
    return tuple(
        admission.response_review(request.uid, decide(request, policy, namespaces))
        for decide in (admission.validate, admission.mutate)
    )


@given(reviews(), st.sampled_from(list(Mode)), namespace_labels)
def test_answering_raises_nothing_but_malformed_review(
    body: dict[str, Any], mode: Mode, labels: dict[str, str]
) -> None:
    namespaces = {"team-a": labels, "team-b": {}}
    for response in answer(body, POLICIES[mode], namespaces):
        json.dumps(response, allow_nan=False)
        assert response["kind"] == "AdmissionReview"
        assert isinstance(response["response"]["allowed"], bool)


def apply_json_patch(obj: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 `add`, as the API server applies it: the parent must exist."""
    result = copy.deepcopy(obj)
    for op in ops:
        assert op["op"] == "add", op
        assert op["path"].startswith("/"), op
        steps = [s.replace("~1", "/").replace("~0", "~") for s in op["path"][1:].split("/")]
        node = result
        for step in steps[:-1]:
            assert isinstance(node, dict) and step in node, (op, node)
            node = node[step]
        assert isinstance(node, dict), (op, node)
        node[steps[-1]] = op["value"]
    return result


@given(workloads(), st.sampled_from(list(Mode)), namespace_labels)
def test_every_patch_applies_and_the_patched_object_carries_the_inherited_labels(
    obj: dict[str, Any], mode: Mode, labels: dict[str, str]
) -> None:
    kind = obj.get("kind")
    body = as_review(obj, kind=kind if isinstance(kind, str) and kind else "Pod")
    try:
        request = admission.parse_review(body)
    except MalformedReviewError:
        return
    namespaces = {"team-a": labels, "team-b": labels, "kube-system": labels}
    decision = admission.mutate(request, POLICIES[mode], namespaces)
    response = admission.response_review(request.uid, decision)["response"]
    if "patch" not in response:
        return
    ops = json.loads(base64.b64decode(response["patch"]))
    patched = apply_json_patch({**obj, "kind": request.kind}, ops)
    verdict = judge(
        {**obj, "kind": request.kind},
        policy=POLICIES[mode],
        namespace=request.namespace,
        namespace_labels=namespaces.get(request.namespace or ""),
    )
    for key, value in verdict.inheritable.items():
        assert pod_labels(patched)[key] == value
    # Once patched, nothing the namespace supplies is missing any more.
    again = admission.mutate(
        admission.parse_review(as_review(patched, kind=request.kind)), POLICIES[mode], namespaces
    )
    assert again.patch is None


@given(workloads())
def test_the_validating_webhook_and_lint_agree(obj: dict[str, Any]) -> None:
    policy = POLICIES[Mode.ENFORCE]
    kind = obj.get("kind")
    try:
        request = admission.parse_review(
            as_review(obj, kind=kind if isinstance(kind, str) and kind else "Pod")
        )
    except MalformedReviewError:
        return
    if request.kind != kind:
        return  # lint reads the object's own kind; the webhook the request's
    result = LintResult()
    lint_objects([obj], "fuzz.yaml", policy, result)
    decision = admission.validate(request, policy, {})
    findings = result.findings
    if not findings:
        assert decision.allowed
        assert decision.outcome is not admission.Outcome.WARNED
        return
    [finding] = findings
    problems = [
        w.partition(": ")[2].partition(": ")[2]
        for w in decision.warnings
        if "does not exempt" not in w
    ]
    assert problems == finding.violations.problems()
    made = created_by_controller({**obj, "kind": request.kind})
    assert decision.allowed is (made and written_by_controller(request.user))
