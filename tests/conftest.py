"""Shared fixtures for the local runtime tests."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

import trioactors as ta


@pytest.fixture
async def system() -> AsyncIterator[ta.ActorSystem]:
    """A fresh actor system, shut down after the test."""
    async with ta.open_actor_system(shutdown_timeout=2.0) as s:
        yield s


@pytest.fixture
def crash_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """caplog capturing the "trioactors" logger at ERROR."""
    caplog.set_level(logging.ERROR, logger="trioactors")
    return caplog


def crash_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The crash reports logged so far."""
    return [r for r in caplog.records if r.name == "trioactors" and "crashed" in r.getMessage()]
