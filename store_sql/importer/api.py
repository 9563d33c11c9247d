"""Import OpenClaw state directories, sessions directories and single files.

    report = await import_path(store, Path("~/.openclaw").expanduser())
    for f in report.files:
        print(f.rel_path, f.status, f.damaged)

What each file becomes (docs/FORMATS.md §1): `sessions.json` -> the agent's session index (exact
bytes plus parsed entries); transcripts (live, topic, fork, checkpoint, `.reset.` and
`.deleted.` archives, also zstd-compressed) -> `transcripts` and one row per line; prompt
blobs, backups, trajectory sidecars and unknown files -> `opaque_files`; `*.lock`/`*.tmp` and
symlinks leaving the sessions dir -> skipped and reported. A current install keeps its state in
``agents/<id>/agent/openclaw-agent.sqlite`` instead: that database is read first
(`agent_db`), and a file it supersedes is skipped. Sources are only ever opened for reading.

Guarantees, each tested in tests/test_import.py:
- Every byte is kept: export reproduces each file exactly (tests/test_roundtrip_corpus.py).
- Re-import: an unchanged file writes nothing; a file that only grew gets its new lines
  (the stored `source_sha256` of the imported prefix is checked first); a file changed in
  the middle, or grown while the store has API appends of its own, becomes a new version
  superseding the old one, reported as `new_version`; nothing is ever merged.
- Memory stays flat: a transcript is read in chunks (`chunks.CHUNK_BYTES`), each
  committed with the offset and hash it reached, so an interrupted import resumes as "the
  file grew". Parsing runs in worker threads and SQLite on the writer's thread, so the event
  loop keeps serving other calls while a large file imports.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from store_sql.engine.database import Database
from store_sql.errors import ImportFailedError, InvalidEntryError, WriteFailedError
from store_sql.formats import sessions_dir
from store_sql.formats.state_dir import FileKind, shown_path
from store_sql.formats.zstd_stream import UnreadableArchiveError
from store_sql.importer import rows as db
from store_sql.importer.agent_db import DatabaseImporter
from store_sql.importer.backend import ImportBackend, backend_for
from store_sql.importer.chunks import (
    LineChunk,
    LineChunker,
    LineStats,
)
from store_sql.importer.plan import OPAQUE_KINDS, TRANSCRIPT_KINDS, SourceFile, plan_import
from store_sql.importer.report import (
    FileReport,
    FileStatus,
    ImportProgress,
    ImportReport,
    add_line_stats,
)
from store_sql.importer.session_directory import DirectorySource
from store_sql.importer.session_index import decide_index, key_line, read_index
from store_sql.importer.sources import (
    decide_start,
    hash_file,
    looks_like_transcript,
    parse_compressed,
)

__all__ = ["ImportProgress", "ImportReport", "import_path"]

ProgressCallback = Callable[[ImportProgress], None]
_PEEK_BYTES = 64 << 10
_INDEX_STATUS: dict[str, FileStatus] = {
    "imported": "imported",
    "new_version": "new_version",
    "unchanged": "unchanged",
    "conflict": "error",
    "other_dir": "kept_opaque",
}


async def import_path(
    store: Database,
    path: Path,
    *,
    agent: str | None = None,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Import a state dir, one sessions dir, or one file into `store`.

    `agent` names the owner of a sessions dir or file outside ``agents/<id>/sessions`` (or
    keeps only that agent of a state dir). `dry_run` reads and checks everything and reports
    what would happen, writing nothing. `progress` is called after every chunk. The
    full-text index is not written here: the store's background indexer is paused while the
    import runs (its steps would compete for the writer and the cores) and catches up with
    the new lines afterwards, in idle time.

    Raises ImportFailedError when `path` is not importable at all; a problem with one file
    is reported in that file's record (status ``error``) and the others still import."""
    started = time.perf_counter()
    async with store.indexing_paused():
        with _full_collections_paused():
            return await _import(store, Path(path), agent, dry_run, progress, started)


