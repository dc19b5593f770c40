"""Readiness that means ready: kopf has delivered every namespace and workload that exists.

Admission judges a request with the labels of its namespace, from the index the
namespace watch fills. Until kopf's first list of namespaces has gone through the
handlers, that index is partial: a namespace in mode `off` looks like the cluster
default and its labels are not inherited. So `/readyz` stays 503 until, for each
watched resource (namespaces and the workload kinds), every object a direct list
of the API returns has been seen by a kopf event handler.

kopf gives its handlers no "the initial list is over" signal, so the comparison
is with our own list: the handlers call `observe` with each object's uid, and
`run` lists each resource once, then waits until the handlers have seen all of
those uids. An object deleted before kopf listed it is never seen: after
`relist_seconds` without catching up, the list is taken again (it no longer has
that object). Once synced it stays synced (kopf's later re-lists are partial
only for an instant, and the index never empties).

Kinds read by the operator's own list-and-watch (`adapters/list_watch.py`: the
workload kinds, by the ten thousand in a fleet, and Nodes, whose GPU model the
allocation series carry) are not compared this way: that watcher knows when its
paged list is over, and `add_stream` makes readiness wait for it too. The
operator leaves them out of `watched` (only Namespaces, through kopf, remain),
so readiness does not list them at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import quote

from finops_operator.domain.workloads import WORKLOAD_KINDS
from finops_operator.ports import KubePort

logger = logging.getLogger(__name__)

PAGE_SIZE: Final = 500  # objects per list page (`limit`), as client-go's reflector asks

# kind -> (API group, plural) of each resource admission and the audit read through kopf.
WATCHED: Final[Mapping[str, tuple[str, str]]] = {
    "Namespace": ("", "namespaces"),
    **{kind: (group, plural) for kind, (group, plural, _) in WORKLOAD_KINDS.items()},
}


def collection_path(group: str, plural: str) -> str:
    """The cluster-wide list path of a v1 resource of `group` (core when empty)."""
    return f"/apis/{group}/v1/{plural}" if group else f"/api/v1/{plural}"


class InformerSync:
    """Whether kopf's watches have delivered everything that exists (see the module doc)."""

    def __init__(
        self,
        relist_seconds: float = 10.0,
        check_seconds: float = 0.1,
        watched: Mapping[str, tuple[str, str]] = WATCHED,
    ) -> None:
        self.relist_seconds = relist_seconds
        self.check_seconds = check_seconds
        self.watched = watched
        self.synced = False
        self._streams: dict[str, Callable[[], bool]] = {}
        self._seen: dict[str, set[str]] = {kind: set() for kind in watched}
        self._expected: dict[str, set[str]] | None = None  # None until the first list
        self._problem = ""

    def observe(self, kind: str, uid: str | None) -> None:
        """A kopf event handler saw an object of `kind` (before or after the sync)."""
        if not self.synced and uid and kind in self._seen:
            self._seen[kind].add(uid)

    def missing(self) -> dict[str, int]:
        """How many listed objects of each kind the handlers have not seen yet."""
        if self._expected is None:
            return dict.fromkeys(self.watched, -1)
        counts = {kind: len(uids - self._seen[kind]) for kind, uids in self._expected.items()}
        return {kind: count for kind, count in counts.items() if count}

    def add_stream(self, kind: str, synced: Callable[[], bool]) -> None:
        """Readiness also waits for `synced()` (a list-and-watch's first list of `kind`)."""
        self._streams[kind] = synced

    def _streams_listing(self) -> list[str]:
        return sorted(kind for kind, synced in self._streams.items() if not synced())

    def index_not_loaded(self, kind: str = "Namespace") -> str | None:
        """Why the index of `kind` is not complete yet, or None once it is.

        Admission's gate (`AdmissionApp.not_ready`): it needs the namespace index
        only, not the workload lists `/readyz` also waits for, so a fleet's long
        first list does not keep admission closed.
        """
        if self.synced or kind not in self.watched:
            return None
        if self._expected is None:
            detail = f": {self._problem}" if self._problem else ""
            return f"the first list of {kind} objects is not done{detail}"
        if count := self.missing().get(kind):
            return f"{count} listed {kind} objects are not indexed yet"
        return None

    def not_ready(self) -> str | None:
        """Why the operator is not ready (for `/readyz`), or None once synced."""
        if self.synced:
            return None
        if self._expected is None:
            detail = f": {self._problem}" if self._problem else ""
            return f"listing namespaces and workloads{detail}"
        if missing := self.missing():
            counts = ", ".join(f"{count} {kind}" for kind, count in sorted(missing.items()))
            return f"the watches have not yet delivered {counts}"
        listing = ", ".join(self._streams_listing()) or "nothing (done)"
        return f"still listing {listing}"

    async def run(self, kube: KubePort) -> None:
        """List, wait for the handlers to catch up, re-list if they do not; until synced."""
        while not self.synced:
            try:
                self._expected = await self._list(kube)
            except Exception as err:  # never end silently: readiness would never come
                self._problem = str(err)
                logger.warning("Cannot list for readiness: %s", err)
                await asyncio.sleep(self.check_seconds * 10)
                continue
            waited = 0.0
            while self.missing() and waited < self.relist_seconds:
                await asyncio.sleep(self.check_seconds)
                waited += self.check_seconds
            while not self.missing() and self._streams_listing():
                await asyncio.sleep(self.check_seconds)
            if not self.missing():
                self.synced = True
                listed = {kind: len(uids) for kind, uids in self._expected.items()}
                logger.info("Ready: the watches delivered every object listed (%s)", listed)
                self._seen = {}
                self._expected = None

    async def _list(self, kube: KubePort) -> dict[str, set[str]]:
        """The uids of each kind, listed in pages: only a page of bodies is alive at once."""
        expected: dict[str, set[str]] = {}
        for kind, (group, plural) in self.watched.items():
            uids: set[str] = set()
            token = ""
            while True:
                query = f"?limit={PAGE_SIZE}" + (f"&continue={quote(token)}" if token else "")
                listing = await kube.raw("GET", collection_path(group, plural) + query)
                uids.update(uid for item in _items(listing) if (uid := _uid(item)))
                token = _continue(listing)
                if not token:
                    break
            expected[kind] = uids
        return expected


def _continue(listing: Any) -> str:
    metadata = listing.get("metadata") if isinstance(listing, Mapping) else None
    token = metadata.get("continue") if isinstance(metadata, Mapping) else None
    return token if isinstance(token, str) else ""


def _items(listing: Any) -> list[Any]:
    items = listing.get("items") if isinstance(listing, Mapping) else None
    return items if isinstance(items, list) else []


def _uid(item: Any) -> str | None:
    metadata = item.get("metadata") if isinstance(item, Mapping) else None
    uid = metadata.get("uid") if isinstance(metadata, Mapping) else None
    return uid if isinstance(uid, str) else None
