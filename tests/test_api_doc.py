"""docs/API.md stays true: every public method of every `store.*` namespace is listed in its
namespace's section, with each keyword default the code has."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

import store_sql

ROOT = Path(__file__).resolve().parent.parent
API_MD = (ROOT / "docs" / "API.md").read_text(encoding="utf-8")
NAMESPACES = ["sessions", "transcripts", "checkpoints", "lifecycle", "maintenance", "search"]


def _constructors() -> dict[str, type]:
    """Each namespace property of Store and the class it makes (imported on first use)."""
    source = inspect.getsource(importlib.import_module("store_sql.store"))
    found = re.findall(
        r"def (\w+)\(self\) -> \w+API:.*?from ([\w.]+) import (\w+API)", source, re.DOTALL
    )
    return {attr: getattr(importlib.import_module(home), cls) for attr, home, cls in found}


def _section(namespace: str) -> str:
    start = API_MD.index(f"`store.{namespace}`")
    end = API_MD.find("\n## ", start)
    return API_MD[start : end if end != -1 else None]


def _methods(cls: type) -> list[tuple[str, inspect.Signature]]:
    return [
        (name, inspect.signature(fn))
        for name, fn in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    ]


def _literal(value: object) -> str | None:
    if value is None or isinstance(value, bool | int | float | str | tuple):
        return repr(value)
    return None


def _spells(token: str, value: object) -> bool:
    """`token` as docs/API.md writes a default: a Python literal (digits may hold `_`), or
    the name of a public constant holding it (`LEAF`)."""
    if token == repr(value) or getattr(store_sql, token, object()) == value:
        return True
    return isinstance(value, int) and token.replace("_", "").isdigit() and int(token) == value


def test_every_namespace_is_documented() -> None:
    assert sorted(_constructors()) == sorted(NAMESPACES)


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_every_method_and_default_is_documented(namespace: str) -> None:
    section = _section(namespace)
    cls = _constructors()[namespace]
    missing: list[str] = []
    for name, signature in _methods(cls):
        if not re.search(rf"`{name}\b|, `?{name}`", section):
            missing.append(f"{name}()")
            continue
        for param in signature.parameters.values():
            wanted = _literal(param.default)
            if param.default is inspect.Parameter.empty or wanted is None:
                continue
            spelled = re.findall(rf"\b{param.name}=(\(\)|[^,)`|\s]+)", section)
            if not spelled:
                missing.append(f"{name}({param.name}={wanted})")
            elif not any(_spells(token, param.default) for token in spelled):
                missing.append(f"{name}({param.name}={wanted}), documented as {spelled}")
    assert missing == [], f"docs/API.md, `store.{namespace}`: {missing}"
