"""Importing an active sessions.d (docs/FORMATS.md §7): the agent's index, file by file.

The entries the gateway would load become the agent's `session_entries`, in the order its
loader reads them (by file name); each file's bytes are kept (`session_entry_files`, exact
bytes only where the gateway's rendering would not reproduce them) and state.json's bytes
are `session_indexes.source_bytes`. Files the gateway ignores are kept as opaque files and
reported. A re-import looks at each entry file: an unchanged one (same sha256) writes
nothing, a changed, added or removed one updates, adds or removes its entry, unless the API
changed that entry since the import; that file is then a conflict, left for a person.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from store_sql.formats.sessions_dir import ENTRIES_DIR, STATE_FILE, EntryFile, ParsedDirectory
from store_sql.importer import rows as db
from store_sql.sessions.rows import insert_imported_entries, replace_imported_entry

IGNORED_KIND = "ignored_entry_file"
"""`opaque_files.kind` of an entry file the gateway ignores."""
ARCHIVE_KIND = "index_archive"


@dataclass(frozen=True, slots=True)
class DirectorySource:
    """An active sessions.d read from disk."""

    agent_id: str
    rel_dir: str
    path: Path
    parsed: ParsedDirectory

    @property
    def state_sha256(self) -> str:
        return hashlib.sha256(self.parsed.state_bytes).hexdigest()


@dataclass(slots=True)
class DirectoryOutcome:
    """What importing a sessions.d did (or, read-only, would do)."""

    status: str = "imported"
    """imported | unchanged | new_version | other_dir | conflict"""
    message: str | None = None
    entries: int = 0
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    """File names left as the store has them: the API changed their entry since the import."""


@dataclass(frozen=True, slots=True)
class StoredFile:
    key: str
    file_sha256: str
    entry_sha256: str


def entry_sha256(text: str) -> str:
    """sha256 of an entry's text as `session_entry_files.entry_sha256` holds it."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def dir_file_name(prefix: str, name: str) -> str:
    """A sessions.d file's name relative to the sessions dir."""
    return f"sessions.d/{prefix}{name}"


def known_files(conn: sqlite3.Connection, agent_id: str) -> dict[str, tuple[str, str]]:
    """file name -> (sha256, session key) of the entry files imported for an agent."""
    return {
        name: (sha, key)
        for name, sha, key in conn.execute(
            "SELECT file_name, file_sha256, session_key FROM session_entry_files "
            "WHERE agent_id = ?",
            (agent_id,),
        )
    }


@dataclass(slots=True)
class DirectoryState:
    """What the store holds for an agent's index, as a sessions.d import compares it."""

    index: tuple[str, str, str | None] | None
    """(rel_dir, source_state, source_sha256) of the agent's index, or None."""
    is_directory: bool
    """The index was imported from a sessions.d (a `session_directories` row exists)."""
    files: dict[str, StoredFile] = field(default_factory=dict)
    """Imported entry files by name (read only when both rows above exist)."""
    current: dict[str, str] = field(default_factory=dict)
    """session key -> sha256 of its entry_json now (read only with `files`)."""


@dataclass(slots=True)
class DirectoryPlan:
    """What importing a sessions.d over `DirectoryState` writes (no SQL: both backends
    apply it with their own statements)."""

    outcome: DirectoryOutcome
    action: str = "none"
    """none | archive (keep the files as opaque files) | replace (the whole index) |
    update (entry file by entry file)"""
    accepted: list[EntryFile] = field(default_factory=list)
    """The entry files the gateway loads (replace)."""
    apply: list[EntryFile] = field(default_factory=list)
    """Entry files to store (update): changed or added."""
    gone: list[tuple[str, str | None]] = field(default_factory=list)
    """(file name, session key whose entry goes too, or None) of entry files gone (update)."""
    store_ignored: bool = False
    """Keep the entry files the gateway ignores as opaque files (and drop stale ones)."""


def needs_entries(index: tuple[str, str, str | None] | None, is_directory: bool) -> bool:
    """Whether `plan_directory` compares entry file by entry file (then `DirectoryState`
    needs `files` and `current`)."""
    return index is not None and is_directory


def import_directory(
    conn: sqlite3.Connection, src: DirectorySource, write: bool
) -> DirectoryOutcome:
    """Import `src` over the stored index (only deciding when `write` is False)."""
    plan = plan_directory(src, read_state(conn, src.agent_id))
    if write:
        apply_plan(conn, src, plan)
    return plan.outcome


