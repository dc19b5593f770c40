"""The `needs_tool` marker: a missing tool skips a test, and fails it under CI=true.

Also the rule that keeps it the only way: no test skips by hand for a tool
(`skipif(... is None)`, `pytest.skip("needs promtool")`), whose wording the CI
rule would have to guess.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import tools

TESTS = Path(__file__).resolve().parent


def _missing(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setitem(tools.TOOLS, name, (lambda: None, "a test's fake install step"))


def test_a_missing_tool_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    _missing(monkeypatch, "promtool")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"needs promtool \(a test's fake install"):
        tools.require_tool("promtool")


def test_a_missing_tool_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    _missing(monkeypatch, "chromium")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"CI=true: .*chromium"):
        tools.require_tool("chromium")


def test_a_tool_built_in_the_background_is_a_skip_under_a_bare_pytest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _missing(monkeypatch, "thanos")
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv("FINOPS_THANOS_BUILD_LOG", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"needs thanos .*scripts/test.sh builds"):
        tools.require_tool("thanos")


def _background_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, script: str) -> Path:
    built = tmp_path / "thanos"
    builder = tmp_path / "build.sh"
    builder.write_text(f"#!/bin/sh\n{script}\n")
    builder.chmod(0o755)
    log = tmp_path / "build.log"
    log.write_text(
        "go: downloading github.com/thanos-io/thanos v0.42.5\nthe last line of the log\n"
    )
    monkeypatch.setitem(tools.TOOLS, "thanos", (lambda: tools._existing(built), "a fake build"))
    monkeypatch.setitem(
        tools.BUILT_IN_BACKGROUND, "thanos", (str(builder), "FINOPS_THANOS_BUILD_LOG")
    )
    monkeypatch.setenv("FINOPS_THANOS_BUILD_LOG", str(log))
    monkeypatch.setenv("CI", "true")
    return built


def test_under_the_test_command_a_tool_built_in_the_background_is_waited_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    built = _background_build(monkeypatch, tmp_path, f"sleep 0.2; touch {tmp_path / 'thanos'}")
    tools.require_tool("thanos")  # neither a skip nor a failure: the script's build is there
    assert built.exists()


def test_a_failed_background_build_fails_under_ci_with_its_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _background_build(monkeypatch, tmp_path, "echo 'go: module lookup disabled' >&2; exit 1")
    with pytest.raises(
        pytest.fail.Exception, match=r"(?s)module lookup disabled.*the last line of the log"
    ):
        tools.require_tool("thanos")
    _missing(monkeypatch, "promtool")  # with another missing tool, CI still names it
    with pytest.raises(pytest.fail.Exception, match=r"CI=true: .*thanos"):
        tools.require_tool("thanos", "promtool")


def test_a_missing_file_a_script_fetches_skips_or_fails_the_same_way(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    absent = tmp_path / "crd.yaml"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"crd\.yaml \(a fetch script"):
        tools.require_file(absent, "a fetch script")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"CI=true: .*crd\.yaml"):
        tools.require_file(absent, "a fetch script")


def test_a_tool_that_is_there_lets_the_test_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(tools.TOOLS, "kubectl", (lambda: "/bin/true", "anything"))
    monkeypatch.setenv("CI", "true")
    tools.require_tool("kubectl")


def test_an_unknown_tool_is_a_mistake_not_a_skip() -> None:
    with pytest.raises(KeyError, match="unknown tool 'prometheus2'"):
        tools.require_tool("prometheus2")


def test_the_marker_runs_the_same_check(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _missing(monkeypatch, "promtool")
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(
        "from tests.conftest import pytest_configure, pytest_runtest_setup  # noqa: F401\n"
    )
    pytester.makepyfile(
        "import pytest\n@pytest.mark.needs_tool('promtool')\ndef test_x():\n    pass\n"
    )
    monkeypatch.delenv("CI", raising=False)
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(skipped=1)
    monkeypatch.setenv("CI", "true")
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(
        errors=1
    )  # failed in setup: the run is red


TOOL_WORDS = re.compile(
    r"promtool|chromium|kubectl|podman|focus-validator|bootstrap|build-image"
    r"|\bprometheus\b(?![ -]operator)|\bcrds?\b",
    re.I,
)


def _hand_skips(tree: ast.AST, source: str) -> Iterator[str]:
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("skip", "skipif")
        ):
            yield ast.get_source_segment(source, node) or ""


def test_no_test_skips_by_hand_for_a_tool() -> None:
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        if path == Path(__file__).resolve():
            continue
        source = path.read_text(encoding="utf-8")
        for call in _hand_skips(ast.parse(source), source):
            if TOOL_WORDS.search(call):
                found.append(f"{path.relative_to(TESTS)}: {call.splitlines()[0]}")
    assert not found, "use @pytest.mark.needs_tool / require_tool instead:\n" + "\n".join(found)


def test_a_background_build_that_hangs_fails_the_waiting_test_in_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _background_build(monkeypatch, tmp_path, "sleep 30 & sleep 30")  # a child holds the pipes
    monkeypatch.setattr(tools, "BACKGROUND_BUILD_TIMEOUT", 0.5)
    with pytest.raises(pytest.fail.Exception, match=r"still building after 0.5 s"):
        tools.require_tool("thanos")
