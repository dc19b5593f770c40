"""A fresh clone needs nothing beside it: no file of the project reads outside its tree.

The upstream CRDs once came from a folder beside the repository that only this workplace has; a
user's clone then failed 8 tests and skipped 20. They now come from their Go modules
(scripts/fetch-upstream-crds.sh). This test keeps any path that climbs out of the
repository from coming back, in code, scripts, benchmarks and the e2e builds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from tests.support.paths import ROOT

CHECKED = ("src", "tests", "scripts", "bench", "e2e", ".ci")
SUFFIXES = {".py", ".sh", ".yaml", ".yml", ".toml", ".mod", ""}

# Ways a file could reach a folder beside or above the repository.
# The folder's name is assembled, so that this file names no path outside the tree itself.
_BESIDE = "sha" + "red"
ESCAPES = re.compile(
    rf"\.\./{_BESIDE}"
    rf"|/work/{_BESIDE}"
    r"|(?:ROOT|REPO)\.parent\b"
    r"|\$\{?repo\}?/\.\./"
    rf"|\b{_BESIDE}/crds\b"
)


def _files() -> Iterator[Path]:
    for top in CHECKED:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and path.suffix in SUFFIXES and "__pycache__" not in path.parts:
                yield path


def test_the_pattern_catches_what_it_guards_against() -> None:
    for line in (
        f'SHARED = ROOT.parent / "{_BESIDE}" / "crds"',
        f"crds=$repo/../{_BESIDE}/crds",
        f"crds=/work/{_BESIDE}/crds",
        "cat ${repo}/../other/file",
    ):
        assert ESCAPES.search(line), line
    assert not ESCAPES.search("UPSTREAM_CRDS = ROOT / '.cache' / 'upstream-crds'")


def test_no_file_reads_outside_the_repository() -> None:
    here = Path(__file__).resolve()
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _files()
        if path.resolve() != here
        for number, line in enumerate(
            path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
        )
        if ESCAPES.search(line)
    ]
    assert len(list(_files())) > 100
    assert not found, "\n".join(found)
