"""The cluster demo (examples/demo_cluster.py, what `make demo` runs) runs to
the end and tells the story it promises."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_distributed_demo(capsys: pytest.CaptureFixture[str]) -> None:
    await load_example("demo_cluster").run_distributed_demo(pause=0)
    out = capsys.readouterr().out
    assert "london <- NodeUp(node='paris')" in out
    assert "says hello back" in out
    assert "('deposit', 32)) -> 42" in out
    assert "reason='shutdown'" in out
    assert "NodeDown(node='tokyo'" in out
    assert "EPMD now lists ['london', 'paris']" in out
    # The global service ran on tokyo, then moved to paris under the same name.
    assert "call(clock, 'now') -> 'the time, from tokyo'" in out
    assert "call(clock, 'now') -> 'the time, from paris'" in out
    assert "['london', 'london', 'paris', 'paris', 'tokyo', 'tokyo']" in out
    assert "group 'workers' now: ['london', 'london', 'paris', 'paris']" in out
    assert "whereis_global('clock') -> None" in out
    assert out.rstrip().endswith("to run nodes as separate processes.")


def test_local_demo_in_process() -> None:
    lines: list[str] = []
    assert load_example("demo_local").run_local_demo(pause=0, out=lines.append) == 0
    text = "\n".join(lines)
    assert "one_for_all" in text and "terminate('shutdown')" in text


def test_local_demo_narrates_and_exits_0() -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo_local.py"), "--pause", "0.05"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "crash" in proc.stdout and "restarted the bank" in proc.stdout
    assert proc.stdout.rstrip().endswith("Bye!")
    # The demo narrates crashes itself: no crash reports unless asked for.
    assert "Traceback" not in proc.stderr


def test_local_demo_with_log_level_shows_crash_reports() -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo_local.py"), "--pause", "0", "--log-level", "error"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert "crashed" in proc.stderr and "Traceback" in proc.stderr
