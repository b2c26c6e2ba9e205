"""`make lint` provably covers every Python file of the repository.

ruff silently skips directories on its default exclude list (`dist/`,
`build/`, `venv/`, ...): the former `trioactors/dist/` was never linted. This
test asks ruff which files it checks and compares with the files on disk.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUFF = pathlib.Path(sys.executable).parent / "ruff"


def python_files_on_disk() -> set[pathlib.Path]:
    found: set[pathlib.Path] = set()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        # Hidden directories (.venv, .git, caches) are not the project's code.
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__pycache__"]
        found.update(pathlib.Path(dirpath, f) for f in filenames if f.endswith(".py"))
    return found


def files_ruff_checks() -> set[pathlib.Path]:
    out = subprocess.run(
        [str(RUFF), "check", "--show-files", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {pathlib.Path(line) for line in out.splitlines() if line.endswith(".py")}


def test_ruff_checks_every_python_file() -> None:
    missing = sorted(str(p.relative_to(ROOT)) for p in python_files_on_disk() - files_ruff_checks())
    assert missing == [], f"ruff does not lint: {missing} (see [tool.ruff] exclude)"
