"""Importing one agent's OpenClaw database (docs/FORMATS.md §6) into the store.

What becomes what, so that export writes the JSONL-era layout of today's state:
- ``session_nodes`` -> the agent's session index, as the ``sessions.json`` JSON.stringify
  would write from those entries (rowid order, integer-like keys first);
- each session's ``transcript_events`` -> the transcript ``<sessionId>.jsonl``, one line per
  event in ``seq`` order, the event's exact text (decompressed when stored as zstd);
  a transcript in cold storage the same, from its archive;
- ``session_transcript_archives`` -> the archive file it is published as (``.reset.``,
  ``.deleted.``, also ``.zst``), unless that file is in the sessions dir (then read there);
- ``session-sqlite-import-archive/*`` -> kept byte for byte, with the name each file had
  before the migration (for `store-sql export --pre-migration`).

Re-import reads only what is new: a transcript continues after the last ``seq`` it holds,
unless OpenClaw rewrote it (its events are all stamped anew, fewer remain, or the last one
read changed), which makes a new version superseding the old, as a changed file does.
The database is read in one snapshot (`AgentDatabase`) in worker threads; the store is
written chunk by chunk by its writer, as for files.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from store_sql.addresses import check_agent_id
from store_sql.errors import ImportFailedError, InvalidEntryError, WriteFailedError
from store_sql.formats import jsjson
from store_sql.formats.import_archive import (
    ARCHIVE_DIR,
    classify_archived,
    migration_moves,
)
from store_sql.formats.in_tree import TreeFile, open_dir
from store_sql.formats.openclaw_agent_db import (
    AgentDatabase,
    AgentDatabaseError,
    ColdArchive,
    EventLines,
    SessionNode,
    StoredArchive,
    TranscriptFrontier,
    cold_archive_events,
)
from store_sql.formats.sessions_json import entry_text, js_key_order, parse_index, render_index
from store_sql.formats.state_dir import classify_name
from store_sql.importer import database_rows as origin_db
from store_sql.importer import rows as db
from store_sql.importer.backend import ImportBackend
from store_sql.importer.chunks import LineChunk, LineChunker, LineStats
from store_sql.importer.plan import TRANSCRIPT_KINDS, DatabaseSource
from store_sql.importer.report import DatabaseReport, FileReport, ImportReport, add_line_stats
from store_sql.importer.session_index import IndexSource, decide_index

__all__ = ["DatabaseImporter", "database_files"]

_PEEK_BYTES = 64 << 10
_INDEX_STATUS = {"imported": "imported", "new_version": "new_version", "unchanged": "unchanged"}

Target = db.NewTranscript | db.Continuation


@dataclass(slots=True)
class _Start:
    """How to read one transcript's events, decided against what the store holds."""

    status: str
    message: str | None = None
    target: Target | None = None
    after_seq: int = -1
    first_pos: int = 0
    first_count: int = 0
    version: int | None = None
    has_header: bool = False
    prev_entry_pos: int | None = None
    adopt: origin_db.Origin | None = None
    """Nothing to read, but record this origin (a transcript the store already holds)."""


