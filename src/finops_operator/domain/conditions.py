"""Kubernetes status conditions, built so that reconciling without change writes nothing.

A condition keeps its `lastTransitionTime` until its status really changes.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any


def stamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    earlier: Mapping[str, Any] | None,
    kind: str,
    status: bool | None,
    reason: str,
    message: str,
    now: datetime.datetime,
    generation: int | None = None,
) -> dict[str, Any]:
    """The condition `kind` as it should read now, given how it read before (None: Unknown)."""
    text = "Unknown" if status is None else "True" if status else "False"
    since = stamp(now)
    if earlier is not None and earlier.get("status") == text:
        since = earlier.get("lastTransitionTime") or since
    result: dict[str, Any] = {
        "type": kind,
        "status": text,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }
    if generation is not None:
        result["observedGeneration"] = generation
    return result


def by_type(conditions: Any) -> dict[str, Mapping[str, Any]]:
    """Existing conditions by their type (an absent or odd list reads as none)."""
    return {str(c.get("type")): c for c in conditions or [] if isinstance(c, Mapping)}
