"""The package's tree is its architecture: a few modules at the top, one folder per concept,
no import cycles, one public surface."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "store_sql"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, known: set[str]) -> set[str]:
    """The store_sql modules `path` imports, TYPE_CHECKING and function-level imports too."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return {m for m in found if m in known}


def test_at_most_eight_modules_at_the_top() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 8, top


def test_every_concept_is_a_folder_that_says_what_it_is() -> None:
    for concept in [
        "engine",
        "schema",
        "sessions",
        "transcripts",
        "checkpoints",
        "lifecycle",
        "maintenance",
        "search",
        "importer",
        "exporter",
        "formats",
        "admin",
        "cli",
        "",
    ]:
        init = PACKAGE / concept / "__init__.py"
        assert init.is_file(), concept
        assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), concept


def test_pyproject_lists_every_package_folder() -> None:
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"
    ]["packages"]
    folders = {_module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py")} | {
        "store_sql._migrations",
        "store_sql._migrations.versions",
    }
    assert sorted(listed) == sorted(folders)


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {name: _imports(path, set(modules)) - {name} for name, path in modules.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert cycles == []


def test_public_names_say_store_sql() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import store_sql; print(store_sql.Store.__module__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == "store_sql\n"


def test_importing_the_package_loads_no_module_of_its_own_but_the_errors() -> None:
    """`store-sql` starts (and handles Ctrl-C) before it loads what its command needs: the
    package imports a public name's module when the name is first used. Every public name
    resolves and says `store_sql`."""
    code = (
        "import sys, store_sql\n"
        "print(sorted(m for m in sys.modules if m.startswith('store_sql')))\n"
        "print(sorted(n for n in store_sql.__all__ "
        "if getattr(getattr(store_sql, n), '__module__', 'store_sql') != 'store_sql'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["['store_sql', 'store_sql.errors']", "[]"]


def test_the_package_stands_on_its_own() -> None:
    pattern = re.compile(r"issue [0-9]|shared/")
    hits = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []
