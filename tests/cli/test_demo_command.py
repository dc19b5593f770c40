"""`finops-operator demo` where the development tools are not installed: the operator's
wheel and the image hold finops_operator alone (tests/install/test_wheels.py and
tests/install/test_image.py check it); finops-devtools is a distribution of its own."""

from __future__ import annotations

import sys

import pytest

from finops_operator.cli import main


def test_demo_without_the_devtools_says_where_it_is_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [name for name in sys.modules if name.startswith("finops_devtools")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "finops_devtools", None)  # import fails: not installed
    assert main(["demo"]) == 2
    captured = capsys.readouterr()
    assert "not part of this installation: install finops-devtools" in captured.err
    assert "pip install -e ./devtools" in captured.err
    assert "Traceback" not in captured.err + captured.out
