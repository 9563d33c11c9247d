"""What the files of an OpenClaw state directory are, where the sessions dirs are, safe paths.

Names follow docs/FORMATS.md §1 and the gateway's own parsers
(`src/config/sessions/artifacts.ts`, `paths.ts`, `archive-compression.ts` in openclaw/openclaw):
an archive suffix is ``.reset.``/``.deleted.``/``.bak.`` followed by exactly
``YYYY-MM-DDTHH-MM-SS[.mmm]Z``, optionally followed by ``.zst``. Nothing here reads file contents.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Literal
from urllib.parse import unquote

from store_sql.formats.in_tree import TreeFile, open_dir
from store_sql.formats.sqltext import storable

__all__ = [
    "NAME_MAX_BYTES",
    "ClassifiedFile",
    "FileKind",
    "SessionsDir",
    "SkippedFile",
    "StateDirError",
    "archive_name",
    "classify_name",
    "find_sessions_dirs",
    "name_problem",
    "safe_join",
    "shown_path",
    "walk_sessions_dir",
]

DEFAULT_AGENT_ID = "main"  # the gateway's default agent; the legacy <state>/sessions is its dir


class StateDirError(ValueError):
    """A path is not a state/sessions directory, or a name is unsafe to write to."""


class FileKind(StrEnum):
    """The role of one file in a sessions directory."""

    SESSIONS_INDEX = "sessions_index"
    LIVE = "live"
    TOPIC = "topic"
    FORK = "fork"
    CHECKPOINT = "checkpoint"
    RESET_ARCHIVE = "reset_archive"
    DELETED_ARCHIVE = "deleted_archive"
    TRAJECTORY = "trajectory"
    BACKUP = "backup"
    LOCK_OR_TEMP = "lock_or_temp"
    SKILL_PROMPT = "skill_prompt"
    SESSIONS_DIRECTORY = "sessions_directory"
    """An active ``sessions.d``: the agent's index (docs/FORMATS.md §7), read as one source."""
    INDEX_ARCHIVE = "index_archive"
    """A file of a ``sessions.d`` the gateway does not use: inactive, quarantined
    (``sessions.d.orphan.<ms>``), kept by a rollback (``sessions.d.bak.<ms>``) or a leftover
    staging dir (``sessions.d.staging-<pid>-<ms>``)."""
    LEGACY_INDEX = "legacy_index"
    """A ``sessions.json`` beside an active ``sessions.d``: the directory is the index."""
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ClassifiedFile:
    """A file name and what it tells about the file, without opening it."""

    name: str
    """Relative to the sessions dir, posix separators (``skills-prompts/sha256/ab/<hash>.txt``)."""
    kind: FileKind
    session_id: str | None
    topic: str | None
    """The decoded topic id of a topic transcript (or of the archived file)."""
    checkpoint_id: str | None
    archived_at: str | None
    """The time in a ``.reset.``/``.deleted.``/``.bak.`` suffix, as written in the name."""
    compressed: bool
    """The name ends with ``.zst``: the archive inside is zstd-compressed."""


