"""v1 and v2 transcripts, read as pi reads them: migrated in memory, never rewritten.

pi never works on v1 or v2 entries: when it loads a transcript it parses the lines it can
(damaged and blank lines are skipped), migrates the parsed objects to v3 and only then walks
the tree (docs/FORMATS.md §3, "Versions"). The store answers `context`, `active_path`,
`recent`, `leaf`, `entry`, `children`, `tree`, `labels` and `session_name` of a v1/v2
transcript from the same migration, done on every read, so it gives what pi gives while the
stored lines stay as they were imported. `migrate_to_v3` (upgrade.py) writes the very same
migrated lines as a new version.

The migration, in pi's order (pi mutates the parsed objects, so new keys land at the end):
- v1 -> v2: every entry but `session` lines gets an `id` and, as `parentId`, the id of the
  entry parsed before it: the entries form one chain in file order, damaged lines skipped. A
  compaction's numeric `firstKeptEntryIndex` (an index into the parsed lines, header = 0)
  becomes `firstKeptEntryId` and is removed; an index naming the header, no line or a line
  after the compaction gives no `firstKeptEntryId`. The header gains `version`.
- v2 -> v3: a message with role `hookMessage` gets role `custom`; the header's `version`
  becomes 3.

Ids. pi draws random ids; the store derives a v1 entry's id from its line position: the
position as 8 hex digits (`derived_id(42) == "0000002a"`), so the same transcript reads the
same on every call, each id names one line, and `migrate_to_v3` writes the ids reads showed.
A v2 entry keeps its own id. Every entry returned carries the migrated line (`raw`), its
derived id and parent, and the position of the stored line it comes from.

A transcript without a header, or whose header has no `version`, is read as v1, as pi reads
it; a `version` is compared with 2 and 3 as JavaScript compares it. Lines holding JSON that
is not an object are damaged lines here, as everywhere in the store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeGuard

import orjson

from store_sql.errors import NotFoundError
from store_sql.formats import jsjson
from store_sql.formats.js_numbers import NumberLiteral
from store_sql.formats.js_values import js_trim
from store_sql.transcripts.context import SessionContext, context_from_values
from store_sql.transcripts.reads import (
    StoredEntry,
    TreeNode,
    all_entries,
    build_tree,
    name_of,
    pick_recent,
    resolve_labels,
)
from store_sql.transcripts.rows import TranscriptInfo

__all__ = [
    "MigratedTranscript",
    "derived_id",
    "is_legacy",
    "load_migrated",
    "migrate_values",
    "migrated_of",
]


def is_legacy(info: TranscriptInfo) -> bool:
    """Whether pi migrates this transcript when it loads it (a v1 or v2 header, or none)."""
    return info.version is None or info.version < 3


def derived_id(pos: int) -> str:
    """The id of the v1 entry stored at line `pos`."""
    return f"{pos:08x}"


def _js_value(value: Any) -> Any:
    """A parsed value as JavaScript holds it: numbers are doubles, their spelling forgotten
    (pi writes migrated lines with JSON.stringify)."""
    if isinstance(value, NumberLiteral):
        return float(value)
    if isinstance(value, dict):
        return {k: _js_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_js_value(v) for v in value]
    return value


def _parse(line: StoredEntry) -> Any:
    """The line's JSON value as JSON.parse gives it (a BOM before the header and a CR at
    the end are whitespace to pi, as to the store's line classification); None if the line
    does not parse after all."""
    body = line.raw.removesuffix(b"\r")
    if line.pos == 0:
        body = body.removeprefix(b"\xef\xbb\xbf")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return _js_value(jsjson.loads(body))
    except (ValueError, UnicodeDecodeError):
        return None


def _is_number(value: Any) -> TypeGuard[int | float]:
    """`typeof value === "number"`."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _version_number(version: Any) -> float:
    """`header?.version ?? 1` as pi compares it with 2 and 3 (JavaScript's ToNumber; NaN,
    which compares false with everything, for what is not a number or a numeric string)."""
    if version is None:
        return 1
    if isinstance(version, bool):
        return float(version)
    if isinstance(version, int | float):
        return float(version)
    if isinstance(version, str):
        text = js_trim(version)
        if not text:
            return 0
        try:
            return float(text)
        except ValueError:
            return float("nan")
    return float("nan")


def migrate_values(lines: Iterable[StoredEntry]) -> tuple[float, dict[int, dict[str, Any]]]:
    """The version pi reads in the transcript, and pos -> the object pi holds for that line
    once migrated to v3, for every line pi parses (the header, entries, `session` lines in
    the middle); v1 ids are `derived_id`s."""
    parsed: list[tuple[int, dict[str, Any]]] = []
    for line in lines:
        if line.kind in ("header", "entry"):
            value = _parse(line)
            if isinstance(value, dict):
                parsed.append((line.pos, value))
    header = next((v for _, v in parsed if v.get("type") == "session"), None)
    version = _version_number(header.get("version") if header is not None else None)
    if version >= 3:
        return version, dict(parsed)
    if version < 2:
        values = [v for _, v in parsed]
        previous: str | None = None
        for pos, value in parsed:
            if value.get("type") == "session":
                value["version"] = 2
                continue
            value["id"] = derived_id(pos)
            value["parentId"] = previous
            previous = value["id"]
            index = value.get("firstKeptEntryIndex")
            if value.get("type") == "compaction" and _is_number(index):
                if float(index).is_integer() and 0 <= index < len(values):
                    target = values[int(index)]
                    if target.get("type") != "session":
                        # A target later in the file has no id yet: pi sets `undefined`,
                        # which JSON.stringify leaves out.
                        if "id" in target:
                            value["firstKeptEntryId"] = target["id"]
                        else:
                            value.pop("firstKeptEntryId", None)
                del value["firstKeptEntryIndex"]
    if version < 3:
        for _, value in parsed:
            if value.get("type") == "session":
                value["version"] = 3
            elif value.get("type") == "message":
                message = value.get("message")
                if isinstance(message, dict) and message.get("role") == "hookMessage":
                    message["role"] = "custom"
    return version, dict(parsed)