class DatabaseImporter:
    """Reads agent databases into a store; one instance per import run."""

    def __init__(self, backend: ImportBackend, *, dry_run: bool) -> None:
        self._backend = backend
        self._dry_run = dry_run
        self._moves: dict[Path, dict[str, str]] = {}

    async def run(self, src: DatabaseSource, report: ImportReport) -> set[str]:
        """Import `src`; returns the names in its sessions dir the database provided (files
        of those names are not read: the database is the gateway's current state)."""
        record = DatabaseReport(src.agent_id, str(src.path))
        report.databases.append(record)
        try:
            check_agent_id(src.agent_id)
            database = await asyncio.to_thread(AgentDatabase.open, src.path, inside=src.file)
        except (InvalidEntryError, AgentDatabaseError) as exc:
            record.status = "error"
            record.note(str(exc))
            return set()
        record.schema_version, record.app_version = database.schema_version, database.app_version
        provided: set[str] = set()
        try:
            await self._read(src, database, report, record, provided)
            if not self._dry_run:
                await self._backend.record_database(
                    src.agent_id, src.rel_path, database.schema_version, database.app_version
                )
        except (AgentDatabaseError, ImportFailedError, WriteFailedError) as exc:
            record.status = "error"
            record.note(str(exc))
        finally:
            await asyncio.to_thread(database.close)
        await self._pre_migration(src, report, record)
        return provided

    async def _read(
        self,
        src: DatabaseSource,
        database: AgentDatabase,
        report: ImportReport,
        record: DatabaseReport,
        provided: set[str],
    ) -> None:
        nodes = await asyncio.to_thread(database.session_nodes)
        record.sessions = len(nodes)
        provided.add("sessions.json")
        await self._index(src, nodes, report)
        frontiers = await asyncio.to_thread(database.transcripts)
        hot = {f.session_id for f in frontiers}
        for frontier in frontiers:
            provided.add(f"{frontier.session_id}.jsonl")
            await self._guarded(
                report,
                src,
                f"{frontier.session_id}.jsonl",
                "live",
                record,
                functools.partial(self._events, src, database, frontier),
            )
        for cold in await asyncio.to_thread(database.cold_archives):
            record.cold_archives += 1
            if cold.session_id in hot:
                continue  # restored: its events are hot again
            provided.add(f"{cold.session_id}.jsonl")
            await self._guarded(
                report,
                src,
                f"{cold.session_id}.jsonl",
                "live",
                record,
                functools.partial(self._cold, src, cold),
            )
        for archive in await asyncio.to_thread(database.archives):
            record.archives += 1
            if (src.sessions_dir / archive.name).is_file():
                continue  # published: the file in the sessions dir is read as a file
            provided.add(archive.name)
            kind = classify_name(archive.name).kind.value
            await self._guarded(
                report,
                src,
                archive.name,
                kind,
                record,
                functools.partial(self._archive, src, archive),
            )

    async def _guarded(
        self,
        report: ImportReport,
        src: DatabaseSource,
        name: str,
        kind: str,
        record: DatabaseReport,
        step: Callable[[FileReport], Awaitable[None]],
    ) -> None:
        """Run one transcript's import; its failure is its own record's error."""
        rec = FileReport(f"{src.path}#{name}", f"{src.rel_dir}/{name}", src.agent_id, kind)
        report.files.append(rec)
        try:
            await step(rec)
        except (
            AgentDatabaseError,
            ImportFailedError,
            InvalidEntryError,
            WriteFailedError,
            OSError,
        ) as exc:
            rec.status = "error"
            rec.note(str(exc))
        if rec.status in ("imported", "appended", "new_version"):
            record.transcripts += 1
            record.events += rec.lines
        elif rec.status == "unchanged":
            record.transcripts += 1

    # --- the session index ---------------------------------------------------------------

    async def _index(
        self, src: DatabaseSource, nodes: list[SessionNode], report: ImportReport
    ) -> None:
        rec = FileReport(
            f"{src.path}#session_nodes",
            f"{src.rel_dir}/sessions.json",
            src.agent_id,
            "sessions_index",
        )
        report.files.append(rec)
        data, problems = await asyncio.to_thread(_render_index, nodes)
        for problem in problems:
            rec.note(problem)
        source = IndexSource(
            src.agent_id,
            src.rel_dir,
            data,
            hashlib.sha256(data).hexdigest(),
            parse_index(data),
            "imported",
            None,
        )
        rec.bytes = len(data)
        stored = await self._backend.stored_index(src.agent_id)
        outcome = decide_index(stored, source)
        if not self._dry_run and outcome.status in ("imported", "new_version"):
            outcome = await self._backend.import_index(source)
        status = _INDEX_STATUS.get(outcome.status)
        rec.status = "error" if status is None else status  # type: ignore[assignment]
        if outcome.message:
            rec.note(outcome.message)
        rec.entries = len(nodes) - len(problems)
        if rec.status not in ("imported", "new_version"):
            rec.bytes = 0

    # --- transcripts from transcript_events ----------------------------------------------

    async def _events(
        self,
        src: DatabaseSource,
        database: AgentDatabase,
        frontier: TranscriptFrontier,
        rec: FileReport,
    ) -> None:
        name = f"{frontier.session_id}.jsonl"
        stored, origin = await self._backend.stored_with_origin(src.agent_id, src.rel_dir, name)
        if stored is not None:
            rec.transcript_id = stored.transcript_id
        start = await asyncio.to_thread(_decide_events, database, frontier, stored, origin, src)
        await self._apply(
            src,
            frontier.session_id,
            start,
            rec,
            "events",
            None,
            frontier.base_created_at,
            lambda: database.events(frontier.session_id, after_seq=start.after_seq),
        )

    async def _cold(self, src: DatabaseSource, cold: ColdArchive, rec: FileReport) -> None:
        name = f"{cold.session_id}.jsonl"
        stored, origin = await self._backend.stored_with_origin(src.agent_id, src.rel_dir, name)
        new = _new_live(src, cold.session_id, None)
        if stored is not None:
            rec.transcript_id = stored.transcript_id
            same_generation = origin is not None and (
                (origin.source == "cold_archive" and origin.generation == cold.generation)
                or (
                    origin.source == "events"
                    and origin.last_seq == cold.last_seq
                    and origin.event_count == cold.event_count
                )
            )
            if same_generation:
                rec.status = "unchanged"
                return
            new = _new_live(src, cold.session_id, stored.transcript_id)
        data = cold.blob
        if data is None:
            data = await asyncio.to_thread(_cold_file_bytes, src, cold)
        events = await asyncio.to_thread(cold_archive_events, data, cold)
        start = _Start(
            "imported" if stored is None else "new_version",
            None
            if stored is None
            else "the transcript moved to cold storage as another "
            "version than the one stored: stored as a new version",
            new,
        )
        await self._apply(
            src,
            cold.session_id,
            start,
            rec,
            "cold_archive",
            cold.generation,
            None,
            lambda: iter(events),
        )

    async def _apply(
        self,
        src: DatabaseSource,
        session_id: str,
        start: _Start,
        rec: FileReport,
        source: str,
        generation: str | None,
        base_created_at: int | None,
        events: Callable[[], Iterator[tuple[int, bytes]]],
    ) -> None:
        rec.status = start.status  # type: ignore[assignment]
        if start.message:
            rec.note(start.message)
        if start.adopt is not None:
            adopt, tid = start.adopt, rec.transcript_id
            if not self._dry_run and tid is not None:
                await self._backend.record_origin(tid, src.agent_id, session_id, adopt)
            return
        if start.target is None:
            return
        lines = EventLines(events())
        stats = LineStats()
        chunker = LineChunker(
            lines,
            first_pos=start.first_pos,
            version=start.version,
            has_header=start.has_header,
            prev_entry_pos=start.prev_entry_pos,
            stats=stats,
        )
        update = origin_db.OriginUpdate(
            src.agent_id,
            session_id,
            source,
            generation,
            base_created_at,
            start.first_count,
            start.first_pos,
            lines.seqs,
        )
        target: Target = start.target
        while (chunk := await asyncio.to_thread(chunker.next_chunk)) is not None:
            if not self._dry_run:
                target = await self._write(target, chunk, update, rec)
        add_line_stats(rec, stats)

    async def _write(
        self, target: Target, chunk: LineChunk, update: origin_db.OriginUpdate, rec: FileReport
    ) -> db.Continuation:
        tid, size = await self._backend.write_events_chunk(target, chunk, update)
        rec.transcript_id = tid
        next_pos = chunk.next_pos
        if next_pos is None:
            next_pos = target.line_count if isinstance(target, db.Continuation) else 0
        return db.Continuation(tid, next_pos, size, target.file_name)

    # --- archived transcripts ------------------------------------------------------------

    async def _archive(self, src: DatabaseSource, archive: StoredArchive, rec: FileReport) -> None:
        stored, origin = await self._backend.stored_with_origin(
            src.agent_id, src.rel_dir, archive.name
        )
        if stored is not None:
            rec.transcript_id = stored.transcript_id
            if origin is not None and origin.source_sha256 == archive.sha256:
                rec.status = "unchanged"
                return
        if hashlib.sha256(archive.blob).hexdigest() != archive.sha256:
            raise ImportFailedError(f"archive {archive.name}: its bytes do not match its sha256")
        info = classify_name(archive.name)
        new = db.NewTranscript(
            src.agent_id,
            src.rel_dir,
            TRANSCRIPT_KINDS.get(info.kind, "other"),
            archive.name,
            info.session_id or archive.session_id,
            info.topic,
            info.archived_at,
            None if stored is None else stored.transcript_id,
        )
        rec.status = "imported" if stored is None else "new_version"
        origin_row = origin_db.Origin(
            "archive", archive.generation, None, 0, None, None, archive.sha256
        )
        stats = LineStats()
        if self._dry_run:
            return
        compressed = archive.compressed and archive.name.endswith(".zst")
        data = archive.blob if compressed else _archive_file_bytes(archive)
        tid = await self._backend.import_archive(
            new, data, compressed, stats, (src.agent_id, archive.session_id, origin_row)
        )
        rec.transcript_id = tid
        add_line_stats(rec, stats)

    # --- session-sqlite-import-archive ---------------------------------------------------

    async def _pre_migration(
        self, src: DatabaseSource, report: ImportReport, record: DatabaseReport
    ) -> None:
        try:
            files = await asyncio.to_thread(_archived_files, src)
        except OSError:
            return  # no archive folder (or not a folder: a symlink is not followed)
        moves = self._moves.get(src.state_dir)
        if moves is None:
            moves = self._moves[src.state_dir] = await asyncio.to_thread(
                migration_moves, src.state_dir
            )
        legacy = await asyncio.to_thread(_legacy_names, files)
        rel_dir = f"agents/{src.agent_id}/{ARCHIVE_DIR}"
        for file in files:
            name = file.parts[-1]
            rec = FileReport(str(file.path), f"{rel_dir}/{name}", src.agent_id, "pre_migration")
            report.files.append(rec)
            record.pre_migration_files += 1
            try:
                header = await asyncio.to_thread(_header_id, file)
                what = classify_archived(name, header_id=header, moves=moves, legacy_names=legacy)
                stored_sha = await self._backend.opaque_sha256(src.agent_id, rel_dir, name)
                size, sha = await asyncio.to_thread(_hash_file, file)
                if stored_sha == sha:
                    rec.status = "unchanged"
                    continue
                rec.status, rec.bytes = "kept_opaque", size
                if what.original_name is None:
                    rec.note("its name before the migration is not known")
                if not self._dry_run:
                    await self._backend.store_archived(src.agent_id, rel_dir, file, what)
            except OSError as exc:
                rec.status = "error"
                rec.note(f"cannot read: {exc}")


