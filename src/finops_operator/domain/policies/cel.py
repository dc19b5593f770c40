"""Writing CEL for the API server: string literals, RE2 patterns and GPU name globs.

The admission policies (`admission_policy`) carry the label rules as CEL that the
API server evaluates. Three things must be exact there, and each is a small pure
step kept here so it can be tested alone:

- a Python string becomes a CEL string literal that means the same string;
- a label rule's pattern is Python `re` syntax, CEL's `matches()` is RE2: a
  pattern RE2 cannot run is refused (`domain/re2.py`), and a pattern is
  anchored so that `matches()` (a search) means `re.fullmatch`;
- a `gpuResources` glob (`nvidia.com/mig-*`) becomes a test on a resource name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

_ESCAPES: Final = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def cel_string(text: str) -> str:
    """`text` as a single-quoted CEL string literal."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "'" + "".join(out) + "'"


def cel_list(items: Iterable[str]) -> str:
    """A CEL list literal of strings."""
    return "[" + ", ".join(cel_string(item) for item in items) + "]"


def anchored(pattern: str) -> str:
    """The RE2 pattern that `matches()` (a search) accepts exactly when re.fullmatch does."""
    return f"^(?:{pattern})$"


_RE2_SPECIAL: Final = frozenset(".^$|?*+()[]{}\\")


def _class_end(glob: str, start: int) -> int | None:
    """Where the `[...]` class opened at `start` closes, as fnmatch reads it; None if never."""
    j = start + 1
    if glob[j : j + 1] == "!":
        j += 1
    if glob[j : j + 1] == "]":
        j += 1
    end = glob.find("]", j)
    return None if end < 0 else end


def glob_regex(glob: str) -> str:
    """A `gpuResources` glob (`*`, `?`, `[...]`, as fnmatch reads them) as an anchored RE2."""
    out = []
    i = 0
    while i < len(glob):
        char = glob[i]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[" and (end := _class_end(glob, i)) is not None:
            body = glob[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            body = body.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
            out.append("[" + ("^" if negate else "") + body + "]")
            i = end + 1
            continue
        else:
            out.append("\\" + char if char in _RE2_SPECIAL else char)
        i += 1
    return "^" + "".join(out) + "$"


def gpu_name_test(name: str, globs: Iterable[str]) -> str:
    """CEL true when the resource name `name` (a CEL expression) is one of the GPU `globs`."""
    globs = tuple(globs)
    # As GpuMatcher: a name without `*` or `?` is matched exactly, brackets and all.
    exact = [g for g in globs if "*" not in g and "?" not in g]
    tests = [f"{name} in {cel_list(exact)}"] if exact else []
    for glob in globs:
        if glob in exact:
            continue
        prefix = glob[:-1]
        if glob.endswith("*") and not any(c in prefix for c in "*?["):
            tests.append(f"{name}.startsWith({cel_string(prefix)})")
        else:
            tests.append(f"{name}.matches({cel_string(glob_regex(glob))})")
    return " || ".join(tests)
