"""Writes what the background audit decided: the violations annotation and one Event.

Only the leader writes. A replica that is not leading keeps the latest decision
per object and writes it if it becomes the leader, so no change is lost in a
failover. A write that fails stays pending and is retried on the leader's next
renewal.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from finops_operator.domain import conventions
from finops_operator.domain.events import ObjectRef, event_body
from finops_operator.domain.policies.audit import AuditOutcome
from finops_operator.errors import KubeError
from finops_operator.ports import KubePort

logger = logging.getLogger(__name__)

ObjectKey = tuple[str, str, str]  # kind, namespace, name


@dataclass(frozen=True)
class PendingWrite:
    ref: ObjectRef
    desired: str | None
    violating: bool
    message: str


@dataclass
class AuditWriter:
    kube: KubePort
    leading: Callable[[], bool]
    reporter: str
    pending: dict[ObjectKey, PendingWrite] = field(default_factory=dict)

    async def record(
        self, key: ObjectKey, ref: ObjectRef, outcome: AuditOutcome, message: str
    ) -> None:
        if not outcome.changed:
            self.pending.pop(key, None)
            return
        self.pending[key] = PendingWrite(ref, outcome.desired, bool(outcome.violations), message)
        if self.leading():
            await self._write(key)

    def forget(self, key: ObjectKey) -> None:
        self.pending.pop(key, None)

    async def flush(self) -> None:
        """Write everything pending (after an election, or to retry failed writes)."""
        for key in list(self.pending):
            if not self.leading():
                return
            await self._write(key)

    async def _write(self, key: ObjectKey) -> None:
        write = self.pending.get(key)
        if write is None:
            return
        ref = write.ref
        patch = {"metadata": {"annotations": {conventions.VIOLATIONS_ANNOTATION: write.desired}}}
        try:
            await self.kube.patch_workload(ref.kind, ref.namespace, ref.name, patch)
            event = event_body(
                ref,
                type="Warning" if write.violating else "Normal",
                reason=conventions.EVENT_REASON_VIOLATION
                if write.violating
                else conventions.EVENT_REASON_FIXED,
                message=write.message,
                now=datetime.datetime.now(datetime.UTC),
                reporter=self.reporter,
            )
            await self.kube.create_event(ref.namespace, event)
        except KubeError as err:
            if err.status == 404:  # the object is gone; nothing left to say about it
                self.pending.pop(key, None)
            logger.warning("Audit write for %s %s/%s failed: %s", *key, err)
            return
        if self.pending.get(key) == write:
            self.pending.pop(key, None)
