"""Writes what the background audit decided: the violations annotation and one Event.

Only the leader writes. A replica that is not leading keeps the latest decision
per object and writes it if it becomes the leader, so no change is lost in a
failover. A write that fails stays pending and is retried on the leader's next
renewal.

Each decision is written exactly once, in two steps, annotation then Event:

- **Two steps.** Once the annotation patch went through, only the Event is left:
  a failed Event is retried without patching again. The watch event that our
  own patch causes (the annotation now as desired, so "unchanged") keeps the
  pending Event instead of dropping it.
- **An idempotent Event.** The Event of one decision has a name of its own,
  fixed when the decision is recorded, so a retried POST whose first attempt did
  land answers 409 and counts as posted.
- **One writer per object.** A lock per object serialises `record` and `flush`:
  a flush never posts what a record is posting.
- **Older events.** The annotation a patch writes is remembered until a watch
  event shows it; an older event of the object (from before the patch) asking
  for the same annotation is not written a second time.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from finops_operator.domain import conventions
from finops_operator.domain.events import ObjectRef, event_body
from finops_operator.domain.policies.audit import AuditOutcome
from finops_operator.errors import KubeError
from finops_operator.ports import KubePort

logger = logging.getLogger(__name__)

ObjectKey = tuple[str, str, str]  # kind, namespace, name


@dataclass(eq=False)
class PendingWrite:
    """One decision still to write. Compared by identity: each decision is its own."""

    ref: ObjectRef
    desired: str | None
    violating: bool
    message: str
    event_name: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    attempted: bool = False  # the annotation patch was sent (it may have landed)
    annotated: bool = False  # the annotation is in place: only the Event is left


@dataclass
class AuditWriter:
    kube: KubePort
    leading: Callable[[], bool]
    reporter: str
    pending: dict[ObjectKey, PendingWrite] = field(default_factory=dict)
    # Annotation values this replica patched and has not seen in a watch event yet.
    unconfirmed: dict[ObjectKey, str | None] = field(default_factory=dict)
    _locks: dict[ObjectKey, asyncio.Lock] = field(default_factory=dict)

    async def record(
        self, key: ObjectKey, ref: ObjectRef, outcome: AuditOutcome, message: str
    ) -> None:
        if key in self.unconfirmed:
            written = self.unconfirmed[key]
            if outcome.current == written:
                del self.unconfirmed[key]  # our patch is seen: events from now on are newer
            elif outcome.desired == written:
                return  # an event from before our patch: that write is done or under way
        if not outcome.changed:
            write = self.pending.get(key)
            if write is not None and write.attempted and write.desired == outcome.desired:
                write.annotated = True  # our own patch, seen: the Event is still to post
            else:
                self.pending.pop(key, None)
            return
        self.pending[key] = PendingWrite(ref, outcome.desired, bool(outcome.violations), message)
        if self.leading():
            await self._write(key)

    def forget(self, key: ObjectKey) -> None:
        self.pending.pop(key, None)
        self.unconfirmed.pop(key, None)
        lock = self._locks.get(key)
        if lock is not None and not lock.locked():
            del self._locks[key]

    async def flush(self) -> None:
        """Write everything pending (after an election, or to retry failed writes)."""
        for key in list(self.pending):
            if not self.leading():
                return
            await self._write(key)

    async def _write(self, key: ObjectKey) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            write = self.pending.get(key)
            if write is None or not self.leading():
                return
            try:
                if not write.annotated:
                    await self._annotate(key, write)
                if not self.leading():
                    return  # stays pending: the Event goes out if this replica leads again
                await self._post_event(write)
            except KubeError as err:
                # 404: the object is gone; nothing left to say about it.
                if err.status == 404 and self.pending.get(key) is write:
                    self.pending.pop(key, None)
                logger.warning("Audit write for %s %s/%s failed: %s", *key, err)
                return
            if self.pending.get(key) is write:
                self.pending.pop(key, None)

    async def _annotate(self, key: ObjectKey, write: PendingWrite) -> None:
        ref = write.ref
        patch = {"metadata": {"annotations": {conventions.VIOLATIONS_ANNOTATION: write.desired}}}
        write.attempted = True
        self.unconfirmed[key] = write.desired
        try:
            await self.kube.patch_workload(ref.kind, ref.namespace, ref.name, patch)
        except KubeError as err:
            refused = 400 <= err.status < 500 and err.status != 429  # it did not land
            if refused and self.unconfirmed.get(key, object()) == write.desired:
                del self.unconfirmed[key]
            raise
        write.annotated = True

    async def _post_event(self, write: PendingWrite) -> None:
        ref = write.ref
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
        metadata = dict(event.get("metadata") or {})
        metadata.pop("generateName", None)
        metadata["name"] = f"{ref.name[:200]}.{write.event_name}"
        event["metadata"] = metadata
        try:
            await self.kube.create_event(ref.namespace, event)
        except KubeError as err:
            if err.status != 409:
                raise
            # 409: a POST of this very Event landed before, though its answer was lost.
