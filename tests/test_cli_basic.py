"""The `trioactors` command: --version, --help, --log-level, and the local demo."""

from __future__ import annotations

import subprocess
import sys

import pytest

import trioactors as ta
from trioactors.cli.demo import run_local_demo
from trioactors.cli.main import build_parser, main


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


def test_help_lists_demo() -> None:
    proc = cli("--help")
    assert proc.returncode == 0
    assert "demo" in proc.stdout and "--log-level" in proc.stdout


def test_subcommand_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--local" in out and "--log-level" in out
    with pytest.raises(SystemExit) as info:
        main(["demo", "--version"])
    assert info.value.code == 0


def test_bad_log_level_is_a_usage_error() -> None:
    proc = cli("--log-level", "loud", "demo")
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_demo_parser_defaults() -> None:
    args = build_parser().parse_args(["demo", "--local"])
    assert args.local and args.pause == 0.4


def test_demo_command_runs_and_exits_0() -> None:
    proc = cli("demo", "--local", "--pause", "0.05")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "crash" in out and "restarted the bank" in out
    assert out.rstrip().endswith("Bye!")


def test_demo_with_log_level_shows_crash_reports() -> None:
    proc = cli("--log-level", "error", "demo", "--local", "--pause", "0")
    assert proc.returncode == 0
    assert "crashed" in proc.stderr and "Traceback" in proc.stderr


def test_plain_demo_command_exits_0() -> None:
    proc = cli("demo", "--pause", "0")
    assert proc.returncode == 0, proc.stderr


def test_run_local_demo_in_process() -> None:
    lines: list[str] = []
    assert run_local_demo(pause=0, out=lines.append) == 0
    text = "\n".join(lines)
    assert "one_for_all" in text and "terminate('shutdown')" in text