def _render_index(nodes: list[SessionNode]) -> tuple[bytes, list[str]]:
    """The sessions.json JSON.stringify(store, null, 2) writes for these entries."""
    texts: dict[str, str] = {}
    problems: list[str] = []
    for node in nodes:
        try:
            value = jsjson.loads(node.entry_json)
        except (jsjson.JSONSyntaxError, UnicodeDecodeError) as exc:
            problems.append(f"session {node.key!r}: entry_json does not parse ({exc}); left out")
            continue
        texts[node.key] = entry_text(value)
    return render_index((key, texts[key]) for key in js_key_order(texts)), problems


def _new_live(src: DatabaseSource, session_id: str, supersedes: int | None) -> db.NewTranscript:
    return db.NewTranscript(
        src.agent_id,
        src.rel_dir,
        "live",
        f"{session_id}.jsonl",
        session_id,
        None,
        None,
        supersedes,
    )


def _decide_events(
    database: AgentDatabase,
    frontier: TranscriptFrontier,
    stored: db.StoredSource | None,
    origin: origin_db.Origin | None,
    src: DatabaseSource,
) -> _Start:
    """Read all, read what follows the last seq stored, or nothing (module doc)."""
    sid = frontier.session_id
    if stored is None:
        return _Start("imported", target=_new_live(src, sid, None))
    tid = stored.transcript_id
    fresh = _new_live(src, sid, tid)
    if origin is None or origin.source != "events":
        if origin is None and _same_as_stored(database, sid, stored):
            return _Start("unchanged", adopt=_origin_of(frontier))
        if (
            origin is not None
            and origin.last_seq == frontier.last_seq
            and origin.event_count == frontier.event_count
        ):
            return _Start("unchanged", adopt=_origin_of(frontier))
        return _Start("new_version", "the stored transcript was not read from these events", fresh)
    last = origin.last_seq if origin.last_seq is not None else -1
    event = database.event_at(sid, last)
    rewritten = (
        frontier.base_created_at != origin.base_created_at
        or database.events_upto(sid, last) != origin.event_count
        or event is None
        or hashlib.sha256(event).hexdigest() != origin.last_event_sha256
    )
    if rewritten:
        return _Start(
            "new_version",
            "OpenClaw rewrote this transcript since the last import (compaction, reset or "
            "repair): stored as a new version",
            fresh,
        )
    if frontier.last_seq == last:
        return _Start("unchanged")
    if stored.api_appended:
        return _Start(
            "new_version",
            "new events, but the store has API appends of its own beyond the imported part",
            fresh,
        )
    return _Start(
        "appended",
        target=db.Continuation(tid, stored.line_count, stored.byte_size, f"{sid}.jsonl"),
        after_seq=last,
        first_pos=stored.line_count,
        first_count=origin.event_count,
        version=stored.version,
        has_header=stored.version is not None,
        prev_entry_pos=stored.leaf_pos,
    )


