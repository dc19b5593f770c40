"""The architecture as checked facts: a pure domain, lazy commands, docs that match the contracts.

`lint-imports` (run by scripts/test.sh) checks the import contracts in pyproject.toml.
What import-linter cannot see is checked here: the domain reads no clock and opens
no file, `finops-operator` loads no development tool unless `demo` runs, every
module says why it exists, and docs/architecture.md shows the contract's layers.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import ROOT

SRC = ROOT / "src"
DOMAIN = SRC / "finops_operator" / "domain"

# Calls that read the clock, randomness or the file system.
IMPURE_ATTRIBUTES = {
    "now",
    "utcnow",
    "today",
    "monotonic",
    "perf_counter",
    "read_text",
    "write_text",
}
IMPURE_NAMES = {"open", "input", "print"}
IMPURE_MODULES = {"time", "random", "secrets", "uuid", "os", "pathlib", "logging"}


def _python_files(root: Path) -> Iterator[Path]:
    yield from sorted(root.rglob("*.py"))


def impurities(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in IMPURE_ATTRIBUTES:
                found.append(f"line {node.lineno}: .{func.attr}()")
            if isinstance(func, ast.Name) and func.id in IMPURE_NAMES:
                found.append(f"line {node.lineno}: {func.id}()")
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = (
                [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            )
            for name in names:
                if name and name.split(".")[0] in IMPURE_MODULES:
                    found.append(f"line {node.lineno}: import {name}")
    return found


@pytest.mark.parametrize(
    "path", list(_python_files(DOMAIN)), ids=lambda p: str(p.relative_to(DOMAIN))
)
def test_the_domain_reads_no_clock_and_touches_no_file(path: Path) -> None:
    found = impurities(ast.parse(path.read_text(encoding="utf-8")))
    assert not found, f"{path.relative_to(ROOT)} is not pure: {found}"


def test_the_purity_check_finds_a_clock_and_a_file() -> None:
    sample = "import datetime\nfrom time import monotonic\nx = datetime.datetime.now()\nopen('f')\n"
    assert len(impurities(ast.parse(sample))) == 3


def _loaded_modules(statement: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}


def test_the_command_line_loads_no_development_tool_and_no_kopf() -> None:
    loaded = _loaded_modules("import finops_operator.cli")
    assert "finops_operator.cli" in loaded
    unwanted = sorted(m for m in loaded if m.split(".")[0] in {"finops_devtools", "kopf", "kmock"})
    assert not unwanted, f"`import finops_operator.cli` loads {unwanted}"


def test_the_demo_command_loads_the_development_tools_when_it_runs() -> None:
    loaded = _loaded_modules("from finops_operator.cli import demo; import finops_devtools.demo")
    assert "finops_devtools.demo" in loaded


def test_the_composition_root_stays_small_enough_to_only_compose() -> None:
    """Issue 20: logic that grows in `operator.py` belongs in a controller with unit tests."""
    lines = (SRC / "finops_operator" / "operator.py").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 250, f"operator.py has {len(lines)} lines: move the logic out"


@pytest.mark.parametrize("path", list(_python_files(SRC)), ids=lambda p: str(p.relative_to(SRC)))
def test_every_module_says_why_it_exists(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), f"{path.relative_to(ROOT)} has no module docstring"


def _contract_layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    (layers,) = [c for c in contracts if c["id"] == "layers"]
    return [str(layer) for layer in layers["layers"]]


def _documented_layers() -> list[str]:
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = page.split("<!-- layers -->")[1].split("<!-- /layers -->")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [" | ".join(re.findall(r"`([a-z_]+)/?(?:\.py)?`", row.split("|")[1])) for row in rows]


def test_the_architecture_page_shows_the_layers_the_contract_checks() -> None:
    assert _documented_layers() == _contract_layers()