async def _import(
    store: Database,
    path: Path,
    agent: str | None,
    dry_run: bool,
    progress: ProgressCallback | None,
    started: float,
) -> ImportReport:
    plan = await asyncio.to_thread(plan_import, path, agent)
    report = ImportReport(shown_path(path), dry_run, skipped=list(plan.skipped))
    tracker = _Tracker(plan.files, progress)
    backend = backend_for(store)
    importer = _FileImporter(backend, dry_run=dry_run, tracker=tracker)
    databases = DatabaseImporter(backend, dry_run=dry_run)
    provided: dict[str, set[str]] = {}
    for database in plan.databases:
        provided[database.rel_dir] = await databases.run(database, report)
    for index, src in enumerate(plan.files):
        tracker.start_file(index)
        record = FileReport(shown_path(src.path), src.rel_path, src.agent_id, src.info.kind.value)
        if src.name in provided.get(src.rel_dir, ()):
            # Today's gateway keeps this in its database; a file of the same name is a
            # leftover of the JSONL era and would fight the database's version.
            record.status = "skipped"
            record.note("the agent's openclaw-agent.sqlite holds this; read from there")
            report.files.append(record)
            tracker.end_file()
            continue
        try:
            await importer.run(src, record)
        except (OSError, ImportFailedError, InvalidEntryError, WriteFailedError) as exc:
            record.status = "error"
            record.note(str(exc) if not isinstance(exc, OSError) else f"cannot read: {exc}")
        report.files.append(record)
        tracker.end_file()
    report.duration_s = time.perf_counter() - started
    return report


# --- garbage collection during an import -----------------------------------------------------
#
# Parsing allocates millions of short-lived objects, and CPython's collector every so often
# answers with a full (generation 2) collection, which walks every tracked object of the
# whole process while holding the GIL: 60-160 ms in the benchmark process (its fixtures keep
# ~200,000 objects alive; a gateway's heap is no smaller), during which the event loop cannot
# run. Those are the worst loop stalls an import can cause.
# So while any import runs, the objects that existed when it started are frozen (gc.freeze:
# moved to the collector's permanent generation, which no collection walks). Collection
# stays enabled and still frees cyclic garbage made meanwhile; a full collection only walks
# what was allocated since, which is little (rows are untracked tuples, see LineChunk).
# This is process-wide: a frozen object that becomes cyclic garbage during the import is
# freed only after it. The last concurrent import unfreezes everything (`finally`); the next
# full collection then walks the whole heap again, as before, when CPython decides to. If
# the program froze objects itself (gc.get_freeze_count() > 0), nothing is touched: its own
# unfreeze must not be undone by ours.
# Measured (tools/bench, 50 MB import, 2 busy cores): worst stall 86-91 ms -> 5-9 ms.
# Disabling gc and running gc.collect(1) per chunk instead was worse: the full collection
# postponed by gc.disable ran the moment it was re-enabled, still inside the import (113 ms).

_gc_lock = threading.Lock()
_gc_imports = 0
_gc_froze = False


@contextlib.contextmanager
def _full_collections_paused() -> Iterator[None]:
    global _gc_imports, _gc_froze
    with _gc_lock:
        if _gc_imports == 0:
            _gc_froze = gc.get_freeze_count() == 0
            if _gc_froze:
                gc.freeze()
        _gc_imports += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_imports -= 1
            if _gc_imports == 0 and _gc_froze:
                gc.unfreeze()


class _Tracker:
    """Turns chunk-level advances into `ImportProgress` calls."""

    def __init__(self, files: list[SourceFile], callback: ProgressCallback | None) -> None:
        self._files = files
        self._callback = callback
        self._total = sum(f.size for f in files)
        self._done_before = 0
        self._done = 0
        self._lines = 0
        self._index = 0

    def start_file(self, index: int) -> None:
        self._index = index
        self._done_before = self._done

    def advance(self, size: int, lines: int) -> None:
        self._done += size
        self._lines += lines
        self._emit()

    def end_file(self) -> None:
        self._done = max(self._done, self._done_before + self._files[self._index].size)
        self._emit()

    def _emit(self) -> None:
        if self._callback is not None:
            src = self._files[self._index]
            total = max(self._total, self._done)
            self._callback(
                ImportProgress(
                    self._index, len(self._files), src.rel_path, self._done, total, self._lines
                )
            )