@dataclass(slots=True)
class _Migrated:
    """One entry as pi holds it after the migration; its line is written only when the
    entry is returned (`MigratedTranscript._stored`)."""

    pos: int
    id: str | None
    parent_pos: int | None
    type: str | None
    role: str | None
    timestamp: str | None
    value: dict[str, Any]


@dataclass(slots=True)
class MigratedTranscript:
    """A v1/v2 transcript as pi holds it after migrating it: its entries in file order."""

    transcript_id: int
    entries: list[_Migrated]
    by_pos: dict[int, _Migrated]

    def _stored(self, entry: _Migrated) -> StoredEntry:
        parent_id = entry.value.get("parentId")
        return StoredEntry(
            pos=entry.pos,
            id=entry.id,
            parent_id=parent_id if isinstance(parent_id, str) else None,
            parent_pos=entry.parent_pos,
            type=entry.type,
            role=entry.role,
            timestamp=entry.timestamp,
            raw=jsjson.dumps_bytes(entry.value),
            kind="entry",
            damage=None,
        )

    def _find(self, entry_id: str) -> _Migrated:
        """The latest entry with that id."""
        for entry in reversed(self.entries):
            if entry.id == entry_id:
                return entry
        raise NotFoundError(f"transcript {self.transcript_id} has no entry {entry_id!r}")

    def _path(self, to_entry_id: str | None) -> list[_Migrated]:
        current: _Migrated | None
        if to_entry_id is not None:
            current = self._find(to_entry_id)
        else:
            current = self.entries[-1] if self.entries else None
        path: list[_Migrated] = []
        while current is not None:
            path.append(current)
            parent = current.parent_pos
            current = None if parent is None else self.by_pos.get(parent)
        path.reverse()
        return path

    @property
    def leaf(self) -> StoredEntry | None:
        """The last entry in file order."""
        return self._stored(self.entries[-1]) if self.entries else None

    def entry(self, entry_id: str) -> StoredEntry:
        return self._stored(self._find(entry_id))

    def path(self, to_entry_id: str | None = None) -> list[StoredEntry]:
        """Root -> leaf (or -> `to_entry_id`)."""
        return [self._stored(e) for e in self._path(to_entry_id)]

    def children(self, entry_id: str) -> list[StoredEntry]:
        parent = self._find(entry_id)
        return [self._stored(e) for e in self.entries if e.parent_pos == parent.pos]

    def context(self, leaf_id: str | None = None) -> SessionContext:
        return context_from_values([(e.id, e.value) for e in self._path(leaf_id)])

    def recent(
        self, *, limit: int, max_bytes: int | None, types: frozenset[str] | None
    ) -> list[StoredEntry]:
        """`reads.recent_entries` over the migrated entries."""
        limit = max(0, min(limit, 1000))
        if limit == 0:
            return []
        path = reversed(self._path(None))
        return pick_recent((self._stored(e) for e in path), limit, max_bytes, types)

    def labels(self) -> dict[str, str]:
        return resolve_labels(e.value for e in self.entries if e.type == "label")

    def session_name(self) -> str | None:
        for entry in reversed(self.entries):
            if entry.type == "session_info":
                return name_of(entry.value)
        return None

    def tree(self) -> list[TreeNode]:
        rows = [(e.pos, e.id, e.parent_pos, e.type, e.role, e.timestamp) for e in self.entries]
        return build_tree(rows, self.labels())


def load_migrated(conn: sqlite3.Connection, info: TranscriptInfo) -> MigratedTranscript:
    """Read every line of a v1/v2 transcript and migrate it in memory."""
    return migrated_of(info, all_entries(conn, info.transcript_id))


def migrated_of(info: TranscriptInfo, lines: list[StoredEntry]) -> MigratedTranscript:
    """A v1/v2 transcript's lines (in file order) migrated in memory."""
    version, values = migrate_values(lines)
    v1 = version < 2
    entries: list[_Migrated] = []
    by_pos: dict[int, _Migrated] = {}
    previous: int | None = None
    for line in lines:
        value = values.get(line.pos)
        if value is None or line.kind != "entry" or value.get("type") == "session":
            continue
        message = value.get("message")
        role = message.get("role") if isinstance(message, dict) else None
        entry_id = value.get("id")
        entry = _Migrated(
            pos=line.pos,
            id=entry_id if isinstance(entry_id, str) else None,
            parent_pos=previous if v1 else line.parent_pos,  # v1: the chain in file order
            type=line.type,
            role=role if isinstance(role, str) else None,
            timestamp=line.timestamp,
            value=value,
        )
        entries.append(entry)
        by_pos[line.pos] = entry
        previous = line.pos
    return MigratedTranscript(info.transcript_id, entries, by_pos)
