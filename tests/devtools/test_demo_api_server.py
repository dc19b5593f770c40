"""The API server's part of admission in the demo: reviews, JSONPatch, kubectl's lines."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from finops_devtools.devcluster.api_server import (
    MUTATING_WEBHOOK,
    VALIDATING_WEBHOOK,
    AdmissionChain,
    admission_review,
    apply_json_patch,
    created_line,
    denied_line,
    inherited_labels,
    resource_name,
    warning_lines,
)
from finops_devtools.devcluster.reviews import COMPLETE_LABELS, workload
from finops_devtools.errors import JsonPatchError
from finops_operator.domain import conventions
from finops_operator.domain.config import Config
from finops_operator.domain.policies import admission
from finops_operator.domain.policies.label_check import LabelPolicy


class InProcessWebhook:
    """The operator's decisions without HTTP: what /mutate and /validate answer."""

    def __init__(self, namespaces: dict[str, dict[str, str]], mode: str = "enforce") -> None:
        self.policy = LabelPolicy(Config(mode=mode))  # type: ignore[arg-type]
        self.namespaces = namespaces
        self.calls: list[str] = []

    def review(self, path: str, review: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(path)
        request = admission.parse_review(review)
        decide = admission.mutate if path == conventions.MUTATE_PATH else admission.validate
        decision = decide(request, self.policy, self.namespaces)
        response: dict[str, Any] = admission.response_review(request.uid, decision)["response"]
        return response


class ListStore:
    def __init__(self) -> None:
        self.objects: list[dict[str, Any]] = []

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        stored = {**obj, "metadata": {**obj["metadata"], "uid": "u-1"}}
        self.objects.append(stored)
        return stored


def test_a_review_is_shaped_as_the_api_server_sends_it() -> None:
    obj = workload("Deployment", name="llm", namespace="team-a")
    review = admission_review(obj, uid="abc")
    request = review["request"]
    assert review["apiVersion"] == "admission.k8s.io/v1"
    assert request["uid"] == "abc"
    assert request["kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert request["resource"]["resource"] == "deployments"
    assert (request["namespace"], request["name"], request["operation"]) == (
        "team-a",
        "llm",
        "CREATE",
    )
    assert request["object"] == obj and request["object"] is not obj
    assert admission.parse_review(review).kind == "Deployment"


def test_json_patch_add_replace_remove_and_escapes() -> None:
    doc = {"metadata": {"labels": {"a": "1"}}, "items": [1, 2]}
    patched = apply_json_patch(
        doc,
        [
            {"op": "add", "path": "/metadata/labels/resilio.tech~1team", "value": "x"},
            {"op": "replace", "path": "/metadata/labels/a", "value": "2"},
            {"op": "add", "path": "/items/-", "value": 3},
            {"op": "add", "path": "/items/0", "value": 0},
            {"op": "remove", "path": "/items/1"},
            {"op": "add", "path": "/metadata/annotations", "value": {"t~x": "y"}},
        ],
    )
    assert patched == {
        "metadata": {"labels": {"a": "2", "resilio.tech/team": "x"}, "annotations": {"t~x": "y"}},
        "items": [0, 2, 3],
    }
    assert doc == {"metadata": {"labels": {"a": "1"}}, "items": [1, 2]}  # untouched


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "/metadata/missing", "value": 1},
        {"op": "remove", "path": "/metadata/missing"},
        {"op": "add", "path": "/nowhere/labels", "value": 1},
        {"op": "add", "path": "/items/9", "value": 1},
        {"op": "move", "path": "/items/0", "from": "/items/1"},
        {"op": "add", "path": "metadata", "value": 1},
    ],
)
def test_json_patch_refuses_what_it_cannot_apply(operation: dict[str, Any]) -> None:
    with pytest.raises(JsonPatchError):
        apply_json_patch({"metadata": {}, "items": [1]}, [operation])


