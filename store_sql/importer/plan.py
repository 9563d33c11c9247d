"""Which files an import reads: a state dir, one sessions dir, or one file (docs/FORMATS.md §1).

Nothing here opens a file's contents or the database; the plan is the list of sources with
their agent, their sessions dir (as export will rebuild it) and what their names say they are.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from store_sql.addresses import check_agent_id
from store_sql.errors import ImportFailedError, InvalidEntryError
from store_sql.formats import sessions_dir as directory_index
from store_sql.formats.import_archive import ARCHIVE_DIR
from store_sql.formats.in_tree import TreeFile
from store_sql.formats.openclaw_agent_db import DATABASE_NAME
from store_sql.formats.state_dir import (
    ClassifiedFile,
    FileKind,
    SessionsDir,
    SkippedFile,
    StateDirError,
    classify_name,
    find_sessions_dirs,
    shown_path,
    walk_sessions_dir,
)
from store_sql.importer.report import SkippedSource

TRANSCRIPT_KINDS: dict[FileKind, str] = {
    FileKind.LIVE: "live",
    FileKind.TOPIC: "topic",
    FileKind.FORK: "fork",
    FileKind.CHECKPOINT: "checkpoint",
    FileKind.RESET_ARCHIVE: "reset",
    FileKind.DELETED_ARCHIVE: "deleted",
}
"""File kinds stored as transcripts, and the `transcripts.kind` each becomes."""

OPAQUE_KINDS: dict[FileKind, str] = {
    FileKind.BACKUP: "backup",
    FileKind.TRAJECTORY: "trajectory",
    FileKind.SKILL_PROMPT: "skill_prompt",
    FileKind.INDEX_ARCHIVE: "index_archive",
    FileKind.LEGACY_INDEX: "legacy_index",
    FileKind.OTHER: "other",
}
"""File kinds kept only as exact bytes in `opaque_files`, and the `kind` they get there."""


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One file to import."""

    file: TreeFile
    """Opened through its tree (`in_tree`): a symlink swapped in after planning is not
    followed, and only a regular file is read."""
    agent_id: str
    rel_dir: str
    """The sessions dir relative to the state dir: ``agents/<id>/sessions`` or ``sessions``."""
    info: ClassifiedFile
    size: int
    """Size when planned (progress only: the import reads whatever is there when it runs)."""

    @property
    def path(self) -> Path:
        """The file as found, for reports."""
        return self.file.path

    def open(self) -> BinaryIO:
        return self.file.open()

    @property
    def name(self) -> str:
        """Relative to the sessions dir, posix separators."""
        return self.info.name

    @property
    def rel_path(self) -> str:
        return f"{self.rel_dir}/{self.info.name}"


@dataclass(frozen=True, slots=True)
class DatabaseSource:
    """One agent's ``agents/<id>/agent/openclaw-agent.sqlite`` (docs/FORMATS.md §6)."""

    agent_id: str
    path: Path
    state_dir: Path

    @property
    def rel_dir(self) -> str:
        """The sessions dir its sessions and transcripts are exported to."""
        return f"agents/{self.agent_id}/sessions"

    @property
    def rel_path(self) -> str:
        return f"agents/{self.agent_id}/agent/{DATABASE_NAME}"

    @property
    def sessions_dir(self) -> Path:
        return self.state_dir / "agents" / self.agent_id / "sessions"

    @property
    def archive_dir(self) -> Path:
        """Where OpenClaw moved the legacy files it migrated."""
        return self.state_dir / "agents" / self.agent_id / ARCHIVE_DIR

    @property
    def file(self) -> TreeFile:
        """The database, reached from the state dir without following a symlink."""
        return self.in_agent("agent", DATABASE_NAME)

    def in_agent(self, *names: str) -> TreeFile:
        """``agents/<id>/<names...>`` reached from the state dir without following a
        symlink (`in_tree`)."""
        shown = self.state_dir.joinpath("agents", self.agent_id, *names)
        return TreeFile(self.state_dir, ("agents", self.agent_id, *names), shown)


@dataclass(slots=True)
class ImportPlan:
    files: list[SourceFile] = field(default_factory=list)
    skipped: list[SkippedSource] = field(default_factory=list)
    databases: list[DatabaseSource] = field(default_factory=list)


def plan_import(path: Path, agent: str | None = None) -> ImportPlan:
    """Every file under `path` to import, and what was left out and why.

    `path` is a state dir (every ``agents/<id>/sessions`` and the legacy ``sessions/``), one
    sessions dir (agent from ``agents/<id>/sessions`` in its path, else `agent`), or one file.
    """
    if agent is not None:
        check_agent_id(agent)
    if not path.exists():
        raise ImportFailedError(f"{path}: no such file or directory")
    if path.is_file():
        return _plan_one_file(path, agent)
    plan = ImportPlan(databases=find_databases(path, agent))
    not_followed: list[SkippedFile] = []
    try:
        dirs = find_sessions_dirs(path, agent=agent, skipped=not_followed)
    except StateDirError as exc:
        if not plan.databases:
            raise ImportFailedError(str(exc)) from None
        dirs = []  # a migrated agent may have no sessions dir left
    plan.skipped.extend(SkippedSource(shown_path(path / s.name), s.reason) for s in not_followed)
    for sessions_dir in dirs:
        try:
            check_agent_id(sessions_dir.agent_id)
        except InvalidEntryError as exc:
            plan.skipped.append(SkippedSource(shown_path(sessions_dir.path), str(exc)))
            continue
        _plan_dir(sessions_dir, plan)
    return plan


