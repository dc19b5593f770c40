"""The background audit of one watch event of a workload, up to the write it makes due.

The watch of the workloads (`watch_feeds.WorkloadFeed`) hands each event here.
`WorkloadAudit.decide` judges the object with its namespace's labels
(`domain.policies.audit`), keeps the violations gauge, gives the PolicyReport
writer the object's result, and settles the decision with the `AuditWriter`.
It is synchronous and answers whether a write is due: most events of a fleet
(compliant objects, objects left to their owner, late events of a state already
written) need none, and so cost no task; the caller sends a due write with
`AuditWriter.write(key)`.

An object that claims an owner is left to that owner only when the owner vouches
for it (`domain.policies.owners.vouch`), looked up in `OwnerCache`, which the
same watch events of the six owner kinds fill. A claimed owner the cache does
not hold yet (created a moment before, its watch event not in) defers the
decision: `decide` keeps the body in `deferred`, the feed asks `recheck` after
`OWNER_GRACE_SECONDS`, and then the object is judged, on its own if the owner
still is not known.

`Violations` is the set of violating workloads behind the
`finops_label_violations` gauge: the gauge moves only when an object enters or
leaves the set, so repeated events of one state never count twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from finops_operator.controllers.audit_writer import AuditWriter, ObjectKey
from finops_operator.controllers.exemption_recorder import ExemptionRecorder
from finops_operator.controllers.policy_report_writer import PolicyReportWriter
from finops_operator.domain.config import Config
from finops_operator.domain.events import ObjectRef
from finops_operator.domain.policies.audit import audit_workload, event_message, judged_state
from finops_operator.domain.policies.event_names import labels_state
from finops_operator.domain.policies.label_check import LabelPolicy, find_exemption
from finops_operator.domain.policies.owners import OWNER_KINDS, OwnerRecord, owner_record
from finops_operator.domain.policies.policy_reports import workload_result
from finops_operator.domain.policies.verdict import Skip
from finops_operator.ports import MetricsPort

_NO_REF: Final = ObjectRef("", "", "", "", "")
# How long an object whose claimed owner is not in the cache waits for the owner's watch
# event: a real controller makes its children only after the owner exists, and the
# owner's event reaches this replica in milliseconds; a forged claim waits this long.
OWNER_GRACE_SECONDS: Final = 5.0
_OWNER_KIND_NAMES: Final = frozenset(kind.value for kind in OWNER_KINDS)


@dataclass
class OwnerCache:
    """The owner kinds' objects as the audit's `OwnerLookup` needs them, from their watch:
    (kind, namespace, name) -> uid, whether it asks for a GPU, its template's cost labels."""

    policy: LabelPolicy
    records: dict[ObjectKey, OwnerRecord] = field(default_factory=dict)

    def observe(self, kind: str, type: str | None, body: Mapping[str, Any]) -> None:
        if kind not in _OWNER_KIND_NAMES:
            return
        meta = body.get("metadata") or {}
        key = (kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if type == "DELETED":
            self.records.pop(key, None)
        else:
            self.records[key] = owner_record({**body, "kind": kind}, self.policy)

    def lookup(self, kind: str, namespace: str, name: str) -> OwnerRecord | None:
        return self.records.get((kind, namespace, name))

    def forget_unlisted(self, kind: str, listed: set[tuple[str, str]]) -> None:
        for key in [k for k in self.records if k[0] == kind and k[1:] not in listed]:
            del self.records[key]


@dataclass
class Violations:
    """The violating workloads (kind, namespace, name), counted by the metrics port."""

    metrics: MetricsPort
    keys: set[ObjectKey] = field(default_factory=set)

    def mark(self, key: ObjectKey, violating: bool) -> None:
        """Keep the gauge equal to the number of violating workloads."""
        kind, namespace, _ = key
        if violating and key not in self.keys:
            self.keys.add(key)
            self.metrics.count_violations(namespace, kind, 1)
        elif not violating and key in self.keys:
            self.keys.discard(key)
            self.metrics.count_violations(namespace, kind, -1)

    def of_kind(self, kind: str) -> list[ObjectKey]:
        return [key for key in self.keys if key[0] == kind]


def _no_observer(kind: str, uid: str | None) -> None:
    pass


@dataclass
class WorkloadAudit:
    """Decides each watch event of a workload; see the module docstring."""

    config: Config
    policy: LabelPolicy
    namespaces: Mapping[str, Mapping[str, str]]  # the namespace index: name -> labels
    writer: AuditWriter
    violations: Violations
    published: PolicyReportWriter | None = None  # None when `policyReports.api` is off
    observe: Callable[[str, str | None], None] = _no_observer  # readiness: (kind, uid) seen
    exemptions: ExemptionRecorder | None = None  # an Event and the gauge per exemption
    owners: OwnerCache = field(init=False)
    # objects whose claimed owner the cache did not hold: their latest body, until `recheck`
    deferred: dict[ObjectKey, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.owners = OwnerCache(self.policy)

    def decide(
        self, kind: str, type: str | None, body: Mapping[str, Any], *, patient: bool = True
    ) -> bool:
        """The audit of one event, up to its write: True when the writer has a write to send.

        `patient`: an object whose claimed owner is not in the cache is deferred (kept in
        `deferred`, nothing decided); without patience it is judged on its own."""
        meta = body.get("metadata") or {}
        self.observe(kind, meta.get("uid"))
        self.owners.observe(kind, type, body)
        key = (kind, meta.get("namespace") or "", meta.get("name") or "")
        if type == "DELETED":
            self.forget(key)
            return False
        obj: Mapping[str, Any] = {**body, "kind": kind}
        outcome = audit_workload(obj, self.policy, self.namespaces.get(key[1]), self.owners.lookup)
        if outcome.owner_unknown and patient:
            self.deferred[key] = body
            return False
        self.deferred.pop(key, None)
        self.violations.mark(key, violating=bool(outcome.violations))
        exempt = (
            find_exemption(obj, key[1], self.config)
            if outcome.skip is Skip.EXEMPT_ANNOTATION
            else None
        )
        if self.published is not None:
            self.published.record(key, workload_result(obj, outcome, exempt))
        event_due = self.exemptions is not None and self.exemptions.observe(key, obj, exempt)
        if not outcome.changed and outcome.desired is None:  # nothing else is read then
            return self.writer.settle(key, _NO_REF, outcome, "") or event_due
        message = event_message(obj, outcome)
        ref, state = ObjectRef.of(obj), judged_state(obj)
        due = self.writer.settle(key, ref, outcome, message, state, labels_state(obj))
        return due or event_due

    async def send(self, key: ObjectKey) -> None:
        """The due writes of one object: its annotation and Event, an exemption's Event."""
        await self.writer.write(key)
        if self.exemptions is not None:
            await self.exemptions.post(key)

    async def recheck(self, key: ObjectKey) -> None:
        """A deferred object, once its owner had time to show: judged now, owner or not."""
        body = self.deferred.pop(key, None)
        if body is not None and self.decide(key[0], "MODIFIED", body, patient=False):
            await self.send(key)

    async def audit(self, kind: str, type: str | None, body: Mapping[str, Any]) -> None:
        """`decide`, then the writes if some are due."""
        if self.decide(kind, type, body):
            meta = body.get("metadata") or {}
            await self.send((kind, meta.get("namespace") or "", meta.get("name") or ""))

    def forget(self, key: ObjectKey) -> None:
        """The workload is gone: it no longer violates, and nothing is left to write."""
        self.violations.mark(key, violating=False)
        self.deferred.pop(key, None)
        self.writer.forget(key)
        if self.published is not None:
            self.published.forget(key)
        if self.exemptions is not None:
            self.exemptions.forget(key)

    def forget_unlisted(self, kind: str, listed: set[tuple[str, str]]) -> None:
        """A new list of `kind` (after 410 Gone): forget the violators it no longer has."""
        self.owners.forget_unlisted(kind, listed)
        for key in [k for k in self.deferred if k[0] == kind and k[1:] not in listed]:
            del self.deferred[key]
        for key in self.violations.of_kind(kind):
            if key[1:] not in listed:
                self.forget(key)
        if self.exemptions is not None:
            for key in [k for k in self.exemptions.current if k[0] == kind]:
                if key[1:] not in listed:
                    self.exemptions.forget(key)
