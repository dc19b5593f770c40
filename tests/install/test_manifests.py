"""The webhook manifest is valid Kubernetes, and the webhooks keep their contract.

This file is about manifests/base/webhooks.yaml (the two webhook configurations and
the Service they call); tests/test_install_manifests.py checks the whole install.

The schema check uses the official OpenAPI schemas that kubernetes-validate ships, in
strict mode (an unknown or misspelt field fails), for the oldest Kubernetes release the
webhooks support (1.30: `matchConditions` is GA there) and the newest one it knows.
Custom resources are checked against their CRD from crds/ or the upstream CRDs
(scripts/fetch-upstream-crds.sh).

The contract checks read the admission webhook configurations as the API server would:
which requests they send, where, how long they may take and what happens on failure.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from finops_devtools.devcluster.api_server import apply_json_patch
from finops_operator.domain import conventions
from finops_operator.domain.config import Config
from finops_operator.domain.policies.webhook_conditions import (
    OWNED,
    conditions_patch,
    webhook_settings,
)
from finops_operator.domain.workloads import WORKLOAD_KINDS
from tests.support.crd_schema import UPSTREAM_CRDS, upstream_crd
from tests.support.paths import ROOT

DEFAULTS = webhook_settings(Config(), conventions.OPERATOR_NAMESPACE)

WEBHOOKS_FILE = ROOT / "manifests" / "base" / "webhooks.yaml"
CRD_FOLDERS = (ROOT / "crds", UPSTREAM_CRDS)

# matchConditions are GA (and on by default) from 1.30; the newest is what the package knows.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())

WEBHOOK_SERVICE = "finops-operator-webhook"
WEBHOOK_PORT = 443
SERVER_PORT = 9443
MAX_TIMEOUT_SECONDS = 5


def _documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for file in (WEBHOOKS_FILE,):
        with file.open(encoding="utf-8") as stream:
            for index, doc in enumerate(yaml.safe_load_all(stream)):
                if doc is None:
                    continue
                name = (doc.get("metadata") or {}).get("name", "?")
                yield f"{file.relative_to(ROOT)}#{index} {doc.get('kind')}/{name}", doc


DOCUMENTS = dict(_documents())


def _only(kind: str) -> dict[str, Any]:
    found = [doc for doc in DOCUMENTS.values() if doc.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind} in {WEBHOOKS_FILE.name}, found {len(found)}"
    return found[0]


def _webhooks() -> list[tuple[str, dict[str, Any]]]:
    return [
        (kind, hook)
        for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
        for hook in _only(kind)["webhooks"]
    ]


def _webhook_id(value: Any) -> str:
    return value if isinstance(value, str) else str(value["name"])


# Parametrizes a test over every webhook of both configurations, as (kind, webhook).
EACH_WEBHOOK = pytest.mark.parametrize(("kind", "hook"), _webhooks(), ids=_webhook_id)


def _crd_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    group, _, version = api_version.rpartition("/")
    for folder in CRD_FOLDERS:
        for file in sorted(folder.glob("*.y*ml")) if folder.is_dir() else ():
            for crd in yaml.safe_load_all(file.read_text(encoding="utf-8")):
                spec = (crd or {}).get("spec") or {}
                if spec.get("group") != group or spec.get("names", {}).get("kind") != kind:
                    continue
                for served in spec.get("versions", []):
                    if served.get("name") == version:
                        return dict(served["schema"]["openAPIV3Schema"])
    return None


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A Kubernetes label selector, evaluated as the API server does."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def _namespace_labels(name: str, **extra: str) -> dict[str, str]:
    # The API server sets kubernetes.io/metadata.name on every namespace.
    return {"kubernetes.io/metadata.name": name, **extra}


def test_the_webhook_manifest_holds_documents() -> None:
    assert DOCUMENTS, f"{WEBHOOKS_FILE} has no YAML documents"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("where", list(DOCUMENTS))
def test_every_manifest_document_is_valid_against_the_official_kubernetes_schema(
    where: str, version: str
) -> None:
    doc = DOCUMENTS[where]
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as err:
        path = ".".join(str(part) for part in err.absolute_path) or "(top level)"
        pytest.fail(f"{where} is not valid Kubernetes {version}: {path}: {err.message}")
    except kubernetes_validate.SchemaNotFoundError:
        schema = _crd_schema(doc["apiVersion"], doc["kind"])
        if schema is None:
            if doc["apiVersion"].startswith("monitoring.coreos.com/"):
                upstream_crd("monitoring.coreos.com_prometheusrules.yaml")
            pytest.fail(f"{where}: no Kubernetes schema and no CRD for {doc['apiVersion']}")
        try:
            jsonschema.validate(doc, schema)
        except jsonschema.ValidationError as err:
            path = ".".join(str(part) for part in err.absolute_path) or "(top level)"
            pytest.fail(f"{where} does not match its CRD: {path}: {err.message}")


def test_a_misspelt_field_is_caught_by_the_strict_schema_check() -> None:
    broken = yaml.safe_load(yaml.safe_dump(_only("ValidatingWebhookConfiguration")))
    broken["webhooks"][0]["timeoutSecond"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_the_validating_webhook_is_served_on_the_validate_path() -> None:
    [hook] = _only("ValidatingWebhookConfiguration")["webhooks"]
    assert hook["clientConfig"]["service"]["path"] == conventions.VALIDATE_PATH


def test_the_mutating_webhook_is_served_on_the_mutate_path() -> None:
    [hook] = _only("MutatingWebhookConfiguration")["webhooks"]
    assert hook["clientConfig"]["service"]["path"] == conventions.MUTATE_PATH


@EACH_WEBHOOK
def test_every_webhook_calls_the_operator_service_in_the_operator_namespace(
    kind: str, hook: dict[str, Any]
) -> None:
    service = hook["clientConfig"]["service"]
    assert "url" not in hook["clientConfig"]
    assert service["name"] == WEBHOOK_SERVICE
    assert service["namespace"] == conventions.OPERATOR_NAMESPACE
    assert service.get("port", 443) == WEBHOOK_PORT


def test_the_webhook_service_forwards_port_443_to_the_operators_https_port() -> None:
    service = _only("Service")
    assert service["metadata"]["name"] == WEBHOOK_SERVICE
    assert service["metadata"]["namespace"] == conventions.OPERATOR_NAMESPACE
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "finops-operator"}
    [port] = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (WEBHOOK_PORT, SERVER_PORT)


@EACH_WEBHOOK
def test_every_webhook_times_out_within_five_seconds(kind: str, hook: dict[str, Any]) -> None:
    # Set explicitly: the default of 10 s would hold every GPU `kubectl apply`
    # that long when the operator hangs.
    assert 1 <= hook["timeoutSeconds"] <= MAX_TIMEOUT_SECONDS


@EACH_WEBHOOK
def test_every_webhook_declares_no_side_effects_and_admission_review_v1(
    kind: str, hook: dict[str, Any]
) -> None:
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]


def test_the_validating_webhook_fails_closed_and_the_mutating_webhook_fails_open() -> None:
    [validating] = _only("ValidatingWebhookConfiguration")["webhooks"]
    [mutating] = _only("MutatingWebhookConfiguration")["webhooks"]
    assert validating["failurePolicy"] == "Fail"
    assert mutating["failurePolicy"] == "Ignore"


def test_the_mutating_webhook_is_called_again_when_a_later_webhook_changes_the_object() -> None:
    [mutating] = _only("MutatingWebhookConfiguration")["webhooks"]
    assert mutating["reinvocationPolicy"] == "IfNeeded"


@EACH_WEBHOOK
def test_every_webhook_sees_only_create_and_update_of_the_seven_workload_kinds(
    kind: str, hook: dict[str, Any]
) -> None:
    expected = {(group, plural) for group, plural, _ in WORKLOAD_KINDS.values()}
    covered = set()
    for rule in hook["rules"]:
        assert sorted(rule["operations"]) == ["CREATE", "UPDATE"]
        assert rule["apiVersions"] == ["v1"]
        assert rule.get("scope") == "Namespaced"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                covered.add((group, resource))
    assert covered == expected


@EACH_WEBHOOK
def test_no_webhook_matches_a_subresource_so_status_and_scale_are_never_blocked(
    kind: str, hook: dict[str, Any]
) -> None:
    for rule in hook["rules"]:
        for resource in rule["resources"]:
            assert "/" not in resource and "*" not in resource, resource


@EACH_WEBHOOK
@pytest.mark.parametrize("namespace", conventions.DEFAULT_EXEMPT_NAMESPACES)
def test_every_webhook_keeps_the_exempt_namespaces_out(
    kind: str, hook: dict[str, Any], namespace: str
) -> None:
    assert not _selects(hook["namespaceSelector"], _namespace_labels(namespace))


@EACH_WEBHOOK
def test_every_webhook_keeps_namespaces_whose_mode_is_off_out(
    kind: str, hook: dict[str, Any]
) -> None:
    labels = _namespace_labels("ml-research", **{conventions.MODE_NAMESPACE_LABEL: "off"})
    assert not _selects(hook["namespaceSelector"], labels)


@EACH_WEBHOOK
@pytest.mark.parametrize(
    "labels",
    [
        _namespace_labels("ml-research"),
        _namespace_labels("search", **{conventions.MODE_NAMESPACE_LABEL: "audit"}),
        _namespace_labels("search", **{conventions.MODE_NAMESPACE_LABEL: "enforce"}),
        _namespace_labels("default", **{conventions.TEAM_LABEL: "search"}),
    ],
    ids=["unlabelled", "audit", "enforce", "team-labelled"],
)
def test_every_webhook_sees_ordinary_team_namespaces(
    kind: str, hook: dict[str, Any], labels: dict[str, str]
) -> None:
    assert _selects(hook["namespaceSelector"], labels)


@EACH_WEBHOOK
def test_every_webhook_has_named_match_conditions_within_the_api_limit(
    kind: str, hook: dict[str, Any]
) -> None:
    assert hook["name"] in (conventions.VALIDATING_WEBHOOK, conventions.MUTATING_WEBHOOK)
    assert not {c["name"] for c in hook["matchConditions"]} & OWNED, "the operator writes those"
    # With what the operator writes at its start (webhook_conditions).
    patched = apply_json_patch(
        {"webhooks": [hook]}, conditions_patch({"webhooks": [hook]}, DEFAULTS)
    )
    conditions = patched["webhooks"][0]["matchConditions"]
    names = [condition["name"] for condition in conditions]
    assert 1 <= len(conditions) <= 64
    assert names == [*(c["name"] for c in hook["matchConditions"]), *names[-1:]]
    assert "gpu-workload" in names
    assert names[-1] in OWNED


@EACH_WEBHOOK
def test_the_manifests_exempt_namespaces_are_what_the_operator_writes_by_default(
    kind: str, hook: dict[str, Any]
) -> None:
    ops = conditions_patch({"webhooks": [hook]}, DEFAULTS)
    assert [op["path"] for op in ops] == ["/webhooks/0/matchConditions"]
    [names] = [
        e
        for e in hook["namespaceSelector"]["matchExpressions"]
        if e["operator"] == "NotIn" and e["key"] == "kubernetes.io/metadata.name"
    ]
    assert tuple(names["values"]) == DEFAULTS.exempt_namespaces


def test_both_webhooks_match_the_same_kinds_namespaces_and_gpu_condition() -> None:
    [validating] = _only("ValidatingWebhookConfiguration")["webhooks"]
    [mutating] = _only("MutatingWebhookConfiguration")["webhooks"]
    for field in ("rules", "namespaceSelector", "matchPolicy"):
        assert validating[field] == mutating[field], field
    shared = {c["name"]: c["expression"] for c in validating["matchConditions"]}
    for condition in mutating["matchConditions"]:
        assert shared.get(condition["name"]) == condition["expression"], condition["name"]


def test_only_the_validating_webhook_skips_objects_made_by_a_controller() -> None:
    [validating] = _only("ValidatingWebhookConfiguration")["webhooks"]
    [mutating] = _only("MutatingWebhookConfiguration")["webhooks"]
    validating_names = {c["name"] for c in validating["matchConditions"]}
    mutating_names = {c["name"] for c in mutating["matchConditions"]}
    assert validating_names - mutating_names == {"not-created-by-a-controller"}