@dataclass(frozen=True, slots=True)
class SessionsDir:
    """One agent's sessions directory inside a state directory."""

    agent_id: str
    rel_dir: str
    """Posix path relative to the state dir: ``agents/<id>/sessions`` or legacy ``sessions``."""
    path: Path
    root: Path | None = field(default=None, compare=False)
    """The folder named by the caller, when `path` lies below it: files are opened from
    there through `parts` without following a symlink (`in_tree`). None: `path` itself."""
    parts: tuple[str, ...] = field(default=(), compare=False)

    def location(self) -> tuple[Path, tuple[str, ...]]:
        """``(root, parts)``: where the walk opens this dir, never following a symlink."""
        return (self.path, ()) if self.root is None else (self.root, self.parts)


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A directory entry `walk_sessions_dir` did not yield, and why."""

    name: str
    reason: str


_TS = r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:\.\d{3})?Z"
_ARCHIVE_TIMESTAMP = re.compile(_TS)
_ARCHIVE_KINDS = {
    "reset": FileKind.RESET_ARCHIVE,
    "deleted": FileKind.DELETED_ARCHIVE,
    "bak": FileKind.BACKUP,
}
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_CHECKPOINT = re.compile(rf"(.+)\.checkpoint\.({_UUID})\.jsonl", re.IGNORECASE)
# pi names its session files "<ISO time with ':' and '.' as '-'>_<sessionId>.jsonl".
_FORK = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z)_(.+)\.jsonl")
# The gateway's SAFE_SESSION_ID_RE: what it accepts as <sessionId> in "<sessionId>.jsonl".
_SESSION_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}", re.IGNORECASE)
_SKILL_PROMPT = re.compile(r"skills-prompts/sha256/[^/]+/[^/]+\.txt")
_TRAJECTORY_SUFFIXES = (".trajectory.jsonl", ".trajectory-path.json")
_INDEX_DIRECTORY = re.compile(r"sessions\.d(?:\.(?:bak|orphan)\.\d+|\.staging-\d+-\d+)?/.+")


def classify_name(name: str) -> ClassifiedFile:
    """Say what a file is from its name relative to the sessions dir."""
    plain = ClassifiedFile(name, FileKind.OTHER, None, None, None, None, name.endswith(".zst"))
    base = name.rsplit("/", 1)[-1]
    if base.endswith((".lock", ".tmp")):  # gateway locks and atomic-write temps, anywhere
        return replace(plain, kind=FileKind.LOCK_OR_TEMP)
    if "/" in name:
        if _SKILL_PROMPT.fullmatch(name):
            return replace(plain, kind=FileKind.SKILL_PROMPT)
        if _INDEX_DIRECTORY.fullmatch(name):
            # Name alone cannot tell an active sessions.d: the importer's plan checks its
            # state.json and takes an active directory's files as the index.
            return replace(plain, kind=FileKind.INDEX_ARCHIVE)
        return plain
    if name == "sessions.json":
        return replace(plain, kind=FileKind.SESSIONS_INDEX)
    stem = name.removesuffix(".zst")
    archive = _split_archive(stem)
    if archive is not None:
        inner, kind, when = archive
        ids = _classify_transcript(inner)
        return replace(
            ids or plain, name=name, kind=kind, archived_at=when, compressed=plain.compressed
        )
    if ".bak" in name or name.endswith(".backup"):
        # "*.bak*" (also the legacy sessions.json.bak.<n>) and "*.backup": copies made by
        # people and tools; keep the session id when the copy names one.
        head, sep, _ = name.partition(".jsonl.")
        ids = _classify_transcript(head + ".jsonl") if sep else None
        return replace(ids or plain, name=name, kind=FileKind.BACKUP, compressed=plain.compressed)
    if name.endswith(_TRAJECTORY_SUFFIXES):
        session_id = name.rsplit(".trajectory", 1)[0]
        return replace(plain, kind=FileKind.TRAJECTORY, session_id=session_id or None)
    return _classify_transcript(name) or plain


def _split_archive(stem: str) -> tuple[str, FileKind, str] | None:
    """``(archived file name, kind, time as written)`` for ``<file>.<reason>.<time>`` names."""
    for reason, kind in _ARCHIVE_KINDS.items():
        marker = f".{reason}."
        index = stem.rfind(marker)
        if index > 0 and _ARCHIVE_TIMESTAMP.fullmatch(stem, index + len(marker)):
            return stem[:index], kind, stem[index + len(marker) :]
    return None


def _classify_transcript(name: str) -> ClassifiedFile | None:
    """Live, topic, fork and checkpoint transcripts; None for any other name."""
    if not name.endswith(".jsonl"):
        return None
    if match := _CHECKPOINT.fullmatch(name):
        return ClassifiedFile(
            name, FileKind.CHECKPOINT, match[1], None, match[2].lower(), None, False
        )
    if match := _FORK.fullmatch(name):
        return ClassifiedFile(name, FileKind.FORK, match[2], None, None, None, False)
    stem = name.removesuffix(".jsonl")
    session_id, sep, encoded = stem.partition("-topic-")
    if sep and encoded and _SESSION_ID.fullmatch(session_id):
        # The gateway writes encodeURIComponent(topicId); keep the raw text if it is not UTF-8.
        try:
            topic = unquote(encoded, errors="strict")
        except UnicodeDecodeError:
            topic = encoded
        return ClassifiedFile(name, FileKind.TOPIC, session_id, topic, None, None, False)
    if _SESSION_ID.fullmatch(stem):
        return ClassifiedFile(name, FileKind.LIVE, stem, None, None, None, False)
    return None


def archive_name(file_name: str, kind: Literal["reset", "deleted"], when: datetime) -> str:
    """The name the gateway gives an archive: ``<file>.<kind>.<toISOString, ':' -> '-'>``.

    ``when`` must be timezone-aware; it is written in UTC with milliseconds truncated, as
    ``Date.prototype.toISOString`` does (e.g. ``x.jsonl.reset.2026-02-10T10-51-08.679Z``).
    """
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("archive_name needs a timezone-aware datetime (naive times are ambiguous)")
    utc = when.astimezone(UTC)
    stamp = utc.strftime("%Y-%m-%dT%H-%M-%S") + f".{utc.microsecond // 1000:03d}Z"
    return f"{file_name}.{kind}.{stamp}"


def find_sessions_dirs(
    path: Path, *, agent: str | None = None, skipped: list[SkippedFile] | None = None
) -> list[SessionsDir]:
    """The sessions dirs under a state dir, or the one sessions dir ``path`` is.

    A state dir yields every ``agents/<id>/sessions`` (sorted by agent id) and the legacy
    ``sessions/`` (agent ``main``); ``agent`` then keeps only that agent's. A sessions dir
    takes its agent from ``agents/<id>/sessions`` in its path, else from ``agent``.
    ``path`` itself may be a symlink (the caller named it), but nothing below it is
    followed: a symlinked ``agents/``, ``agents/<id>``, ``agents/<id>/sessions`` or legacy
    ``sessions/`` could lead anywhere, so it is appended to ``skipped`` (relative to
    ``path``) and left out.
    """
    if not path.is_dir():
        raise StateDirError(f"{path} is not a directory")
    real = path.resolve()  # names of "." or a symlinked dir say nothing; the real path does
    notes: list[SkippedFile] = [] if skipped is None else skipped
    agents_dir = path / "agents"
    legacy = path / "sessions"
    has_agents = _plain_dir(agents_dir, "agents", notes)
    has_legacy = _plain_dir(legacy, "sessions", notes)
    if not has_agents and has_legacy and real.parent.name == "agents":
        # An agent dir (agents/<id>): its sessions/ is that agent's, not the legacy layout.
        rel_dir = f"agents/{real.name}/sessions"
        found = [SessionsDir(real.name, rel_dir, legacy, path, ("sessions",))]
        return _filtered(found, agent, path, notes)
    if has_agents or has_legacy or agents_dir.is_symlink() or legacy.is_symlink():
        found = []
        for child in sorted(agents_dir.iterdir() if has_agents else []):
            rel = f"agents/{child.name}"
            if _plain_dir(child, rel, notes) and _plain_dir(
                child / "sessions", f"{rel}/sessions", notes
            ):
                parts = ("agents", child.name, "sessions")
                found.append(
                    SessionsDir(child.name, f"{rel}/sessions", child / "sessions", path, parts)
                )
        if has_legacy:
            found.append(SessionsDir(DEFAULT_AGENT_ID, "sessions", legacy, path, ("sessions",)))
        return _filtered(found, agent, path, notes)
    in_agents = real.name == "sessions" and real.parent.parent.name == "agents"
    if not in_agents and not _looks_like_sessions_dir(path):
        raise StateDirError(
            f"{path} is neither a state directory (no agents/ or sessions/ inside) nor a "
            "sessions directory (no sessions.json or *.jsonl inside)"
        )
    from_path = real.parent.name if in_agents else None
    if from_path is not None and agent is not None and agent != from_path:
        raise StateDirError(f"{path} belongs to agent {from_path!r}, not {agent!r}")
    agent_id = from_path or agent
    if agent_id is None:
        raise StateDirError(
            f"{path} is a sessions directory outside agents/<id>/sessions: say which agent owns it"
        )
    return [SessionsDir(agent_id, f"agents/{agent_id}/sessions", path)]


def _plain_dir(path: Path, rel: str, skipped: list[SkippedFile]) -> bool:
    """``path`` is a directory and not a symlink; a symlink is noted in ``skipped``."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    if stat.S_ISLNK(mode):
        skipped.append(
            SkippedFile(rel, "symlinked directory (not followed: it leads out of the tree)")
        )
        return False
    return stat.S_ISDIR(mode)


