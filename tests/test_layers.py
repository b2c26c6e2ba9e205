"""The package's layers import one way, and nothing imports in a cycle.

wire (pure protocols, no trio) <- runtime <- otp <- cluster <- cli, with
`epmd` (daemon and client) depending on `wire` only: it sits below `cluster`
because discovery is an EPMD client. `errors` is the base every layer uses.
Imports under ``if TYPE_CHECKING:`` must respect the layers too, but they are
not run, so they may close a cycle (back-references for annotations).
"""

from __future__ import annotations

import ast
import pathlib
import re
import sys
import tomllib
from collections.abc import Iterator

import attrs
import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "trioactors"

#: What each top-level part of the package may import (besides itself).
ALLOWED: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "wire": frozenset({"errors"}),
    "runtime": frozenset({"errors", "wire"}),
    "otp": frozenset({"errors", "wire", "runtime"}),
    "epmd": frozenset({"errors", "wire"}),
    "cluster": frozenset({"errors", "wire", "runtime", "otp", "epmd"}),
    "cli": frozenset({"errors", "wire", "runtime", "otp", "epmd", "cluster", "__init__"}),
    "__init__": frozenset({"errors", "wire", "runtime", "otp", "epmd", "cluster"}),
    "__main__": frozenset({"cli"}),
}

#: Third-party packages that the pure wire layer must never import.
NOT_IN_WIRE = frozenset({"trio", "trio_util", "outcome"})


@attrs.frozen
class Import:
    """One import statement: who imports what, and whether it runs."""

    module: str  # dotted name inside the package, e.g. "runtime.system"
    target: str  # dotted absolute name, e.g. "trioactors.wire.terms" or "trio"
    runtime: bool  # False under `if TYPE_CHECKING:`
    line: int


def module_name(root: pathlib.Path, path: pathlib.Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(root: pathlib.Path, path: pathlib.Path) -> Iterator[Import]:
    """Every import in `path`, resolved to absolute dotted names."""
    module = module_name(root, path)
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))

    def walk(nodes: list[ast.stmt], runtime: bool) -> Iterator[Import]:
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(module, alias.name, runtime, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ["trioactors", *package.split(".")] if package else ["trioactors"]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                    if node.module is None:
                        # `from . import x` imports submodule x of the package.
                        for alias in node.names:
                            yield Import(module, f"{target}.{alias.name}", runtime, node.lineno)
                        continue
                else:
                    target = node.module or ""
                yield Import(module, target, runtime, node.lineno)
            elif isinstance(node, ast.If):
                inner = runtime and not _is_type_checking(node.test)
                yield from walk(node.body, inner)
                yield from walk(node.orelse, runtime)
            elif isinstance(node, ast.Try):
                yield from walk(node.body, runtime)
                for handler in node.handlers:
                    yield from walk(handler.body, runtime)
                yield from walk(node.orelse, runtime)
                yield from walk(node.finalbody, runtime)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                yield from walk(node.body, runtime)
            elif isinstance(node, ast.With | ast.AsyncWith | ast.For | ast.While):
                yield from walk(node.body, runtime)

    yield from walk(tree.body, True)


def all_imports(root: pathlib.Path) -> list[Import]:
    return [imp for path in sorted(root.rglob("*.py")) for imp in imports_of(root, path)]


def layer_of(module: str) -> str:
    return module.split(".")[0]


def resolve(target: str, modules: set[str]) -> str:
    """The package module an import of `target` loads: ``from .x import name``
    may name a module or a value in x, so the longest prefix that is a module
    (the package itself, ``__init__``, when none is)."""
    inner = target.removeprefix("trioactors").lstrip(".")
    while inner and inner not in modules:
        inner = inner.rpartition(".")[0]
    return inner or "__init__"


def layer_violations(imports: list[Import], modules: set[str]) -> list[str]:
    found = []
    for imp in imports:
        layer = layer_of(imp.module)
        if imp.target == "trioactors" or imp.target.startswith("trioactors."):
            to = layer_of(resolve(imp.target, modules))
            if to != layer and to not in ALLOWED[layer]:
                found.append(f"{imp.module}:{imp.line} imports {imp.target} ({layer} -> {to})")
        elif layer == "wire" and imp.target.split(".")[0] in NOT_IN_WIRE:
            found.append(f"{imp.module}:{imp.line} imports {imp.target} (wire must stay sans-IO)")
    return found


def import_cycles(imports: list[Import], modules: set[str]) -> list[list[str]]:
    """Cycles among imports that run (TYPE_CHECKING ones excluded)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for imp in imports:
        if not imp.runtime or not imp.target.startswith("trioactors."):
            continue
        target = resolve(imp.target, modules)
        if target != imp.module and target in graph:
            graph[imp.module].add(target)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append([*stack[stack.index(n) :], n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return cycles


def modules_of(root: pathlib.Path) -> set[str]:
    return {module_name(root, p) for p in root.rglob("*.py")}


def test_layers_import_one_way() -> None:
    assert layer_violations(all_imports(PACKAGE), modules_of(PACKAGE)) == []


def test_no_import_cycle() -> None:
    assert import_cycles(all_imports(PACKAGE), modules_of(PACKAGE)) == []


def test_every_part_of_the_package_has_a_layer() -> None:
    assert {layer_of(m) for m in modules_of(PACKAGE)} <= set(ALLOWED)


@pytest.fixture
def fake_package(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "trioactors"
    for sub in ("wire", "runtime", "otp"):
        (root / sub).mkdir(parents=True)
        (root / sub / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    return root


def test_checker_finds_an_upward_import_and_trio_in_wire(fake_package: pathlib.Path) -> None:
    (fake_package / "wire" / "codec.py").write_text(
        "import trio\nfrom ..runtime.system import System\n"
    )
    (fake_package / "runtime" / "system.py").write_text("from ..wire import codec\n")
    found = layer_violations(all_imports(fake_package), modules_of(fake_package))
    assert found == [
        "wire.codec:1 imports trio (wire must stay sans-IO)",
        "wire.codec:2 imports trioactors.runtime.system (wire -> runtime)",
    ]


def test_checker_finds_a_cycle_but_not_a_type_checking_one(fake_package: pathlib.Path) -> None:
    (fake_package / "otp" / "a.py").write_text("from .b import x\n")
    (fake_package / "otp" / "b.py").write_text("from . import a\n")
    (fake_package / "otp" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .d import y\n"
    )
    (fake_package / "otp" / "d.py").write_text("from .c import z\n")
    cycles = import_cycles(all_imports(fake_package), modules_of(fake_package))
    assert cycles == [["otp.a", "otp.b", "otp.a"]]


def test_dependencies_are_what_the_package_imports() -> None:
    """pyproject lists every third-party package trioactors imports, and
    nothing it never imports."""
    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    declared = {
        re.split(r"[<>=!~ \[;]", dep, maxsplit=1)[0].lower().replace("-", "_")
        for dep in project["dependencies"]
    }
    imported = {
        imp.target.split(".")[0]
        for imp in all_imports(PACKAGE)
        if imp.runtime and imp.target and not imp.target.startswith("trioactors")
    } - set(sys.stdlib_module_names)
    assert imported == declared
