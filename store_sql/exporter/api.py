"""Export the store as an OpenClaw state directory, byte for byte.

    await export_tree(store, Path("/tmp/state"))            # every agent
    data = await export_transcript(store, "main", "agent:main:main", fmt="markdown")

Layout and names are the imported ones (``agents/<id>/sessions/...`` or the legacy
``sessions/``). Untouched data comes out exactly as imported; what changed through the API
comes out as the gateway writes it (`sessions.render_sessions_json`, compact lines with
``\\n``). Each file is written to a temporary file in its directory (mode 0600, never
following a symlink) and renamed into place, so a reader sees the old file or the new one,
never a mix; directories created are mode 0700. Every name goes through
`state_dir.safe_join`: a stored name that would land outside OUT is refused and reported,
never written. OUT is opened once and every folder and file below it is reached through
directory descriptors without following a symlink (`formats.in_tree`), so a folder swapped
for a symlink while the export runs fails that file's write instead of redirecting it.
Files are streamed from one read snapshot each, so memory stays flat.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from store_sql.addresses import check_agent_id
from store_sql.engine.database import Database
from store_sql.engine.file_modes import make_private_dirs
from store_sql.engine.namespace import postgres_twin
from store_sql.engine.pg.connection import PgConnection
from store_sql.errors import (
    DatabaseCorruptError,
    ExportRefusedError,
    NotFoundError,
)
from store_sql.exporter.backend import FileConsumer, source_for
from store_sql.exporter.plan import ExportPlan, IndexLayout, PlannedFile, check_layout
from store_sql.formats import sessions_dir as directory_index
from store_sql.formats.in_tree import make_dirs, open_dir, write_file
from store_sql.formats.state_dir import StateDirError, safe_join
from store_sql.sessions.rows import get_entry
from store_sql.transcripts import render as render
from store_sql.transcripts.file_bytes import transcript_blocks
from store_sql.transcripts.reads import all_entries
from store_sql.transcripts.rows import TranscriptInfo, find_live, get_info

if TYPE_CHECKING:
    from store_sql.sessions import pg_rows as pg_sessions
    from store_sql.transcripts import pg_reads
    from store_sql.transcripts import pg_rows as pg_transcripts
else:
    pg_sessions = postgres_twin("store_sql.sessions.pg_rows")
    pg_reads = postgres_twin("store_sql.transcripts.pg_reads")
    pg_transcripts = postgres_twin("store_sql.transcripts.pg_rows")

__all__ = [
    "ExportReport",
    "ExportedFile",
    "export_transcript",
    "export_tree",
    "write_file_atomic",
]


@dataclass(frozen=True, slots=True)
class ExportedFile:
    rel_path: str
    source: str
    """index | transcript | compressed | opaque | snapshot"""
    bytes: int


@dataclass(slots=True)
class ExportReport:
    """What `export_tree` wrote, and what it refused to write."""

    out: str
    files: list[ExportedFile] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    """(stored path, why): names that would escape OUT or could not be written."""
    conflicts: list[str] = field(default_factory=list)
    """Two stored things mapping to one path (the first was written)."""
    not_in_archive: list[str] = field(default_factory=list)
    """With `export_pre_migration`: what the migration archive did not hold."""
    removed: list[str] = field(default_factory=list)
    """Entry files found in OUT's sessions.d that the exported index no longer holds."""
    moved: list[tuple[str, str]] = field(default_factory=list)
    """(from, to): the other layout's index found in OUT, set aside as the gateway does when
    it migrates (``sessions.json.bak.<ms>``) or rolls back (``sessions.d.bak.<ms>``)."""
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.refused

    def as_dict(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "ok": self.ok,
            "duration_s": round(self.duration_s, 6),
            "totals": {
                "files": len(self.files),
                "bytes": sum(f.bytes for f in self.files),
                "refused": len(self.refused),
                "conflicts": len(self.conflicts),
                "removed": len(self.removed),
                "moved": len(self.moved),
            },
            "files": [
                {"rel_path": f.rel_path, "source": f.source, "bytes": f.bytes} for f in self.files
            ],
            "refused": [{"rel_path": p, "reason": r} for p, r in self.refused],
            "conflicts": self.conflicts,
            "not_in_archive": self.not_in_archive,
            "removed": self.removed,
            "moved": [{"from": a, "to": b} for a, b in self.moved],
        }


