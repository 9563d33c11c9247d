"""The files OpenClaw moves aside when it migrates an agent to SQLite (docs/FORMATS.md §6).

``openclaw doctor --session-sqlite import`` moves each legacy file it read into
``agents/<id>/session-sqlite-import-archive/`` as ``<slug>.<base>.imported-<ms>[.<n>]``:
``legacy-store.sessions.json.imported-<ms>`` is the old ``sessions.json``, and a transcript
becomes ``<session key slug>.<file name slug>.imported-<ms>`` (``archive-tier.<name>`` for
one no session referenced). A slug replaces every run of characters outside
``[A-Za-z0-9_.-]`` by ``_``, so the original name is not always in the archived one; the
run manifests in ``<state>/session-sqlite-migration-runs/*.json`` map every archived path to
its source path, and are read first. Nothing here writes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from store_sql.formats.state_dir import FileKind, classify_name

__all__ = [
    "ARCHIVE_DIR",
    "MIGRATION_RUNS_DIR",
    "ArchivedFile",
    "classify_archived",
    "migration_moves",
    "slug",
]

ARCHIVE_DIR = "session-sqlite-import-archive"
"""Inside ``agents/<id>/``."""
MIGRATION_RUNS_DIR = "session-sqlite-migration-runs"
"""Inside the state dir: one JSON manifest per migration run."""

_IMPORTED = re.compile(r"(?P<stem>.+)\.imported-(?P<ms>\d+)(?:\.\d+)?")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_TRANSCRIPT_KINDS = frozenset({FileKind.LIVE, FileKind.TOPIC, FileKind.FORK, FileKind.CHECKPOINT})

Role = Literal["index", "transcript", "other"]


@dataclass(frozen=True, slots=True)
class ArchivedFile:
    """What one archived file was before the migration."""

    name: str
    """Its name in the archive dir."""
    role: Role
    original_name: str | None
    """Its name in the sessions dir; None when neither a manifest nor its name tells."""
    session_id: str | None
    imported_ms: int | None
    """When OpenClaw moved it (epoch ms, from the name)."""


def slug(name: str) -> str:
    """The archive's spelling of a name: runs of unsafe characters become ``_``."""
    return _UNSAFE.sub("_", name)


def migration_moves(state_dir: Path) -> dict[str, str]:
    """archived file name -> original file name, from every run manifest that reads.

    A manifest that is missing or does not parse is ignored: the names are then recovered
    from the archived names alone (see `classify_archived`)."""
    moves: dict[str, str] = {}
    runs = state_dir / MIGRATION_RUNS_DIR
    if not runs.is_dir():
        return moves
    for manifest in sorted(runs.glob("*.json")):
        try:
            data = json.loads(manifest.read_bytes())
        except (OSError, ValueError):
            continue
        for target in data.get("targets", []) if isinstance(data, dict) else []:
            for move in target.get("completedMoves", []) if isinstance(target, dict) else []:
                if not isinstance(move, dict):
                    continue
                archived, source = move.get("archivePath"), move.get("sourcePath")
                if isinstance(archived, str) and isinstance(source, str):
                    moves[_basename(archived)] = _basename(source)
    return moves


def classify_archived(
    name: str,
    *,
    header_id: str | None,
    moves: dict[str, str],
    legacy_names: frozenset[str] = frozenset(),
) -> ArchivedFile:
    """What an archived file was. `header_id` is the id in its first line (a transcript's
    session id), `moves` comes from `migration_moves`, and `legacy_names` are the file names
    the archived sessions.json names (``sessionFile``), to undo a slug without a manifest."""
    match = _IMPORTED.fullmatch(name)
    ms = int(match["ms"]) if match else None
    stem = match["stem"] if match else name
    original = moves.get(name)
    if original is None and stem.startswith("legacy-store."):
        original = stem.removeprefix("legacy-store.")
    if original is not None:
        if original == "sessions.json" or original.startswith("sessions.json"):
            return ArchivedFile(name, "index", original, None, ms)
        info = classify_name(original)
        role: Role = "transcript" if info.kind in _TRANSCRIPT_KINDS else "other"
        return ArchivedFile(name, role, original, info.session_id, ms)
    guess = _transcript_name(stem, header_id)
    if guess is None:
        return ArchivedFile(name, "other", None, None, ms)
    by_slug = {slug(n): n for n in legacy_names}
    guess = by_slug.get(guess, guess)
    return ArchivedFile(name, "transcript", guess, classify_name(guess).session_id, ms)


def _transcript_name(stem: str, header_id: str | None) -> str | None:
    """The transcript name at the end of ``<key slug>.<name>``: the suffix after a dot that
    names a transcript, preferring one whose session id is the header's."""
    found: list[tuple[str, str | None]] = []
    for at, char in enumerate(stem):
        if char != ".":
            continue
        suffix = stem[at + 1 :]
        info = classify_name(suffix)
        if info.kind in _TRANSCRIPT_KINDS:
            found.append((suffix, info.session_id))
    if not found:
        return None
    for suffix, session_id in found:
        if header_id is not None and session_id == header_id:
            return suffix
    return found[0][0]


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]
