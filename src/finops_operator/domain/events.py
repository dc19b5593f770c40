"""Kubernetes Events the operator posts, as plain dicts for the core/v1 API.

The operator writes its Events itself (through kube_api) rather than through
kopf's posting queue, so that a replica that has just become the leader can post
what it learned while it was standing by.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from finops_operator.domain import conventions


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str | None = None

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        meta = obj.get("metadata") or {}
        return cls(
            str(obj.get("apiVersion") or ""),
            str(obj.get("kind") or ""),
            str(meta.get("namespace") or ""),
            str(meta.get("name") or ""),
            meta.get("uid"),
        )


def event_body(
    ref: ObjectRef,
    *,
    type: str,
    reason: str,
    message: str,
    now: datetime.datetime,
    reporter: str,
) -> dict[str, Any]:
    """A core/v1 Event about `ref`, as the API server stores it."""
    stamp = now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    involved = {
        "apiVersion": ref.api_version,
        "kind": ref.kind,
        "namespace": ref.namespace,
        "name": ref.name,
    }
    if ref.uid:
        involved["uid"] = ref.uid
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
        "involvedObject": involved,
        "type": type,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": conventions.MANAGED_BY},
        "reportingComponent": conventions.MANAGED_BY,
        "reportingInstance": reporter,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
