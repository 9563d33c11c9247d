"""How library results look in the service's JSON (camelCase), and back: shared by the
routes and by the clients (the CLI) so both sides agree on every field."""

from __future__ import annotations

import dataclasses
from typing import Any

from store_sql.transcripts.appends import Appended
from store_sql.transcripts.rows import TranscriptInfo


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


_INFO_FIELDS = [f.name for f in dataclasses.fields(TranscriptInfo)]


def info_dict(info: TranscriptInfo) -> dict[str, Any]:
    """A TranscriptInfo as JSON: every field, camelCase."""
    return {camel(name): getattr(info, name) for name in _INFO_FIELDS}


def info_fields(value: dict[str, Any]) -> dict[str, Any]:
    """`info_dict`'s JSON back to TranscriptInfo's field names and order."""
    return {name: value[camel(name)] for name in _INFO_FIELDS}


def appended_item(result: Appended) -> dict[str, Any]:
    """One appended entry: `{"id", "parentId", "existed", "pos"}` (pos: its 0-based line)."""
    return {
        "id": result.id,
        "parentId": result.parent_id,
        "existed": result.existed,
        "pos": result.pos,
    }
