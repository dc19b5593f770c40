"""What kube-apiserver does with the admission webhooks, and how kubectl reports it.

A create goes through the chain a real API server runs: the AdmissionReview is
sent over HTTPS to the mutating webhook (`/mutate`), its JSONPatch is applied,
the patched object is sent to the validating webhook (`/validate`), and only an
admitted object is stored in the emulator. Warnings from either webhook are
returned, as the API server returns them to kubectl.

The review builder, the JSONPatch applier and kubectl's lines are plain functions;
`AdmissionChain` does the HTTP.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from finops_devtools.errors import JsonPatchError
from finops_operator.domain import conventions
from finops_operator.domain.workloads import WORKLOAD_KINDS

VALIDATING_WEBHOOK: Final = conventions.VALIDATING_WEBHOOK
MUTATING_WEBHOOK: Final = conventions.MUTATING_WEBHOOK
DEMO_USER: Final = {"username": "alice@example.com", "groups": ["system:authenticated"]}


def admission_review(
    obj: Mapping[str, Any],
    operation: str = "CREATE",
    user: Mapping[str, Any] | None = None,
    uid: str | None = None,
) -> dict[str, Any]:
    """An admission.k8s.io/v1 AdmissionReview for a workload, as the API server sends it."""
    kind = str(obj["kind"])
    group, plural, _ = WORKLOAD_KINDS[kind]
    meta = obj.get("metadata") or {}
    gvk = {"group": group, "version": "v1", "kind": kind}
    gvr = {"group": group, "version": "v1", "resource": plural}
    request = {
        "uid": uid or str(uuid.uuid4()),
        "kind": gvk,
        "resource": gvr,
        "requestKind": gvk,
        "requestResource": gvr,
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "operation": operation,
        "userInfo": dict(user or DEMO_USER),
        "object": copy.deepcopy(dict(obj)),
        "oldObject": None,
        "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": f"{operation.title()}Options"},
    }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise JsonPatchError(f"{path!r} is not a JSON pointer")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _step(container: Any, token: str, path: str) -> Any:
    if isinstance(container, dict):
        if token not in container:
            raise JsonPatchError(f"{path}: no member {token!r}")
        return container[token]
    if isinstance(container, list) and token.isdigit() and int(token) < len(container):
        return container[int(token)]
    raise JsonPatchError(f"{path}: cannot step into {type(container).__name__} with {token!r}")


def apply_json_patch(obj: Mapping[str, Any], operations: Sequence[Mapping[str, Any]]) -> Any:
    """RFC 6902 `add`, `replace`, `remove` and `test` applied to a copy of `obj` (the ops
    webhooks and the operator's own JSON Patches use); JsonPatchError when one cannot be."""
    document: Any = copy.deepcopy(dict(obj))
    for operation in operations:
        op, path = operation.get("op"), str(operation.get("path", ""))
        tokens = _pointer(path)
        if not tokens:
            if op in ("add", "replace"):
                document = copy.deepcopy(operation["value"])
                continue
            raise JsonPatchError(f"cannot {op} the whole document")
        parent = document
        for token in tokens[:-1]:
            parent = _step(parent, token, path)
        last = tokens[-1]
        if op in ("add", "replace"):
            value = copy.deepcopy(operation["value"])
            if isinstance(parent, dict):
                if op == "replace" and last not in parent:
                    raise JsonPatchError(f"{path}: nothing to replace")
                parent[last] = value
            elif isinstance(parent, list):
                if op == "add" and last == "-":
                    parent.append(value)
                elif last.isdigit() and int(last) <= len(parent) - (op == "replace"):
                    if op == "add":
                        parent.insert(int(last), value)
                    else:
                        parent[int(last)] = value
                else:
                    raise JsonPatchError(f"{path}: index out of range")
            else:
                raise JsonPatchError(f"{path}: the parent is not an object or an array")
        elif op == "test":
            found = _step(parent, last, path)
            if found != operation.get("value"):
                raise JsonPatchError(f"{path}: test failed, the value differs")
        elif op == "remove":
            _step(parent, last, path)
            if isinstance(parent, dict):
                del parent[last]
            else:
                del parent[int(last)]
        else:
            raise JsonPatchError(f"unsupported JSONPatch operation {op!r}")
    return document


def resource_name(obj: Mapping[str, Any]) -> str:
    """`deployment.apps/semantic-search`, as kubectl names an object in its output."""
    kind = str(obj["kind"])
    group = WORKLOAD_KINDS[kind][0] if kind in WORKLOAD_KINDS else ""
    api_version = str(obj.get("apiVersion", ""))
    if not group and "/" in api_version:
        group = api_version.split("/")[0]
    name = (obj.get("metadata") or {}).get("name", "")
    return f"{kind.lower()}{'.' + group if group else ''}/{name}"


def created_line(obj: Mapping[str, Any]) -> str:
    return f"{resource_name(obj)} created"


def warning_lines(warnings: Sequence[str]) -> list[str]:
    return [f"Warning: {warning}" for warning in warnings]


def denied_line(source: str, webhook: str, message: str, code: int = 403) -> str:
    """kubectl's line for a create a validating webhook denied."""
    reason = "Forbidden" if code == 403 else "BadRequest"
    return (
        f'Error from server ({reason}): error when creating "{source}": '
        f'admission webhook "{webhook}" denied the request: {message}'
    )


Outcome = Literal["created", "denied"]


@dataclass
class Admitted:
    """What became of one create: stored (with the object as stored) or denied."""

    outcome: Outcome
    obj: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    message: str = ""
    code: int = 200
    webhook: str = ""
    inherited: dict[str, str] = field(default_factory=dict)


class Webhook(Protocol):
    def review(self, path: str, review: dict[str, Any]) -> dict[str, Any]: ...


class Store(Protocol):
    def create(self, obj: dict[str, Any]) -> Any: ...


def inherited_labels(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, str]:
    """The pod (template) labels the mutating webhook added."""

    def labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
        kind = str(obj.get("kind"))
        node: Any = obj
        for key in (*WORKLOAD_KINDS.get(kind, ("", "", ()))[2], "metadata", "labels"):
            node = node.get(key) if isinstance(node, Mapping) else None
        return node if isinstance(node, Mapping) else {}

    old, new = labels(before), labels(after)
    return {k: str(v) for k, v in new.items() if k not in old}


class AdmissionChain:
    """Creates objects the way kube-apiserver does with our two webhooks registered."""

    def __init__(self, webhook: Webhook, store: Store) -> None:
        self.webhook = webhook
        self.store = store

    def create(self, obj: Mapping[str, Any]) -> Admitted:
        current: dict[str, Any] = copy.deepcopy(dict(obj))
        warnings: list[str] = []
        if current.get("kind") in WORKLOAD_KINDS:
            mutation = self.webhook.review(conventions.MUTATE_PATH, admission_review(current))
            warnings += mutation.get("warnings") or []
            if not mutation.get("allowed", False):
                return self._denied(current, mutation, MUTATING_WEBHOOK, warnings)
            if mutation.get("patch"):
                operations = json.loads(base64.b64decode(mutation["patch"]))
                current = apply_json_patch(current, operations)
            validation = self.webhook.review(conventions.VALIDATE_PATH, admission_review(current))
            warnings += validation.get("warnings") or []
            if not validation.get("allowed", False):
                return self._denied(current, validation, VALIDATING_WEBHOOK, warnings)
        stored = self.store.create(current)
        return Admitted(
            "created",
            stored if isinstance(stored, dict) else current,
            warnings,
            inherited=inherited_labels(obj, current),
        )

    @staticmethod
    def _denied(
        obj: dict[str, Any], response: Mapping[str, Any], webhook: str, warnings: list[str]
    ) -> Admitted:
        status = response.get("status") or {}
        return Admitted(
            "denied",
            obj,
            warnings,
            message=str(status.get("message", "")),
            code=int(status.get("code", 403)),
            webhook=webhook,
        )
