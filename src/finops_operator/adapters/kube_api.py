"""The one module that writes objects other than through kopf's own patches.

The official `kubernetes` client, run in worker threads so the operator's
event loop keeps serving admission while a call is in flight. Each `KubeApi`
has threads of its own, never asyncio's shared default pool: the operator
gives the Lease a `KubeApi` (one thread, one connection pool) apart from the
one the bulk of writes queue on, so a renewal never waits behind an audit
backlog (docs/architecture.md, "Leadership never waits behind bulk work").

`writing_only_while(leading)` is the same API whose writes check `leading()`
in the worker thread, just before they are sent: a write queued while this
replica led and whose turn comes after it lost the Lease is not sent
(`NotSentError`). Reads are never held back. Every request carries a
User-Agent naming the replica, so the API server's audit log tells the
writers apart. Every failure is
raised as `KubeError`: with the HTTP status and the API server's own message
when it answered, with status 0 for anything else (refused or reset
connections, urllib3's `MaxRetryError` and `ProtocolError`, TLS errors,
timeouts, an answer that is not JSON). Every call has a timeout, so a
partition ends in an error rather than a call that never returns.
Only merge patches and creates are used: what a real API server and the test
emulator both understand.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from finops_operator.adapters import kube_credentials
from finops_operator.domain.workloads import WORKLOAD_KINDS
from finops_operator.errors import KubeError, NotSentError


def _reason(err: ApiException) -> str:
    try:
        body = json.loads(err.body or "{}")
        return str(body.get("message") or err.reason)
    except (ValueError, AttributeError):
        return str(err.reason)


MERGE_PATCH = "application/merge-patch+json"
JSON = "application/json"
REQUEST_TIMEOUT_SECONDS = 10.0
WORKERS = 4  # concurrent requests of one KubeApi; urllib3 pools 4 connections per host too


def user_agent(identity: str, role: str) -> str:
    """The User-Agent of a replica's requests, e.g. `finops-operator/host-1a2b3c (lease)`."""
    return f"finops-operator/{identity} ({role})"