async def export_tree(
    store: Database,
    out: Path,
    *,
    agent: str | None = None,
    durable: bool = False,
    index_layout: IndexLayout | None = None,
) -> ExportReport:
    """Write every file of the store (or of `agent`) under `out`, created if needed.

    `durable=True` also fsyncs each file before its rename and each directory after, for a
    copy that survives power loss; the rename alone already makes each file atomic.

    `index_layout` writes every session index as ``"json"`` (``sessions.json``) or
    ``"directory"`` (``sessions.d``, docs/FORMATS.md §7); None keeps each index's imported
    layout. Converting moves the other layout's index found in OUT aside, as the gateway's
    migration and rollback do; a sessions.d written over an older one loses the entry files
    of keys the index no longer holds."""
    started = time.perf_counter()
    if agent is not None:
        check_agent_id(agent)
    layout = check_layout(index_layout)
    out = Path(out)
    await asyncio.to_thread(make_root, out)
    plan = await source_for(store).plan(agent, layout)
    report = ExportReport(str(out), refused=list(plan.refused), conflicts=plan.conflicts)
    await write_planned(store, out, plan.files, report, durable=durable)
    await asyncio.to_thread(_settle_indexes, out, plan, report)
    report.duration_s = time.perf_counter() - started
    return report


async def write_planned(
    store: Database, out: Path, files: list[PlannedFile], report: ExportReport, *, durable: bool
) -> None:
    """Write planned files under `out` (which exists), recording each in `report`."""
    root_fd = await asyncio.to_thread(_open_root, out)
    try:
        await _write_planned(store, out, root_fd, files, report, durable=durable)
    finally:
        os.close(root_fd)


async def _write_planned(
    store: Database,
    out: Path,
    root_fd: int,
    files: list[PlannedFile],
    report: ExportReport,
    *,
    durable: bool,
) -> None:
    source = source_for(store)
    touched: set[tuple[str, ...]] = set()
    # A sessions.d is written from one snapshot (entry files, then state.json), so a patch
    # made meanwhile is in all of its files or in none.
    directories: dict[str, list[tuple[PlannedFile, tuple[str, ...]]]] = {}
    for item in files:
        try:
            safe_join(out, item.rel_path)
        except StateDirError as exc:
            report.refused.append((item.rel_path, str(exc)))
            continue
        parts = tuple(item.rel_path.split("/"))
        if item.source in ("index_entry", "index_state"):
            directories.setdefault(item.agent_id, []).append((item, parts))
            continue
        try:
            (size,) = await source.each_file([item], _writer_of(root_fd, durable))
        except OSError as exc:
            report.refused.append((item.rel_path, f"cannot write: {exc}"))
            continue
        except DatabaseCorruptError as exc:
            # One damaged page costs the files stored on it, not the whole export; the
            # file's partial copy is removed, so nothing written looks whole when it is not.
            report.refused.append((item.rel_path, f"not readable: {exc.__cause__}; {exc}"))
            continue
        if size < 0:
            continue
        touched.add(parts[:-1])
        report.files.append(ExportedFile(item.rel_path, item.source, size))
    for items in directories.values():
        try:
            results = await source.each_file(
                [item for item, _ in items], _directory_writer_of(root_fd, durable)
            )
        except DatabaseCorruptError as exc:
            report.refused.extend((item.rel_path, f"not readable: {exc}") for item, _ in items)
            continue
        for (item, parts), result in zip(items, results, strict=True):
            if isinstance(result, str):
                report.refused.append((item.rel_path, result))
            elif result >= 0:
                touched.add(parts[:-1])
                report.files.append(ExportedFile(item.rel_path, item.source, result))
    if durable:
        await asyncio.to_thread(_fsync_dirs, root_fd, touched)


