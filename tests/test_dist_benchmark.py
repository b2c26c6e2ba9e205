"""The remote benchmark runs (smoke test; timings are printed, never asserted)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


async def test_remote_benchmark_quick() -> None:
    result = await trio.run_process(
        [sys.executable, str(ROOT / "benchmarks" / "remote.py"), "--quick"],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        cwd=str(ROOT),
    )
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    for label in ("ping-pong round trips", "one-way throughput", "call latency"):
        assert label in out
    assert out.count("ratio") == 2
