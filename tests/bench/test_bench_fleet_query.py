"""The parts of bench/fleet_query.py that decide its figures without running a fleet.

The bench itself (a month imported, ten Prometheus servers, sidecars and Thanos Query)
stays out of the suite; docs/benchmarks.md has its figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fleet_query import link_blocks, main


def test_a_cluster_gets_hard_links_of_the_blocks_and_nothing_else(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    block = source / "01BLOCK"
    (block / "chunks").mkdir(parents=True)
    (block / "meta.json").write_text("{}")
    (block / "chunks" / "000001").write_bytes(b"chunk")
    (source / "wal").mkdir()  # the source's own head: not a block
    (source / "lock").write_text("")
    target.mkdir()
    assert link_blocks(source, target) == 1
    assert sorted(p.name for p in target.iterdir()) == ["01BLOCK"]
    copied = target / "01BLOCK" / "chunks" / "000001"
    assert copied.stat().st_ino == (block / "chunks" / "000001").stat().st_ino


def test_without_a_thanos_binary_it_says_so_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--thanos", str(tmp_path / "missing")]) == 2
    assert "scripts/build-thanos.sh" in capsys.readouterr().err


@pytest.mark.parametrize("sizes", [["0"], ["2", "65"], ["-1"]])
def test_a_fleet_size_out_of_range_is_a_usage_error(sizes: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--clusters", *sizes])
    assert exit_.value.code == 2
