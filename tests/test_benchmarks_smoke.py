"""benchmarks/local.py --quick runs to the end (figures are never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "local.py"


def test_local_benchmark_quick_run() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for figure in ("1. one-way", "2. ping-pong", "3. gen_server call", "4. spawn", "memory"):
        assert figure in proc.stdout


def test_peers_benchmark_quick_run() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH.parent / "peers.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for figure in ("1. bare trio", "2. one node", "peers:", "speed-up"):
        assert figure in proc.stdout


ETF_BENCH = BENCH.parent / "etf.py"


def test_etf_benchmark_quick_run() -> None:
    proc = subprocess.run(
        [sys.executable, str(ETF_BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for figure in ("reg_send control", "gen_server call", "list of 1000 tuples", "cbor2/s"):
        assert figure in proc.stdout
