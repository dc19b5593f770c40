"""The one place for get → create → (on 409) get again → patch if different.

Every object the operator owns is written this way: a PrometheusRule per
CostPolicy, the shared recording rules, the CostReports. Level-based: the
caller says what it wants (`desired`) and how far a stored object is from it
(`diff`, a merge patch or None), and only that difference is written.

A `current` from a cache can be stale: the object was deleted without the
watch saying so (the API server lost its state and came back empty, a watch
stream was cut). A 404 on the patch means just that: the object is read again
and created when absent, instead of failing the same way forever.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from finops_operator.errors import KubeError
from finops_operator.ports import KubePort, Resource

# A merge patch bringing a stored object (the argument) to what is wanted; None when it is.
Diff = Callable[[Mapping[str, Any]], dict[str, Any] | None]


class Applied(enum.Enum):
    CREATED = "created"
    PATCHED = "patched"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class ApplyResult:
    applied: Applied
    # The object `diff` was taken from: as read, or as created (before any patch).
    current: Mapping[str, Any]
    patch: dict[str, Any] | None = None  # what was written by the patch, if anything


async def apply(
    kube: KubePort,
    resource: Resource,
    desired: dict[str, Any],
    diff: Diff,
    *,
    current: Mapping[str, Any] | None = None,
    status: bool = False,
) -> ApplyResult:
    """Make the object named by `desired`'s metadata carry what `diff` asks for.

    `current`, when the caller already knows the stored object (from a watch or a
    cache), spares the read. An absent object is created from `desired`; when
    another writer created it first (409) it is read again and patched instead.

    With `status=True`, `diff` gives a patch of the status subresource. The API
    server ignores a status sent with a create, so a created object is patched
    at once; with `status=False` a created object is `desired` and is left alone.
    A patch answered 404 (a stale `current`) starts over once without `current`.
    Raises `KubeError`.
    """
    result = await _apply_once(kube, resource, desired, diff, current, status, gone_ok=True)
    if result is None:  # gone although read or cached: read again, create if still absent
        result = await _apply_once(kube, resource, desired, diff, None, status, gone_ok=False)
    assert result is not None
    return result


async def _apply_once(
    kube: KubePort,
    resource: Resource,
    desired: dict[str, Any],
    diff: Diff,
    current: Mapping[str, Any] | None,
    status: bool,
    *,
    gone_ok: bool,
) -> ApplyResult | None:
    """One try; None when the patch was answered 404 and `gone_ok`."""
    meta = desired["metadata"]
    namespace, name = meta.get("namespace"), meta["name"]
    if current is None:
        current = await kube.get(*resource, namespace, name)
    if current is None:
        try:
            created = await kube.create(*resource, desired)
        except KubeError as err:
            if err.status != 409:
                raise
            current = await kube.get(*resource, namespace, name)
            if current is None:
                raise
        else:
            if not status:
                return ApplyResult(Applied.CREATED, created)
            patch = diff(created)
            if patch is not None:
                await kube.patch(*resource, namespace, name, patch, status=True)
            return ApplyResult(Applied.CREATED, created, patch)
    patch = diff(current)
    if patch is None:
        return ApplyResult(Applied.UNCHANGED, current)
    try:
        await kube.patch(*resource, namespace, name, patch, status=status)
    except KubeError as err:
        if err.status != 404 or not gone_ok:
            raise
        return None
    return ApplyResult(Applied.PATCHED, current, patch)
