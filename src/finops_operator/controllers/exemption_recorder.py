"""Records what the background audit finds exempt by annotation: one Event each, and a gauge.

Admission is where authority is checked: an exempt annotation counts only when the
user who adds or changes it may exempt (docs/admission.md, "Who may exempt"). The
audit reads objects from a watch and cannot know who set an annotation, so it
does not judge exemptions; it makes them visible. Each GPU workload exempt by
annotation is counted in `finops_label_exemptions{namespace, kind}` (every
replica keeps the gauge) and gets one `Normal CostLabelsExempted` Event with the
reason (posted by the leader).

One Event per exemption, not per watch event: the Event's name is derived from
the object's uid and the reason, so a repeated POST (a resync, a restart, a new
leader) answers 409 while the earlier Event exists, and a changed reason is a new
Event. A failed POST stays pending and is retried on the leader's next renewal;
a standby keeps what it saw and posts it if it becomes the leader.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from finops_operator.domain import conventions
from finops_operator.domain.events import ObjectRef, event_body
from finops_operator.domain.policies.audit import exemption_message
from finops_operator.domain.policies.label_check import ExemptBy, Exemption
from finops_operator.errors import KubeError, NotSentError
from finops_operator.ports import KubePort, MetricsPort

logger = logging.getLogger(__name__)

ObjectKey = tuple[str, str, str]  # kind, namespace, name


@dataclass(frozen=True)
class ExemptionEvent:
    ref: ObjectRef
    name: str
    message: str


def event_name(ref: ObjectRef, reason: str) -> str:
    """The Event's name: the object's name and a digest of its uid and the reason."""
    digest = hashlib.blake2b(f"{ref.uid}/{reason}".encode(), digest_size=8).hexdigest()
    return f"{ref.name[:200]}.exempt-{digest}"


@dataclass
class ExemptionRecorder:
    kube: KubePort
    metrics: MetricsPort
    leading: Callable[[], bool]
    reporter: str
    current: dict[ObjectKey, str] = field(default_factory=dict)  # key -> its Event's name
    pending: dict[ObjectKey, ExemptionEvent] = field(default_factory=dict)

    def observe(self, key: ObjectKey, obj: Mapping[str, Any], exemption: Exemption | None) -> bool:
        """One watch event's exemption (None: not exempt by annotation); True when an Event
        is due, to be posted with `post(key)`."""
        if exemption is None or exemption.by is not ExemptBy.ANNOTATION:
            self.forget(key)
            return False
        ref = ObjectRef.of(obj)
        name = event_name(ref, exemption.detail)
        if self.current.get(key) == name:
            return False
        if key not in self.current:
            self.metrics.count_exemption(key[1], key[0], 1)
        self.current[key] = name
        self.pending[key] = ExemptionEvent(ref, name, exemption_message(obj, exemption))
        return True

    def forget(self, key: ObjectKey) -> None:
        """The object is gone or no longer exempt by annotation."""
        if self.current.pop(key, None) is not None:
            self.metrics.count_exemption(key[1], key[0], -1)
        self.pending.pop(key, None)

    async def post(self, key: ObjectKey) -> None:
        """Post the pending Event of `key`, on the leader; it stays pending when that fails."""
        event = self.pending.get(key)
        if event is None or not self.leading():
            return
        body = event_body(
            event.ref,
            type="Normal",
            reason=conventions.EVENT_REASON_EXEMPTED,
            message=event.message,
            now=datetime.datetime.now(datetime.UTC),
            reporter=self.reporter,
        )
        metadata = {k: v for k, v in body["metadata"].items() if k != "generateName"}
        body["metadata"] = {**metadata, "name": event.name}
        try:
            await self.kube.create_event(event.ref.namespace, body)
        except NotSentError:
            return
        except KubeError as err:
            if err.status != 409:  # 409: posted before (a resync, a restart, another leader)
                logger.warning("Cannot post the exemption Event of %s: %s", event.ref.name, err)
                return
        if self.pending.get(key) is event:
            del self.pending[key]

    async def flush(self) -> None:
        """Post every pending Event (on each renewal of the Lease)."""
        for key in list(self.pending):
            await self.post(key)
