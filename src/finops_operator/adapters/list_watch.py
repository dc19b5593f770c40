"""A lean list-and-watch of one resource, for the kinds a fleet has by the ten thousand (pods).

kopf keeps about 2 KB per watched object and, during its first list, holds
every listed body in its per-object queues at once: at 50,000 GPU pods that
peak alone is over a gigabyte of RSS the allocator keeps (docs/benchmarks.md).
This watcher keeps nothing per object: each object is decoded, handed to
`on_event(type, body)` and dropped, and the caller keeps only what it needs
(a GPU pod's allocation row, a violating pod's key).

How it reads the API, as client-go's reflector does:

- a **paged list** (`limit`, then `continue`), so at most two pages of bodies
  are alive at a time (the next one arrives while this one is handed out); a
  page that fails is asked again with the same token, and only a token that
  expired (410 Gone) starts the list over; pages and watch events are decoded
  with orjson (a fifth faster than stdlib `json` on a page of pods);
- then a **watch from the list's `resourceVersion`**, with bookmarks
  (`allowWatchBookmarks`), so a quiet resource still moves its version forward
  and a reconnect starts where the stream stopped, without a new list;
- a stream that ends (the server's `timeoutSeconds`) or breaks is opened again
  from the last version seen, after a short backoff when it broke;
- **410 Gone** (the version is older than the server keeps; on the watch
  request or as an ERROR event) means a new list: `on_relisted(keys)` is then
  called with every (namespace, name) of that list, so the caller drops what
  was deleted while it was not watching;
- `field_selector` and `label_selector` filter on the server where it can.

`synced` turns True once the first list has been delivered (`/readyz`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import kubernetes
import orjson

from finops_operator.adapters import kube_credentials

logger = logging.getLogger(__name__)

OnEvent = Callable[[str, Mapping[str, Any]], Awaitable[None]]
OnRelisted = Callable[[set[tuple[str, str]]], Awaitable[None]]
Key = tuple[str, str]


def decode(data: bytes) -> Any:
    """A page or a watch event, decoded with orjson."""
    return orjson.loads(data)


class GoneError(Exception):
    """410 Gone: the resourceVersion or continue token is too old; list again."""


@dataclass(frozen=True)
class Connection:
    """Where the API is and how to authenticate: from the kubeconfig or the pod's account."""

    server: str
    ssl: ssl.SSLContext | bool
    authorization: Callable[[], str | None]
    agent: str = ""  # the User-Agent: which replica reads (the API server's audit log)

    @classmethod
    def of(cls, configuration: kubernetes.client.Configuration, agent: str = "") -> Connection:
        context: ssl.SSLContext | bool = False
        if configuration.host.startswith("https"):
            if configuration.verify_ssl:
                context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
            else:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if configuration.cert_file:
                context.load_cert_chain(configuration.cert_file, configuration.key_file)

        def authorization() -> str | None:
            # Re-read at each request: an in-cluster token is rotated on disk.
            return kube_credentials.bearer(configuration)

        return cls(configuration.host.rstrip("/"), context, authorization, agent)


