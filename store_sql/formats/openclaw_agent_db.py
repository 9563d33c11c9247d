"""OpenClaw's own database, ``agents/<id>/agent/openclaw-agent.sqlite``, read as a source.

Today's gateway keeps an agent's sessions and transcripts in this SQLite file (docs/FORMATS.md
§6). It is another program's live database, read the way a file is read: never written.
`AgentDatabase` opens it with ``mode=ro`` and ``query_only``, and holds one read transaction
from the first query to `close`, so everything it returns comes from one consistent
snapshot while the gateway keeps writing (WAL readers never block the writer, and a
read-only connection cannot checkpoint). Nothing here knows store_sql's tables.

    with AgentDatabase.open(path) as db:
        for node in db.session_nodes(): ...
        for seq, event in db.events(session_id, after_seq=41): ...
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import orjson

from store_sql.formats.in_tree import TreeFile

__all__ = [
    "DATABASE_NAME",
    "KNOWN_SCHEMA_VERSIONS",
    "AgentDatabase",
    "AgentDatabaseError",
    "ColdArchive",
    "EventLines",
    "SessionNode",
    "StoredArchive",
    "TranscriptFrontier",
    "cold_archive_events",
]

DATABASE_NAME = "openclaw-agent.sqlite"
"""The file inside ``agents/<id>/agent/``."""

KNOWN_SCHEMA_VERSIONS = frozenset({23})
"""PRAGMA user_version values whose tables this reader knows (23: OpenClaw 2026.9)."""

_MAX_EVENT_BYTES = 4 << 20  # the schema's own bound on event_utf8_bytes
_MAX_COLD_BYTES = 1 << 31


class AgentDatabaseError(ValueError):
    """The database cannot be read: not SQLite, an unknown schema, a damaged row."""


@dataclass(frozen=True, slots=True)
class SessionNode:
    """One session key and its entry (``session_nodes``)."""

    key: str
    session_id: str
    entry_json: bytes
    """The SessionEntry as OpenClaw wrote it (compact JSON.stringify)."""


@dataclass(frozen=True, slots=True)
class TranscriptFrontier:
    """What the database holds for one session's transcript (``transcript_events``)."""

    session_id: str
    event_count: int
    last_seq: int
    base_created_at: int
    """The smallest created_at: a rewrite (compaction, reset) stamps every row anew."""


@dataclass(frozen=True, slots=True)
class StoredArchive:
    """An archived transcript (``session_transcript_archives``): a whole archive file."""

    session_id: str
    generation: str
    session_key: str
    reason: str
    """reset | deleted"""
    compressed: bool
    """encoding 'zstd': the blob is the bytes of a ``.zst`` archive, else JSONL itself."""
    name: str
    """The file name it is published under in the sessions dir."""
    sha256: str
    blob: bytes


@dataclass(frozen=True, slots=True)
class ColdArchive:
    """A transcript moved to cold storage (``session_transcript_cold_archives``)."""

    session_id: str
    generation: str
    name: str
    sha256: str
    event_count: int
    last_seq: int
    blob: bytes | None
    """The zstd archive when stored in the database; None when it is a file, ``cold/<name>``
    next to the agent's sessions."""


def _open_files() -> set[tuple[int, int, int]]:
    """(descriptor, st_dev, st_ino) of each regular file this process has open."""
    found = set()
    for name in os.listdir(_FD_DIR):
        try:
            st = os.fstat(int(name))
        except OSError:  # the listing's own descriptor, or one closed since
            continue
        if stat.S_ISREG(st.st_mode):
            found.add((int(name), st.st_dev, st.st_ino))
    return found


def _files_opened_since(before: set[tuple[int, int, int]]) -> set[tuple[int, int]]:
    """(st_dev, st_ino) of the regular files opened since `before` was taken."""
    return {(dev, ino) for _fd, dev, ino in _open_files() - before}


_FD_DIR = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"