def _filtered(
    found: list[SessionsDir], agent: str | None, path: Path, skipped: list[SkippedFile]
) -> list[SessionsDir]:
    """Keep only ``agent``'s dirs when one is named; an empty result is an error."""
    if agent is not None:
        found = [d for d in found if d.agent_id == agent]
    if not found:
        which = f" for agent {agent!r}" if agent is not None else ""
        why = "".join(f"; {s.name}: {s.reason}" for s in skipped)
        raise StateDirError(f"{path} is a state directory but holds no sessions dir{which}{why}")
    return found


def _looks_like_sessions_dir(path: Path) -> bool:
    return (
        (path / "sessions.json").is_file()
        or (path / "sessions.d").is_dir()
        or any(path.glob("*.jsonl"))
    )


def walk_sessions_dir(
    d: SessionsDir, *, skipped: list[SkippedFile] | None = None
) -> Iterator[tuple[TreeFile, ClassifiedFile]]:
    """Every regular file under a sessions dir, sorted by relative name, with its class.

    Subdirectories (``skills-prompts/sha256/**`` and any other) are included; a file or
    folder whose name is not valid UTF-8, or that `name_problem` refuses, is skipped with
    that reason. Folders are
    listed through descriptors opened without following symlinks (`in_tree`), and each
    `TreeFile` is opened the same way, so a folder or file swapped for a symlink after the
    walk is not followed either. A symlink is read only when it points to a regular file
    inside the dir (the target is then opened through the tree); symlinked directories,
    links leaving the dir, broken links and special files are never read but appended to
    ``skipped``.
    """
    root, base = d.location()
    real_root = Path(os.path.realpath(d.path))
    found: list[tuple[str, tuple[str, ...]]] = []
    pending = [""]
    while pending:
        prefix = pending.pop()
        try:
            fd = open_dir(root, (*base, *prefix.split("/")[:-1]))
        except OSError as exc:
            if not prefix:
                raise StateDirError(f"cannot list {d.path}: {exc.strerror}") from exc
            if skipped is not None:
                skipped.append(SkippedFile(prefix.rstrip("/"), f"unreadable directory ({exc})"))
            continue
        try:
            _scan(fd, prefix, d.path, real_root, base, found, pending, skipped)
        finally:
            os.close(fd)
    for rel, parts in sorted(found):
        yield TreeFile(root, parts, d.path / rel), classify_name(rel)


