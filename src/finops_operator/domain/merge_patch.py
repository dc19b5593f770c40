"""Desired versus stored: which fields differ, and the merge patch that brings them in step.

Every reconciler (admission policies, PrometheusRules, policy reports, CostReport
status) asks the same question of an object it keeps: does the stored copy say
what we want, and if not, what JSON merge patch (RFC 7386) makes it so. The
answer differs only in how a field is compared, and that is said per field:

- `Compare.CONTAINS`: the stored value says at least what is wanted. For fields
  the API server fills with defaults (a ValidatingAdmissionPolicy's
  `matchPolicy`, an empty `objectSelector`), which an exact comparison would
  see as a change on every pass.
- `Compare.EXACT`: the stored value is what is wanted; a missing mapping or list
  counts as an empty one. With `prune`, keys of a stored mapping that are not
  wanted are removed (set to null in the patch), so that labels someone else
  set on an object the operator owns go too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Compare(StrEnum):
    """How a stored value is compared with the wanted one."""

    CONTAINS = "contains"
    EXACT = "exact"


@dataclass(frozen=True)
class Wanted:
    """A field the reconciler keeps: its path in the object and how it is compared.

    A field the desired object lacks is not kept: the stored one is left as it is.
    """

    path: tuple[str, ...]
    compare: Compare
    prune: bool = False


def says(current: Any, desired: Any, compare: Compare) -> bool:
    """Whether `current` says what `desired` says, compared as `compare` says."""
    if compare is Compare.EXACT:
        if current is None and isinstance(desired, Mapping | list):
            current = type(desired)()
        return bool(current == desired)
    if isinstance(desired, Mapping):
        return isinstance(current, Mapping) and all(
            says(current.get(key), value, compare) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(current, list)
            and len(current) == len(desired)
            and all(says(c, d, compare) for c, d in zip(current, desired, strict=True))
        )
    return bool(current == desired)


_ABSENT: Any = object()


def _at(obj: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at `path` in `obj`, or `_ABSENT` when `obj` lacks it."""
    value: Any = obj
    for key in path[:-1]:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value.get(path[-1], _ABSENT) if isinstance(value, Mapping) else _ABSENT


def differing(
    current: Mapping[str, Any], desired: Mapping[str, Any], fields: Iterable[Wanted]
) -> list[Wanted]:
    """The fields `desired` has that `current` does not say, in the order given."""
    out = []
    for field in fields:
        want = _at(desired, field.path)
        if want is _ABSENT:
            continue
        have = _at(current, field.path)
        if not says(None if have is _ABSENT else have, want, field.compare):
            out.append(field)
    return out


def merge_patch(
    current: Mapping[str, Any], desired: Mapping[str, Any], fields: Iterable[Wanted]
) -> dict[str, Any] | None:
    """A merge patch bringing `current`'s `fields` to `desired`'s; None when they are there.

    A differing field is sent whole (a merge patch replaces lists whole anyway), with
    the stored keys it does not want set to null when the field prunes.
    """
    patch: dict[str, Any] = {}
    for field in differing(current, desired, fields):
        value = _at(desired, field.path)
        have = _at(current, field.path)
        if field.prune and isinstance(have, Mapping) and isinstance(value, Mapping):
            value = {**{key: None for key in have if key not in value}, **value}
        target = patch
        for key in field.path[:-1]:
            target = target.setdefault(key, {})
        target[field.path[-1]] = value
    return patch or None
