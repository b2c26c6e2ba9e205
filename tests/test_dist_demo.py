"""The distributed demo runs to the end and tells the story it promises."""

from __future__ import annotations

import pytest

from trioactors.cli.demo_cluster import run_distributed_demo


async def test_distributed_demo(capsys: pytest.CaptureFixture[str]) -> None:
    await run_distributed_demo(pause=0)
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
