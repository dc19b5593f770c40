"""The background audit's results as PolicyReports: one report per namespace.

The wg-policy PolicyReport (`wgpolicyk8s.io`) is what Policy Reporter, Kyverno
and Trivy Operator read; OpenReports (`openreports.io`) is its successor with the
same result and summary fields. This module turns audit outcomes into the body
of either, and says when a stored report is already right:

- **One result per GPU workload** that the audit judges: `pass` when its cost
  labels are right, `fail` with the missing and invalid labels as properties,
  `skip` when an exempt annotation lets it through (with the reason). Workloads
  left to their owner (a Deployment's ReplicaSets and Pods), workloads without
  GPUs, exempt namespaces and namespaces in mode `off` have no result.
- **Deterministic.** Results are sorted by kind and name; the summary counts them.
- **Compared without timestamps.** A result's `timestamp` is when the operator
  first found that result; `same_results` ignores it, so an unchanged namespace
  is never written again, not even after a restart.
- **Within the object size limit.** etcd refuses objects over 1.5 MiB by
  default. A namespace whose results do not fit in `MAX_REPORT_BYTES` is split
  into parts, `finops-labels`, `finops-labels-2`, ..., each with its own summary
  (Policy Reporter adds reports up). docs/policy-reports.md has the figures.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from finops_operator.domain import conventions
from finops_operator.domain.config import ReportApi
from finops_operator.domain.merge_patch import Compare, Wanted, differing
from finops_operator.domain.policies.audit import AuditOutcome, AuditReason
from finops_operator.domain.policies.label_check import Exemption, Violations
from finops_operator.domain.policies.verdict import Skip

REPORT_NAME: Final = "finops-labels"
POLICY: Final = "finops-cost-labels"
RULE: Final = "required-cost-labels"
SOURCE: Final = "finops-operator"
CATEGORY: Final = "Cost allocation"
# Room for the results of one report object. etcd's default request limit is 1.5 MiB
# (--max-request-bytes=1572864); the rest is left for metadata and managedFields.
MAX_REPORT_BYTES: Final = 1_000_000
# The APIs reports can be written to (`policyReports.api` other than `off`).
PUBLISHED_APIS: Final = (ReportApi.WGPOLICY, ReportApi.OPENREPORTS)
# The label that tells our reports apart from Kyverno's or Trivy's in the same namespace.
REPORT_LABELS: Final = {conventions.MANAGED_BY_LABEL: conventions.MANAGED_BY}


class ResultValue(StrEnum):
    """The result values of both APIs that the audit uses (they also have warn and error)."""

    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"


SUMMARY_KEYS: Final = ("pass", "fail", "warn", "error", "skip")


@dataclass(frozen=True)
class WorkloadResult:
    """One workload's result, without the time it was found (that is the writer's)."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str
    result: ResultValue
    message: str
    properties: tuple[tuple[str, str], ...] = ()

    @property
    def sort_key(self) -> tuple[str, str]:
        return (self.kind, self.name)

    def entry(self, found_at: int) -> dict[str, Any]:
        """The result as both APIs write it; `found_at` in Unix seconds."""
        resource = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
        }
        entry: dict[str, Any] = {
            "policy": POLICY,
            "rule": RULE,
            "category": CATEGORY,
            "result": self.result.value,
            "scored": True,
            "source": SOURCE,
            "message": self.message,
            "resources": [resource],
            "timestamp": {"seconds": found_at, "nanos": 0},
        }
        if self.properties:
            entry["properties"] = dict(self.properties)
        return entry


def _properties(violations: Violations) -> tuple[tuple[str, str], ...]:
    props = []
    if violations.missing:
        props.append(("missing", ",".join(sorted(violations.missing))))
    if violations.invalid:
        bad = sorted(violations.invalid.items())
        props.append(("invalid", ",".join(f"{key}={found.value}" for key, found in bad)))
    return tuple(props)


def workload_result(
    obj: Mapping[str, Any], outcome: AuditOutcome, exemption: Exemption | None = None
) -> WorkloadResult | None:
    """The result of one audited workload, or None when the report leaves it out.

    `exemption` is the workload's exemption when `outcome.skip` is an exempt
    annotation (its reason goes into the message).
    """
    meta = obj.get("metadata") or {}
    ref = (
        str(obj.get("apiVersion") or ""),
        str(obj.get("kind") or ""),
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
        str(meta.get("uid") or ""),
    )
    if outcome.reason is AuditReason.VIOLATING:
        message = "; ".join(outcome.violations.problems())
        return WorkloadResult(*ref, ResultValue.FAIL, message, _properties(outcome.violations))
    if outcome.reason is AuditReason.COMPLIANT:
        return WorkloadResult(*ref, ResultValue.PASS, "carries its cost labels")
    if outcome.skip is Skip.EXEMPT_ANNOTATION:
        why = str(exemption) if exemption is not None else "exempt by annotation"
        return WorkloadResult(*ref, ResultValue.SKIP, why, (("exempt", "annotation"),))
    return None


