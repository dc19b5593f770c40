"""The one module that writes objects other than through kopf's own patches.

The official `kubernetes` client, run in a worker thread so the operator's
event loop keeps serving admission while a call is in flight. Every failure is
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
import json
from collections.abc import Callable
from functools import partial
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from finops_operator.domain.workloads import WORKLOAD_KINDS
from finops_operator.errors import KubeError


def _reason(err: ApiException) -> str:
    try:
        body = json.loads(err.body or "{}")
        return str(body.get("message") or err.reason)
    except (ValueError, AttributeError):
        return str(err.reason)


def _configured_client() -> kubernetes.client.ApiClient:
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return kubernetes.client.ApiClient(configuration)


MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT_SECONDS = 10.0


class KubeApi:
    """Custom objects by (group, version, plural): get, create, merge-patch, status, delete.

    Plus the two writes of the background audit: a merge patch of a workload and
    a core Event.
    """

    def __init__(
        self,
        client: kubernetes.client.ApiClient | None = None,
        request_timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self._client = client or _configured_client()
        self._objects = kubernetes.client.CustomObjectsApi(self._client)
        self.request_timeout = request_timeout

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
        await self._call(f"patch {kind} {namespace}/{name}", call)

    async def raw(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        """Any JSON request by path, for objects without a typed call here."""
        call = partial(self._raw, method, path, body, content_type)
        return await self._call(f"{method} {path}", call)

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
        await self._call(f"create Event in {namespace}", call)

    async def _call(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return await asyncio.to_thread(call)
        except ApiException as err:
            raise KubeError(err.status or 0, f"{what}: {err.status} {_reason(err)}") from None
        except Exception as err:  # refused, reset, TLS, timeout, an answer not JSON
            # urllib3's MaxRetryError and ProtocolError are not OSErrors, nor is
            # http.client's IncompleteRead: whatever the transport raised, the
            # caller sees one KubeError, status 0, and can retry.
            kind = type(err).__name__
            raise KubeError(0, f"{what}: cannot reach the API server ({kind}: {err})") from None

    def _scoped(
        self, verb: str, group: str, version: str, plural: str, namespace: str | None, *rest: Any
    ) -> Callable[[], Any]:
        """The client call for `verb`, cluster-scoped when `namespace` is None."""
        action, _, suffix = verb.partition("_")
        suffix = f"_{suffix}" if suffix else ""
        if namespace is None:
            fn = getattr(self._objects, f"{action}_cluster_custom_object{suffix}")
            return partial(fn, group, version, plural, *rest, _request_timeout=self.request_timeout)
        fn = getattr(self._objects, f"{action}_namespaced_custom_object{suffix}")
        return partial(
            fn, group, version, namespace, plural, *rest, _request_timeout=self.request_timeout
        )

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
        call = self._scoped("create", group, version, plural, namespace, body)
        result = await self._call(what, call)
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
        result: dict[str, Any] = await self._call(what, call)
        return result

    async def delete(
        self, group: str, version: str, plural: str, namespace: str | None, name: str
    ) -> None:
        call = self._scoped("delete", group, version, plural, namespace, name)
        try:
            await self._call(f"delete {plural} {namespace}/{name}", call)
        except KubeError as err:
            if err.status != 404:
                raise
