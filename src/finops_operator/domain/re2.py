"""Whether RE2 runs a Python regular expression as Python does.

A label rule's pattern is written in Python `re` syntax; the admission policies
hand it to CEL's `matches()`, which is RE2. The configuration refuses a pattern
RE2 cannot express when it is read, and the admission policies check it again
when they render it, so the check lives below both: the constructs RE2 lacks
(lookaround, backreferences, conditionals, atomic groups, possessive
quantifiers, comments, verbose mode) are named in the refusal.
"""

from __future__ import annotations

from typing import Final

# `(?` followed by these opens a group RE2 does not have.
_UNSUPPORTED_GROUPS: Final = (
    ("(?=", "lookahead (?=...)"),
    ("(?!", "negative lookahead (?!...)"),
    ("(?<=", "lookbehind (?<=...)"),
    ("(?<!", "negative lookbehind (?<!...)"),
    ("(?P=", "named backreference (?P=name)"),
    ("(?(", "conditional group (?(...)...)"),
    ("(?>", "atomic group (?>...)"),
    ("(?#", "comment (?#...)"),
)
# Inline flags RE2 knows; Python also has a (ASCII), L (locale), u (unicode), x (verbose).
_RE2_FLAGS: Final = frozenset("imsU-")
_QUANTIFIER_ENDS: Final = frozenset("*+?}")


def re2_problem(pattern: str) -> str | None:
    """Why RE2 (CEL's `matches()`) cannot run `pattern` as Python does, or None when it can.

    A scan of the pattern's tokens, outside and inside character classes. Label
    values are ASCII (the API server allows only letters, digits, `-`, `_`, `.`),
    so Python's Unicode `\\d`, `\\w` and `\\s` and RE2's ASCII ones agree on them.
    """
    i, in_class, previous = 0, False, ""
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            escaped = pattern[i + 1 : i + 2]
            if not in_class and escaped in set("123456789"):
                return f"backreference \\{escaped} (RE2 has none)"
            if escaped == "Z":
                return "\\Z (RE2 has none; end the pattern with $)"
            previous = "\\" + escaped
            i += 2
            continue
        if in_class:
            in_class = char != "]"
            i += 1
            continue
        if char == "[":
            in_class = True
            # a ']' right after '[' or '[^' is a literal
            skip = 1 + (pattern[i + 1 : i + 2] == "^")
            if pattern[i + skip : i + skip + 1] == "]":
                skip += 1
            i += skip
            previous = "["
            continue
        if char == "(" and pattern[i + 1 : i + 2] == "?":
            for opener, name in _UNSUPPORTED_GROUPS:
                if pattern.startswith(opener, i):
                    return f"{name} (RE2 has none)"
            j = i + 2
            while j < len(pattern) and pattern[j] not in ":)":
                if pattern[j] == "P" or pattern[j] == "<":
                    break  # (?P<name>...) and (?<name>...): named groups, RE2 has them
                if pattern[j] not in _RE2_FLAGS:
                    return f"inline flag (?{pattern[j]}) (RE2 knows only i, m, s and U)"
                j += 1
        if char == "+" and previous in _QUANTIFIER_ENDS and previous != "":
            return "possessive quantifier (RE2 has none)"
        previous = char
        i += 1
    return None