class ListWatch:
    """List then watch `path` (a collection, e.g. `/api/v1/pods`) for as long as `run` runs."""

    def __init__(
        self,
        connection: Connection,
        path: str,
        on_event: OnEvent,
        on_relisted: OnRelisted,
        *,
        page_size: int = 500,
        field_selector: str | None = None,
        label_selector: str | None = None,
        watch_timeout: int = 300,
        request_timeout: float = 60.0,
        backoff: float = 1.0,
    ) -> None:
        self.connection = connection
        self.path = path
        self.on_event = on_event
        self.on_relisted = on_relisted
        self.page_size = page_size
        self.selectors = {
            key: value
            for key, value in (("fieldSelector", field_selector), ("labelSelector", label_selector))
            if value
        }
        self.watch_timeout = watch_timeout
        self.request_timeout = request_timeout
        self.backoff = backoff
        self.synced = False
        self.resource_version = ""
        self.lists = 0  # how many full lists were taken (1 + one per 410)
        self._continue = ""  # the next page of a list under way
        self._listed: set[Key] = set()  # what a relist under way has seen so far
        self.problem = ""

    def is_synced(self) -> bool:
        """Whether the first list has been delivered (for readiness)."""
        return self.synced

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.connection.agent:
            headers["User-Agent"] = self.connection.agent
        token = self.connection.authorization()
        if token:
            headers["Authorization"] = token
        return headers

    async def run(self) -> None:
        """Forever: list, then watch; errors are logged and retried, never raised."""
        connector = aiohttp.TCPConnector(ssl=self.connection.ssl, limit=2)
        async with aiohttp.ClientSession(connector=connector) as session:
            while True:
                try:
                    if not self.resource_version:
                        await self._list(session)
                    opened = asyncio.get_running_loop().time()
                    await self._watch(session)
                    if asyncio.get_running_loop().time() - opened < 1.0:
                        await asyncio.sleep(self.backoff)  # a server that ends streams at once
                except GoneError:
                    logger.info("%s: resourceVersion %s is gone: listing again",
                                self.path, self.resource_version)  # fmt: skip
                    self.resource_version = ""
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # refused, reset, timeout, a bad answer: retry
                    self.problem = f"{type(err).__name__}: {err}"
                    logger.warning("%s: %s; retrying in %.0f s", self.path, self.problem,
                                   self.backoff)  # fmt: skip
                    await asyncio.sleep(self.backoff)

    async def _get(self, session: aiohttp.ClientSession, params: dict[str, str]) -> Any:
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        url = self.connection.server + self.path
        async with session.get(url, params=params, headers=self._headers(), timeout=timeout) as r:
            if r.status == 410:
                raise GoneError
            if r.status != 200:
                raise OSError(f"list {self.path}: HTTP {r.status}: {(await r.text())[:200]}")
            return decode(await r.read())

    async def _list(self, session: aiohttp.ClientSession) -> None:
        """Every page, each delivered as ADDED and dropped; the list's resourceVersion.

        The next page is asked for as soon as a page has arrived, and arrives while
        this one is handed out: the server renders it while the handlers run, so a
        list takes about the longer of the two instead of their sum. At most two
        pages are alive at once.

        A page that fails (a timeout, a reset) is asked again with the same `continue`
        token: a slow server under a big list would otherwise never see its end. Only an
        expired token (410) starts the list over."""
        relist = self.lists > 0
        fetching = asyncio.create_task(self._page(session, self._continue))
        try:
            while True:
                try:
                    page = await fetching
                except GoneError:
                    self._continue, self._listed = "", set()
                    raise
                meta = page.get("metadata") or {}
                following = meta.get("continue") or ""
                if following:
                    fetching = asyncio.create_task(self._page(session, following))
                for item in page.get("items") or []:
                    if relist:
                        about = item.get("metadata") or {}
                        self._listed.add(
                            (str(about.get("namespace") or ""), str(about.get("name") or ""))
                        )
                    await self.on_event("ADDED", item)
                del page
                self._continue = following  # delivered: a failure from here on resumes after it
                if not following:
                    self.resource_version = str(meta.get("resourceVersion") or "")
                    break
        finally:
            if not fetching.done():
                fetching.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await fetching
        self.lists += 1
        keys, self._listed = self._listed, set()
        if relist:
            await self.on_relisted(keys)
        if not self.synced:
            self.synced = True
            logger.info("%s: listed (resourceVersion %s)", self.path, self.resource_version)

    async def _page(self, session: aiohttp.ClientSession, token: str) -> Any:
        params = {**self.selectors, "limit": str(self.page_size)}
        if token:
            params["continue"] = token
        return await self._get(session, params)

    async def _watch(self, session: aiohttp.ClientSession) -> None:
        """One watch request, until the server ends it; raises GoneError on 410."""
        params = {
            **self.selectors,
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_timeout),
        }
        if self.resource_version:
            params["resourceVersion"] = self.resource_version
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.request_timeout,
                                        sock_read=self.watch_timeout + 30)  # fmt: skip
        url = self.connection.server + self.path
        async with session.get(url, params=params, headers=self._headers(), timeout=timeout) as r:
            if r.status == 410:
                raise GoneError
            if r.status != 200:
                raise OSError(f"watch {self.path}: HTTP {r.status}: {(await r.text())[:200]}")
            self.problem = ""
            async for line in r.content:
                if line.strip():
                    await self._event(decode(line))

    async def _event(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise GoneError
            raise OSError(f"watch {self.path}: {obj.get('message') or obj}")
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            await self.on_event(str(kind), obj)
        if isinstance(version, str) and version:
            self.resource_version = version  # BOOKMARK events only move this forward
