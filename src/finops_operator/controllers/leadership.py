"""Leader election with a coordination.k8s.io Lease: one replica writes, all serve.

Two replicas both answer admission and export metrics, and both watch
everything (admission needs the namespace index). Writes (audit annotations and
Events, PrometheusRules, CostPolicy status, CostReports) come from the replica
holding the Lease. kopf's own peering is not used because it pauses every
watch of the standby replica, the namespace index included.

`domain.lease.lease_decision` is the pure rule; `Leadership` runs it on a timer.

What keeps it to one leader at a time, whatever the API does:

- **A deadline, on a monotonic clock.** A renewal that started at `t` lets this
  replica write until `t + duration - safety_margin` (`clock`, a parameter, so
  tests move time). Others may take the Lease over at `renewTime + duration`,
  and `renewTime` is taken before `t`. `is_leader` reads the clock each time,
  so a leader whose renewal hangs in a partition stops writing on time, not
  when the call returns.
- **A conflict means someone else wrote.** A 409 on our Lease write (a racing
  create, or a renewal guarded by an old resourceVersion) ends the leadership
  at once; an unknown outcome (no answer, 5xx, 429) keeps it until the deadline.
- **A Lease that vanished.** When the API loses its state (restarted empty), a
  replica that last saw another holder may not know whether that holder still
  writes: it creates the Lease, and waits one `duration` before writing. Having
  created the Lease also runs the `on_elected` catch-up again, since whatever
  else the API lost (the recording rules) must come back.
- **The loop never ends.** Any exception in a round is logged and counted
  (`on_error`), and the next round comes. Catch-up callbacks run as their own
  tasks, one at a time per callback, so a long flush never delays a renewal.
- **Nothing to wait behind.** The operator runs the loop in a thread with an
  event loop of its own (`start_in_thread`), its API calls on a thread and a
  connection of their own: a backlog of watch events or writes on the main
  event loop, where kopf and admission run, never delays a renewal. The
  callbacks run on the main loop (`run_coroutine_threadsafe`); `is_leader` is
  plain reads, safe from any thread.

`AlwaysLeader` is the `Leadership` of `--no-leader-election`: it leads from the
start and takes no Lease, and runs the same callbacks on the same timer
(`on_elected` once, `while_leading` at every round), so the catch-up and the
retry of failed audit writes happen in both modes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from finops_operator.domain.lease import LEASE_NAME, lease_decision
from finops_operator.errors import KubeError
from finops_operator.ports import KubePort

logger = logging.getLogger(__name__)

LEASES = ("coordination.k8s.io", "v1", "leases")

Callback = Callable[[], Awaitable[None]]


def _wall() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class Leadership:
    """Holds or waits for the Lease; runs `on_elected` callbacks when it becomes leader."""

    kube: KubePort
    identity: str
    namespace: str
    duration: int = 15
    renew_every: float = 5.0
    on_elected: list[Callback] = field(default_factory=list)
    while_leading: list[Callback] = field(default_factory=list)
    on_change: Callable[[int], None] = lambda _: None
    on_error: Callable[[], None] = lambda: None  # a round that failed unexpectedly
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime.datetime] = _wall
    safety_margin: float | None = None  # default: a fifth of `duration`
    errors: int = 0
    _holding: bool = False
    _valid_until: float = float("-inf")
    _not_before: float = float("-inf")
    _seen_other: bool = False
    _announced: bool = False
    _created: bool = False  # this replica created the Lease; catch up once it leads
    _tasks: dict[int, asyncio.Task[None] | concurrent.futures.Future[None]] = field(
        default_factory=dict
    )
    _callbacks_loop: asyncio.AbstractEventLoop | None = None  # None: the loop that runs us

    @property
    def margin(self) -> float:
        return self.duration / 5 if self.safety_margin is None else self.safety_margin

    @property
    def is_leader(self) -> bool:
        """Whether this replica may write now: it holds the Lease, and its last renewal
        (or its wait after recreating a vanished Lease) says so on the monotonic clock."""
        if not self._holding:
            return False
        now = self.clock()
        return self._not_before <= now < self._valid_until

    async def attempt(self, now: datetime.datetime) -> bool:
        """One round: read the Lease, then create, renew or take it over if due."""
        started = self.clock()
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
            logger.warning("Leader election: %s", err)
            if err.status == 409:  # another replica wrote the Lease: it is not ours
                self._holding = False
            return self.is_leader
        if not decision.leader:
            self._holding = False
            self._seen_other = True
            return False
        if decision.create is not None and self._seen_other:
            logger.warning(
                "The Lease %s/%s vanished (API state lost?): %s recreated it and waits %ds "
                "before writing, in case its last holder still does",
                self.namespace,
                LEASE_NAME,
                self.identity,
                self.duration,
            )
            self._not_before = started + self.duration
        self._seen_other = False
        self._created = self._created or decision.create is not None
        self._holding = True
        self._valid_until = started + self.duration - self.margin
        return self.is_leader

    async def run_forever(self) -> None:
        while True:
            try:
                await self._round()
            except Exception:  # never end the task: the next round may work
                self.errors += 1
                self.on_error()
                logger.exception("Leader election round failed; retrying")
            await asyncio.sleep(self.renew_every)

    async def _round(self) -> None:
        await self.attempt(self.wall())
        leader = self.is_leader
        callbacks: list[Callback] = []
        if leader and (not self._announced or self._created):
            logger.info("%s is now the leader: this replica writes", self.identity)
            callbacks = self.on_elected + self.while_leading
            self._created = False
        elif leader:
            callbacks = self.while_leading
        elif self._announced:
            logger.warning("%s lost the leadership: this replica stops writing", self.identity)
        self._announced = leader
        self.on_change(1 if leader else 0)
        for callback in callbacks:
            self._start(callback)

    def _start(self, callback: Callback) -> None:
        """Run `callback` as its own task, unless its last run is still going."""
        running = self._tasks.get(id(callback))
        if running is not None and not running.done():
            return
        target = self._callbacks_loop
        if target is None:
            self._tasks[id(callback)] = asyncio.create_task(self._guarded(callback))
        else:
            coroutine = self._guarded(callback)
            self._tasks[id(callback)] = asyncio.run_coroutine_threadsafe(coroutine, target)

    def start_in_thread(self, callbacks_loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        """Run `run_forever` in a thread on an event loop of its own; the callbacks run
        on `callbacks_loop`. Returns the function that stops the thread."""
        self._callbacks_loop = callbacks_loop
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(loop)
            task = loop.create_task(self.run_forever())
            started.set()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(task)
            loop.close()

        thread = threading.Thread(target=main, name="leadership", daemon=True)
        thread.start()
        started.wait(timeout=10)

        def stop() -> None:
            def cancel() -> None:
                for task in asyncio.all_tasks(loop):
                    task.cancel()

            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(cancel)
            thread.join(timeout=10)

        return stop

    async def _guarded(self, callback: Callback) -> None:
        try:
            await callback()
        except Exception:  # one failing catch-up must not stop the others
            logger.exception("Catching up as the leader failed")


@dataclass
class AlwaysLeader(Leadership):
    """Leads from the start, takes no Lease (`--no-leader-election`: one replica only).

    The rounds go on as an elected leader's: `on_elected` runs once, `while_leading`
    every `renew_every`, so a failed write is retried as it is under a Lease."""

    def __post_init__(self) -> None:
        self._holding = True
        self._valid_until = float("inf")

    async def attempt(self, now: datetime.datetime) -> bool:
        return True
