"""Appending entries to a transcript (docs/FORMATS.md §3): ids, parents, idempotency.

One writer serialises appends, so reading the leaf and inserting the new lines happen in
one transaction: an append is O(1) in the transcript's size and concurrent appenders form
a chain. Lines are written exactly as pi's SessionManager writes them (JSON.stringify, its
field order).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from store_sql.errors import InvalidEntryError, NotFoundError
from store_sql.transcripts.entry_lines import EntryTemplate, prepare_entry
from store_sql.transcripts.reads import navigation
from store_sql.transcripts.rows import (
    ADVANCE_SQL,
    TranscriptInfo,
    advance_params,
    get_info,
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
    parent_id: str | None = None
    """The entry's `parentId` (the stored one when `existed`); None for a root."""


def _new_id(conn: sqlite3.Connection, transcript_id: int, taken: Container[str]) -> str:
    """A new id, unique among this transcript's entries and this run's."""

    def is_taken(candidate: str) -> bool:
        if candidate in taken:
            return True
        row = conn.execute(
            "SELECT 1 FROM transcript_lines WHERE transcript_id = ? AND entry_id = ? LIMIT 1",
            (transcript_id, candidate),
        ).fetchone()
        return row is not None

    return new_entry_id(is_taken)


StoredKey = tuple[str | None, int, str | None]
"""The entry holding an idempotency key: (entry_id, pos, parent_id)."""


def find_by_idempotency_key(
    conn: sqlite3.Connection, transcript_id: int, key: str
) -> StoredKey | None:
    # `+pos`: without it SQLite may walk the (transcript_id, pos) index to avoid a sort and
    # scan the whole transcript (38-68 ms at 100,000 lines) instead of the key index.
    row = conn.execute(
        "SELECT entry_id, pos, parent_id FROM transcript_lines WHERE transcript_id = ? "
        "AND idempotency_key = ? ORDER BY +pos LIMIT 1",
        (transcript_id, key),
    ).fetchone()
    return None if row is None else (row[0], int(row[1]), row[2])


@dataclass(slots=True)
class Chain:
    """A transcript as appends see it while they run: its leaf and next position move with
    each entry, before anything is written, so that the appends of a whole group can go in
    with one statement (`append_groups.AppendMutation.combine`)."""

    transcript_id: int
    file_name: str
    stored_lines: int
    """Lines stored before this run (its new lines come after them)."""
    pos: int
    leaf_id: str | None
    leaf_pos: int | None
    params: list[tuple[Any, ...]] = field(default_factory=list)
    """`_INSERT_APPENDED` parameters of the lines this run adds."""
    added_bytes: int = 0
    new_ids: dict[str, int] = field(default_factory=dict)
    """Ids written by the appends of this run, and their positions."""
    keys: dict[str, Appended] = field(default_factory=dict)
    """Idempotency keys written by the appends of this run."""
    stored_keys: dict[str, StoredKey] | None = None
    """Stored entries of the keys this run uses, read up front (None: look each one up)."""
    check_ids: bool = True
    """False: new ids are checked against the stored ones after the run (`_check_new_ids`)."""

    @classmethod
    def of(cls, info: TranscriptInfo) -> Chain:
        if info.superseded_by is not None:
            raise InvalidEntryError(
                f"transcript {info.transcript_id} was superseded by {info.superseded_by}; "
                "append there"
            )
        return cls.checked(
            info.transcript_id, info.file_name, info.version, info.line_count,
            info.leaf_id, info.leaf_pos,
        )  # fmt: skip

    @classmethod
    def checked(
        cls,
        transcript_id: int,
        file_name: str,
        version: int | None,
        line_count: int,
        leaf_id: str | None,
        leaf_pos: int | None,
    ) -> Chain:
        if version is not None and version < 2:
            raise InvalidEntryError(
                f"transcript {file_name} is a v1 transcript (entries have no ids); "
                "migrate it to v3 first (store-sql transcript migrate)"
            )
        return cls(transcript_id, file_name, line_count, line_count, leaf_id, leaf_pos)


# Appended lines are JSON text jsjson wrote (lone surrogates escaped, so always valid
# UTF-8): bound as bytes and cast, so they are never decoded to str and encoded again.
_INSERT_APPENDED = (
    "INSERT INTO transcript_lines (transcript_id, pos, line, kind, entry_id, parent_id, "
    "parent_pos, type, role, timestamp, idempotency_key, byte_size) "
    "VALUES (?, ?, CAST(? AS TEXT), 'entry', ?, ?, ?, ?, ?, ?, ?, ?)"
)


