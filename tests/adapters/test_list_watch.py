"""ListWatch against an API that pages, bookmarks, ends streams, compacts and fails.

`FakeApi` is an aiohttp server on loopback that keeps a resourceVersion per
change as kube-apiserver does: lists are paged with `limit`/`continue`, a watch
streams the changes after its `resourceVersion` (BOOKMARK events when asked),
and `compact()` forgets history so that an older version answers 410 Gone, on
the request or as an ERROR event. Every request is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from aiohttp import web

from finops_devtools.devcluster import eventually_async
from finops_operator.adapters.list_watch import Connection, ListWatch


def pod(name: str, rv: int, phase: str = "Running") -> dict[str, Any]:
    meta = {"name": name, "namespace": "team-a", "resourceVersion": str(rv)}
    return {"metadata": meta, "status": {"phase": phase}}


@dataclass
class FakeApi:
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    rv: int = 100
    compacted: int = 0  # versions at or below this are gone
    requests: list[dict[str, str]] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    gone_as_event: bool = False  # 410 as an ERROR event in a 200 stream, not as the status
    end_streams: bool = False  # end every watch once it has sent what it had (timeoutSeconds)
    fail_next: int = 0  # answer this many requests 500
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, name: str, event: str = "ADDED", phase: str = "Running") -> None:
        self.rv += 1
        obj = pod(name, self.rv, phase)
        if event == "DELETED":
            obj = self.objects.pop(name)
            obj["metadata"]["resourceVersion"] = str(self.rv)
        else:
            self.objects[name] = obj
        self.history.append((self.rv, event, obj))
        self.changed.set()

    def compact(self) -> None:
        self.compacted = self.rv

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.query))
        self.agents.append(request.headers.get("User-Agent", ""))
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=500, text="etcd is sad")
        if request.query.get("watch") == "true":
            return await self.watch(request)
        limit = int(request.query.get("limit", "0") or 0)
        offset, at = 0, self.rv
        if token := request.query.get("continue"):
            offset_text, at_text = token.split(":")
            offset, at = int(offset_text), int(at_text)
            if at < self.compacted:
                return web.json_response({"code": 410, "reason": "Expired"}, status=410)
        names = sorted(self.objects)
        page = names[offset : offset + limit] if limit else names[offset:]
        metadata: dict[str, str] = {"resourceVersion": str(at)}
        if limit and offset + limit < len(names):
            metadata["continue"] = f"{offset + limit}:{at}"
        return web.json_response({"metadata": metadata, "items": [self.objects[n] for n in page]})

    async def watch(self, request: web.Request) -> web.StreamResponse:
        since = int(request.query.get("resourceVersion") or 0)
        if since < self.compacted and not self.gone_as_event:
            return web.json_response({"code": 410, "reason": "Expired"}, status=410)
        response = web.StreamResponse()
        await response.prepare(request)
        if since < self.compacted:
            gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410}}
            await response.write(json.dumps(gone).encode() + b"\n")
            return response
        while True:
            for rv, event, obj in self.history:
                if rv > since:
                    await response.write(
                        json.dumps({"type": event, "object": obj}).encode() + b"\n"
                    )
                    since = rv
            if self.end_streams:
                return response
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.2)

    def bookmark(self, version: int) -> None:
        """A BOOKMARK: nothing changed for this resource up to `version`."""
        self.history.append((version, "BOOKMARK", {"metadata": {"resourceVersion": str(version)}}))
        self.rv = max(self.rv, version)
        self.changed.set()


@dataclass
class Seen:
    events: list[tuple[str, str]] = field(default_factory=list)
    relisted: list[set[tuple[str, str]]] = field(default_factory=list)

    async def on_event(self, kind: str, body: Mapping[str, Any]) -> None:
        self.events.append((kind, body["metadata"]["name"]))

    async def on_relisted(self, keys: set[tuple[str, str]]) -> None:
        self.relisted.append(keys)


@contextlib.asynccontextmanager
async def running(api: FakeApi, seen: Seen, **options: Any) -> AsyncIterator[ListWatch]:
    app = web.Application()
    app.router.add_get("/api/v1/pods", api.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    agent = "finops-operator/replica-a (watch)"
    connection = Connection(f"http://127.0.0.1:{port}", False, lambda: "Bearer t", agent)
    watch = ListWatch(connection, "/api/v1/pods", seen.on_event, seen.on_relisted,
                      backoff=0.01, **options)  # fmt: skip
    task = asyncio.create_task(watch.run())
    try:
        yield watch
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runner.cleanup()


async def test_the_list_is_paged_and_each_object_delivered_once() -> None:
    api, seen = FakeApi(), Seen()
    for i in range(1_201):
        api.put(f"p{i:04d}")
    async with running(api, seen, page_size=500) as watch:
        await eventually_async(lambda: watch.synced)
        lists = [r for r in api.requests if "watch" not in r]
        assert [r.get("continue", "") for r in lists] == ["", "500:1301", "1000:1301"]
        assert all(r["limit"] == "500" for r in lists)
        assert len(seen.events) == 1_201 and {k for k, _ in seen.events} == {"ADDED"}
        assert watch.resource_version == "1301"
        assert set(api.agents) == {"finops-operator/replica-a (watch)"}  # which replica reads
        await eventually_async(lambda: any("watch" in r for r in api.requests))
        assert api.requests[-1]["resourceVersion"] == "1301"
        assert api.requests[-1]["allowWatchBookmarks"] == "true"


async def test_changes_after_the_list_arrive_through_the_watch_and_selectors_are_sent() -> None:
    api, seen = FakeApi(), Seen()
    api.put("a")
    async with running(api, seen, field_selector="status.phase!=Succeeded") as watch:
        await eventually_async(lambda: watch.synced and any("watch" in r for r in api.requests))
        api.put("b")
        api.put("a", "MODIFIED")
        api.put("b", "DELETED")
        await eventually_async(lambda: len(seen.events) == 4)
        assert seen.events == [("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
        assert all(r["fieldSelector"] == "status.phase!=Succeeded" for r in api.requests)
        assert watch.lists == 1


async def test_a_stream_that_ends_is_watched_again_from_the_last_version_without_a_list() -> None:
    api, seen = FakeApi(end_streams=True), Seen()
    api.put("a")
    async with running(api, seen) as watch:
        await eventually_async(lambda: watch.synced)
        api.put("b")
        api.bookmark(500)  # nothing for pods up to 500: the next watch starts there
        await eventually_async(lambda: any(r.get("resourceVersion") == "500" for r in api.requests))
        assert watch.lists == 1
        assert seen.events == [("ADDED", "a"), ("ADDED", "b")]  # the bookmark is not an event
        assert sum("watch" not in r for r in api.requests) == 1


@pytest.mark.parametrize("as_event", [False, True], ids=["410 status", "410 ERROR event"])
async def test_410_gone_lists_again_and_reports_what_the_list_holds(as_event: bool) -> None:
    api, seen = FakeApi(gone_as_event=as_event, end_streams=True), Seen()
    api.put("stays")
    api.put("leaves")
    async with running(api, seen) as watch:
        await eventually_async(lambda: watch.synced)
        # While the watcher is between streams, "leaves" goes and history is compacted.
        api.put("leaves", "DELETED")
        api.put("new")
        api.compact()
        await eventually_async(lambda: watch.lists == 2)
        assert seen.relisted == [{("team-a", "stays"), ("team-a", "new")}]
        assert ("ADDED", "new") in seen.events
        assert watch.resource_version == str(api.rv)


async def test_an_expired_continue_token_starts_the_list_over() -> None:
    api, seen = FakeApi(), Seen()
    for i in range(6):
        api.put(f"p{i}")
    original = api.handle

    async def compact_after_first_page(request: web.Request) -> web.StreamResponse:
        response = await original(request)
        if len(api.requests) == 1:
            api.put("p9")
            api.compact()
        return response

    api.handle = compact_after_first_page  # type: ignore[method-assign]
    async with running(api, seen, page_size=4) as watch:
        await eventually_async(lambda: watch.synced)
        lists = [r.get("continue", "") for r in api.requests if "watch" not in r]
        assert lists[:3] == ["", "4:106", ""]  # the second page answered 410: from the start
        assert watch.resource_version == "107"


async def test_server_errors_are_retried_and_named_until_they_stop() -> None:
    api, seen = FakeApi(fail_next=1_000_000), Seen()
    api.put("a")
    async with running(api, seen) as watch:
        await eventually_async(lambda: len(api.requests) >= 3)
        assert not watch.synced and "HTTP 500" in watch.problem and "etcd is sad" in watch.problem
        api.fail_next = 0
        await eventually_async(lambda: watch.synced)
        assert seen.events == [("ADDED", "a")]
        await eventually_async(lambda: watch.problem == "")  # cleared once a watch is open


def test_the_connection_sends_the_kubeconfig_token(tmp_path: Path) -> None:
    """Without it the API server sees system:anonymous (the e2e suite caught that once)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "sekret"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    (tmp_path / "kubeconfig").write_text(json.dumps(config))
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(tmp_path / "kubeconfig"), client_configuration=configuration
    )
    connection = Connection.of(configuration)
    assert connection.server == "http://127.0.0.1:1"
    assert connection.authorization() == "Bearer sekret"
    assert connection.ssl is False