def find_databases(state_dir: Path, agent: str | None = None) -> list[DatabaseSource]:
    """Every ``agents/<id>/agent/openclaw-agent.sqlite`` of a state dir (of `agent`).

    As for sessions dirs, no symlink below `state_dir` is followed: a symlinked ``agents/``,
    ``agents/<id>``, ``agents/<id>/agent`` or database is left out."""
    agents = state_dir / "agents"
    if not agents.is_dir() or agents.is_symlink():
        return []
    found = []
    for child in sorted(agents.iterdir()):
        if agent is not None and child.name != agent:
            continue
        db = child / "agent" / DATABASE_NAME
        followed = (child, child / "agent", db)
        if db.is_file() and not any(p.is_symlink() for p in followed):
            found.append(DatabaseSource(child.name, db, state_dir))
    return found


def _plan_dir(sessions_dir: SessionsDir, plan: ImportPlan) -> None:
    skipped: list[SkippedFile] = []
    directory = _active_directory(sessions_dir, plan)
    try:
        walked = list(walk_sessions_dir(sessions_dir, skipped=skipped))
    except StateDirError as exc:
        plan.skipped.append(SkippedSource(shown_path(sessions_dir.path), str(exc)))
        return
    for file, info in walked:
        if directory is not None and _in_directory_index(info.name):
            continue  # read by the directory's own source, as the gateway reads it
        if directory is not None and info.kind is FileKind.SESSIONS_INDEX:
            info = replace(info, kind=FileKind.LEGACY_INDEX)
        if info.kind is FileKind.LOCK_OR_TEMP:
            plan.skipped.append(
                SkippedSource(
                    shown_path(file.path), "lock or temp file: never imported nor exported"
                )
            )
            continue
        try:
            size = os.stat(file.path, follow_symlinks=False).st_size
        except OSError:
            size = 0  # the size only drives progress; the read reports what is wrong
        plan.files.append(SourceFile(file, sessions_dir.agent_id, sessions_dir.rel_dir, info, size))
    plan.skipped.extend(
        SkippedSource(shown_path(sessions_dir.path / s.name), s.reason) for s in skipped
    )


_DIRECTORY_PREFIX = f"{directory_index.DIRECTORY_NAME}/"
_ENTRIES_PREFIX = f"{_DIRECTORY_PREFIX}{directory_index.ENTRIES_DIR}/"


def _in_directory_index(name: str) -> bool:
    """state.json and the direct children of entries/ of an active sessions.d."""
    if name == _DIRECTORY_PREFIX + directory_index.STATE_FILE:
        return True
    return name.startswith(_ENTRIES_PREFIX) and "/" not in name[len(_ENTRIES_PREFIX) :]


def _active_directory(d: SessionsDir, plan: ImportPlan) -> SourceFile | None:
    """The source for an active ``sessions.d`` of `d` (added to `plan`), or None."""
    root = d.path / directory_index.DIRECTORY_NAME
    state, _ = directory_index.active_state(root)
    if state is None:
        return None
    size = 0  # for progress only: the import reads whatever is there when it runs
    with contextlib.suppress(OSError), os.scandir(root / directory_index.ENTRIES_DIR) as listing:
        for item in listing:
            with contextlib.suppress(OSError):  # gone since the listing
                if item.is_file(follow_symlinks=False):
                    size += item.stat(follow_symlinks=False).st_size
    info = replace(classify_name(directory_index.DIRECTORY_NAME), kind=FileKind.SESSIONS_DIRECTORY)
    tree_root, base = d.location()
    folder = TreeFile(tree_root, (*base, directory_index.DIRECTORY_NAME), root)
    source = SourceFile(folder, d.agent_id, d.rel_dir, info, size)
    plan.files.append(source)
    return source


def agent_of(folder: Path, agent: str | None) -> str:
    """The agent owning a sessions dir: ``<id>`` when it is ``.../agents/<id>/sessions``,
    else `agent`. Raises StateDirError when the two disagree or neither names one."""
    folder = folder.absolute()
    from_path = None
    if folder.name == "sessions" and folder.parent.parent.name == "agents":
        from_path = folder.parent.name
    if from_path is not None and agent is not None and from_path != agent:
        raise StateDirError(f"{folder} belongs to agent {from_path!r}, not {agent!r}")
    agent_id = from_path or agent
    if agent_id is None:
        raise StateDirError(
            f"{folder} is not inside agents/<id>/sessions: say which agent owns it (--agent)"
        )
    return agent_id


def _plan_one_file(path: Path, agent: str | None) -> ImportPlan:
    try:
        agent_id = agent_of(path.parent, agent)
    except StateDirError as exc:
        raise ImportFailedError(f"{path}: {exc}") from None
    check_agent_id(agent_id)
    info = classify_name(path.name)
    plan = ImportPlan()
    if info.kind is FileKind.LOCK_OR_TEMP:
        plan.skipped.append(SkippedSource(shown_path(path), "lock or temp file: never imported"))
        return plan
    rel_dir = f"agents/{agent_id}/sessions"
    # The file named on the command line may be a symlink; it is opened in its real folder.
    real = Path(os.path.realpath(path))
    file = TreeFile(real.parent, (real.name,), path)
    plan.files.append(SourceFile(file, agent_id, rel_dir, info, path.stat().st_size))
    return plan
