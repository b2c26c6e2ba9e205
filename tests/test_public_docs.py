"""Every public name has a docstring: the package's exports, and the public
methods and properties of the exported classes."""

from __future__ import annotations

import inspect

import pytest

import trioactors as ta


def undocumented() -> list[str]:
    missing: list[str] = []
    for name in ta.__all__:
        obj = getattr(ta, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue  # constants and aliases: documented where they are defined
        if not (obj.__doc__ or "").strip():
            missing.append(name)
        if not inspect.isclass(obj):
            continue
        for attr, value in vars(obj).items():
            if attr.startswith("_"):
                continue
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if inspect.isfunction(value) or isinstance(value, property):
                if not (value.__doc__ or "").strip():
                    missing.append(f"{name}.{attr}")
    return missing


def test_every_public_name_has_a_docstring() -> None:
    assert undocumented() == []


def test_the_check_sees_a_missing_docstring(monkeypatch: pytest.MonkeyPatch) -> None:
    class Bare:
        def method(self) -> None:
            pass

    monkeypatch.setattr(ta, "Bare", Bare, raising=False)
    monkeypatch.setattr(ta, "__all__", [*ta.__all__, "Bare"])
    assert undocumented() == ["Bare", "Bare.method"]