def _origin_of(frontier: TranscriptFrontier) -> origin_db.Origin:
    return origin_db.Origin(
        "events",
        None,
        frontier.last_seq,
        frontier.event_count,
        frontier.base_created_at,
        None,
        None,
    )


def _same_as_stored(database: AgentDatabase, session_id: str, stored: db.StoredSource) -> bool:
    """The events are byte for byte the file the stored transcript was imported from."""
    if stored.compressed or stored.api_appended or stored.source_sha256 is None:
        return False
    hasher = hashlib.sha256()
    size = 0
    lines = EventLines(database.events(session_id))
    while block := lines.read(1 << 20):
        hasher.update(block)
        size += len(block)
    return size == stored.source_size and hasher.hexdigest() == stored.source_sha256


def _cold_file_bytes(src: DatabaseSource, cold: ColdArchive) -> bytes:
    """A cold archive kept as a file, ``sessions/cold/<name>``, read through the tree."""
    if cold.name in ("", ".", "..") or "/" in cold.name or "\0" in cold.name:
        raise ImportFailedError(
            f"cold archive name {cold.name!r} is not a plain file name: its transcript was "
            "not imported"
        )
    file = src.in_agent("sessions", "cold", cold.name)
    try:
        with file.open() as f:
            return f.read()
    except OSError as exc:
        raise ImportFailedError(
            f"cold archive {file.path} is missing or unreadable ({exc.strerror}): "
            "its transcript was not imported"
        ) from None


