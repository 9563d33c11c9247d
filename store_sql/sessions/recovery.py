"""Recovering an agent's index whose imported sessions.json could not be read.

Such an index is kept as its exact bytes only, and every change to it is refused
(`rows.check_writable`): a change would make export write a file holding just that change.
Recovery is the explicit way out. In one transaction it stores every entry that reads whole
(`sessions_json.salvage_index`), keeps the original bytes as a file of their own that export
writes beside the new index (`sessions.json.invalid-<time>`), and makes the index an
ordinary one the API may change. No byte of the original is dropped.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from store_sql.errors import InvalidEntryError, NotFoundError
from store_sql.formats import jsjson
from store_sql.formats.sessions_json import entry_text, salvage_index
from store_sql.formats.sqltext import storable
from store_sql.sessions.rows import DAMAGED_STATES, insert_imported_entries

KEPT_PREFIX = "sessions.json.invalid-"
"""Name of the kept original, followed by the UTC time of the recovery."""


@dataclass(frozen=True, slots=True)
class IndexRecovery:
    """What `recover_index` did."""

    agent_id: str
    salvaged: int
    """Entries stored from the damaged file."""
    lost: list[str]
    """The parts that could not be read (where and why); their bytes are in `kept_as`."""
    kept_as: str
    """Path, relative to the state directory, that export writes the original bytes to."""
    kept_bytes: int


def recover_index(conn: sqlite3.Connection, agent_id: str) -> IndexRecovery:
    """Salvage the damaged index of `agent_id` (runs in the writer's transaction)."""
    row = conn.execute(
        "SELECT source_state, rel_dir, source_bytes FROM session_indexes WHERE agent_id = ?",
        (agent_id,),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"agent {agent_id!r} has no session index; nothing to recover")
    state, rel_dir, data = row[0], row[1], bytes(row[2] or b"")
    check_damaged(agent_id, state, rel_dir)
    entries, lost = salvaged_entries(data)
    name = _kept_name(conn, agent_id, rel_dir)
    conn.execute(
        "INSERT INTO opaque_files (agent_id, rel_dir, file_name, kind, content, sha256, "
        "imported_at) VALUES (?, ?, ?, 'backup', ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ'))",
        (agent_id, rel_dir, name, data, hashlib.sha256(data).hexdigest()),
    )
    # source_sha256 stays: importing the same damaged file again is then "unchanged".
    conn.execute(
        "UPDATE session_indexes SET source_bytes = NULL, source_state = 'api', "
        "source_error = NULL, next_position = 0 WHERE agent_id = ?",
        (agent_id,),
    )
    conn.execute("DELETE FROM session_entries WHERE agent_id = ?", (agent_id,))
    insert_imported_entries(conn, agent_id, entries)
    return IndexRecovery(agent_id, len(entries), lost, f"{rel_dir}/{name}", len(data))


def check_damaged(agent_id: str, state: str, rel_dir: str) -> None:
    """InvalidEntryError when the index is not damaged (nothing to recover)."""
    if state not in DAMAGED_STATES:
        raise InvalidEntryError(
            f"agent {agent_id!r}: {rel_dir}/sessions.json was read whole ({state}); "
            "nothing to recover"
        )


Salvaged = tuple[str, int, str, Any, str | None]
"""(key, position, text, value, problem): an entry read whole from a damaged file."""


def salvaged_entries(data: bytes, *, no_nul: bool = False) -> tuple[list[Salvaged], list[str]]:
    """The entries of a damaged sessions.json that read whole, and what could not be read.
    `no_nul`: a key holding NUL is lost too (PostgreSQL text cannot store it)."""
    salvaged = salvage_index(data)
    lost = list(salvaged.lost)
    entries: list[Salvaged] = []
    for entry in salvaged.entries:
        if not storable(entry.key):
            lost.append(
                f"session key {jsjson.dumps(entry.key)} holds a lone surrogate, which SQLite "
                "text cannot store"
            )
        elif no_nul and "\x00" in entry.key:
            lost.append(
                f"session key {jsjson.dumps(entry.key)} holds a NUL character, which "
                "PostgreSQL text cannot store"
            )
        else:
            entries.append((entry.key, len(entries), entry_text(entry.value), entry.value,
                            entry.problem))  # fmt: skip
    return entries, lost


def kept_name(stamp: str, serial: int) -> str:
    """The name of the kept original: the time, and a serial after the first."""
    return f"{KEPT_PREFIX}{stamp}" + (f"-{serial}" if serial > 1 else "")


def kept_stamp() -> str:
    return time.strftime("%Y-%m-%dT%H-%M-%SZ", time.gmtime())


def _kept_name(conn: sqlite3.Connection, agent_id: str, rel_dir: str) -> str:
    stamp = kept_stamp()
    name, serial = kept_name(stamp, 1), 1
    while conn.execute(
        "SELECT 1 FROM opaque_files WHERE agent_id = ? AND rel_dir = ? AND file_name = ?",
        (agent_id, rel_dir, name),
    ).fetchone():
        serial += 1
        name = kept_name(stamp, serial)
    return name
