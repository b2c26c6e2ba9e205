"""Every examples/*.py runs to completion by itself (exit 0 within 60 s).

Arguments come from an optional header line in the script:
``# example-args: --foo 1``.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ARGS_PREFIX = "# example-args:"


def example_args(path: Path) -> list[str]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(ARGS_PREFIX):
            return shlex.split(line[len(ARGS_PREFIX) :])
    return []


def test_examples_exist() -> None:
    names = {p.name for p in EXAMPLES.glob("*.py")}
    assert {"local_actors.py", "local_gen_server.py", "local_supervision.py"} <= names


def test_example_args_header(tmp_path: Path) -> None:
    script = tmp_path / "x.py"
    script.write_text('"""doc"""\n\n# example-args: --n 3 --name "a b"\nprint()\n')
    assert example_args(script) == ["--n", "3", "--name", "a b"]
    script.write_text("print()\n")
    assert example_args(script) == []


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_example_runs(path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(path), *example_args(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=EXAMPLES.parent,
    )
    assert proc.returncode == 0, f"{path.name} failed:\n{proc.stdout}\n{proc.stderr}"
