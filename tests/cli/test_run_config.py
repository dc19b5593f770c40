"""`run` on an invalid configuration: exit 2 on a terminal, the safe default in a cluster."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from finops_operator.cli.run import choose_configuration
from finops_operator.domain.config import Mode, safe_default
from finops_operator.errors import ConfigError


@pytest.fixture
def typo(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("mode: enforced\n")
    return path


def test_on_a_terminal_an_invalid_file_exits_2_naming_the_key(typo: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "finops_operator.cli", "run", "--config", str(typo)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "mode" in done.stderr and "Traceback" not in done.stderr


def test_without_the_safe_default_the_error_is_raised(typo: Path) -> None:
    with pytest.raises(ConfigError, match="mode"):
        choose_configuration(str(typo), safe_default_when_invalid=False)


def test_with_the_safe_default_the_problem_is_logged_at_error(
    typo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="finops_operator"):
        config, problem = choose_configuration(str(typo), safe_default_when_invalid=True)
    assert config == safe_default() and config.mode is Mode.AUDIT
    assert problem is not None and "mode" in problem
    assert "SAFE DEFAULT" in caplog.text and "mode" in caplog.text


def test_a_valid_file_is_served_as_is(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("mode: enforce\n")
    config, problem = choose_configuration(str(path), safe_default_when_invalid=True)
    assert config.mode is Mode.ENFORCE and problem is None