def read_state(conn: sqlite3.Connection, agent_id: str) -> DirectoryState:
    index = conn.execute(
        "SELECT rel_dir, source_state, source_sha256 FROM session_indexes WHERE agent_id = ?",
        (agent_id,),
    ).fetchone()
    directory = conn.execute(
        "SELECT 1 FROM session_directories WHERE agent_id = ?", (agent_id,)
    ).fetchone()
    state = DirectoryState(None if index is None else tuple(index), directory is not None)
    if not needs_entries(state.index, state.is_directory):
        return state
    state.files = {
        name: StoredFile(key, file_sha, entry_sha)
        for name, key, file_sha, entry_sha in conn.execute(
            "SELECT file_name, session_key, file_sha256, entry_sha256 FROM session_entry_files "
            "WHERE agent_id = ?",
            (agent_id,),
        )
    }
    state.current = {
        key: entry_sha256(text)
        for key, text in conn.execute(
            "SELECT session_key, entry_json FROM session_entries WHERE agent_id = ?", (agent_id,)
        )
    }
    return state


def plan_directory(src: DirectorySource, state: DirectoryState) -> DirectoryPlan:
    """Decide what importing `src` over `state` means (module doc)."""
    accepted = [f for f in src.parsed.files if f.key is not None]
    index = state.index
    if index is not None and index[0] != src.rel_dir:
        return DirectoryPlan(
            DirectoryOutcome(
                "other_dir",
                f"agent {src.agent_id!r} already has its index from {index[0]}; this "
                "sessions.d is kept as files (index_archive)",
            ),
            "archive",
        )
    if index is None or not state.is_directory:
        if index is not None and index[1] == "api":
            return DirectoryPlan(
                DirectoryOutcome(
                    "conflict",
                    "the index was changed through the API and this sessions.d is now the "
                    "agent's index: refusing to replace or merge it (export the store, or "
                    "import into a fresh database)",
                )
            )
        outcome = DirectoryOutcome("imported" if index is None else "new_version")
        if index is not None:
            outcome.message = "the index now comes from sessions.d (sessions.json before)"
        outcome.added = [f.name for f in accepted]
        outcome.entries = len(accepted)
        return DirectoryPlan(outcome, "replace", accepted=accepted, store_ignored=True)
    return _plan_update(src, state, accepted)


def apply_plan(conn: sqlite3.Connection, src: DirectorySource, plan: DirectoryPlan) -> None:
    """Write what `plan_directory` decided, on SQLite."""
    if plan.action == "archive":
        _keep_as_archive(conn, src)
    elif plan.action == "replace":
        _replace_all(conn, src, plan.accepted)
    elif plan.action == "update":
        _apply_update(conn, src, plan)
    if plan.store_ignored:
        _store_ignored(conn, src)


def _replace_all(conn: sqlite3.Connection, src: DirectorySource, accepted: list[EntryFile]) -> None:
    agent = src.agent_id
    conn.execute("DELETE FROM session_entries WHERE agent_id = ?", (agent,))
    conn.execute("DELETE FROM session_directories WHERE agent_id = ?", (agent,))
    conn.execute(
        "INSERT INTO session_indexes (agent_id, rel_dir, source_bytes, source_state, "
        "source_error, source_sha256, revision, next_position) "
        "VALUES (?, ?, ?, 'imported', NULL, ?, 0, 0) "
        "ON CONFLICT (agent_id) DO UPDATE SET rel_dir = excluded.rel_dir, "
        "source_bytes = excluded.source_bytes, source_state = 'imported', source_error = NULL, "
        "source_sha256 = excluded.source_sha256, revision = revision + 1, next_position = 0",
        (agent, src.rel_dir, src.parsed.state_bytes, src.state_sha256),
    )
    conn.execute(
        "INSERT INTO session_directories (agent_id, state_version) VALUES (?, ?)",
        (agent, src.parsed.state.version),
    )
    insert_imported_entries(
        conn,
        agent,
        ((f.key, n, f.text, f.value, f.problem) for n, f in enumerate(accepted) if f.key),
    )
    for f in accepted:
        _store_file_row(conn, src, f)


def _store_file_row(conn: sqlite3.Connection, src: DirectorySource, f: EntryFile) -> None:
    agent = src.agent_id
    conn.execute(
        "INSERT INTO session_entry_files (agent_id, file_name, session_key, file_sha256, "
        "entry_sha256, content) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (agent_id, file_name) DO UPDATE SET session_key = excluded.session_key, "
        "file_sha256 = excluded.file_sha256, entry_sha256 = excluded.entry_sha256, "
        "content = excluded.content",
        (agent, f.name, f.key, f.sha256, entry_sha256(f.text), None if f.canonical else f.data),
    )
    # The file is the index's now: a copy kept as an opaque file before would be written twice.
    conn.execute(
        "DELETE FROM opaque_files WHERE agent_id = ? AND rel_dir = ? AND file_name = ?",
        (agent, src.rel_dir, dir_file_name(f"{ENTRIES_DIR}/", f.name)),
    )


