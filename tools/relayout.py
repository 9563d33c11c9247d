#!/usr/bin/env python3
"""Rewrite imports of store_sql's flat module names to the concept folders.

    python3 tools/relayout.py [PATH ...]     # default: store_sql tests tools migrations docs

The package moved from one flat folder to one folder per concept; `MOVES` maps each old
module to its new dotted name. The rewrite is idempotent: a line already in the new form
is left alone, so it can run again over a branch that still imports old names.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MOVES = {
    "sessions": "sessions.rows",
    "session_api": "sessions.api",
    "session_columns": "sessions.columns",
    "transcripts": "transcripts.rows",
    "transcript_api": "transcripts.api",
    "transcript_appends": "transcripts.appends",
    "transcript_append_groups": "transcripts.appends",
    "entry_lines": "transcripts.entry_lines",
    "transcript_reads": "transcripts.reads",
    "transcript_dump": "transcripts.file_bytes",
    "transcript_upgrade": "transcripts.upgrade",
    "context": "transcripts.context",
    "render": "transcripts.render",
    "checkpoints": "checkpoints.entries",
    "checkpoint_api": "checkpoints.api",
    "checkpoint_forks": "checkpoints.forks",
    "checkpoint_snapshots": "checkpoints.snapshots",
    "lifecycle": "lifecycle.rows",
    "lifecycle_api": "lifecycle.api",
    "maintenance": "maintenance.plan",
    "maintenance_api": "maintenance.api",
    "maintenance_policy": "maintenance.policy",
    "maintenance_steps": "maintenance.steps",
    "search": "search.query",
    "search_api": "search.api",
    "search_index": "search.indexer",
    "search_text": "search.entry_text",
    "importer": "importer.api",
    "import_files": "importer.rows",
    "import_index": "importer.session_index",
    "import_lines": "importer.chunks",
    "import_plan": "importer.plan",
    "import_report": "importer.report",
    "import_sources": "importer.sources",
    "zstd_stream": "formats.zstd_stream",
    "exporter": "exporter.api",
    "export_plan": "exporter.plan",
    "verify": "exporter.verify",
    "schema": "schema.tables",
    "schema_sql": "schema.extra_sql",
    "sql_console": "admin.sql_console",
    "stats": "admin.stats",
    "doctor": "admin.doctor",
    "wal_files": "admin.wal_files",
    "sqltext": "formats.sqltext",
}

# The submodules of each new package: `store_sql.<pkg>.<sub>` is already the new form.
SUBMODULES: dict[str, set[str]] = {}
for _new in MOVES.values():
    _pkg, _sub = _new.split(".")
    SUBMODULES.setdefault(_pkg, set()).add(_sub)
for _pkg in ("engine", "formats", "cli"):
    SUBMODULES.setdefault(_pkg, set())

_NAME = "|".join(sorted(MOVES, key=len, reverse=True))
_FROM_MODULE = re.compile(rf"\bfrom store_sql\.({_NAME}) import (\(?\s*)(\w+)", re.MULTILINE)
_FROM_PACKAGE = re.compile(r"^(\s*)from store_sql import ([^\n(]+|\([^)]*\))\n", re.MULTILINE)
_DOTTED = re.compile(rf"\bstore_sql\.({_NAME})\b(\.(\w+))?")
_PATH = re.compile(rf"\bstore_sql/({_NAME})\.py\b")


def _is_new_form(old: str, following: str | None) -> bool:
    return old in SUBMODULES and following is not None and following in SUBMODULES[old]


def _from_module(match: re.Match[str]) -> str:
    old, gap, first = match.group(1), match.group(2), match.group(3)
    if _is_new_form(old, first):
        return match.group(0)
    return f"from store_sql.{MOVES[old]} import {gap}{first}"


def _from_package(match: re.Match[str]) -> str:
    indent, body = match.group(1), match.group(2)
    names = [n.strip() for n in body.strip("()").replace("\n", " ").split(",") if n.strip()]
    kept: list[str] = []
    moved: list[str] = []
    for item in names:
        parts = item.split(" as ")
        name, alias = parts[0].strip(), (parts[1].strip() if len(parts) > 1 else None)
        if name in MOVES:
            pkg, sub = MOVES[name].split(".")
            moved.append(f"{indent}from store_sql.{pkg} import {sub} as {alias or name}\n")
        else:
            kept.append(item)
    if not moved:
        return match.group(0)
    head = f"{indent}from store_sql import {', '.join(kept)}\n" if kept else ""
    return head + "".join(moved)


def _dotted(match: re.Match[str]) -> str:
    old, tail, following = match.group(1), match.group(2) or "", match.group(3)
    if _is_new_form(old, following):
        return match.group(0)
    if old in SUBMODULES and following is None:
        # `store_sql.sessions` alone may already name the package: only `from ... import`
        # lines (handled above) say which one is meant.
        return match.group(0)
    return f"store_sql.{MOVES[old]}{tail}"


def rewrite(text: str) -> str:
    text = _FROM_MODULE.sub(_from_module, text)
    text = _FROM_PACKAGE.sub(_from_package, text)
    text = _DOTTED.sub(_dotted, text)
    return _PATH.sub(lambda m: f"store_sql/{MOVES[m.group(1)].replace('.', '/')}.py", text)


def main(argv: list[str]) -> None:
    roots = [Path(a) for a in argv] or [
        ROOT / d for d in ("store_sql", "tests", "tools", "migrations", "docs")
    ] + [ROOT / "README.md"]
    for root in roots:
        files = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in files:
            if path.suffix not in {".py", ".md", ".ini", ".toml", ".json"} or ".venv" in path.parts:
                continue
            if path.resolve() == Path(__file__).resolve():
                continue
            text = path.read_text(encoding="utf-8")
            new = rewrite(text)
            if new != text:
                path.write_text(new, encoding="utf-8")
                print(f"rewrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
