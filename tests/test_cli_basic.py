"""The `trioactors` command: --version, --help, --log-level."""

from __future__ import annotations

import subprocess
import sys

import pytest

import trioactors as ta
from trioactors.cli.main import main


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trioactors", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_version() -> None:
    proc = cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"trioactors {ta.__version__}"


def test_help_lists_the_commands() -> None:
    proc = cli("--help")
    assert proc.returncode == 0
    for command in ("epmd", "nodes", "node", "ping", "--log-level"):
        assert command in proc.stdout


def test_subcommand_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["nodes", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--epmd" in out and "--log-level" in out
    with pytest.raises(SystemExit) as info:
        main(["nodes", "--version"])
    assert info.value.code == 0


def test_bad_log_level_is_a_usage_error() -> None:
    proc = cli("--log-level", "loud", "nodes")
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out