async def export_transcript(
    store: Database,
    agent: str,
    session: str,
    *,
    fmt: Literal["jsonl", "markdown"] = "jsonl",
) -> bytes:
    """One transcript as bytes: its JSONL file, or a readable Markdown rendering.

    `session` is a session key (its entry's `sessionId` is used), a session id (its live
    transcript, else its newest current transcript of any kind) or a stored file name."""
    check_agent_id(agent)
    if fmt not in ("jsonl", "markdown"):
        raise ExportRefusedError(f"unknown format {fmt!r}: use 'jsonl' or 'markdown'")

    if store.dialect == "postgresql":
        return await _export_transcript_pg(store, agent, session, fmt)

    def render_one(conn: sqlite3.Connection) -> bytes:
        info = _find_transcript(conn, agent, session)
        if fmt == "jsonl":
            return b"".join(transcript_blocks(conn, info.transcript_id))
        title = f"{agent} / {info.session_id or info.file_name} ({info.file_name})"
        return render.markdown(title, all_entries(conn, info.transcript_id)).encode("utf-8")

    return await store.read(render_one)


async def _export_transcript_pg(store: Database, agent: str, session: str, fmt: str) -> bytes:
    async def render_one(conn: PgConnection) -> bytes:
        info = await _find_transcript_pg(conn, agent, session)
        if fmt == "jsonl":
            blocks = pg_reads.transcript_blocks(conn, info.transcript_id)
            return b"".join([block async for block in blocks])
        title = f"{agent} / {info.session_id or info.file_name} ({info.file_name})"
        entries = await pg_reads.all_entries(conn, info.transcript_id)
        return render.markdown(title, entries).encode("utf-8")

    return await store.postgres.read(render_one)


async def _find_transcript_pg(conn: PgConnection, agent: str, session: str) -> TranscriptInfo:
    """`_find_transcript` on PostgreSQL."""
    entry = await pg_sessions.get_entry(conn, agent, session)
    session_id = entry.get("sessionId") if entry is not None else None
    for candidate in (session_id, session):
        if not isinstance(candidate, str):
            continue
        info = await pg_transcripts.find_live(conn, agent, candidate)
        if info is not None:
            return info
        tid = await conn.fetchval(
            "SELECT transcript_id FROM transcripts WHERE agent_id = $1 AND superseded_by IS NULL "
            "AND (session_id = $2 OR file_name = $2) ORDER BY transcript_id DESC LIMIT 1",
            agent,
            candidate,
        )
        if tid is not None:
            return await pg_transcripts.get_info(conn, tid)
    raise NotFoundError(f"agent {agent!r} has no session or transcript {session!r}")


def _find_transcript(conn: sqlite3.Connection, agent: str, session: str) -> TranscriptInfo:
    entry = get_entry(conn, agent, session)
    session_id = entry.get("sessionId") if entry is not None else None
    for candidate in (session_id, session):
        if not isinstance(candidate, str):
            continue
        info = find_live(conn, agent, candidate)
        if info is not None:
            return info
        row = conn.execute(
            "SELECT transcript_id FROM transcripts WHERE agent_id = ? AND superseded_by IS NULL "
            "AND (session_id = ? OR file_name = ?) ORDER BY transcript_id DESC LIMIT 1",
            (agent, candidate, candidate),
        ).fetchone()
        if row is not None:
            return get_info(conn, row[0])
    raise NotFoundError(f"agent {agent!r} has no session or transcript {session!r}")


# --- file system side (worker and reader threads) -------------------------------------------


def make_root(out: Path) -> None:
    """Create OUT (mode 0700) when missing; ExportRefusedError when it cannot be."""
    os.close(_open_root(out))


def _open_root(out: Path) -> int:
    """Create OUT (mode 0700) when missing and open it: every write goes through this fd."""
    try:
        if not out.exists():
            make_private_dirs(out)
        return open_dir(out, ())
    except NotADirectoryError:
        raise ExportRefusedError(f"{out} exists and is not a directory") from None
    except OSError as exc:
        raise ExportRefusedError(f"cannot create or open {out}: {exc.strerror}") from None


def _writer_of(root_fd: int, durable: bool) -> FileConsumer[int]:
    """Creates a file's folders and streams its chunks into it (one snapshot for the whole
    file); returns its size, or -1 for an entry file whose key was deleted since the plan.
    One hop to the reading thread per file, folders included: each hop costs 30-80 µs, as
    much as writing a small file."""

    def write(item: PlannedFile, chunks: Iterator[bytes]) -> int:
        parts = tuple(item.rel_path.split("/"))
        if item.source == "index_entry":
            first = next(chunks, None)
            if first is None:
                return -1
            chunks = itertools.chain([first], chunks)
        folder = make_dirs(root_fd, parts[:-1])
        try:
            return write_file(folder, parts[-1], chunks, durable=durable)
        finally:
            os.close(folder)

    return write