def _archived_files(src: DatabaseSource) -> list[TreeFile]:
    """The regular files of the agent's archive folder (symlinks are not followed)."""
    folder = src.in_agent(ARCHIVE_DIR)
    fd = open_dir(folder.root, folder.parts)
    try:
        with os.scandir(fd) as listing:
            names = sorted(e.name for e in listing if e.is_file(follow_symlinks=False))
    finally:
        os.close(fd)
    return [src.in_agent(ARCHIVE_DIR, name) for name in names]


def _header_id(file: TreeFile) -> str | None:
    with file.open() as f:
        first = f.read(_PEEK_BYTES).split(b"\n", 1)[0]
    try:
        value = json.loads(first)
    except ValueError:
        return None
    if isinstance(value, dict) and value.get("type") == "session":
        sid = value.get("id")
        return sid if isinstance(sid, str) else None
    return None


def _legacy_names(files: list[TreeFile]) -> frozenset[str]:
    """File names the archived sessions.json entries name (``sessionFile``)."""
    names: set[str] = set()
    for file in files:
        if not file.parts[-1].startswith("legacy-store."):
            continue
        try:
            with file.open() as f:
                store = json.loads(f.read())
        except (OSError, ValueError):
            continue
        for entry in store.values() if isinstance(store, dict) else []:
            name = entry.get("sessionFile") if isinstance(entry, dict) else None
            if isinstance(name, str) and name:
                names.add(name.replace("\\", "/").rsplit("/", 1)[-1])
    return frozenset(names)


def _hash_file(file: TreeFile) -> tuple[int, str]:
    with file.open() as f:
        data = f.read()
    return len(data), hashlib.sha256(data).hexdigest()


def database_files(src: DatabaseSource) -> dict[str, bytes]:
    """The files an import of `src` stands for, relative to the state dir, from one snapshot:
    ``sessions.json`` and each ``<sessionId>.jsonl`` (events, or a cold archive's), and each
    archive not published as a file. What `store-sql verify` compares a current state dir
    with. Raises AgentDatabaseError when the database cannot be read."""
    files: dict[str, bytes] = {}
    with AgentDatabase.open(src.path, inside=src.file) as database:
        files[f"{src.rel_dir}/sessions.json"] = _render_index(database.session_nodes())[0]
        hot = set()
        for frontier in database.transcripts():
            hot.add(frontier.session_id)
            lines = EventLines(database.events(frontier.session_id))
            files[f"{src.rel_dir}/{frontier.session_id}.jsonl"] = lines.read()
        for cold in database.cold_archives():
            if cold.session_id in hot:
                continue
            data = cold.blob
            if data is None:
                data = _cold_file_bytes(src, cold)
            lines = EventLines(iter(cold_archive_events(data, cold)))
            files[f"{src.rel_dir}/{cold.session_id}.jsonl"] = lines.read()
        for archive in database.archives():
            if not (src.sessions_dir / archive.name).is_file():
                files[f"{src.rel_dir}/{archive.name}"] = _archive_file_bytes(archive)
    return files


def _archive_file_bytes(archive: StoredArchive) -> bytes:
    """What export writes for an archive: the blob, decompressed unless named ``.zst``."""
    if archive.compressed and not archive.name.endswith(".zst"):
        import zstandard

        return bytes(zstandard.ZstdDecompressor().decompress(archive.blob, max_output_size=1 << 31))
    return archive.blob
