"""A Kubernetes API on loopback: kmock's KubernetesEmulator, in a background thread.

The operator is a separate process that reaches this emulator over HTTP through
a kubeconfig (`write_kubeconfig`), as it would reach a real API server. Callers
talk to it the same way (`create`, `get`, `list`, `patch`, `delete` over HTTP),
and read the request log to prove what the operator did and did not write.

Real API-server behaviours that kmock 0.8 lacks are added here, because kopf
and the tests rely on them: `metadata.generateName` (kopf names its Events that
way), a `metadata.uid` and `creationTimestamp` on every created object, and the
paths of the Namespace resource itself (`/api/v1/namespaces[/NAME]`), which kmock
reads as a namespace prefix with no resource (patched into kmock's path parser
when this module is imported).

The emulator keeps objects as given: it neither validates them against a schema
nor runs admission webhooks (`api_server` does the latter).
"""

from __future__ import annotations

import asyncio
import builtins
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kmock
from kmock._internal import enums, k8s, parsing, rendering

from finops_devtools.devcluster import eventually
from finops_operator.domain.workloads import WorkloadKind

__all__ = ["COSTREPORTS", "RESOURCES", "KubeEmulator", "eventually"]

_kmock_parse_path = parsing.parse_path


def _parse_path(path: str) -> parsing.ParsedPath:
    parts = path.strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 5:
        name = parts[3] if len(parts) > 3 else None
        sub = parts[4] if len(parts) > 4 else None
        if len(parts) <= 4 or sub in ("status", "finalize"):
            return parsing.ParsedPath("", "v1", "namespaces", None, name, sub)
    return _kmock_parse_path(path)


parsing.parse_path = _parse_path

RESOURCES: dict[str, tuple[str, bool]] = {
    # "group/version/plural": (kind, namespaced)
    **{f"{kind.group}/v1/{kind.plural}".lstrip("/"): (str(kind), True) for kind in WorkloadKind},
    "v1/namespaces": ("Namespace", False),
    "v1/nodes": ("Node", False),
    "v1/events": ("Event", True),
    "apiextensions.k8s.io/v1/customresourcedefinitions": ("CustomResourceDefinition", False),
    "monitoring.coreos.com/v1/prometheusrules": ("PrometheusRule", True),
    "finops.resilio.tech/v1alpha1/costpolicies": ("CostPolicy", True),
    "coordination.k8s.io/v1/leases": ("Lease", True),
    "wgpolicyk8s.io/v1alpha2/policyreports": ("PolicyReport", True),
    "v1/secrets": ("Secret", True),
    "admissionregistration.k8s.io/v1/validatingwebhookconfigurations": (
        "ValidatingWebhookConfiguration",
        False,
    ),
    "admissionregistration.k8s.io/v1/mutatingwebhookconfigurations": (
        "MutatingWebhookConfiguration",
        False,
    ),
}
COSTREPORTS: dict[str, tuple[str, bool]] = {
    "finops.resilio.tech/v1alpha1/costreports": ("CostReport", False),
}
WITH_STATUS = {"finops.resilio.tech/v1alpha1/costpolicies"}
PLURAL_OF_KIND = {kind: key for key, (kind, _) in RESOURCES.items()}
VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]


_Index = dict[tuple[Any, ...], dict[Any, None]]


def _resource_key(resource: Any) -> tuple[Any, ...]:
    return (resource.group, resource.version, resource.plural)


def _resource_key_of(key: str) -> tuple[str, str, str]:
    """("apps", "v1", "deployments") of "apps/v1/deployments"; ("", "v1", "pods") of "v1/pods"."""
    parts = key.split("/")
    return ("", parts[0], parts[1]) if len(parts) == 2 else (parts[0], parts[1], parts[2])


@dataclass(frozen=True)
class Write:
    """One request that is not a read, as the emulator handled it (`KubeEmulator.writes`)."""

    at: float  # time.monotonic() when handled
    method: str
    path: str
    agent: str  # the User-Agent: the operator names its replica there
    status: int
    holder: str | None = None  # spec.holderIdentity of a Lease create or patch


_REQUEST_HISTORY = 8


