"""`trioactors node --app`: a spec that cannot be loaded names --app and says why."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from trioactors.cli.main import main


def node_with_app(spec: str, caplog: pytest.LogCaptureFixture) -> str:
    with caplog.at_level(logging.ERROR, logger="trioactors"):
        assert main(["node", "x", "--epmd", "none", "--app", spec]) == 1
    return caplog.text


def test_syntax_error_in_the_app(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = tmp_path / "broken_app.py"
    app.write_text("async def main(node):\n    return (\n")
    text = node_with_app(f"{app}:main", caplog)
    assert f"--app {app}:main: syntax error in {app}, line 2" in text


def test_missing_module(caplog: pytest.LogCaptureFixture) -> None:
    text = node_with_app("no_such_module_xyz:main", caplog)
    assert "--app no_such_module_xyz:main: no module named 'no_such_module_xyz'" in text


def test_missing_function_and_bad_form(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = tmp_path / "app_without_main.py"
    app.write_text("x = 1\n")
    assert "has no function 'main'" in node_with_app(f"{app}:main", caplog)
    caplog.clear()
    assert "--app justaname: must be MODULE:FUNCTION" in node_with_app("justaname", caplog)


def test_app_that_raises_on_import(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = tmp_path / "raising_app.py"
    app.write_text("raise RuntimeError('no config file')\n")
    text = node_with_app(f"{app}:main", caplog)
    assert "importing it raised RuntimeError: no config file" in text
