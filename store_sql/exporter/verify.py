"""Compare the store with a directory, writing nothing (`store-sql verify`).

    report = await verify_tree(store, Path("~/.openclaw").expanduser())
    if not report.identical:
        for d in report.differences:
            print(d.rel_path, d.kind, d.first_differing_byte)

The store's side is exactly what `export_tree` would write (`export_plan`), streamed from
one read snapshot per file and compared with the file on disk chunk by chunk, so memory
stays flat. Only sessions directories are compared, and in a current state dir what each
``agents/<id>/agent/openclaw-agent.sqlite`` holds (read in one snapshot, held in memory) and
the files OpenClaw archived in ``session-sqlite-import-archive/``; `*.lock`/`*.tmp` files and
entries the importer would not follow (symlinks leaving the dir, special files) are listed as
ignored.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, NamedTuple

from store_sql.addresses import check_agent_id
from store_sql.engine.database import Database
from store_sql.errors import NotFoundError
from store_sql.exporter.backend import FileConsumer, source_for
from store_sql.exporter.plan import PlannedFile
from store_sql.formats import sessions_dir as directory_index
from store_sql.formats.import_archive import ARCHIVE_DIR
from store_sql.formats.in_tree import TreeFile
from store_sql.formats.openclaw_agent_db import AgentDatabaseError
from store_sql.formats.sqltext import storable
from store_sql.formats.state_dir import (
    FileKind,
    SessionsDir,
    SkippedFile,
    StateDirError,
    find_sessions_dirs,
    shown_path,
    walk_sessions_dir,
)
from store_sql.importer.agent_db import database_files
from store_sql.importer.plan import agent_of, find_databases

__all__ = ["Difference", "VerifyReport", "verify_tree"]

DifferenceKind = Literal["missing", "extra", "different"]


class Difference(NamedTuple):
    """One difference; a tuple ``(rel_path, kind, first_differing_byte)`` with names."""

    rel_path: str
    """Relative to PATH: ``agents/main/sessions/x.jsonl`` (a state dir), ``x.jsonl`` (one dir)."""
    kind: DifferenceKind
    """missing: in the store, not on disk; extra: on disk, not in the store; different: both,
    with other bytes."""
    first_differing_byte: int | None = None
    """0-based offset of the first byte that differs (for `different`); when one file is a
    prefix of the other, the length of the shorter one."""


@dataclass(slots=True)
class VerifyReport:
    path: str
    compared: int = 0
    differences: list[Difference] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    """(path, why) of directory entries not compared (lock/temp files, foreign symlinks)."""
    duration_s: float = 0.0

    @property
    def identical(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "identical": self.identical,
            "compared": self.compared,
            "duration_s": round(self.duration_s, 6),
            "differences": [
                {
                    "rel_path": d.rel_path,
                    "kind": d.kind,
                    "first_differing_byte": d.first_differing_byte,
                }
                for d in self.differences
            ],
            "ignored": [{"path": p, "reason": r} for p, r in self.ignored],
        }


async def verify_tree(store: Database, path: Path, *, agent: str | None = None) -> VerifyReport:
    """Differences between what the store would export and the files under `path`.

    `path` is a state dir, or one sessions dir (of `agent`, or of the agent named by its
    ``agents/<id>/sessions`` path). Nothing is written, to the store or to disk."""
    started = time.perf_counter()
    path = Path(path)
    if agent is not None:
        check_agent_id(agent)
    report = VerifyReport(shown_path(path))
    dirs, prefix = await asyncio.to_thread(_layout, path, agent, report)
    if prefix is not None:
        agent = dirs[0].agent_id
    source = source_for(store)
    planned = (await source.plan(agent, None)).files
    wanted: dict[str, PlannedFile] = {}
    for item in planned:
        if prefix is None:
            wanted[item.rel_path] = item
        elif item.rel_path.startswith(prefix):
            wanted[item.rel_path.removeprefix(prefix)] = item
    on_disk: dict[str, OnDisk] = {}
    on_disk.update(await asyncio.to_thread(_disk_files, dirs, prefix is None, report))
    if prefix is None:
        on_disk.update(await asyncio.to_thread(_database_files, path, agent, report))
    for rel in sorted(wanted.keys() | on_disk.keys()):
        stored, file_path = wanted.get(rel), on_disk.get(rel)
        if file_path is None:
            report.differences.append(Difference(rel, "missing"))
        elif stored is None:
            report.differences.append(Difference(rel, "extra"))
        else:
            try:
                (offset,) = await source.each_file([stored], _comparer_of(file_path))
            except OSError as exc:  # changed since the walk (e.g. swapped for a symlink)
                shown = file_path.path if isinstance(file_path, TreeFile) else rel
                report.ignored.append((shown_path(shown), f"cannot read: {exc}"))
                report.differences.append(Difference(rel, "missing"))
                continue
            report.compared += 1
            if offset is not None:
                report.differences.append(Difference(rel, "different", offset))
    report.duration_s = time.perf_counter() - started
    return report


def _layout(
    path: Path, agent: str | None, report: VerifyReport
) -> tuple[list[SessionsDir], str | None]:
    """The sessions dirs to compare, and the stored-path prefix to strip (sessions-dir mode)."""
    if not path.is_dir():
        raise NotFoundError(f"{path} is not a directory")
    if (path / "agents").is_dir() or (path / "sessions").is_dir():
        not_followed: list[SkippedFile] = []
        try:
            dirs = find_sessions_dirs(path, agent=agent, skipped=not_followed)
            return dirs, None
        except StateDirError:
            return [], None  # a state dir holding no sessions dir: everything is missing
        finally:
            report.ignored.extend((shown_path(path / s.name), s.reason) for s in not_followed)
    try:
        agent_id = agent_of(path, agent)
    except StateDirError as exc:
        raise NotFoundError(f"{path} is not a state dir; {exc}") from None
    rel_dir = f"agents/{agent_id}/sessions"
    return [SessionsDir(agent_id, rel_dir, path)], f"{rel_dir}/"


def _disk_files(
    dirs: list[SessionsDir], state_mode: bool, report: VerifyReport
) -> dict[str, TreeFile]:
    files: dict[str, TreeFile] = {}
    for d in dirs:
        skipped: list[SkippedFile] = []
        active = directory_index.active_state(d.path / directory_index.DIRECTORY_NAME)[0]
        for file, info in walk_sessions_dir(d, skipped=skipped):
            file_path = file.path
            if info.kind is FileKind.LOCK_OR_TEMP:
                report.ignored.append((shown_path(file_path), "lock or temp file"))
                continue
            if (
                active is not None
                and info.name.startswith(_ENTRIES)
                and "/" not in info.name[len(_ENTRIES) :]
            ):
                why = _not_an_entry_file(file_path, info.name)
                if why is not None:
                    report.ignored.append((shown_path(file_path), why))
                    continue
            files[f"{d.rel_dir}/{info.name}" if state_mode else info.name] = file
        report.ignored.extend((shown_path(d.path / s.name), s.reason) for s in skipped)
    return files


def _database_files(path: Path, agent: str | None, report: VerifyReport) -> dict[str, Path | bytes]:
    """A current state dir: what each agent database stands for (its index and transcripts,
    read in one snapshot), and the files OpenClaw archived when it migrated. A file in a
    sessions dir that the database also holds is the database's."""
    found: dict[str, Path | bytes] = {}
    for source in find_databases(path, agent):
        try:
            found.update(database_files(source))
        except (AgentDatabaseError, OSError) as exc:
            report.ignored.append((str(source.path), f"not compared: {exc}"))
        if source.archive_dir.is_dir():
            rel_dir = f"agents/{source.agent_id}/{ARCHIVE_DIR}"
            for file in sorted(source.archive_dir.iterdir()):
                if file.is_file() and not file.is_symlink():
                    found[f"{rel_dir}/{file.name}"] = file
    return found