def _scan(
    fd: int,
    prefix: str,
    shown: Path,
    real_root: Path,
    base: tuple[str, ...],
    found: list[tuple[str, tuple[str, ...]]],
    pending: list[str],
    skipped: list[SkippedFile] | None,
) -> None:
    """Sort the entries of one open folder into files found, folders to walk and skips."""
    with os.scandir(fd) as entries:
        for entry in entries:
            rel = prefix + entry.name
            if not storable(entry.name):
                if skipped is not None:
                    skipped.append(SkippedFile(shown_path(rel), _NOT_UTF8))
                continue
            problem = name_problem(entry.name)
            if problem is not None:
                if skipped is not None:
                    why = f"the name {problem}, so export would refuse it: not imported"
                    skipped.append(SkippedFile(rel, why))
                continue
            reason = _skip_reason(entry, shown / rel, real_root)
            if reason is None:
                found.append((rel, (*base, *rel.split("/"))))
            elif isinstance(reason, tuple):
                found.append((rel, (*base, *reason)))
            elif reason == "directory":
                pending.append(rel + "/")
            elif skipped is not None:
                skipped.append(SkippedFile(rel, reason))


_NOT_UTF8 = (
    "the name is not valid UTF-8 (the store keeps names as text, so export could not give "
    "it back): not imported; rename it to import it"
)