def _directory_writer_of(root_fd: int, durable: bool) -> FileConsumer[int | str]:
    """Writes every file of one sessions.d: per file, its size, -1 when its key is gone, or
    why it could not be written."""
    write_one = _writer_of(root_fd, durable)

    def write(item: PlannedFile, chunks: Iterator[bytes]) -> int | str:
        try:
            return write_one(item, chunks)
        except OSError as exc:
            return f"cannot write: {exc}"

    return write


def write_file_atomic(target: Path, data: bytes | Iterable[bytes], *, durable: bool = False) -> int:
    """Write `data` to a temp file beside `target` (mode 0600, created exclusively, never
    through a symlink) and rename it into place; returns the number of bytes written.

    Raises ExportRefusedError when `target` is a directory, its folder does not exist, or
    the file cannot be written."""
    if target.is_dir():
        raise ExportRefusedError(
            f"{target} is a directory: name the file to write (e.g. {target}/<name>.jsonl), "
            "or - for standard output"
        )
    try:
        folder = open_dir(target.parent, ())
    except FileNotFoundError:
        raise ExportRefusedError(
            f"cannot write {target}: the folder {target.parent} does not exist"
        ) from None
    except OSError as exc:
        raise ExportRefusedError(f"cannot write {target}: {exc.strerror}") from None
    try:
        return write_file(folder, target.name, data, durable=durable)
    except OSError as exc:
        raise ExportRefusedError(f"cannot write {target}: {exc.strerror}") from None
    finally:
        os.close(folder)


def _settle_indexes(out: Path, plan: ExportPlan, report: ExportReport) -> None:
    """Make each exported index the one the gateway reads in OUT: set the other layout's
    index aside, and drop entry files of keys the written sessions.d no longer holds.
    Renames and removals go through folder descriptors, as writes do."""
    written = {f.rel_path for f in report.files}
    stamp = int(time.time() * 1000)
    root_fd = _open_root(out)
    try:
        for rel_dir, layout in plan.layouts.values():
            try:
                folder = safe_join(out, rel_dir)
            except StateDirError:
                continue
            _settle_index(root_fd, folder, rel_dir, layout, written, stamp, report)
    finally:
        os.close(root_fd)


def _settle_index(
    root_fd: int,
    folder: Path,
    rel_dir: str,
    layout: str,
    written: set[str],
    stamp: int,
    report: ExportReport,
) -> None:
    directory = directory_index.DIRECTORY_NAME
    parts = tuple(rel_dir.split("/"))
    if layout == "json":
        if (
            f"{rel_dir}/sessions.json" in written
            and directory_index.active_state(folder / directory)[0]
        ):
            _move_aside(root_fd, parts, directory, f"{directory}.bak.{stamp}", report)
        return
    legacy = folder / "sessions.json"
    if f"{rel_dir}/sessions.json" not in written and legacy.is_file():
        _move_aside(root_fd, parts, legacy.name, f"sessions.json.bak.{stamp}", report)
    # An index with no entries still needs entries/ to be active.
    entries_fd = make_dirs(root_fd, (*parts, directory, directory_index.ENTRIES_DIR))
    prefix = f"{rel_dir}/{directory}/{directory_index.ENTRIES_DIR}/"
    try:
        with os.scandir(entries_fd) as listing:
            stale = [
                item.name
                for item in listing
                if item.name.startswith("session-")
                and item.name.endswith(".json")
                and item.is_file(follow_symlinks=False)
                and prefix + item.name not in written
            ]
        for name in stale:
            os.unlink(name, dir_fd=entries_fd)
            report.removed.append(prefix + name)
    finally:
        os.close(entries_fd)


def _move_aside(
    root_fd: int, parts: tuple[str, ...], name: str, new_name: str, report: ExportReport
) -> None:
    folder = make_dirs(root_fd, parts)
    try:
        os.rename(name, new_name, src_dir_fd=folder, dst_dir_fd=folder)
    finally:
        os.close(folder)
    rel_dir = "/".join(parts)
    report.moved.append((f"{rel_dir}/{name}", f"{rel_dir}/{new_name}"))


def _fsync_dirs(root_fd: int, folders: set[tuple[str, ...]]) -> None:
    for parts in sorted(folders):
        fd = make_dirs(root_fd, parts)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