async def test_a_page_that_fails_is_asked_again_without_starting_the_list_over() -> None:
    api, seen = FakeApi(), Seen()
    for i in range(6):
        api.put(f"p{i}")
    original = api.handle

    async def fail_the_second_page_once(request: web.Request) -> web.StreamResponse:
        if request.query.get("continue") and not api.requests[1:]:
            api.requests.append(dict(request.query))
            return web.Response(status=500, text="etcd timeout")
        return await original(request)

    api.handle = fail_the_second_page_once  # type: ignore[method-assign]
    async with running(api, seen, page_size=4) as watch:
        await eventually_async(lambda: watch.synced)
        lists = [r.get("continue", "") for r in api.requests if "watch" not in r]
        assert lists == ["", "4:106", "4:106"]  # the failed page again, not page one
        assert [name for _, name in seen.events] == [f"p{i}" for i in range(6)]


async def test_the_next_page_is_asked_for_while_the_handlers_work_through_this_one() -> None:
    # The server renders page 2 while page 1 is handed out: a list then takes about the
    # longer of the two, not their sum. A handler that holds page 1 until page 2 has been
    # asked for would wait forever if the pages were fetched one after the other.
    api, seen = FakeApi(), Seen()
    for i in range(7):
        api.put(f"p{i}")
    second_asked = asyncio.Event()
    handle = api.handle

    async def recording(request: web.Request) -> web.StreamResponse:
        if request.query.get("continue"):
            second_asked.set()
        return await handle(request)

    api.handle = recording  # type: ignore[method-assign]

    async def on_event(kind: str, body: Mapping[str, Any]) -> None:
        if body["metadata"]["name"] == "p0":
            await asyncio.wait_for(second_asked.wait(), 5.0)
        await Seen.on_event(seen, kind, body)

    seen.on_event = on_event  # type: ignore[method-assign]
    async with running(api, seen, page_size=3) as watch:
        await eventually_async(lambda: watch.synced)
        assert [name for _, name in seen.events] == [f"p{i}" for i in range(7)]
        assert watch.lists == 1 and watch.problem == ""
