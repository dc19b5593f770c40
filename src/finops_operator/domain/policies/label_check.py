"""The pieces of the label check: what is wrong with a set of labels, exemptions, messages.

`verdict.judge` puts them together into the one decision that `lint`, the
admission webhook and the background audit share, so that all three always agree.
`LabelPolicy.check_workload` gives the violations alone, for an object without
namespace labels (the same as `judge(...).violations`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from finops_operator.domain import conventions
from finops_operator.domain.config import Config, LabelRule
from finops_operator.domain.workloads import (
    GpuMatcher,
    asks_for_gpu,
    is_workload,
    pod_labels,
    pod_labels_path,
    pod_template,
)


@dataclass(frozen=True)
class InvalidLabel:
    value: str
    rule: str


@dataclass(frozen=True)
class Violations:
    """What a workload's pod labels lack: missing keys and invalid values with their rules."""

    missing: tuple[str, ...] = ()
    invalid: Mapping[str, InvalidLabel] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.missing or self.invalid)

    def is_subset_of(self, other: Violations) -> bool:
        """True when every problem here was already a problem in `other` (no new harm)."""
        return set(self.missing) <= set(other.missing) and all(
            key in other.invalid and other.invalid[key].value == bad.value
            for key, bad in self.invalid.items()
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "missing": list(self.missing),
            "invalid": {key: bad.value for key, bad in self.invalid.items()},
        }

    def annotation(self) -> str:
        """The value of the violations annotation: compact, stable JSON."""
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))

    def problems(self) -> list[str]:
        """Each problem as a short phrase, e.g. 'missing resilio.tech/team'."""
        phrases = [f"missing {key}" for key in self.missing]
        phrases += [
            f"invalid {key}={bad.value!r} ({bad.rule})" for key, bad in self.invalid.items()
        ]
        return phrases


NO_VIOLATIONS = Violations()


def _as_written(value: Any) -> str:
    """A non-string label value as YAML/JSON shows it: true, 1234, 1.5."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    try:
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError):
        return str(value)


NOT_A_STRING = "must be a string; quote it in YAML"


def check_labels(labels: Mapping[str, Any], rules: Mapping[str, LabelRule]) -> Violations:
    """Missing keys (absent, null or empty) and invalid values, in the order of `rules`."""
    missing = []
    invalid = {}
    for key, rule in rules.items():
        value = labels.get(key)
        if value is None or value == "":
            missing.append(key)
        elif not isinstance(value, str):
            invalid[key] = InvalidLabel(_as_written(value), NOT_A_STRING)
        elif not rule.accepts(value):
            invalid[key] = InvalidLabel(value, rule.describe())
    return Violations(tuple(missing), invalid)


def _annotations(meta: Any) -> Mapping[str, Any]:
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    return annotations if isinstance(annotations, Mapping) else {}


class ExemptBy(StrEnum):
    """What exempts a GPU workload from the check."""

    NAMESPACE = "namespace"  # listed in `exemptNamespaces`
    ANNOTATION = "annotation"  # finops.resilio.tech/exempt: "true" on the object or its template


@dataclass(frozen=True)
class Exemption:
    """Which exemption applies, with the namespace or the exempt-reason annotation."""

    by: ExemptBy
    detail: str

    def __str__(self) -> str:
        if self.by is ExemptBy.NAMESPACE:
            return f"namespace {self.detail} is exempt by configuration"
        return f"annotated {conventions.EXEMPT_ANNOTATION}=true: {self.detail}"


def _reason(annotations: Mapping[str, Any]) -> str | None:
    reason = annotations.get(conventions.EXEMPT_REASON_ANNOTATION)
    return None if reason in (None, "") else _as_written(reason)


@dataclass(frozen=True)
class Requester:
    """Who writes an object, as an AdmissionRequest's `userInfo` says."""

    username: str = ""
    groups: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.username or "(unknown user)"


