"""Leader election's rule, on a coordination.k8s.io Lease: who leads, and what to write.

Pure: the Lease as read (or None), this replica's identity and the time in, a
decision out. `controllers.leadership.Leadership` reads and writes the Lease.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

LEASE_NAME: Final = "finops-operator"


def _micro(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: Any) -> datetime.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class LeaseDecision:
    leader: bool
    create: dict[str, Any] | None = None  # a Lease to create
    patch: dict[str, Any] | None = None  # a merge patch of the existing Lease


def lease_decision(
    lease: Mapping[str, Any] | None,
    *,
    identity: str,
    namespace: str,
    now: datetime.datetime,
    duration: int,
    name: str = LEASE_NAME,
) -> LeaseDecision:
    """Take, keep or leave the Lease: create it, renew ours, take over an expired one."""
    if lease is None:
        return LeaseDecision(
            True,
            create={
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "holderIdentity": identity,
                    "leaseDurationSeconds": duration,
                    "acquireTime": _micro(now),
                    "renewTime": _micro(now),
                    "leaseTransitions": 0,
                },
            },
        )
    spec = lease.get("spec") or {}
    version = (lease.get("metadata") or {}).get("resourceVersion")
    guard = {"metadata": {"resourceVersion": version}} if version else {}
    if spec.get("holderIdentity") == identity:
        return LeaseDecision(True, patch={**guard, "spec": {"renewTime": _micro(now)}})
    renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
    held_for = int(spec.get("leaseDurationSeconds") or duration)
    if renewed is not None and renewed + datetime.timedelta(seconds=held_for) > now:
        return LeaseDecision(False)
    return LeaseDecision(
        True,
        patch={
            **guard,
            "spec": {
                "holderIdentity": identity,
                "leaseDurationSeconds": duration,
                "acquireTime": _micro(now),
                "renewTime": _micro(now),
                "leaseTransitions": int(spec.get("leaseTransitions") or 0) + 1,
            },
        },
    )
