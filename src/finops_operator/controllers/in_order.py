"""Runs the audit's writes as tasks, in order per object, a bounded number at once.

The audit writes as the leader (a PATCH, an Event): the watch's list must not
wait for each of them, as kopf's per-object workers did not. So a write gets a
task of its own, and the watch goes on to the next event. Two rules keep that
safe:

- **In order per object.** The steps of one object run one after the other, in
  the order they were submitted: each takes the object's lock, and asyncio's
  locks wake their waiters first come first served. `busy(key)` says whether a
  step of the object is still queued or running, so that the caller queues the
  next event behind it instead of deciding it before its turn. An object's lock
  is dropped once no step waits for it: nothing is kept per quiet object.
- **At most `limit` at once.** `submit` waits while `limit` steps are queued or
  running, so the watch slows down instead of piling up bodies.

A step that fails is logged and dropped: the next event of the object, or the
writer's flush, comes back to it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

Key = tuple[str, str]  # namespace, name
Step = Callable[[], Awaitable[None]]


@dataclass
class Turns:
    """The steps of one object: the lock they take in turn, and how many hold or wait for it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    queued: int = 0


class InOrder:
    """Steps in order per object, at most `limit` queued or running at once."""

    def __init__(self, limit: int, what: str = "Step") -> None:
        self.limit = limit
        self.what = what  # names a failed step in the log, e.g. "Audit of Pod"
        self.turns: dict[Key, Turns] = {}
        self.running: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(limit)

    def busy(self, key: Key) -> bool:
        """Whether a step of `key` is queued or running."""
        return key in self.turns

    async def submit(self, key: Key, step: Step) -> None:
        """Queue `step` behind those of `key`; waits while `limit` steps are under way."""
        turns = self.turns.setdefault(key, Turns())
        turns.queued += 1
        await self._slots.acquire()
        task = asyncio.create_task(self._in_turn(key, turns, step))
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def idle(self) -> None:
        """Wait until no step is queued or running (tests, and a clean stop)."""
        while self.running:
            await asyncio.gather(*self.running)

    async def _in_turn(self, key: Key, turns: Turns, step: Step) -> None:
        try:
            async with turns.lock:
                await step()
        except Exception:
            logger.exception("%s %s/%s failed", self.what, *key)
        finally:
            self._slots.release()
            turns.queued -= 1
            if turns.queued == 0 and self.turns.get(key) is turns:
                del self.turns[key]
