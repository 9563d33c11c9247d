"""Appending entries to a transcript (FORMATS.md §3): ids, parents, idempotency.

One writer serialises appends, so reading the leaf and inserting the new lines happen in
one transaction: an append is O(1) in the transcript's size and concurrent appenders form
a chain. Lines are written exactly as pi's SessionManager writes them (JSON.stringify, its
field order).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from store_sql.errors import InvalidEntryError, NotFoundError
from store_sql.formats import jsjson
from store_sql.search_text import entry_search_text
from store_sql.sqltext import text_or_none
from store_sql.transcripts import (
    LineRow,
    TranscriptInfo,
    get_info,
    insert_lines,
    new_entry_id,
    now_iso,
    resolve_parent_pos,
)

LEAF: Final = "<leaf>"
"""Append as a child of the current leaf (the default)."""


@dataclass(frozen=True, slots=True)
class Appended:
    """The result of appending one entry."""

    id: str
    pos: int
    existed: bool
    """True when an entry with the same idempotency key was already there (nothing written)."""


# pi writes `custom` and `custom_message` entries with their payload before the tree fields
# (SessionManager.appendCustomEntry / appendCustomMessageEntry); every other type after them.
_PAYLOAD_FIRST = frozenset({"custom", "custom_message"})


def _entry_object(
    fields: Mapping[str, Any], entry_id: str, parent_id: str | None, timestamp: str
) -> dict[str, Any]:
    kind = fields.get("type")
    if not isinstance(kind, str) or not kind:
        raise InvalidEntryError(f"an entry needs a non-empty string 'type', got {kind!r}")
    for reserved in ("id", "parentId"):
        if reserved in fields:
            raise InvalidEntryError(
                f"entries get their {reserved!r} from the store; remove it from the entry"
            )
    payload = {k: v for k, v in fields.items() if k not in ("type", "timestamp")}
    tree = {"id": entry_id, "parentId": parent_id, "timestamp": timestamp}
    if kind in _PAYLOAD_FIRST:
        return {"type": kind, **payload, **tree}
    return {"type": kind, **tree, **payload}


def _new_id(conn: sqlite3.Connection, transcript_id: int, taken: set[str]) -> str:
    """A new id, unique among this transcript's entries and this append's."""

    def is_taken(candidate: str) -> bool:
        if candidate in taken:
            return True
        row = conn.execute(
            "SELECT 1 FROM transcript_lines WHERE transcript_id = ? AND entry_id = ? LIMIT 1",
            (transcript_id, candidate),
        ).fetchone()
        return row is not None

    return new_entry_id(is_taken)


def _idempotency_key(fields: Mapping[str, Any]) -> str | None:
    message = fields.get("message")
    if fields.get("type") == "message" and isinstance(message, Mapping):
        return text_or_none(message.get("idempotencyKey"))
    return None


def find_by_idempotency_key(
    conn: sqlite3.Connection, transcript_id: int, key: str
) -> tuple[str | None, int] | None:
    # `+pos`: without it SQLite may walk the (transcript_id, pos) index to avoid a sort and
    # scan the whole transcript (38-68 ms at 100,000 lines) instead of the key index.
    row = conn.execute(
        "SELECT entry_id, pos FROM transcript_lines WHERE transcript_id = ? "
        "AND idempotency_key = ? ORDER BY +pos LIMIT 1",
        (transcript_id, key),
    ).fetchone()
    return None if row is None else (row[0], int(row[1]))


def append_entries(
    conn: sqlite3.Connection,
    transcript: int | TranscriptInfo,
    entries: Sequence[Mapping[str, Any]],
    *,
    parent_id: str | None = LEAF,
    full_text: bool = True,
) -> list[Appended]:
    """Append entries as a chain: the first is a child of the leaf (or of `parent_id`;
    None starts a new root), each next one a child of the previous.

    An entry whose `message.idempotencyKey` is already in the transcript is not written; its
    result names the existing entry, and the chain goes on from the new entries only."""
    # A caller that just resolved the transcript passes its info: one query less per append.
    info = transcript if isinstance(transcript, TranscriptInfo) else get_info(conn, transcript)
    transcript_id = info.transcript_id
    if info.superseded_by is not None:
        raise InvalidEntryError(
            f"transcript {transcript_id} was superseded by {info.superseded_by}; append there"
        )
    if info.version is not None and info.version < 2:
        raise InvalidEntryError(
            f"transcript {info.file_name} is a v1 transcript (entries have no ids); migrate it "
            "to v3 first (store-sql transcript migrate)"
        )
    if parent_id == LEAF:
        parent, parent_pos = info.leaf_id, info.leaf_pos
    elif parent_id is None:
        parent, parent_pos = None, None
    else:
        parent_pos = resolve_parent_pos(conn, transcript_id, parent_id, info.line_count)
        if parent_pos is None:
            raise NotFoundError(f"transcript {info.file_name} has no entry {parent_id!r}")
        parent = parent_id
    results: list[Appended] = []
    rows: list[LineRow] = []
    taken: set[str] = set()
    keys_here: dict[str, Appended] = {}
    pos = info.line_count
    for fields in entries:
        if not isinstance(fields, Mapping):
            raise InvalidEntryError(f"an entry must be a JSON object, got {type(fields).__name__}")
        key = _idempotency_key(fields)
        if key is not None:
            existing = keys_here.get(key)
            if existing is None:
                found = find_by_idempotency_key(conn, transcript_id, key)
                if found is not None:
                    existing = Appended(id=found[0] or "", pos=found[1], existed=True)
            if existing is not None:
                results.append(Appended(existing.id, existing.pos, existed=True))
                continue
        entry_id = _new_id(conn, transcript_id, taken)
        taken.add(entry_id)
        timestamp = fields.get("timestamp")
        if not isinstance(timestamp, str):
            timestamp = now_iso()
        value = _entry_object(fields, entry_id, parent, timestamp)
        # jsjson escapes lone surrogates, so its text is always valid UTF-8: stored as TEXT.
        text = jsjson.dumps(value)
        message = value.get("message")
        rows.append(
            LineRow(
                pos=pos,
                line=text,
                kind="entry",
                entry_id=entry_id,
                parent_id=parent,
                parent_pos=parent_pos,
                type=text_or_none(value["type"]),
                role=text_or_none(message.get("role")) if isinstance(message, dict) else None,
                timestamp=text_or_none(timestamp),
                idempotency_key=key,
                byte_size=len(text) if text.isascii() else len(text.encode("utf-8")),
                damage=None,
                search_text=entry_search_text(value) if full_text else None,
            )
        )
        appended = Appended(id=entry_id, pos=pos, existed=False)
        if key is not None:
            keys_here[key] = appended
        results.append(appended)
        parent, parent_pos = entry_id, pos
        pos += 1
    insert_lines(conn, transcript_id, rows, ends_with_newline=True, full_text=full_text)
    return results
