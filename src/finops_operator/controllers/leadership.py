"""Leader election with a coordination.k8s.io Lease: one replica writes, all serve.

Two replicas both answer admission and export metrics, and both watch
everything (admission needs the namespace index). Writes (audit annotations and
Events, PrometheusRules, CostPolicy status, CostReports) come from the replica
holding the Lease. kopf's own peering is not used because it pauses every
watch of the standby replica, the namespace index included.

`domain.lease.lease_decision` is the pure rule; `Leadership` runs it on a timer.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from finops_operator.domain.lease import LEASE_NAME, lease_decision
from finops_operator.errors import KubeError
from finops_operator.ports import KubePort

logger = logging.getLogger(__name__)

LEASES = ("coordination.k8s.io", "v1", "leases")


@dataclass
class Leadership:
    """Holds or waits for the Lease; runs `on_elected` callbacks when it becomes leader."""

    kube: KubePort
    identity: str
    namespace: str
    duration: int = 15
    renew_every: float = 5.0
    is_leader: bool = False
    on_elected: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    while_leading: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_change: Callable[[int], None] = lambda _: None
    _renewed: datetime.datetime | None = None

    async def attempt(self, now: datetime.datetime) -> bool:
        try:
            current = await self.kube.get(*LEASES, self.namespace, LEASE_NAME)
            decision = lease_decision(
                current,
                identity=self.identity,
                namespace=self.namespace,
                now=now,
                duration=self.duration,
            )
            if decision.create is not None:
                await self.kube.create(*LEASES, decision.create)
            elif decision.patch is not None:
                await self.kube.patch(*LEASES, self.namespace, LEASE_NAME, decision.patch)
        except KubeError as err:
            # Keep leading only while our last renewal still holds the Lease.
            still = self._renewed is not None and (now - self._renewed).total_seconds() < (
                self.duration
            )
            logger.warning("Leader election: %s", err)
            return self.is_leader and still
        if decision.leader:
            self._renewed = now
        return decision.leader

    async def run_forever(self) -> None:
        while True:
            leader = await self.attempt(datetime.datetime.now(datetime.UTC))
            callbacks = []
            if leader and not self.is_leader:
                logger.info("%s is now the leader: this replica writes", self.identity)
                callbacks = self.on_elected + self.while_leading
            elif leader:
                callbacks = self.while_leading
            elif self.is_leader:
                logger.warning("%s lost the leadership: this replica stops writing", self.identity)
            self.is_leader = leader
            self.on_change(1 if leader else 0)
            for callback in callbacks:
                try:
                    await callback()
                except Exception:  # one failing catch-up must not stop the others
                    logger.exception("Catching up as the leader failed")
            await asyncio.sleep(self.renew_every)
