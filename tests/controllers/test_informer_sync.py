"""Readiness: synced only once kopf's handlers have seen every object a direct list returns."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote

from finops_devtools.devcluster import eventually_async
from finops_operator.controllers.informer_sync import WATCHED, InformerSync, collection_path
from tests.support.fakes import FakeKube


def seeded(namespaces: list[str], pods: tuple[str, ...] = ()) -> FakeKube:
    kube = FakeKube()
    for kind, (group, plural) in WATCHED.items():
        names = namespaces if kind == "Namespace" else pods if kind == "Pod" else []
        items = [{"metadata": {"name": name, "uid": f"uid-{name}"}} for name in names]
        kube.put_raw(collection_path(group, plural), {"items": items})
    return kube


async def test_not_ready_until_every_listed_object_is_observed() -> None:
    kube = seeded(["a", "b", "c"], ("p",))
    sync = InformerSync(relist_seconds=5, check_seconds=0.01)
    task = asyncio.create_task(sync.run(kube))
    assert sync.not_ready() is not None
    sync.observe("Namespace", "uid-a")
    sync.observe("Namespace", "uid-b")
    await eventually_async(lambda: sync.missing() == {"Namespace": 1, "Pod": 1})
    assert "1 Namespace" in (sync.not_ready() or "")
    sync.observe("Namespace", "uid-c")
    sync.observe("Pod", "uid-p")
    await asyncio.wait_for(task, 1)
    assert sync.synced and sync.not_ready() is None


async def test_an_object_deleted_before_kopf_listed_it_does_not_block_forever() -> None:
    kube = seeded(["a", "gone"])
    sync = InformerSync(relist_seconds=0.05, check_seconds=0.01)
    task = asyncio.create_task(sync.run(kube))
    sync.observe("Namespace", "uid-a")
    await eventually_async(lambda: sync.missing() == {"Namespace": 1})  # listed, gone unseen
    assert not sync.synced
    kube.put_raw(collection_path("", "namespaces"), {"items": [{"metadata": {"uid": "uid-a"}}]})
    await asyncio.wait_for(task, 1)
    assert sync.synced


async def test_an_unreachable_api_keeps_it_not_ready_naming_why() -> None:
    kube = seeded(["a"])
    kube.outage = True
    sync = InformerSync(relist_seconds=0.05, check_seconds=0.01)
    task = asyncio.create_task(sync.run(kube))
    await eventually_async(lambda: "cannot reach" in (sync.not_ready() or ""))
    assert "listing" in (sync.not_ready() or "")
    kube.outage = False
    sync.observe("Namespace", "uid-a")
    await asyncio.wait_for(task, 1)
    assert sync.synced


async def test_a_list_and_watch_stream_keeps_it_not_ready_until_its_first_list_is_over() -> None:
    watched = {kind: where for kind, where in WATCHED.items() if kind != "Pod"}
    kube = seeded(["a"])
    sync = InformerSync(relist_seconds=5, check_seconds=0.01, watched=watched)
    listed = False
    sync.add_stream("Pod", lambda: listed)
    task = asyncio.create_task(sync.run(kube))
    sync.observe("Namespace", "uid-a")
    await eventually_async(lambda: sync.not_ready() == "still listing Pod")
    assert not sync.synced
    assert collection_path("", "pods") not in [c.resource for c in kube.calls]  # never in one piece
    listed = True
    await asyncio.wait_for(task, 1)
    assert sync.synced and sync.not_ready() is None


async def test_each_kind_is_listed_in_pages_following_continue_tokens() -> None:
    kube = seeded([])
    pages = {
        "": {"metadata": {"continue": "t/1"}, "items": [{"metadata": {"uid": "uid-a"}}]},
        "t/1": {"metadata": {}, "items": [{"metadata": {"uid": "uid-b"}}]},
    }
    asked: list[str] = []
    plain = kube.raw

    async def paged(method: str, path: str, body: Any = None, content_type: str = "") -> Any:
        asked.append(path)
        base, _, query = path.partition("?")
        if base != collection_path("", "namespaces"):
            return await plain(method, path)
        token = unquote(query.partition("continue=")[2])
        return pages[token]

    kube.raw = paged  # type: ignore[method-assign]
    sync = InformerSync(relist_seconds=5, check_seconds=0.01)
    task = asyncio.create_task(sync.run(kube))
    await eventually_async(lambda: sync.missing() == {"Namespace": 2})
    namespaces = [p for p in asked if p.startswith(collection_path("", "namespaces") + "?")]
    assert namespaces == [
        "/api/v1/namespaces?limit=500",
        "/api/v1/namespaces?limit=500&continue=t/1",
    ]
    sync.observe("Namespace", "uid-a")
    sync.observe("Namespace", "uid-b")
    await asyncio.wait_for(task, 1)
    assert sync.synced


async def test_the_namespace_index_gate_opens_once_every_listed_namespace_is_indexed() -> None:
    kube = seeded(["a", "b"], ("p",))
    sync = InformerSync(relist_seconds=5, check_seconds=0.01)
    assert "first list of Namespace" in (sync.index_not_loaded() or "")
    task = asyncio.create_task(sync.run(kube))
    await eventually_async(lambda: "2 listed Namespace" in (sync.index_not_loaded() or ""))
    sync.observe("Namespace", "uid-a")
    assert "1 listed Namespace" in (sync.index_not_loaded() or "")
    sync.observe("Namespace", "uid-b")
    # Open for admission although the Pod list (readiness) is not through yet.
    assert sync.index_not_loaded() is None
    assert sync.not_ready() is not None
    sync.observe("Pod", "uid-p")
    await asyncio.wait_for(task, 1)
    assert sync.index_not_loaded() is None


async def test_the_gate_stays_closed_while_the_api_cannot_be_listed() -> None:
    kube = seeded(["a"])
    kube.outage = True
    sync = InformerSync(relist_seconds=0.05, check_seconds=0.01)
    task = asyncio.create_task(sync.run(kube))
    await eventually_async(lambda: "cannot reach" in (sync.index_not_loaded() or ""))
    kube.outage = False
    sync.observe("Namespace", "uid-a")
    await asyncio.wait_for(task, 1)
    assert sync.index_not_loaded() is None


def test_a_kind_that_is_not_watched_never_closes_the_gate() -> None:
    sync = InformerSync(watched={"Namespace": ("", "namespaces")})
    assert sync.index_not_loaded("Pod") is None
    assert sync.index_not_loaded("Namespace") is not None