class _FileImporter:
    def __init__(self, backend: ImportBackend, *, dry_run: bool, tracker: _Tracker) -> None:
        self._backend = backend
        self._dry_run = dry_run
        self._tracker = tracker

    async def run(self, src: SourceFile, record: FileReport) -> None:
        kind = src.info.kind
        if kind is FileKind.SESSIONS_INDEX:
            await self._index(src, record)
        elif kind is FileKind.SESSIONS_DIRECTORY:
            await self._directory(src, record)
        elif kind in TRANSCRIPT_KINDS and src.info.compressed:
            await self._compressed(src, record, TRANSCRIPT_KINDS[kind])
        elif kind in TRANSCRIPT_KINDS:
            await self._transcript(src, record, TRANSCRIPT_KINDS[kind])
        elif kind is FileKind.OTHER and await asyncio.to_thread(looks_like_transcript, src):
            await self._transcript(src, record, "other")
        else:
            await self._opaque(src, record, OPAQUE_KINDS.get(kind, "other"))
        if kind is FileKind.LEGACY_INDEX:
            record.note(
                "kept as a file, not read as the index: the active sessions.d beside it is "
                "the agent's index, as the gateway reads it"
            )

    # --- transcripts -----------------------------------------------------------------------

    def _new(self, src: SourceFile, kind: str, supersedes: int | None) -> db.NewTranscript:
        info = src.info
        return db.NewTranscript(
            src.agent_id, src.rel_dir, kind, src.name, info.session_id, info.topic,
            info.archived_at, supersedes,
        )  # fmt: skip

    async def _transcript(self, src: SourceFile, record: FileReport, kind: str) -> None:
        stored = await self._backend.current_transcript(src.agent_id, src.rel_dir, src.name)
        start = await asyncio.to_thread(decide_start, src, stored, self._new(src, kind, None))
        record.status = start.status
        if start.message:
            record.note(start.message)
        if stored is not None:
            record.transcript_id = stored.transcript_id
        if start.stream is None:
            return
        stats = LineStats()
        chunker = LineChunker(
            start.stream,
            first_pos=start.first_pos,
            start_offset=start.start_offset,
            hasher=start.hasher,
            version=start.version,
            has_header=start.has_header,
            prev_entry_pos=start.prev_entry_pos,
            stats=stats,
        )
        try:
            await self._write_chunks(chunker, start.target, start.start_offset, record)
        finally:
            start.stream.close()
        add_line_stats(record, stats)

    async def _write_chunks(
        self,
        chunker: LineChunker,
        target: db.NewTranscript | db.Continuation | None,
        offset: int,
        record: FileReport,
    ) -> None:
        """Parse the next chunk in a worker thread while the writer stores this one.

        (Queueing the next chunk's write before this one ends, so the writer never waits
        for the round trip through the loop, was measured: no faster, the writer's own
        time is ~90% of the import.)"""
        pending: asyncio.Future[LineChunk | None] | None
        pending = asyncio.ensure_future(asyncio.to_thread(chunker.next_chunk))
        try:
            while pending is not None:
                chunk = await pending
                pending = None
                if chunk is None:
                    break
                if not chunk.final:
                    pending = asyncio.ensure_future(asyncio.to_thread(chunker.next_chunk))
                if not self._dry_run and target is not None:
                    target = await self._write_chunk(target, chunk, record)
                self._tracker.advance(chunk.end_offset - offset, len(chunk.rows))
                offset = chunk.end_offset
                await asyncio.sleep(0)
        finally:
            if pending is not None:
                with contextlib.suppress(Exception):
                    await pending

    async def _write_chunk(
        self,
        target: db.NewTranscript | db.Continuation,
        chunk: LineChunk,
        record: FileReport,
    ) -> db.Continuation:
        tid = await self._backend.write_chunk(target, chunk)
        record.transcript_id = tid
        next_pos = chunk.next_pos
        if next_pos is None:
            next_pos = target.line_count if isinstance(target, db.Continuation) else 0
        return db.Continuation(tid, next_pos, chunk.end_offset, target.file_name)

    async def _compressed(self, src: SourceFile, record: FileReport, kind: str) -> None:
        stored = await self._backend.current_transcript(src.agent_id, src.rel_dir, src.name)
        size, sha = await asyncio.to_thread(hash_file, src)
        if stored is not None and stored.source_sha256 == sha and stored.source_size == size:
            record.status = "unchanged"
            record.transcript_id = stored.transcript_id
            return
        supersedes = stored.transcript_id if stored is not None else None
        record.status = "imported" if stored is None else "new_version"
        if stored is not None:
            record.note("the archive differs from the one imported: stored as a new version")
        stats = LineStats()
        new = self._new(src, kind, supersedes)
        try:
            if self._dry_run:
                await asyncio.to_thread(parse_compressed, src, stats)
            else:
                record.transcript_id = await self._backend.import_compressed(new, src.open, stats)
        except UnreadableArchiveError as exc:
            record.message = None
            await self._opaque(src, record, "other")
            record.note(f"{exc}; kept as exact bytes only")
            return
        add_line_stats(record, stats)
        record.bytes = size
        self._tracker.advance(size, stats.lines)

    # --- sessions.json and opaque files ----------------------------------------------------

    async def _index(self, src: SourceFile, record: FileReport) -> None:
        source = await asyncio.to_thread(read_index, src)
        record.bytes = len(source.data)
        record.lines = source.data.count(b"\n") + (source.data[-1:] not in (b"", b"\n"))
        stored = await self._backend.stored_index(src.agent_id)
        outcome = decide_index(stored, source)
        if not self._dry_run and outcome.status in ("imported", "new_version"):
            # Decided again inside the write, so a concurrent change cannot be overwritten.
            outcome = await self._backend.import_index(source)
        if outcome.status in ("other_dir", "unstorable"):
            await self._opaque(src, record, "other")
            record.note(outcome.message or "")
            return
        record.status = _INDEX_STATUS[outcome.status]
        if outcome.message:
            record.note(outcome.message)
        if outcome.status not in ("imported", "new_version"):
            record.lines = record.bytes = 0  # nothing was imported
            return
        if source.parsed is None:
            record.status = "kept_opaque"
            record.note(
                f"sessions.json is {'empty' if not source.data else 'invalid'}: "
                f"{source.error}; kept byte for byte, never read as an empty index"
            )
            return
        record.entries = len(source.parsed.entries)
        for warning in source.parsed.warnings:
            record.note(warning)
        text = source.data.decode("utf-8")
        for entry in source.parsed.entries:
            if entry.problem is not None:
                record.add_damage(key_line(text, entry.key), f"{entry.key}: {entry.problem}")
        self._tracker.advance(record.bytes, 0)

    async def _directory(self, src: SourceFile, record: FileReport) -> None:
        known = await self._backend.known_files(src.agent_id)
        try:
            parsed = await asyncio.to_thread(
                sessions_dir.read_directory, src.file.root, known, parts=src.file.parts
            )
        except OSError as exc:
            record.status = "error"
            record.note(f"sessions.d not read: {exc}")
            return
        if parsed is None:
            record.status = "error"
            record.note("sessions.d stopped being active (its state.json) during the import")
            return
        source = DirectorySource(src.agent_id, src.rel_dir, src.path, parsed)
        outcome = await self._backend.import_directory(source, not self._dry_run)
        record.status = _INDEX_STATUS.get(outcome.status, "kept_opaque")
        record.entries = outcome.entries
        record.bytes = len(parsed.state_bytes) + sum(len(f.data) for f in parsed.files)
        if outcome.status == "unchanged":
            record.bytes = 0  # nothing was imported
        if (src.path.parent / "sessions.json").exists():
            record.note(
                "sessions.json is there too: the gateway reads this active sessions.d, so it "
                "is the agent's index (sessions.json is kept as a file)"
            )
        if outcome.message:
            record.note(outcome.message)
        ignored = [f"{f.name}: {f.ignored}" for f in parsed.files if f.ignored]
        if ignored:
            record.note(f"{len(ignored)} entry files the gateway ignores are kept as files")
        if parsed.skipped:
            record.note(
                f"{len(parsed.skipped)} entries of entries/ are not imported (symlinks, "
                "non-UTF-8 names, temp files: see entry_files.skipped)"
            )
        for f in parsed.files:
            if f.key is not None and f.problem is not None:
                # The line of the entry itself: 3 in the {sessionKey, entry} document.
                line = 3 if f.shape == "document" else 1
                record.add_damage(line, f"{f.name} ({f.key}): {f.problem}")
        record.entry_files = {
            "added": outcome.added,
            "changed": outcome.changed,
            "removed": outcome.removed,
            "conflicts": outcome.conflicts,
            "ignored": ignored,
            "skipped": [f"{name}: {why}" for name, why in parsed.skipped],
        }
        self._tracker.advance(record.bytes, 0)

    async def _opaque(self, src: SourceFile, record: FileReport, kind: str) -> None:
        stored_sha = await self._backend.opaque_sha256(src.agent_id, src.rel_dir, src.name)
        size, sha = await asyncio.to_thread(hash_file, src)
        if stored_sha == sha:
            record.status = "unchanged"
            return
        record.bytes = size
        record.status = "kept_opaque"
        if stored_sha is not None:
            record.note("content changed since the last import: replaced")
        if not self._dry_run:
            await self._backend.store_opaque(src.agent_id, src.rel_dir, src.name, kind, src.open)
        self._tracker.advance(size, 0)