class KubeApi:
    """Custom objects by (group, version, plural): get, create, merge-patch, status, delete.

    Plus the two writes of the background audit: a merge patch of a workload and
    a core Event.
    """

    def __init__(
        self,
        credentials: kube_credentials.Credentials | None = None,
        request_timeout: float = REQUEST_TIMEOUT_SECONDS,
        *,
        workers: int = WORKERS,
        name: str = "kube-api",
        agent: str | None = None,
    ) -> None:
        # A connection pool of its own, with the credentials every client shares.
        self._client = kubernetes.client.ApiClient(credentials or kube_credentials.load())
        if agent is not None:
            self._client.user_agent = agent
        self._objects = kubernetes.client.CustomObjectsApi(self._client)
        self.request_timeout = request_timeout
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._may_write: Callable[[], bool] | None = None

    def writing_only_while(self, may_write: Callable[[], bool]) -> KubeApi:
        """This API (same threads, same connections) whose writes are sent only while
        `may_write()` holds when their turn comes; `NotSentError` otherwise."""
        gated = copy.copy(self)
        gated._may_write = may_write
        return gated

    def close(self) -> None:
        """Stop the worker threads once the calls under way end; queued ones are dropped."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _raw(self, method: str, path: str, body: Any, content_type: str) -> Any:
        """One JSON request, answered as plain JSON: no typed models, which would
        refuse what they do not expect (the audit writes any workload, as stored)."""
        request = self._client.param_serialize(
            method=method,
            resource_path=path,
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._client.call_api(*request, _request_timeout=self.request_timeout)
        data: bytes = response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status < 300:
            raise ApiException(http_resp=response, body=data.decode(errors="replace"))
        return json.loads(data or b"null")

    async def patch_workload(
        self, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        """A merge patch of one of the seven workload kinds."""
        group, plural, _ = WORKLOAD_KINDS[kind]
        prefix = f"/apis/{group}/v1" if group else "/api/v1"
        path = f"{prefix}/namespaces/{namespace}/{plural}/{name}"
        call = partial(self._raw, "PATCH", path, patch, MERGE_PATCH)
        await self._call(f"patch {kind} {namespace}/{name}", call, write=True)

    async def get_workload(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One of the workload kinds as stored, or None when it does not exist."""
        group, plural, _ = WORKLOAD_KINDS[kind]
        prefix = f"/apis/{group}/v1" if group else "/api/v1"
        try:
            found: dict[str, Any] = await self.raw(
                "GET", f"{prefix}/namespaces/{namespace}/{plural}/{name}"
            )
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        return found

    async def raw(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        """Any JSON request by path, for objects without a typed call here."""
        call = partial(self._raw, method, path, body, content_type)
        return await self._call(f"{method} {path}", call, write=method.upper() != "GET")

    async def served_resources(self, group: str, version: str) -> frozenset[str] | None:
        """Discovery of one group version (readable by every authenticated user)."""
        call = partial(self._raw, "GET", f"/apis/{group}/{version}", None, "application/json")
        try:
            found = await self._call(f"discover {group}/{version}", call)
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        resources = found.get("resources") if isinstance(found, dict) else None
        return frozenset(r["name"] for r in resources or [] if isinstance(r, dict) and "name" in r)

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            secret: dict[str, Any] = await self.raw(
                "GET", f"/api/v1/namespaces/{namespace}/secrets/{name}"
            )
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        return secret

    async def create_secret(self, namespace: str, secret: dict[str, Any]) -> None:
        await self.raw("POST", f"/api/v1/namespaces/{namespace}/secrets", secret)

    async def create_event(self, namespace: str, event: dict[str, Any]) -> None:
        path = f"/api/v1/namespaces/{namespace}/events"
        call = partial(self._raw, "POST", path, event, "application/json")
        await self._call(f"create Event in {namespace}", call, write=True)

    async def _call(self, what: str, call: Callable[[], Any], write: bool = False) -> Any:
        may_write = self._may_write if write else None

        def send() -> Any:  # in a worker thread, when the call's turn comes
            if may_write is not None and not may_write():
                raise NotSentError(f"{what}: not sent, this replica no longer leads")
            return call()

        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, send)
        except KubeError:
            raise
        except ApiException as err:
            raise KubeError(err.status or 0, f"{what}: {err.status} {_reason(err)}") from None
        except Exception as err:  # refused, reset, TLS, timeout, an answer not JSON
            # urllib3's MaxRetryError and ProtocolError are not OSErrors, nor is
            # http.client's IncompleteRead: whatever the transport raised, the
            # caller sees one KubeError, status 0, and can retry.
            kind = type(err).__name__
            raise KubeError(0, f"{what}: cannot reach the API server ({kind}: {err})") from None

    def _scoped(
        self,
        verb: str,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        *rest: Any,
        **options: Any,
    ) -> Callable[[], Any]:
        """The client call for `verb`, cluster-scoped when `namespace` is None."""
        action, _, suffix = verb.partition("_")
        suffix = f"_{suffix}" if suffix else ""
        options["_request_timeout"] = self.request_timeout
        if namespace is None:
            fn = getattr(self._objects, f"{action}_cluster_custom_object{suffix}")
            return partial(fn, group, version, plural, *rest, **options)
        fn = getattr(self._objects, f"{action}_namespaced_custom_object{suffix}")
        return partial(fn, group, version, namespace, plural, *rest, **options)

    async def get(
        self, group: str, version: str, plural: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        call = self._scoped("get", group, version, plural, namespace, name)
        try:
            result: dict[str, Any] = await self._call(f"get {plural} {namespace}/{name}", call)
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        return result

    async def create(
        self, group: str, version: str, plural: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        namespace = body["metadata"].get("namespace")
        what = f"create {plural} {namespace}/{body['metadata']['name']}"
        # The client names no media type for a create (it ignores `_content_type` there);
        # the API server takes none as JSON, a proxy in front of it may not (aiohttp
        # forwards application/octet-stream, which the API server refuses: 415).
        call = self._scoped(
            "create", group, version, plural, namespace, body, _headers={"Content-Type": JSON}
        )
        result = await self._call(what, call, write=True)
        # The client returns the stored object; fall back to what was sent if it gave none.
        return result if isinstance(result, dict) else body

    async def patch(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        patch: dict[str, Any],
        status: bool = False,
    ) -> dict[str, Any]:
        """A JSON merge patch of the object, or of its status subresource."""
        what = f"patch {plural}{'/status' if status else ''} {namespace}/{name}"
        verb = "patch_status" if status else "patch"
        call = self._scoped(verb, group, version, plural, namespace, name, patch)
        result: dict[str, Any] = await self._call(what, call, write=True)
        return result

    async def delete(
        self, group: str, version: str, plural: str, namespace: str | None, name: str
    ) -> None:
        call = self._scoped("delete", group, version, plural, namespace, name)
        try:
            await self._call(f"delete {plural} {namespace}/{name}", call, write=True)
        except KubeError as err:
            if err.status != 404:
                raise