def find_exemption(
    obj: Mapping[str, Any], namespace: str | None, config: Config
) -> Exemption | None:
    """The exemption of an object, or None when it has none.

    The exempt annotation counts on the object itself and, for a controller, on its
    pod template (where it reaches the pods the controller creates), only with the
    value `"true"`, exactly, and only with a reason in
    `finops.resilio.tech/exempt-reason` beside it: `""`, `"false"`, `"yes"` or a
    reason written there do not exempt (`misspelt_exemption` says so, for a
    warning), nor does `"true"` without a reason (`unreasoned_exemption`).

    This is what the object says. Whether the one who wrote it may exempt is
    decided at admission (`verdict.judge` with a requester); the audit and lint
    cannot know who wrote an annotation.
    """
    if namespace is not None and namespace in config.exempt_namespaces:
        return Exemption(ExemptBy.NAMESPACE, namespace)
    for meta in (obj.get("metadata"), pod_template(obj).get("metadata")):
        annotations = _annotations(meta)
        if annotations.get(conventions.EXEMPT_ANNOTATION) == conventions.EXEMPT_VALUE:
            reason = _reason(annotations)
            if reason is not None:
                return Exemption(ExemptBy.ANNOTATION, reason)
    return None


def unreasoned_exemption(obj: Mapping[str, Any]) -> bool:
    """An exempt annotation `"true"` with no reason beside it (it does not exempt)."""
    metas = (obj.get("metadata"), pod_template(obj).get("metadata"))
    found = [_annotations(meta) for meta in metas]
    marked = [a for a in found if a.get(conventions.EXEMPT_ANNOTATION) == conventions.EXEMPT_VALUE]
    return bool(marked) and all(_reason(a) is None for a in marked)


def misspelt_exemption(obj: Mapping[str, Any]) -> str | None:
    """The value of an exempt annotation that does not exempt (not `"true"`), or None."""
    for meta in (obj.get("metadata"), pod_template(obj).get("metadata")):
        annotations = _annotations(meta)
        if conventions.EXEMPT_ANNOTATION in annotations:
            value = annotations[conventions.EXEMPT_ANNOTATION]
            if value != conventions.EXEMPT_VALUE:
                return _as_written(value)
    return None


def exemption(obj: Mapping[str, Any], namespace: str | None, config: Config) -> str | None:
    """Why an object is exempt from the check, in words, or None when it is not."""
    found = find_exemption(obj, namespace, config)
    return None if found is None else str(found)


class LabelPolicy:
    """The configured check, with the GPU matcher built once."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.is_gpu = GpuMatcher(config.gpu_resources)

    def needs_labels(self, obj: Mapping[str, Any]) -> bool:
        return is_workload(obj) and asks_for_gpu(obj, self.is_gpu)

    def check_workload(self, obj: Mapping[str, Any], namespace: str | None = None) -> Violations:
        """The violations of one object; none for non-GPU, non-workload and exempt objects.

        The same as `verdict.judge(obj, policy=self, namespace=...).violations`; the
        namespace defaults to the object's own.
        """
        if not self.needs_labels(obj):
            return NO_VIOLATIONS
        if namespace is None:
            meta = obj.get("metadata")
            namespace = meta.get("namespace") if isinstance(meta, Mapping) else None
        if exemption(obj, namespace, self.config) is not None:
            return NO_VIOLATIONS
        return check_labels(pod_labels(obj), self.config.labels)


def object_ref(kind: str, namespace: str | None, name: str | None) -> str:
    """`Kind namespace/name`, or `Kind name` when the namespace is not known."""
    where = f"{namespace}/" if namespace else ""
    return f"{kind} {where}{name or '(unnamed)'}"


def violation_message(kind: str, namespace: str | None, name: str | None, found: Violations) -> str:
    """One line: the object, each problem with its rule, and how to fix it."""
    path = ".".join(pod_labels_path(kind))
    message = (
        f"{object_ref(kind, namespace, name)} asks for a GPU but its cost labels are "
        f"missing or invalid: {'; '.join(found.problems())}. Set them under {path}"
        " (or label the namespace to inherit them)."
    )
    return " ".join(message.split())
