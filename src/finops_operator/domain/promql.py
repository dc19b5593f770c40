"""PromQL building blocks: durations, string literals, label matchers and numbers.

Rule rendering builds PromQL as text. Every value that comes from a user goes
through one of these functions, so that a team name can never end a string
literal early and smuggle in PromQL of its own, and so that numbers and
durations are always written the same way (golden files stay stable).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

_UNIT_SECONDS: dict[str, Decimal] = {
    "y": Decimal(365 * 24 * 3600),
    "w": Decimal(7 * 24 * 3600),
    "d": Decimal(24 * 3600),
    "h": Decimal(3600),
    "m": Decimal(60),
    "s": Decimal(1),
    "ms": Decimal("0.001"),
}
# Prometheus's own duration syntax: units largest first, each at most once.
DURATION_PATTERN = (
    r"^(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$"
)
_DURATION_PART = re.compile(r"([0-9]+)(ms|y|w|d|h|m|s)")
# Prometheus's label names (the data model): the one definition the config, the
# CostPolicy checks and the selectors built here all use.
LABEL_NAME_PATTERN = r"[a-zA-Z_][a-zA-Z0-9_]*"


def is_label_name(name: str) -> bool:
    """Whether `name` is a Prometheus label name: a letter or `_`, then letters, digits, `_`."""
    return re.fullmatch(LABEL_NAME_PATTERN, name) is not None


@dataclass(frozen=True, order=True)
class Duration:
    """A Prometheus duration, kept as seconds; `str()` gives its canonical spelling."""

    seconds: Decimal

    @classmethod
    def parse(cls, text: str) -> Duration:
        if not text or not re.fullmatch(DURATION_PATTERN, text):
            raise ValueError(
                f"{text!r} is not a duration; write a number and a unit (ms, s, m, h, d, w, y), "
                "largest unit first, e.g. 15m, 2h or 1h30m"
            )
        total = sum(
            (int(amount) * _UNIT_SECONDS[unit] for amount, unit in _DURATION_PART.findall(text)),
            Decimal(0),
        )
        return cls(total)

    @classmethod
    def of(cls, *, days: int = 0, hours: int = 0, minutes: int = 0) -> Duration:
        return cls(Decimal(days * 86400 + hours * 3600 + minutes * 60))

    @property
    def hours(self) -> Decimal:
        return self.seconds / 3600

    def __str__(self) -> str:
        if self.seconds == 0:
            return "0s"
        millis = int(self.seconds * 1000)
        parts = []
        for unit in ("d", "h", "m", "s"):
            size = int(_UNIT_SECONDS[unit] * 1000)
            if millis >= size:
                parts.append(f"{millis // size}{unit}")
                millis %= size
        if millis:
            parts.append(f"{millis}ms")
        return "".join(parts)


def string_literal(value: str) -> str:
    """`value` as a double-quoted PromQL string literal, with every special character escaped."""
    out = ['"']
    for char in value:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def matchers(labels: Mapping[str, str]) -> str:
    """A label-equality selector such as `{team="a",environment="production"}`, or ''."""
    if not labels:
        return ""
    for name in labels:
        if not is_label_name(name):
            raise ValueError(f"{name!r} is not a Prometheus label name")
    return "{" + ",".join(f"{name}={string_literal(v)}" for name, v in labels.items()) + "}"


def own_cluster_pattern(name: str) -> str:
    """A PromQL regex literal matching `name` or the empty value (no cluster label).

    A Prometheus never shows its own external labels to its own queries, so a
    per-cluster operator reading its local Prometheus sees its series unlabelled,
    and reading a shared Thanos sees them labelled: both are its own.
    """
    return string_literal(re.sub(r"([.\\^$|?*+()\[\]{}])", r"\\\1", name) + "|")


def without_replicas(expr: str, replica_labels: Sequence[str]) -> str:
    """`expr` with the copies of an HA Prometheus pair read without deduplication
    counted once: `max without` the replica labels (unchanged when there are none)."""
    if not replica_labels:
        return expr
    return f"max without ({', '.join(replica_labels)}) ({expr})"


def number(value: Decimal | int) -> str:
    """A decimal written as PromQL reads it: no exponent, no trailing zeros."""
    text = format(Decimal(value), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def check_expression(expr: str) -> None:
    """Refuse text that cannot be one PromQL expression: unbalanced brackets or an open string.

    This is not a parser; it catches rendering mistakes (a missing parenthesis, a
    value that escaped its quotes) before a rule is written anywhere.
    """
    closing = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for char in expr:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in ('"', "'", "`"):
            quote = char
        elif char in "([{":
            stack.append(char)
        elif char in closing and (not stack or stack.pop() != closing[char]):
            raise ValueError(f"unbalanced {char!r} in PromQL: {expr}")
    if quote:
        raise ValueError(f"unterminated string literal in PromQL: {expr}")
    if stack:
        raise ValueError(f"unclosed {stack[-1]!r} in PromQL: {expr}")