class AgentDatabase:
    """A read-only snapshot of one ``openclaw-agent.sqlite`` (see the module doc)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self.schema_version = 0
        self.app_version: str | None = None

    @classmethod
    def open(cls, path: Path, *, inside: TreeFile | None = None) -> AgentDatabase:
        """Open `path` read-only and start the read transaction; refuse unknown schemas.

        With `inside` (the same file, reached through its tree), the file SQLite opened must
        be that regular file: SQLite opens by path and follows symlinks, so the file is
        first opened through the tree (no symlink followed, a regular file), then SQLite
        opens the path, and the file SQLite holds must be the same inode. A database or a
        folder swapped for a symlink in between is refused, never read."""
        expected = None
        if inside is not None:
            try:
                with inside.open() as f:
                    found = os.fstat(f.fileno())
            except OSError as exc:
                raise AgentDatabaseError(f"{path}: not read: {exc.strerror}") from None
            expected = (found.st_dev, found.st_ino)
        before = _open_files()
        uri = "file:" + quote(str(Path(path).absolute())) + "?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise AgentDatabaseError(f"{path}: cannot open read-only: {exc}") from None
        if expected is not None and expected not in _files_opened_since(before):
            conn.close()
            raise AgentDatabaseError(
                f"{path}: not read: the file SQLite opened is not the one inside the tree "
                "(replaced by a symlink while the import ran?)"
            )
        conn.text_factory = bytes
        db = cls(conn, Path(path))
        try:
            conn.execute("PRAGMA query_only = 1")
            conn.execute("BEGIN")  # deferred: the snapshot starts with the first read
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            db.schema_version = int(version)
            if db.schema_version not in KNOWN_SCHEMA_VERSIONS:
                known = ", ".join(str(v) for v in sorted(KNOWN_SCHEMA_VERSIONS))
                raise AgentDatabaseError(
                    f"{path}: OpenClaw schema version {db.schema_version} is not one this "
                    f"store_sql reads (it knows {known}); nothing was imported from it"
                )
            row = conn.execute(
                "SELECT app_version FROM schema_meta WHERE role = 'agent' "
                "ORDER BY updated_at DESC LIMIT 1"
            ).fetchone()
            db.app_version = _text(row[0]) if row is not None and row[0] is not None else None
        except sqlite3.Error as exc:
            db.close()
            raise AgentDatabaseError(f"{path}: not a readable OpenClaw database: {exc}") from None
        except AgentDatabaseError:
            db.close()
            raise
        return db

    def close(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        self._conn.close()

    def __enter__(self) -> AgentDatabase:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise AgentDatabaseError(f"{self.path}: {exc}") from None

    # --- sessions ------------------------------------------------------------------------

    def session_nodes(self) -> list[SessionNode]:
        """Every session key with its entry, in the order the rows were inserted."""
        return [
            SessionNode(_text(key), _text(sid), bytes(entry))
            for key, sid, entry in self._rows(
                "SELECT session_key, current_session_id, entry_json FROM session_nodes "
                "ORDER BY rowid"
            )
        ]

    # --- transcripts -----------------------------------------------------------------------

    def transcripts(self) -> list[TranscriptFrontier]:
        """Every session id with events, sorted by session id."""
        return [
            TranscriptFrontier(_text(sid), int(count), int(last), int(base))
            for sid, count, last, base in self._rows(
                "SELECT session_id, count(*), max(seq), min(created_at) FROM transcript_events "
                "GROUP BY session_id ORDER BY session_id"
            )
        ]

    def events(self, session_id: str, *, after_seq: int = -1) -> Iterator[tuple[int, bytes]]:
        """``(seq, event bytes)`` in seq order; compressed events come out decompressed."""
        try:
            cursor = self._conn.execute(
                "SELECT seq, event_json, event_zstd FROM transcript_events "
                "WHERE session_id = ? AND seq > ? ORDER BY seq",
                (session_id, after_seq),
            )
            while rows := cursor.fetchmany(256):
                for seq, text, packed in rows:
                    yield int(seq), self._event_bytes(session_id, seq, text, packed)
        except sqlite3.Error as exc:
            raise AgentDatabaseError(f"{self.path}: {exc}") from None

    def _event_bytes(self, session_id: str, seq: int, text: Any, packed: Any) -> bytes:
        if text is not None:
            return bytes(text)
        if packed is None:
            raise AgentDatabaseError(f"{self.path}: event {seq} of {session_id} holds nothing")
        import zstandard

        try:
            return bytes(
                zstandard.ZstdDecompressor().decompress(
                    bytes(packed), max_output_size=_MAX_EVENT_BYTES
                )
            )
        except zstandard.ZstdError as exc:
            raise AgentDatabaseError(
                f"{self.path}: event {seq} of {session_id} does not decompress: {exc}"
            ) from None

    def events_upto(self, session_id: str, seq: int) -> int:
        """How many events the transcript holds at or before `seq`."""
        return int(
            self._rows(
                "SELECT count(*) FROM transcript_events WHERE session_id = ? AND seq <= ?",
                (session_id, seq),
            )[0][0]
        )

    def event_at(self, session_id: str, seq: int) -> bytes | None:
        rows = self._rows(
            "SELECT event_json, event_zstd FROM transcript_events WHERE session_id = ? AND seq = ?",
            (session_id, seq),
        )
        return None if not rows else self._event_bytes(session_id, seq, rows[0][0], rows[0][1])

    # --- archives --------------------------------------------------------------------------

    def archives(self) -> list[StoredArchive]:
        """Archived transcripts (reset, deleted), oldest first."""
        return [
            StoredArchive(
                _text(sid),
                _text(gen),
                _text(key),
                _text(reason),
                _text(enc) == "zstd",
                _text(name),
                _text(sha),
                bytes(blob),
            )
            for sid, gen, key, reason, enc, name, sha, blob in self._rows(
                "SELECT session_id, generation, session_key, reason, encoding, archive_name, "
                "archive_sha256, archive_blob FROM session_transcript_archives "
                "ORDER BY created_at, session_id, generation"
            )
        ]

    def cold_archives(self) -> list[ColdArchive]:
        """Transcripts in cold storage (their events are no longer in transcript_events)."""
        return [
            ColdArchive(
                _text(sid),
                _text(gen),
                _text(name),
                _text(sha),
                int(count),
                int(last),
                None if _text(storage) != "sqlite" or blob is None else bytes(blob),
            )
            for sid, gen, name, sha, count, last, storage, blob in self._rows(
                "SELECT session_id, generation, archive_name, archive_sha256, event_count, "
                "last_seq, storage, archive_blob FROM session_transcript_cold_archives "
                "ORDER BY session_id"
            )
        ]


def cold_archive_events(data: bytes, archive: ColdArchive) -> list[tuple[int, bytes]]:
    """The events of a cold archive, ``(seq, event bytes)`` in seq order.

    The archive is zstd-compressed JSONL of records: a ``header``, then ``event`` records
    (``row.seq``, ``row.event_json``) among records that rebuild OpenClaw's own indexes."""
    import zstandard

    if hashlib.sha256(data).hexdigest() != archive.sha256:
        raise AgentDatabaseError(f"cold archive {archive.name}: its sha256 does not match")
    try:
        text = zstandard.ZstdDecompressor().decompress(data, max_output_size=_MAX_COLD_BYTES)
    except zstandard.ZstdError as exc:
        raise AgentDatabaseError(f"cold archive {archive.name}: {exc}") from None
    events: list[tuple[int, bytes]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise AgentDatabaseError(f"cold archive {archive.name}: {exc}") from None
        if isinstance(record, dict) and record.get("kind") == "event":
            row = record.get("row")
            if not isinstance(row, dict) or not isinstance(row.get("event_json"), str):
                raise AgentDatabaseError(f"cold archive {archive.name}: an event without text")
            events.append((int(row.get("seq", len(events))), row["event_json"].encode()))
    events.sort(key=lambda item: item[0])
    return events


class EventLines:
    """Events as the bytes of a JSONL file (each event, then ``\\n``), read like a file.

    This is the transcript file OpenClaw itself would export for them; store_sql's line
    reader takes it as it takes any file."""

    def __init__(self, events: Iterator[tuple[int, bytes]]) -> None:
        self._events = events
        self._pending = b""
        self.seqs: list[int] = []
        """The seq of every event read so far: line i of the stream is event seqs[i]."""

    def read(self, size: int = -1, /) -> bytes:
        parts = [self._pending] if self._pending else []
        have = len(self._pending)
        while size < 0 or have < size:
            item = next(self._events, None)
            if item is None:
                break
            seq, event = item
            if b"\n" in event:
                raise AgentDatabaseError(
                    f"event {seq} holds a line break, so it cannot be one line of a transcript"
                )
            self.seqs.append(seq)
            parts.append(event)
            parts.append(b"\n")
            have += len(event) + 1
        data = b"".join(parts)
        if size < 0 or len(data) <= size:
            self._pending = b""
            return data
        self._pending = data[size:]
        return data[:size]

    def close(self) -> None:
        self._events = iter(())


def _text(value: Any) -> str:
    """A TEXT value read as bytes (the connection's text_factory), as str."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)