def shown_path(path: Path | str) -> str:
    """`path` as printable text: bytes of a name that are not UTF-8 (which Python keeps as
    lone surrogates) are written as ``\\xNN``, so reports can be printed and sent as JSON."""
    text = str(path)
    return text if storable(text) else os.fsencode(text).decode("utf-8", "backslashreplace")


def _skip_reason(
    entry: os.DirEntry[str], shown: Path, real_root: Path
) -> str | tuple[str, ...] | None:
    """None for a file to yield, the target's parts (relative to the sessions dir) for a
    symlink to a file inside it, "directory" to descend into, else why it is skipped."""
    if not entry.is_symlink():
        if entry.is_dir(follow_symlinks=False):
            return "directory"
        if entry.is_file(follow_symlinks=False):
            return None
        return "not a regular file"
    try:
        target = Path(os.path.realpath(shown))
    except OSError:  # no longer a symlink when it was read (EINVAL): replaced meanwhile
        return "replaced while the folder was read: not imported"
    if not target.is_relative_to(real_root):
        return f"symlink leaving the sessions dir (to {target})"
    try:
        mode = os.stat(target).st_mode
    except OSError as exc:
        return "symlink loop" if exc.errno == errno.ELOOP else "broken symlink"
    if stat.S_ISDIR(mode):
        return "symlink to a directory (not followed: it could loop)"
    if not stat.S_ISREG(mode):
        return "symlink to something that is not a regular file"
    return target.relative_to(real_root).parts


NAME_MAX_BYTES = 255
"""The longest file name (one path part, in bytes) Linux file systems hold."""


def name_problem(rel: str) -> str | None:
    """Why export refuses to write the relative name `rel` (posix separators), or None.

    Refused: empty names, NUL, backslashes, absolute or drive paths (``/x``, ``C:x``), empty,
    ``.`` and ``..`` parts, and parts longer than `NAME_MAX_BYTES`. Import skips files whose
    names this refuses, so everything it stores can be exported again.
    """
    if not rel:
        return "is empty"
    if "\0" in rel:
        return "contains a NUL byte"
    if "\\" in rel:
        return "contains a backslash"
    if PurePosixPath(rel).is_absolute() or PureWindowsPath(rel).drive:
        return "is absolute"
    parts = rel.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "has an empty, '.' or '..' part"
    if any(len(os.fsencode(part)) > NAME_MAX_BYTES for part in parts):
        return f"has a part longer than {NAME_MAX_BYTES} bytes"
    return None


def safe_join(root: Path, rel: str) -> Path:
    """``root / rel`` for a name read from a store, refusing anything that could escape root.

    Refused: what `name_problem` refuses, and names that resolve (through existing
    symlinks) outside ``root``. The resolution is
    a check made before the write: the write itself goes through `in_tree`, which follows no
    symlink whatever changes in between.
    """
    problem = name_problem(rel)
    if problem is not None:
        raise StateDirError(f"file name {rel!r} {problem}" if rel else "empty file name")
    joined = root.joinpath(*rel.split("/"))
    try:
        real_root = Path(os.path.realpath(root))
        inside = Path(os.path.realpath(joined)).is_relative_to(real_root)
    except OSError as exc:  # a folder on the way changed while it was resolved
        raise StateDirError(f"file name {rel!r} cannot be resolved: {exc.strerror}") from None
    if not inside:
        raise StateDirError(f"file name {rel!r} resolves outside {root}")
    return joined