_ENTRIES = f"{directory_index.DIRECTORY_NAME}/{directory_index.ENTRIES_DIR}/"


def _not_an_entry_file(path: Path, name: str) -> str | None:
    """Why the importer does not read a child of an active sessions.d/entries, or None."""
    if path.is_symlink():
        return "symlink in an active sessions.d: the gateway ignores it"
    if not storable(name):
        return "file name is not UTF-8"
    return None


OnDisk = TreeFile | Path | bytes
"""A file found in a sessions dir (opened through its tree), one OpenClaw archived, or
bytes read from an agent database."""


def _comparer_of(found: OnDisk) -> FileConsumer[int | None]:
    return lambda item, chunks: _first_difference(chunks, found)


def _open(found: OnDisk) -> BinaryIO:
    if isinstance(found, TreeFile):
        return found.open()
    return found.open("rb") if isinstance(found, Path) else io.BytesIO(found)


def _first_difference(chunks: Iterator[bytes], found: OnDisk) -> int | None:
    offset = 0
    with _open(found) as f:
        for chunk in chunks:
            other = f.read(len(chunk))
            if other != chunk:
                return offset + _mismatch(chunk, other)
            offset += len(chunk)
        if f.read(1):
            return offset
    return None


def _mismatch(a: bytes, b: bytes) -> int:
    """Index of the first differing byte (the shorter length when one is a prefix)."""
    n = min(len(a), len(b))
    lo = 0
    step = 4096
    while lo + step <= n and a[lo : lo + step] == b[lo : lo + step]:
        lo += step
    while lo < n and a[lo] == b[lo]:
        lo += 1
    return lo