class _Emulator(kmock.KubernetesEmulator):
    """The emulator, plus generateName, uids and a log of every request.

    Two costs of kmock 0.8 that grow with the cluster are removed, because the
    scale benchmark (`bench/scale.py`) loads 100,000+ objects:

    - kmock finds the objects of a request by comparing every stored object with
      it. Here they are looked up in an index by resource (and by name), built
      from kmock's own store as objects are added;
    - kmock answers a list in one piece; here `limit` and `continue` page it (the
      continue token is an offset into the list as it is then: objects created
      between pages may shift it, which the benchmark's static fleet never does);
    - a watch replays every object as ADDED, even when the client has just
      listed them and watches from the list's resourceVersion (what kopf does).
      Here a list answers with a resourceVersion of its own (how many events the
      resource has had), and a watch from that version, when nothing happened
      in between, streams only what comes next. Any other watch replays as before.
    """

    log: list[tuple[str, str]]
    writes: list[Write]
    _index: _Index
    _indexed: int

    async def _handle(self, request: rendering.Request) -> Any:
        # kmock keeps every request it served and finds the new one again by
        # scanning them all through each reaction's filter: O(requests served)
        # per request, which made an idle operator with a fleet's history cost
        # the emulator most of a core. Nothing here reads that history, so only
        # the newest requests (the one being handled among them) are kept.
        if len(self._requests) > 2 * _REQUEST_HISTORY:
            del self._requests[:-_REQUEST_HISTORY]
        method = getattr(request.method, "value", None) or str(request.method)
        self.log.append((method.upper(), request.url.path))
        if request.action == enums.action.CREATE and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        if method.upper() in ("GET", "HEAD"):
            return await super()._handle(request)
        status = 500
        try:
            response = await super()._handle(request)
            status = response.status
            return response
        except Exception as err:
            status = int(getattr(err, "status", 0) or getattr(err, "code", 0) or 500)
            raise
        finally:
            data = request.data if isinstance(request.data, dict) else {}
            holder = (
                (data.get("spec") or {}).get("holderIdentity")
                if "/leases" in str(request.url.path)
                else None
            )
            self.writes.append(
                Write(
                    time.monotonic(),
                    method.upper(),
                    request.url.path,
                    request.headers.get("User-Agent", ""),
                    status,
                    holder,
                )
            )

    def _KubernetesEmulator__get_objs(  # noqa: N802 - overrides kmock's private lookup
        self, request: rendering.Request, strict: bool
    ) -> list[Any]:
        stored: dict[Any, Any] = self._objects._objects
        if request.resource is None:
            return []
        if request.name is not None and (strict or request.namespace is not None):
            found = stored.get((request.resource, request.namespace, request.name))
            return [] if found is None else [found]
        return [
            stored[key]
            for key in self._keys_of(request.resource)
            if key in stored
            and (request.name is None or key[2] == request.name)
            and (key[1] == request.namespace if strict else request.namespace in (None, key[1]))
        ]

    def _keys_of(self, resource: Any) -> dict[Any, None]:
        """The store's keys of one resource, in the store's order (an index kept up to date)."""
        stored: dict[Any, Any] = self._objects._objects
        if len(stored) < getattr(self, "_indexed", -1) or not hasattr(self, "_index"):
            self._indexed, self._index = 0, {}  # first use, or hard-deleted: index again
        if len(stored) > self._indexed:
            for key in itertools.islice(stored, self._indexed, None):
                self._index.setdefault(_resource_key(key[0]), {})[key] = None
            self._indexed = len(stored)
        return self._index.get(_resource_key(resource), {})

    async def _serve_list(self, request: rendering.Request) -> Any:
        """kmock's list, but from the index, and in pages when asked (`limit`, `continue`)."""
        resource = request.resource
        declared = kmock.KubernetesScaffold._get_resources(self)
        if resource is None or (not self._keys_of(resource) and resource not in declared):
            raise k8s.KubernetesResourceNotFoundError()
        version = str(self._buses[resource].streamed_count)
        metadata: dict[str, str] = {"resourceVersion": version}
        async with self._lock:
            stored: dict[Any, Any] = self._objects._objects
            keys = [
                key
                for key in self._keys_of(resource)
                if request.namespace is None or key[1] == request.namespace
            ]
            limit = request.params.get("limit", "")
            if limit.isdigit() and int(limit) > 0:  # pages, as kube-apiserver serves them
                offset, _, since = request.params.get("continue", "").partition(":")
                start = int(offset) if offset.isdigit() else 0
                metadata["resourceVersion"] = since or version
                following = start + int(limit)
                if following < len(keys):
                    metadata["continue"] = f"{following}:{metadata['resourceVersion']}"
                keys = keys[start:following]
            objects = [stored[key] for key in keys if key in stored]
            items = [obj.raw for obj in objects if not obj.deleted]
        return {"metadata": metadata, "items": items}

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[Any]:
        since = request.params.get("resourceVersion")
        bus = self._buses[request.resource] if request.resource else None
        if bus is None or since != str(bus.streamed_count):
            async for item in super()._serve_watch(request):
                yield item
            return
        yield b""  # the headers: the stream is open
        check = self._KubernetesEmulator__check  # type: ignore[attr-defined]
        async for event in bus:
            meta = (event.get("object") or {}).get("metadata") or {}
            if check(request, request.resource, meta.get("namespace"), meta.get("name"), False):
                yield event

    def preload(self, objects: list[tuple[str, dict[str, Any]]]) -> None:
        """Store (resource key, object) pairs as they are, with no request and no event."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for key, obj in objects:
            meta = obj.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", stamp)
            self._objects[key, meta.get("namespace"), meta["name"]] = obj


class KubeEmulator:
    """Start with `start()`, stop with `stop()`; `url` is the API server address."""

    def __init__(self, extra_resources: dict[str, tuple[str, bool]] | None = None) -> None:
        self.resources = {**RESOURCES, **(extra_resources or {})}
        self.plural_of_kind = {kind: key for key, (kind, _) in self.resources.items()}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stop: asyncio.Event | None = None
        self._done: asyncio.Future[None] | None = None
        self.url = ""
        self.emulator: _Emulator | None = None

    def start(self) -> KubeEmulator:
        self._thread.start()
        ready = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        ready.result(timeout=30)
        return self

    async def _start(self) -> None:
        self._stop = asyncio.Event()
        started: asyncio.Future[None] = self._loop.create_future()
        self._done = asyncio.ensure_future(self._serve(started))
        await started

    async def _serve(self, started: asyncio.Future[None]) -> None:
        emulator = _Emulator()
        emulator.log = []
        emulator.writes = []
        for key, (kind, namespaced) in self.resources.items():
            emulator.resources[key] = kmock.ResourceInfo(
                kind=kind, namespaced=namespaced, verbs=VERBS
            )
        async with emulator, kmock.Server(emulator) as server:
            self.emulator = emulator
            self.url = str(server.url).rstrip("/")
            started.set_result(None)
            assert self._stop is not None
            await self._stop.wait()

    def stop(self) -> None:
        async def _finish() -> None:
            assert self._stop is not None and self._done is not None
            self._stop.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._done), timeout=5)
            except TimeoutError:  # a client still holds a watch open
                self._done.cancel()

        try:
            asyncio.run_coroutine_threadsafe(_finish(), self._loop).result(timeout=15)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def preload(self, objects: Iterable[dict[str, Any]]) -> int:
        """Store objects directly, as a cluster that already holds them: no HTTP request,
        no watch event (the scale benchmark loads 100,000 this way in seconds). Each
        needs `kind` (one of `resources`) and `metadata.name`; the count stored."""
        batch = [(self.plural_of_kind[obj["kind"]], obj) for obj in objects]

        async def store() -> None:
            assert self.emulator is not None
            async with self.emulator._lock:
                self.emulator.preload(batch)

        asyncio.run_coroutine_threadsafe(store(), self._loop).result(timeout=600)
        return len(batch)

    def replay(self, obj: dict[str, Any], event: str = "MODIFIED") -> None:
        """Send `obj` to every watch of its kind as an event, without storing it: an old
        version delivered late, as a relist, a watch-cache replay or a slow informer does."""
        key = self.plural_of_kind[obj["kind"]]

        async def send() -> None:
            assert self.emulator is not None
            for resource in self.emulator._buses:
                group, version, plural = _resource_key(resource)
                if (group or "", version, plural) == _resource_key_of(key):
                    await self.emulator._buses[resource].put({"type": event, "object": obj})
                    return
            raise KeyError(f"no watch bus for {key}")

        asyncio.run_coroutine_threadsafe(send(), self._loop).result(timeout=30)

    @property
    def writes(self) -> builtins.list[Write]:
        """Every create, update, patch and delete so far: when, by whom, and how it ended."""
        assert self.emulator is not None
        return builtins.list(self.emulator.writes)

    def write_kubeconfig(self, path: Path) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "test-token"}}],
            "contexts": [
                {"name": "emulator", "context": {"cluster": "emulator", "user": "tester"}}
            ],
            "current-context": "emulator",
        }
        path.write_text(json.dumps(config))
        return path

    # The calls a user makes, over HTTP.

    def path(self, kind: str, namespace: str | None = None, name: str | None = None) -> str:
        key = self.plural_of_kind[kind]
        prefix = "/api/" if key.startswith("v1/") else "/apis/"
        group_version, plural = key.rsplit("/", 1)
        ns = f"/namespaces/{namespace}" if namespace and self.resources[key][1] else ""
        return f"{prefix}{group_version}{ns}/{plural}" + (f"/{name}" if name else "")

    def call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", content_type)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def create(self, obj: dict[str, Any]) -> Any:
        meta = obj.get("metadata", {})
        return self.call("POST", self.path(obj["kind"], meta.get("namespace")), obj)

    def get(self, kind: str, namespace: str | None, name: str) -> Any:
        try:
            return self.call("GET", self.path(kind, namespace, name))
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise

    def list(self, kind: str, namespace: str | None = None) -> list[Any]:
        items: list[Any] = self.call("GET", self.path(kind, namespace))["items"]
        return items

    def patch(self, kind: str, namespace: str | None, name: str, patch: dict[str, Any]) -> Any:
        return self.call(
            "PATCH", self.path(kind, namespace, name), patch, "application/merge-patch+json"
        )

    def delete(self, kind: str, namespace: str | None, name: str) -> Any:
        return self.call("DELETE", self.path(kind, namespace, name))

    def requests_to(self, method: str, path: str) -> builtins.list[tuple[str, str]]:
        """The requests with this method and path that the emulator has received so far."""
        assert self.emulator is not None
        log = tuple(self.emulator.log)
        return [(m, p) for m, p in log if m == method and p == path]
