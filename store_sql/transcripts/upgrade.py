"""Migrating a v1/v2 transcript to v3, as pi does when it loads one, into a new version.

pi mutates the parsed objects in place and rewrites the file, so new keys land at the end of
each object: the header gains `version`, each entry `id` and `parentId` (v1 -> v2), a
compaction's `firstKeptEntryIndex` (an index into the parsed entries, header = 0) becomes
`firstKeptEntryId`, and role `hookMessage` becomes `custom` (v2 -> v3). The original
transcript is kept, superseded by the new one; damaged and blank lines are carried over
verbatim where pi would drop them, so nothing is lost.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from store_sql.errors import InvalidEntryError
from store_sql.formats import jsjson
from store_sql.formats.sqltext import text_or_none
from store_sql.transcripts.reads import StoredEntry, all_entries
from store_sql.transcripts.rows import (
    LineRow,
    TranscriptInfo,
    get_info,
    insert_lines,
    insert_transcript,
    new_entry_id,
    stored_line,
)


def migrate_to_v3(conn: sqlite3.Connection, transcript_id: int) -> TranscriptInfo:
    """Write the v3 form of a transcript as a new version and supersede the old one."""
    old = get_info(conn, transcript_id)
    if old.superseded_by is not None:
        raise InvalidEntryError(
            f"transcript {transcript_id} is superseded; migrate the current one"
        )
    version = old.version or 1
    if version >= 3:
        raise InvalidEntryError(f"{old.file_name} is already a v{version} transcript")
    lines = all_entries(conn, transcript_id)
    parsed: list[tuple[StoredEntry, dict[str, Any]]] = [
        (line, value)
        for line in lines
        if line.kind in ("header", "entry") and isinstance(value := jsjson.loads(line.raw), dict)
    ]
    taken: set[str] = set()
    if version < 2:
        prev: str | None = None
        objects = [value for _, value in parsed]
        for value in objects:
            if value.get("type") == "session":
                value["version"] = 2
                continue
            value["id"] = new_entry_id(taken.__contains__)
            taken.add(value["id"])
            value["parentId"] = prev
            prev = value["id"]
        for value in objects:
            index = value.get("firstKeptEntryIndex")
            if value.get("type") == "compaction" and "firstKeptEntryIndex" in value:
                if (
                    isinstance(index, int)
                    and not isinstance(index, bool)
                    and 0 <= index < len(objects)
                ):
                    target = objects[index]
                    if target.get("type") != "session":
                        value["firstKeptEntryId"] = target["id"]
                del value["firstKeptEntryIndex"]
    for _, value in parsed:
        if value.get("type") == "session":
            value["version"] = 3
        elif value.get("type") == "message":
            message = value.get("message")
            if isinstance(message, dict) and message.get("role") == "hookMessage":
                message["role"] = "custom"
    new_values = {line.pos: value for line, value in parsed}
    new_id = insert_transcript(
        conn,
        agent_id=old.agent_id,
        rel_dir=old.rel_dir,
        session_id=old.session_id,
        kind=old.kind,
        file_name=old.file_name,
        version=3,
        parent_session=old.parent_session,
        topic=old.topic,
        archived_at=old.archived_at,
    )
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
    insert_lines(conn, new_id, rows, ends_with_newline=old.ends_with_newline)
    conn.execute(
        "UPDATE transcripts SET superseded_by = ? WHERE transcript_id = ?", (new_id, transcript_id)
    )
    return get_info(conn, new_id)
