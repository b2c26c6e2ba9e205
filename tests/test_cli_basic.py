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
    for command in ("demo", "epmd", "nodes", "node", "ping", "--log-level"):
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


def test_demo_command_runs_the_examples() -> None:
    proc = cli("demo", "--local", "--pause", "0")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("Bye!")
    proc = cli("demo", "--pause", "0")
    assert proc.returncode == 0, proc.stderr
    assert "to run nodes as separate processes." in proc.stdout


def test_demo_without_a_source_tree_says_where_it_is(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import trioactors.cli.demo as demo

    monkeypatch.setattr(demo, "find_example", lambda name: None)
    assert main(["demo"]) == 1
    assert "examples/demo_cluster.py" in caplog.text and "make demo" in caplog.text
