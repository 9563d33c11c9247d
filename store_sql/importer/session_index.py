"""Importing a sessions.json (docs/FORMATS.md §2): read and parse it, decide, store it.

The exact bytes are always kept (`session_indexes.source_bytes`), with the parsed entries
(positions and exact texts) when the file is valid. A 0-byte or invalid file is kept with
its state and error and no entries: it is never read as an empty index. A re-import never
merges: the same file (by sha256) is unchanged, a changed file replaces an index nobody
changed since, and one the API changed is a conflict left for a person to resolve.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass

from store_sql.formats import jsjson
from store_sql.formats.sessions_json import IndexFileError, ParsedIndex, entry_text, parse_index
from store_sql.formats.sqltext import storable
from store_sql.importer.plan import SourceFile
from store_sql.sessions.rows import insert_imported_entries


@dataclass(frozen=True, slots=True)
class IndexSource:
    """A read sessions.json: its bytes and what parsing them gave."""

    agent_id: str
    rel_dir: str
    data: bytes
    sha256: str
    parsed: ParsedIndex | None
    state: str
    """imported | empty_file | invalid (session_indexes.source_state)."""
    error: str | None


@dataclass(frozen=True, slots=True)
class IndexOutcome:
    status: str
    """imported | unchanged | new_version | other_dir | unstorable | conflict"""
    message: str | None = None


def stored_index(conn: sqlite3.Connection, agent_id: str) -> tuple[str, str, str | None] | None:
    """(rel_dir, source_state, source_sha256) of an agent's index, or None."""
    row = conn.execute(
        "SELECT rel_dir, source_state, source_sha256 FROM session_indexes WHERE agent_id = ?",
        (agent_id,),
    ).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def decide_index(stored: tuple[str, str, str | None] | None, src: IndexSource) -> IndexOutcome:
    """What importing `src` over the stored index means (never a merge)."""
    keys = [e.key for e in src.parsed.entries] if src.parsed is not None else []
    odd = next((key for key in keys if not storable(key)), None)
    if odd is not None:
        return IndexOutcome(
            "unstorable",
            f"session key {jsjson.dumps(odd)} holds a lone surrogate, which SQLite text cannot "
            "store: the index was not imported; the file is kept as exact bytes only",
        )
    if stored is None:
        return IndexOutcome("imported")
    rel_dir, state, sha = stored
    if rel_dir != src.rel_dir:
        return IndexOutcome(
            "other_dir",
            f"agent {src.agent_id!r} already has its index from {rel_dir}/sessions.json; "
            "this one is kept as an opaque file",
        )
    if sha == src.sha256:
        if state == "api":
            return IndexOutcome(
                "unchanged", "the index changed through the API since this file was imported"
            )
        return IndexOutcome("unchanged")
    if state == "api":
        return IndexOutcome(
            "conflict",
            "the index was changed through the API and this file differs from the one "
            "imported: refusing to replace or merge it (export the store, or import into a "
            "fresh database)",
        )
    return IndexOutcome(
        "new_version", "sessions.json changed since the last import: the index was replaced"
    )


def import_index(conn: sqlite3.Connection, src: IndexSource) -> IndexOutcome:
    """Store a sessions.json (its exact bytes and its entries) unless `decide_index` says
    otherwise. A 0-byte or invalid file is kept with its state and error, with no entries."""
    outcome = decide_index(stored_index(conn, src.agent_id), src)
    if outcome.status not in ("imported", "new_version"):
        return outcome
    entries = src.parsed.entries if src.parsed is not None else []
    conn.execute("DELETE FROM session_entries WHERE agent_id = ?", (src.agent_id,))
    # A sessions.json read as the index means the agent's sessions.d (if it had one) is not
    # active any more: the index is sessions.json's from now on.
    conn.execute("DELETE FROM session_directories WHERE agent_id = ?", (src.agent_id,))
    conn.execute(
        "INSERT INTO session_indexes (agent_id, rel_dir, source_bytes, source_state, "
        "source_error, source_sha256, revision, next_position) VALUES (?, ?, ?, ?, ?, ?, 0, ?) "
        "ON CONFLICT (agent_id) DO UPDATE SET rel_dir = excluded.rel_dir, "
        "source_bytes = excluded.source_bytes, source_state = excluded.source_state, "
        "source_error = excluded.source_error, source_sha256 = excluded.source_sha256, "
        "revision = revision + 1, next_position = excluded.next_position",
        (
            src.agent_id,
            src.rel_dir,
            src.data,
            src.state,
            src.error,
            src.sha256,
            len(entries),
        ),
    )
    # The file's exact bytes are exported while nobody changes the index. Once the API
    # changes one entry, the gateway would rewrite the whole file with JSON.stringify, so
    # every entry's text is stored in JavaScript's 2-space layout (number spellings kept by
    # jsjson): for a file the gateway wrote that is the entry's own slice of the file; a
    # compact or hand-edited one gets re-rendered, framing and values alike.
    insert_imported_entries(
        conn,
        src.agent_id,
        ((e.key, e.position, entry_text(e.value), e.value, e.problem) for e in entries),
    )
    return outcome


def read_index(src: SourceFile) -> IndexSource:
    """Read and parse a sessions.json (in a worker thread); invalid files are kept too."""
    with src.open() as f:
        data = f.read()
    sha = hashlib.sha256(data).hexdigest()
    try:
        parsed = parse_index(data)
    except IndexFileError as exc:
        state = "empty_file" if not data else "invalid"
        return IndexSource(src.agent_id, src.rel_dir, data, sha, None, state, str(exc))
    return IndexSource(src.agent_id, src.rel_dir, data, sha, parsed, "imported", None)


def key_line(text: str, key: str) -> int:
    """1-based line of a key in a JSON.stringify(store, null, 2) file (0 when not found)."""
    at = text.find(f"\n  {jsjson.dumps(key)}: ")
    return 0 if at < 0 else text.count("\n", 0, at) + 2
