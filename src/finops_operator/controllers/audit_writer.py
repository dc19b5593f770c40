"""Writes what the background audit decided: the violations annotation and one Event.

Only the leader writes. A replica that is not leading keeps the latest decision
per object and writes it if it becomes the leader, so no change is lost in a
failover. A write that fails stays pending and is retried on the leader's next
renewal.

Each decision is written exactly once, in two steps, annotation then Event
(docs/architecture.md, "Exactly one write per change"):

- **Remembered by state.** A watch event asks for a decision about one state of
  the object: its uid and `domain.policies.audit.judged_state` (labels, pod
  labels, generation). Once this replica has sent the annotation patch of a
  decision, that (state, decision) is remembered, in flight or done, and an event
  of the same state asking for the same decision writes nothing: a resync, a
  replayed watch or a status update with a body older than the patch (no
  annotation yet) does not repeat the patch nor the Event. A decision is written
  again only when the labels (or the spec) change. The memory holds the last
  few states of the objects written to; compliant objects never enter it.
- **Two steps.** Once the annotation patch went through, only the Event is left:
  a failed Event is retried without patching again. The watch event that our
  own patch causes (the annotation now as desired, so "unchanged") keeps the
  pending Event instead of dropping it.
- **Checked before a retry.** A patch whose outcome is unknown (a timeout, a
  reset, a 5xx: it may have landed) and a decision recorded while standing by
  (the leader of the time may have written it) are checked with a GET before
  they are written: an annotation already in place is not patched again, and a
  standby's decision that someone else already wrote is dropped with its Event.
- **An idempotent Event.** The Event of one decision has a name of its own, a
  digest of the object's uid, its labels and the decision
  (`domain.policies.event_names`), so a retried POST whose first attempt did
  land answers 409 and counts as posted, whichever replica sends it.
- **Events after a pause.** A leader can die between its patch and its Event.
  So when this replica finds a decision in place that it did not write to that
  object (the catch-up of a new leader, or a standby's decision the leader of
  the time wrote), it still posts the decision's Event under that same name:
  409 means the other replica did post it, and nothing is doubled. An Event
  expired meanwhile (the API server keeps Events for an hour) is posted again
  by such a catch-up.
- **One writer per object.** A lock per object serialises `record` and `flush`:
  a flush never posts what a record is posting.
- **Not sent after the Lease is lost.** The API adapter refuses a write whose
  turn comes after this replica stopped leading (`NotSentError`): it stays
  pending, to be checked and written if this replica leads again.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from finops_operator.domain import conventions
from finops_operator.domain.events import ObjectRef, event_body
from finops_operator.domain.policies.audit import AuditOutcome
from finops_operator.errors import KubeError, NotSentError
from finops_operator.ports import KubePort

logger = logging.getLogger(__name__)

ObjectKey = tuple[str, str, str]  # kind, namespace, name
# States remembered per object: the current one and a few before it, for late events.
REMEMBERED_STATES = 4


@dataclass(eq=False)
class PendingWrite:
    """One decision still to write. Compared by identity: each decision is its own."""

    ref: ObjectRef
    desired: str | None
    violating: bool
    message: str
    state: str = ""
    attempted: bool = False  # the annotation patch was sent (it may have landed)
    annotated: bool = False  # the annotation is in place: only the Event is left
    check: bool = False  # read the object before writing (see the module docstring)

    episode: str = ""  # domain.policies.event_names.labels_state; else `state`

    @property
    def event_name(self) -> str:
        """The same for one decision about one object on every replica, whatever its
        generation (domain/policies/event_names.py)."""
        decision = f"{self.ref.uid}/{self.episode or self.state}/{self.desired}"
        return hashlib.blake2b(decision.encode(), digest_size=8).hexdigest()


@dataclass
class Written:
    """What this replica wrote to one object: its uid, and the decision per state."""

    uid: str | None
    decisions: dict[str, str | None] = field(default_factory=dict)

    def remember(self, state: str, desired: str | None) -> None:
        self.decisions.pop(state, None)
        self.decisions[state] = desired
        while len(self.decisions) > REMEMBERED_STATES:
            del self.decisions[next(iter(self.decisions))]


_UNKNOWN = object()


@dataclass
class AuditWriter:
    kube: KubePort
    leading: Callable[[], bool]
    reporter: str
    pending: dict[ObjectKey, PendingWrite] = field(default_factory=dict)
    written: dict[ObjectKey, Written] = field(default_factory=dict)
    _locks: dict[ObjectKey, asyncio.Lock] = field(default_factory=dict)

    async def record(
        self,
        key: ObjectKey,
        ref: ObjectRef,
        outcome: AuditOutcome,
        message: str,
        state: str = "",
        episode: str = "",
    ) -> None:
        """One watch event's decision; `state` is `judged_state` of the event's body,
        `episode` its `labels_state`."""
        if self.settle(key, ref, outcome, message, state, episode):
            await self._write(key)

    def settle(
        self,
        key: ObjectKey,
        ref: ObjectRef,
        outcome: AuditOutcome,
        message: str,
        state: str = "",
        episode: str = "",
    ) -> bool:
        """`record` without its write: True when a write is due, to be sent by `write(key)`.

        Most events of a fleet (compliant objects, objects left to their owner, late
        events of a state already written) settle here without a write, so the
        caller needs no task for them. `ref`, `message` and `state` are read only
        when `outcome.changed` or `outcome.desired` is set (a violation already in place,
        whose Event may be missing).
        """
        if not outcome.changed:
            write = self.pending.get(key)
            if write is not None and write.attempted and write.desired == outcome.desired:
                write.annotated = True  # our own patch, seen: the Event is still to post
                write.check = False
                return False
            self.pending.pop(key, None)
            if outcome.desired is None or self._knows(key, ref, outcome.desired):
                return False
            # In place, written by another replica (or before a restart), which may have
            # died before its Event: post it under the decision's name (409: it did).
            write = PendingWrite(
                ref, outcome.desired, True, message, state, annotated=True, episode=episode
            )
            self.pending[key] = write
            self._remember(key, write)
            return self.leading()
        if self._already_written(key, ref, state, outcome.desired):
            return False  # this state's decision is written or under way: a late event
        current = self.pending.get(key)
        if current is not None and current.desired == outcome.desired and current.ref == ref:
            return False  # the same decision is pending: its retry, not a second write
        leading = self.leading()
        self.pending[key] = PendingWrite(
            ref,
            outcome.desired,
            bool(outcome.violations),
            message,
            state,
            check=not leading,
            episode=episode,
        )
        return leading

    async def write(self, key: ObjectKey) -> None:
        """Send what `settle` found due for `key` (nothing if it is no longer pending)."""
        await self._write(key)

    def _already_written(
        self, key: ObjectKey, ref: ObjectRef, state: str, desired: str | None
    ) -> bool:
        written = self.written.get(key)
        if written is None:
            return False
        if written.uid != ref.uid:  # deleted and created again under the same name
            del self.written[key]
            return False
        return written.decisions.get(state, _UNKNOWN) == desired

    def _knows(self, key: ObjectKey, ref: ObjectRef, desired: str) -> bool:
        """Whether this replica wrote (or checked) `desired` on this very object."""
        written = self.written.get(key)
        return (
            written is not None and written.uid == ref.uid and desired in written.decisions.values()
        )

    def forget(self, key: ObjectKey) -> None:
        self.pending.pop(key, None)
        self.written.pop(key, None)
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
                if write.check and not await self._still_to_write(key, write):
                    return
                if not write.annotated:
                    await self._annotate(key, write)
                if not self.leading():
                    return  # stays pending: the Event goes out if this replica leads again
                await self._post_event(write)
            except KubeError as err:
                # 404: the object is gone; nothing left to say about it.
                if err.status == 404 and self.pending.get(key) is write:
                    self.pending.pop(key, None)
                if isinstance(err, NotSentError):
                    logger.info("Audit write for %s %s/%s held back: %s", *key, err)
                else:
                    logger.warning("Audit write for %s %s/%s failed: %s", *key, err)
                return
            if self.pending.get(key) is write:
                self.pending.pop(key, None)

    async def _still_to_write(self, key: ObjectKey, write: PendingWrite) -> bool:
        """Read the object: is the decision still to write, in full or only its Event?"""
        ref = write.ref
        live = await self.kube.get_workload(ref.kind, ref.namespace, ref.name)
        meta = (live or {}).get("metadata") or {}
        if live is None or (ref.uid and meta.get("uid") and meta.get("uid") != ref.uid):
            self._drop(key, write)  # gone, or another object under the same name
            return False
        annotation = (meta.get("annotations") or {}).get(conventions.VIOLATIONS_ANNOTATION)
        write.check = False
        if annotation != write.desired:
            return True
        self._remember(key, write)
        # Our patch landed though its answer was lost; or the leader of the time wrote
        # it, and may have died before its Event: either way only the Event is left,
        # under the decision's name (409: it was posted).
        write.annotated = True
        return True

    def _drop(self, key: ObjectKey, write: PendingWrite) -> None:
        if self.pending.get(key) is write:
            self.pending.pop(key, None)

    def _remember(self, key: ObjectKey, write: PendingWrite) -> None:
        written = self.written.get(key)
        if written is None or written.uid != write.ref.uid:
            written = self.written[key] = Written(write.ref.uid)
        written.remember(write.state, write.desired)

    async def _annotate(self, key: ObjectKey, write: PendingWrite) -> None:
        ref = write.ref
        patch = {"metadata": {"annotations": {conventions.VIOLATIONS_ANNOTATION: write.desired}}}
        self._remember(key, write)  # in flight counts: a late event must not send it again
        try:
            await self.kube.patch_workload(ref.kind, ref.namespace, ref.name, patch)
        except NotSentError:
            self._unremember(key, write)  # it surely did not land
            write.check = True  # another replica may write it meanwhile
            raise
        except KubeError as err:
            write.attempted = True
            if 400 <= err.status < 500 and err.status != 429:  # refused: it did not land
                self._unremember(key, write)
            else:
                write.check = True  # it may have landed: read before patching again
            raise
        write.attempted = True
        write.annotated = True

    def _unremember(self, key: ObjectKey, write: PendingWrite) -> None:
        written = self.written.get(key)
        if written is not None and written.decisions.get(write.state, _UNKNOWN) == write.desired:
            del written.decisions[write.state]

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
        metadata["name"] = f"{ref.name[:200]}.{write.event_name}"  # 253 at most
        event["metadata"] = metadata
        try:
            await self.kube.create_event(ref.namespace, event)
        except KubeError as err:
            if err.status != 409:
                raise
            # 409: a POST of this very Event landed before, though its answer was lost.
