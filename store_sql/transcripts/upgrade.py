"""Migrating a v1/v2 transcript to v3, as pi does when it loads one, into a new version.

The migrated lines are the ones reads already show (legacy.py: the same migration, the same
derived ids), written as pi's rewrite of the file writes them (JSON.stringify of the migrated
objects, numbers in JavaScript's spelling). The original transcript is kept, superseded by the
new one; damaged and blank lines are carried over verbatim where pi would drop them, so
nothing is lost.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from store_sql.errors import InvalidEntryError
from store_sql.formats import jsjson
from store_sql.formats.sqltext import text_or_none
from store_sql.transcripts.legacy import migrate_values
from store_sql.transcripts.reads import StoredEntry, all_entries
from store_sql.transcripts.rows import (
    LineRow,
    TranscriptInfo,
    get_info,
    insert_lines,
    insert_transcript,
    stored_line,
)


def migrate_to_v3(conn: sqlite3.Connection, transcript_id: int) -> TranscriptInfo:
    """Write the v3 form of a transcript as a new version and supersede the old one."""
    old = get_info(conn, transcript_id)
    check_migratable(old)
    rows = migrated_rows(all_entries(conn, transcript_id))
    new_id = insert_transcript(conn, **v3_transcript(old))
    insert_lines(conn, new_id, rows, ends_with_newline=old.ends_with_newline)
    conn.execute(
        "UPDATE transcripts SET superseded_by = ? WHERE transcript_id = ?", (new_id, transcript_id)
    )
    return get_info(conn, new_id)


def check_migratable(old: TranscriptInfo) -> None:
    """Refuse to migrate a superseded or already-v3 transcript."""
    if old.superseded_by is not None:
        raise InvalidEntryError(
            f"transcript {old.transcript_id} is superseded; migrate the current one"
        )
    version = old.version or 1
    if version >= 3:
        raise InvalidEntryError(f"{old.file_name} is already a v{version} transcript")


def v3_transcript(old: TranscriptInfo) -> dict[str, Any]:
    """The `insert_transcript` arguments of the v3 version: the old transcript's, but v3."""
    return {
        "agent_id": old.agent_id,
        "rel_dir": old.rel_dir,
        "session_id": old.session_id,
        "kind": old.kind,
        "file_name": old.file_name,
        "version": 3,
        "parent_session": old.parent_session,
        "topic": old.topic,
        "archived_at": old.archived_at,
    }


def migrated_rows(lines: list[StoredEntry]) -> list[LineRow]:
    """The rows of the v3 version of a transcript's lines (in file order)."""
    _, new_values = migrate_values(lines)
    rows: list[LineRow] = []
    pos_of: dict[str, int] = {}
    for line in lines:
        value = new_values.get(line.pos)
        if value is None:
            rows.append(LineRow(line.pos, stored_line(line.raw), line.kind, None, None, None, None,
                                None, None, None, len(line.raw), line.damage))  # fmt: skip
            continue
        raw = jsjson.dumps(value).encode("utf-8", "surrogatepass")
        is_header = value.get("type") == "session" and line.kind == "header"
        entry_id = text_or_none(value.get("id"))
        parent_id = text_or_none(value.get("parentId"))
        message = value.get("message")
        key = message.get("idempotencyKey") if isinstance(message, dict) else None
        rows.append(
            LineRow(
                pos=line.pos,
                line=stored_line(raw),
                kind="header" if is_header else "entry",
                entry_id=entry_id,
                parent_id=parent_id,
                parent_pos=None if parent_id is None else pos_of.get(parent_id),
                type=text_or_none(value.get("type")),
                role=text_or_none(message.get("role")) if isinstance(message, dict) else None,
                timestamp=value.get("timestamp")
                if isinstance(value.get("timestamp"), str)
                else None,
                idempotency_key=text_or_none(key),
                byte_size=len(raw),
                damage=None,
            )
        )
        if entry_id is not None and not is_header:
            pos_of[entry_id] = line.pos
    return rows
