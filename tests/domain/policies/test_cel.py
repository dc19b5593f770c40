"""CEL string literals, RE2 compatibility of label patterns, and GPU name globs.

Each is compared with the meaning it must keep: a literal evaluates back to the
same string in cel-python, a glob test agrees with the operator's own GpuMatcher
(fnmatch), an anchored pattern accepts exactly what `re.fullmatch` accepts.
"""

from __future__ import annotations

import re

import celpy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from finops_operator.domain.policies.cel import (
    anchored,
    cel_string,
    gpu_name_test,
)
from finops_operator.domain.re2 import re2_problem
from finops_operator.domain.workloads import GpuMatcher

ENV = celpy.Environment()


def _eval(expression: str, **bound: str) -> object:
    program = ENV.program(ENV.compile(expression))
    return program.evaluate({k: celpy.json_to_cel(v) for k, v in bound.items()})


@given(st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x2FF), max_size=30))
def test_a_cel_literal_means_the_same_string(text: str) -> None:
    assert str(_eval(cel_string(text))) == text


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        (r"^(?=x)[a-z]+$", "lookahead"),
        (r"^(?!test-)[a-z]+$", "negative lookahead"),
        (r"(?<=a)b", "lookbehind"),
        (r"(?<!a)b", "negative lookbehind"),
        (r"(a)\1", "backreference"),
        (r"(?P<x>a)(?P=x)", "named backreference"),
        (r"(a)?(?(1)b|c)", "conditional"),
        (r"(?>a+)b", "atomic group"),
        (r"a(?#note)b", "comment"),
        (r"(?x) a b", "inline flag (?x)"),
        (r"a++", "possessive"),
        (r"cc-\d+\Z", r"\Z"),
    ],
)
def test_patterns_re2_cannot_run_are_named(pattern: str, problem: str) -> None:
    found = re2_problem(pattern)
    assert found is not None and problem in found, found


@pytest.mark.parametrize(
    "pattern",
    [
        r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        r"^cc-[0-9]+$",
        r"^(?i)team-\w+$",
        r"^(?P<prefix>ml|search)-[a-z]+$",
        r"[\1]x",  # a class, not a backreference
        r"a+?b*?",
        r"[(?=]",
        r"\\1",  # an escaped backslash, then a 1
    ],
)
def test_patterns_re2_runs_pass(pattern: str) -> None:
    assert re2_problem(pattern) is None


@given(st.from_regex(r"[a-z0-9.-]{0,12}", fullmatch=True))
def test_an_anchored_pattern_in_cel_accepts_what_fullmatch_accepts(value: str) -> None:
    pattern = r"cc-[0-9]+|[a-z]{2,4}"
    expression = f"value.matches({cel_string(anchored(pattern))})"
    assert bool(_eval(expression, value=value)) == (re.fullmatch(pattern, value) is not None)


GLOBS = ("nvidia.com/gpu", "nvidia.com/mig-*", "example.com/tpu-v[45]*", "x.io/g?u", "a[b]c")
NAMES = (
    "nvidia.com/gpu",
    "nvidia.com/gpux",
    "nvidia.com/mig-1g.10gb",
    "example.com/tpu-v4",
    "example.com/tpu-v5e",
    "example.com/tpu-v6",
    "x.io/gpu",
    "x.io/gXu",
    "x.io/gu",
    "a[b]c",
    "abc",
)


@pytest.mark.parametrize("name", NAMES)
def test_the_gpu_name_test_agrees_with_the_operators_matcher(name: str) -> None:
    assert bool(_eval(gpu_name_test("name", GLOBS), name=name)) == GpuMatcher(GLOBS)(name)
