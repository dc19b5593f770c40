"""The two distributions: the operator's wheel holds no development tool, and the
development tools' wheel (finops-devtools, devtools/pyproject.toml) holds them alone.

Both are built from this checkout as a user or a pipeline would (`pip wheel`, with
build isolation: the project needs setuptools >= 77 for its license field, newer than
a virtual environment's own). The image copies only src/finops_operator besides
(tests/install/test_image.py checks what it holds).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.support.paths import ROOT

SOURCE = ROOT / "src"


def _build(project: Path, into: Path) -> zipfile.ZipFile:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(into), str(project)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    [wheel] = into.glob("*.whl")
    return zipfile.ZipFile(wheel)


@pytest.fixture(scope="module")
def operator_wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    return _build(ROOT, tmp_path_factory.mktemp("operator"))


@pytest.fixture(scope="module")
def devtools_wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    return _build(ROOT / "devtools", tmp_path_factory.mktemp("devtools"))


def _packages(wheel: zipfile.ZipFile) -> set[str]:
    return {name.split("/")[0] for name in wheel.namelist() if ".dist-info/" not in name}


def _sources(package: str) -> set[str]:
    return {
        path.relative_to(SOURCE).as_posix()
        for path in (SOURCE / package).rglob("*")
        if path.is_file() and (path.suffix == ".py" or path.name == "py.typed")
    }


def _metadata(wheel: zipfile.ZipFile) -> dict[str, list[str]]:
    [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    message = Parser().parsestr(wheel.read(name).decode())
    return {key: message.get_all(key) or [] for key in ("Name", "Version", "Requires-Dist")}


def test_the_operator_wheel_holds_the_operator_and_no_development_tool(
    operator_wheel: zipfile.ZipFile,
) -> None:
    assert _packages(operator_wheel) == {"finops_operator"}
    assert _sources("finops_operator") <= set(operator_wheel.namelist())
    assert not [name for name in operator_wheel.namelist() if "devtools" in name]
    # What a production install pulls in (the `test` extra aside): no API emulator.
    installed = [r for r in _metadata(operator_wheel)["Requires-Dist"] if "extra ==" not in r]
    assert not [r for r in installed if r.startswith(("kmock", "finops-devtools"))], installed


def test_the_devtools_wheel_holds_every_development_tool_and_nothing_else(
    devtools_wheel: zipfile.ZipFile,
) -> None:
    assert _packages(devtools_wheel) == {"finops_devtools"}
    assert _sources("finops_devtools") <= set(devtools_wheel.namelist())


def test_the_devtools_require_the_operator_of_the_same_version_and_kmock(
    devtools_wheel: zipfile.ZipFile,
) -> None:
    operator = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    metadata = _metadata(devtools_wheel)
    assert metadata["Name"] == ["finops-devtools"]
    assert metadata["Version"] == [operator["version"]]
    requires = metadata["Requires-Dist"]
    assert f"finops-operator=={operator['version']}" in requires
    assert any(r.startswith("kmock") for r in requires), requires
