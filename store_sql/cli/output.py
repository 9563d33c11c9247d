"""How every command prints: a human form by default, `--json` for machines.

Each command builds one plain value (dicts, lists, scalars) and hands it here, so the JSON
and the human form always say the same thing."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import orjson


def plain(value: Any) -> Any:
    """Dataclasses and tuples turned into JSON-ready dicts and lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def emit_json(value: Any, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    stream.write(
        orjson.dumps(plain(value), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    )
    stream.write("\n")


def emit_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], out: TextIO | None = None
) -> None:
    """A plain aligned text table (no box drawing, so it pastes well)."""
    stream = out or sys.stdout
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    stream.write(
        "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n"
    )
    for r in cells:
        stream.write("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n")


def _cell(value: Any, limit: int = 60) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def emit(value: Any, as_json: bool, human: str | None = None) -> None:
    """JSON when asked, else the human text (or an indented JSON rendering of the value)."""
    if as_json or human is None:
        emit_json(value)
    else:
        sys.stdout.write(human if human.endswith("\n") else human + "\n")