def summary(results: Iterable[WorkloadResult]) -> dict[str, int]:
    counts = dict.fromkeys(SUMMARY_KEYS, 0)
    for result in results:
        counts[result.result.value] += 1
    return counts


def part_name(index: int) -> str:
    """The name of a namespace's report part: `finops-labels`, then `finops-labels-2`, ..."""
    return REPORT_NAME if index == 0 else f"{REPORT_NAME}-{index + 1}"


def is_part_name(name: str) -> bool:
    if name == REPORT_NAME:
        return True
    prefix, _, number = name.rpartition("-")
    return prefix == REPORT_NAME and number.isdigit() and int(number) >= 2


def _size(entry: Mapping[str, Any]) -> int:
    return len(json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode()) + 1


def split_results(
    results: Iterable[WorkloadResult],
    found_at: Mapping[tuple[str, str], int],
    max_bytes: int = MAX_REPORT_BYTES,
) -> list[list[dict[str, Any]]]:
    """The result entries in order, cut into parts of at most `max_bytes` of JSON each.

    `found_at` gives each workload's (kind, name) the time its result was found.
    """
    parts: list[list[dict[str, Any]]] = [[]]
    used = 0
    for result in sorted(results, key=lambda r: r.sort_key):
        entry = result.entry(found_at.get(result.sort_key, 0))
        size = _size(entry)
        if parts[-1] and used + size > max_bytes:
            parts.append([])
            used = 0
        parts[-1].append(entry)
        used += size
    return parts if parts[0] else []


def report_body(
    api: ReportApi,
    namespace: str,
    index: int,
    entries: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The report object of one part (no ownerReference: see docs/policy-reports.md)."""
    counts = dict.fromkeys(SUMMARY_KEYS, 0)
    for entry in entries:
        counts[str(entry["result"])] += 1
    metadata: dict[str, Any] = {
        "name": part_name(index),
        "namespace": namespace,
        "labels": dict(REPORT_LABELS),
    }
    body: dict[str, Any] = {
        "apiVersion": api.value,
        "kind": api.kind,
        "metadata": metadata,
        "scope": {"apiVersion": "v1", "kind": "Namespace", "name": namespace},
        "summary": counts,
        "results": [dict(entry) for entry in entries],
    }
    if api is ReportApi.OPENREPORTS:
        body["source"] = SOURCE
    return body


def desired_reports(
    api: ReportApi,
    namespace: str,
    results: Iterable[WorkloadResult],
    found_at: Mapping[tuple[str, str], int],
    max_bytes: int = MAX_REPORT_BYTES,
) -> list[dict[str, Any]]:
    """Every report part a namespace should have; none when it has no result."""
    parts = split_results(results, found_at, max_bytes)
    return [report_body(api, namespace, index, entries) for index, entries in enumerate(parts)]


def _without_timestamps(results: Any) -> list[Any]:
    if not isinstance(results, list):
        return []
    return [
        {k: v for k, v in r.items() if k != "timestamp"} if isinstance(r, Mapping) else r
        for r in results
    ]


# What a stored report must say: the report's labels among its own, and the rest as is
# (results compared without their timestamps, which record when a result was first found).
_KEPT: Final = (
    Wanted(("metadata", "labels"), Compare.CONTAINS),
    Wanted(("summary",), Compare.EXACT),
    Wanted(("scope",), Compare.EXACT),
    Wanted(("source",), Compare.EXACT),
    Wanted(("results",), Compare.EXACT),
)


def _compared(report: Mapping[str, Any], labels: Any) -> dict[str, Any]:
    return {
        "metadata": {"labels": labels},
        "summary": report.get("summary"),
        "scope": report.get("scope"),
        "source": report.get("source"),
        "results": _without_timestamps(report.get("results")),
    }


def same_results(stored: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether a stored report already says what `desired` says (timestamps aside)."""
    labels = (stored.get("metadata") or {}).get("labels") or {}
    return not differing(_compared(stored, labels), _compared(desired, REPORT_LABELS), _KEPT)


def report_patch(stored: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch bringing `stored` to `desired`, or None when it already says the same.

    Results are a list, which a merge patch replaces whole; an unchanged result keeps
    the timestamp it had when first written.
    """
    if same_results(stored, desired):
        return None
    kept = {
        _result_key(r): r.get("timestamp")
        for r in stored.get("results") or []
        if isinstance(r, Mapping)
    }
    results = []
    for entry in desired.get("results") or []:
        before = kept.get(_result_key(entry))
        results.append({**entry, "timestamp": before} if before else dict(entry))
    patch: dict[str, Any] = {
        "metadata": {"labels": dict(REPORT_LABELS)},
        "scope": desired.get("scope"),
        "summary": desired.get("summary"),
        "results": results,
    }
    if "source" in desired:
        patch["source"] = desired["source"]
    return patch


def _result_key(entry: Mapping[str, Any]) -> str:
    without = {k: v for k, v in entry.items() if k != "timestamp"}
    return json.dumps(without, sort_keys=True)