def test_kubectl_lines() -> None:
    job = workload("Job", name="train", namespace="ml")
    assert resource_name(job) == "job.batch/train"
    assert created_line(workload("Deployment", name="web")) == "deployment.apps/web created"
    assert created_line(workload("Pod", name="p")) == "pod/p created"
    policy = {"apiVersion": "finops.resilio.tech/v1alpha1", "kind": "CostPolicy",
              "metadata": {"name": "x"}}  # fmt: skip
    assert resource_name(policy) == "costpolicy.finops.resilio.tech/x"
    assert warning_lines(["a", "b"]) == ["Warning: a", "Warning: b"]
    assert denied_line("f.yaml", VALIDATING_WEBHOOK, "no labels") == (
        'Error from server (Forbidden): error when creating "f.yaml": admission webhook '
        '"labels.finops.resilio.tech" denied the request: no labels'
    )


def test_the_chain_mutates_then_validates_then_stores() -> None:
    labels = {"resilio.tech/team": "ranking", "resilio.tech/cost-center": "cc-9"}
    webhook = InProcessWebhook({"ml": labels})
    store = ListStore()
    partial = {k: v for k, v in COMPLETE_LABELS.items() if k not in labels}
    result = AdmissionChain(webhook, store).create(
        workload("Job", name="train", namespace="ml", labels=partial)
    )
    assert result.outcome == "created", result
    assert webhook.calls == [conventions.MUTATE_PATH, conventions.VALIDATE_PATH]
    assert result.inherited == labels
    stored = store.objects[0]
    assert stored["metadata"]["uid"] == "u-1"
    template = stored["spec"]["template"]["metadata"]
    assert labels.items() <= template["labels"].items()
    assert template["annotations"][conventions.INHERITED_ANNOTATION]


def test_a_denied_object_is_not_stored_and_says_why() -> None:
    store = ListStore()
    result = AdmissionChain(InProcessWebhook({}), store).create(
        workload("Deployment", name="llm", namespace="team-a", labels={})
    )
    assert result.outcome == "denied"
    assert result.webhook == VALIDATING_WEBHOOK and result.code == 403
    assert "resilio.tech/cost-center" in result.message
    assert store.objects == []


def test_a_denying_mutating_webhook_is_named() -> None:
    class Refusing:
        def review(self, path: str, review: dict[str, Any]) -> dict[str, Any]:
            return {"uid": review["request"]["uid"], "allowed": False,
                    "status": {"code": 400, "message": "bad"}}  # fmt: skip

    result = AdmissionChain(Refusing(), ListStore()).create(workload("Pod"))
    assert (result.outcome, result.webhook, result.code) == ("denied", MUTATING_WEBHOOK, 400)


def test_objects_that_are_not_workloads_skip_the_webhooks() -> None:
    webhook, store = InProcessWebhook({}), ListStore()
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}
    assert AdmissionChain(webhook, store).create(namespace).outcome == "created"
    assert webhook.calls == []


def test_a_patch_is_applied_as_base64_json() -> None:
    patch = [{"op": "add", "path": "/metadata/labels/x", "value": "1"}]

    class Patching:
        def review(self, path: str, review: dict[str, Any]) -> dict[str, Any]:
            answer: dict[str, Any] = {"uid": review["request"]["uid"], "allowed": True}
            if path == conventions.MUTATE_PATH:
                answer["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
            else:
                assert review["request"]["object"]["metadata"]["labels"]["x"] == "1"
            return answer

    result = AdmissionChain(Patching(), ListStore()).create(workload("Pod"))
    assert result.obj["metadata"]["labels"]["x"] == "1"
    assert result.inherited == {"x": "1"}  # a Pod's own labels are its pod labels


def test_inherited_labels_compares_pod_template_labels() -> None:
    before = workload("CronJob", labels={"a": "1"})
    after = json.loads(json.dumps(before))
    after["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]["b"] = "2"
    assert inherited_labels(before, after) == {"b": "2"}