def _store_ignored(conn: sqlite3.Connection, src: DirectorySource) -> None:
    """Files the gateway ignores: kept as opaque files; such rows gone from disk are dropped,
    and state.json is not an opaque file while the directory is the index."""
    agent, rel_dir = src.agent_id, src.rel_dir
    conn.execute(
        "DELETE FROM opaque_files WHERE agent_id = ? AND rel_dir = ? AND file_name = ?",
        (agent, rel_dir, dir_file_name("", STATE_FILE)),
    )
    names = []
    for f in src.parsed.files:
        if f.key is None:
            names.append(dir_file_name(f"{ENTRIES_DIR}/", f.name))
            if db.opaque_sha256(conn, agent, rel_dir, names[-1]) != f.sha256:
                db.store_opaque(conn, agent, rel_dir, names[-1], IGNORED_KIND, f.data)
    conn.execute(
        "DELETE FROM opaque_files WHERE agent_id = ? AND rel_dir = ? AND kind = ? "
        "AND file_name NOT IN (SELECT value FROM json_each(?))",
        (agent, rel_dir, IGNORED_KIND, _json_list(names)),
    )


def _json_list(names: list[str]) -> str:
    return orjson.dumps(names).decode()


def _keep_as_archive(conn: sqlite3.Connection, src: DirectorySource) -> None:
    # The bytes read once, through the tree (`read_directory`): never opened again by path.
    state = src.parsed.state_bytes
    db.store_opaque(
        conn, src.agent_id, src.rel_dir, dir_file_name("", STATE_FILE), ARCHIVE_KIND, state
    )
    for f in src.parsed.files:
        name = dir_file_name(f"{ENTRIES_DIR}/", f.name)
        db.store_opaque(conn, src.agent_id, src.rel_dir, name, ARCHIVE_KIND, f.data)


def _plan_update(
    src: DirectorySource, state: DirectoryState, accepted: list[EntryFile]
) -> DirectoryPlan:
    assert state.index is not None
    stored, current = state.files, state.current
    outcome = DirectoryOutcome("unchanged", entries=len(accepted))
    plan = DirectoryPlan(outcome, store_ignored=True)
    seen = set()
    for f in accepted:
        seen.add(f.name)
        old = stored.get(f.name)
        if old is not None and old.file_sha256 == f.sha256:
            continue
        if not f.parsed:
            outcome.conflicts.append(f.name)  # another import changed it meanwhile
            continue
        assert f.key is not None
        if old is not None:
            if current.get(old.key) != old.entry_sha256:
                outcome.conflicts.append(f.name)
                continue
            outcome.changed.append(f.name)
        elif f.key in current:
            outcome.conflicts.append(f.name)  # the API added this key meanwhile
            continue
        else:
            outcome.added.append(f.name)
        plan.apply.append(f)
    for name, old in stored.items():
        if name in seen:
            continue
        if old.key not in current:
            plan.gone.append((name, None))  # removed on both sides
        elif current[old.key] != old.entry_sha256:
            outcome.conflicts.append(name)
        else:
            outcome.removed.append(name)
            plan.gone.append((name, old.key))
    state_changed = state.index[2] != src.state_sha256
    if plan.apply or plan.gone or state_changed:
        plan.action = "update"
    if outcome.added or outcome.changed or outcome.removed or state_changed:
        outcome.status = "new_version"
        outcome.message = (
            f"sessions.d changed since the last import: {len(outcome.changed)} entry files "
            f"changed, {len(outcome.added)} added, {len(outcome.removed)} removed"
        )
    if outcome.conflicts:
        outcome.status = "conflict"
        outcome.message = (
            (outcome.message + "; " if outcome.message else "")
            + f"{len(outcome.conflicts)} entry files differ from the import and their entries "
            "were changed through the API since: those were left as the store has them"
        )
    return plan


def _apply_update(conn: sqlite3.Connection, src: DirectorySource, plan: DirectoryPlan) -> None:
    agent = src.agent_id
    for f in plan.apply:
        assert f.key is not None
        replace_imported_entry(conn, agent, f.key, f.text, f.value, f.problem)
        _store_file_row(conn, src, f)
    for name, key in plan.gone:
        if key is not None:
            conn.execute(
                "DELETE FROM session_entries WHERE agent_id = ? AND session_key = ?",
                (agent, key),
            )
        conn.execute(
            "DELETE FROM session_entry_files WHERE agent_id = ? AND file_name = ?",
            (agent, name),
        )
    conn.execute(
        "UPDATE session_directories SET state_version = max(state_version, ?) WHERE agent_id = ?",
        (src.parsed.state.version, agent),
    )
    # Untouched by the API, the store now holds this directory exactly: its state.json
    # is exported as is. After API changes the state is rendered anew at export.
    conn.execute(
        "UPDATE session_indexes SET source_sha256 = ?, revision = revision + 1, "
        "source_bytes = CASE WHEN source_state = 'api' THEN NULL ELSE ? END "
        "WHERE agent_id = ?",
        (src.state_sha256, src.parsed.state_bytes, agent),
    )