def append_to_chain(
    conn: sqlite3.Connection,
    chain: Chain,
    entries: Sequence[EntryTemplate],
    parent_id: str | None,
    now: str | None = None,
) -> list[Appended]:
    transcript_id = chain.transcript_id
    if parent_id == LEAF:
        parent, parent_pos = chain.leaf_id, chain.leaf_pos
        if not chain.new_ids and (navigated := navigation(conn, transcript_id)) is not None:
            # Today's tree rules: the next append hangs on the append point, which a leaf
            # control or a side append keeps apart from the last entry in file order.
            parent, parent_pos = navigated.append_point()
    elif parent_id is None:
        parent, parent_pos = None, None
    else:
        # An entry of this run is the newest with its id; else the nearest stored one.
        parent_pos = chain.new_ids.get(parent_id)
        if parent_pos is None:
            parent_pos = resolve_parent_pos(conn, transcript_id, parent_id, chain.stored_lines)
        if parent_pos is None:
            raise NotFoundError(f"transcript {chain.file_name} has no entry {parent_id!r}")
        parent = parent_id
    results: list[Appended] = []
    for entry in entries:
        key = entry.key
        if key is not None:
            existing = chain.keys.get(key)
            if existing is None:
                if chain.stored_keys is None:
                    found = find_by_idempotency_key(conn, transcript_id, key)
                else:
                    found = chain.stored_keys.get(key)
                if found is not None:
                    existing = Appended(found[0] or "", found[1], True, found[2])
            if existing is not None:
                results.append(Appended(existing.id, existing.pos, True, existing.parent_id))
                continue
        if chain.check_ids:
            entry_id = _new_id(conn, transcript_id, chain.new_ids)
        else:
            entry_id = new_entry_id(chain.new_ids.__contains__)
        if now is None:
            now = now_iso()
        line = entry.line(entry_id, parent, now)
        pos = chain.pos
        chain.params.append(
            (transcript_id, pos, line, entry_id, parent, parent_pos, entry.type, entry.role,
             now if entry.timestamp_json is None else entry.timestamp, key, len(line))
        )  # fmt: skip
        chain.added_bytes += len(line) + 1
        appended = Appended(entry_id, pos, False, parent)
        if key is not None:
            chain.keys[key] = appended
        chain.new_ids[entry_id] = pos
        results.append(appended)
        parent, parent_pos = entry_id, pos
        chain.pos = pos + 1
        chain.leaf_id, chain.leaf_pos = entry_id, pos
    return results


def write_chains(conn: sqlite3.Connection, chains: Iterable[Chain]) -> None:
    """Insert every line the chains hold and move each transcript's counters and leaf: two
    statements, however many appends and transcripts."""
    chains = [chain for chain in chains if chain.params]
    conn.executemany(_INSERT_APPENDED, [p for chain in chains for p in chain.params])
    conn.executemany(
        ADVANCE_SQL,
        [
            advance_params(
                chain.transcript_id,
                lines=len(chain.params),
                entries=len(chain.params),
                damaged=0,
                line_bytes=chain.added_bytes,
                leaf=(chain.leaf_pos, chain.leaf_id),
                ends_with_newline=True,
            )
            for chain in chains
        ],
    )


def append_entries(
    conn: sqlite3.Connection,
    transcript: int | TranscriptInfo,
    entries: Sequence[Mapping[str, Any] | EntryTemplate],
    *,
    parent_id: str | None = LEAF,
) -> list[Appended]:
    """Append entries as a chain: the first is a child of the leaf (or of `parent_id`;
    None starts a new root), each next one a child of the previous.

    An entry whose `message.idempotencyKey` is already in the transcript is not written; its
    result names the existing entry, and the chain goes on from the new entries only.
    Entries may come prepared already (`entry_lines.prepare_entry`, as AppendMutation does
    on the caller's side)."""
    # A caller that just resolved the transcript passes its info: one query less per append.
    info = transcript if isinstance(transcript, TranscriptInfo) else get_info(conn, transcript)
    templates = [e if isinstance(e, EntryTemplate) else prepare_entry(e) for e in entries]
    chain = Chain.of(info)
    results = append_to_chain(conn, chain, templates, parent_id)
    write_chains(conn, [chain])
    return results
