"""Reading transcripts: entries, paths, the tree, recent messages, pages and changes.

All reads use indexed columns and SQL walks over `parent_pos` (range scans of consecutive lines,
recursive CTEs where a path hops between branches; see `path_rows`), never a full load of
the transcript. The rules for damaged trees (docs/TRANSCRIPTS.md):

- an entry's parent is the nearest *preceding* entry whose id equals its `parentId`;
- a `parentId` that names no preceding entry (missing, later in the file, itself) makes the
  entry a root: the active path stops there, as pi's walk stops at a missing parent;
- so paths never cycle, duplicate ids resolve to the latest preceding one, and several roots
  are simply several trees; v1 entries (no ids) chain to the previous entry in file order.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from store_sql.errors import NotFoundError
from store_sql.formats.js_values import epoch_ms, js_trim
from store_sql.schema.navigation_lines import NAVIGATION_LINES
from store_sql.transcripts.navigation import Navigation, is_leaf_control, scan_navigation
from store_sql.transcripts.rows import TranscriptInfo, get_info, parse_stored


def _entry_columns(table: str = "") -> str:
    """The columns of a `StoredEntry`, in field order. The line comes as a BLOB: the exact
    bytes without decoding UTF-8 (0.6 µs per 1 KB line on the target machine, a fifth of
    reading a path); `StoredEntry.line` decodes on demand."""
    p = f"{table}." if table else ""
    return (
        f"{p}pos, {p}entry_id, {p}parent_id, {p}parent_pos, {p}type, {p}role, {p}timestamp, "
        f"CAST({p}line AS BLOB), {p}kind, {p}damage"
    )


_ENTRY_COLUMNS = _entry_columns()


@dataclass(slots=True)
class StoredEntry:
    """One stored line of a transcript with its extracted columns.

    Not frozen: a frozen dataclass sets each field through `object.__setattr__`, 1.4 µs
    per entry against 0.2 µs here (target machine), a quarter of `recent(limit=50)`. Each
    read returns fresh objects, so changing one changes nothing stored or shared."""

    pos: int
    id: str | None
    parent_id: str | None
    parent_pos: int | None
    type: str | None
    role: str | None
    timestamp: str | None
    raw: bytes
    """The line's exact bytes (without its newline)."""
    kind: str
    damage: str | None

    @property
    def line(self) -> str | bytes:
        """The line as stored: TEXT (a str) when valid UTF-8, else the exact bytes; the
        store keeps a line as TEXT exactly when it is valid UTF-8 (`stored_line`)."""
        try:
            return self.raw.decode("utf-8")
        except UnicodeDecodeError:
            return self.raw

    @property
    def size(self) -> int:
        return len(self.raw)

    def value(self) -> Any:
        """The parsed JSON object (raises for damaged lines)."""
        return parse_stored(self.raw)


def _entry(row: Sequence[Any]) -> StoredEntry:
    return StoredEntry(*row)


def entry_by_id(conn: sqlite3.Connection, transcript_id: int, entry_id: str) -> StoredEntry:
    """The latest entry with that id (ids should be unique; damaged files repeat them)."""
    row = conn.execute(
        f"SELECT {_ENTRY_COLUMNS} FROM transcript_lines WHERE transcript_id = ? "
        "AND entry_id = ? AND kind = 'entry' ORDER BY pos DESC LIMIT 1",
        (transcript_id, entry_id),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"transcript {transcript_id} has no entry {entry_id!r}")
    return _entry(row)


def entry_at(conn: sqlite3.Connection, transcript_id: int, pos: int) -> StoredEntry | None:
    row = conn.execute(
        f"SELECT {_ENTRY_COLUMNS} FROM transcript_lines WHERE transcript_id = ? AND pos = ?",
        (transcript_id, pos),
    ).fetchone()
    return None if row is None else _entry(row)


def leaf(conn: sqlite3.Connection, transcript_id: int) -> StoredEntry | None:
    info = get_info(conn, transcript_id)
    return None if info.leaf_pos is None else entry_at(conn, transcript_id, info.leaf_pos)


def children(conn: sqlite3.Connection, transcript_id: int, entry_id: str) -> list[StoredEntry]:
    parent = entry_by_id(conn, transcript_id, entry_id)
    rows = conn.execute(
        f"SELECT {_ENTRY_COLUMNS} FROM transcript_lines WHERE transcript_id = ? "
        "AND parent_pos = ? ORDER BY pos",
        (transcript_id, parent.pos),
    ).fetchall()
    return [_entry(r) for r in rows]


# The walk: parent_pos is always smaller than pos, so the recursion ends.
_WALK = (
    "WITH RECURSIVE walk(pos, depth) AS ("
    " SELECT :start, 0"
    " UNION ALL"
    " SELECT l.parent_pos, walk.depth + 1 FROM transcript_lines l JOIN walk"
    " ON l.transcript_id = :tid AND l.pos = walk.pos"
    " WHERE l.parent_pos IS NOT NULL AND walk.depth < :max_depth"
    ")"
)
_WALK_ROWS = (
    _WALK + f" SELECT {_entry_columns('l')} "
    "FROM walk JOIN transcript_lines l ON l.transcript_id = :tid AND l.pos = walk.pos "
    "ORDER BY walk.depth"
)
_WINDOW_ROWS = (
    f"SELECT {_ENTRY_COLUMNS} FROM transcript_lines "
    "WHERE transcript_id = ? AND pos <= ? AND pos > ? ORDER BY pos DESC"
)
_FIRST_WINDOW = 256
_MAX_WINDOW = 4096


def path_rows(
    conn: sqlite3.Connection, transcript_id: int, start_pos: int, *, expect: int | None = None
) -> Iterator[tuple[Any, ...]]:
    """Rows (`_ENTRY_COLUMNS`) of the path from `start_pos` up to its root, leaf first.

    `expect`: how many rows the caller will probably take (None: all of them). The walk
    reads that many lines ahead, then in growing windows.

    The walk follows `parent_pos` through windows of lines, each read by one range scan of
    the (transcript_id, pos) index, newest first. Recent parts of a path are mostly
    consecutive lines (a branch skips only its abandoned siblings), and the range scan reads
    each line once where a recursive CTE searches the index twice per step (the walk, then
    the join back for the columns): the bench's last 50 lines take 115 µs instead of 215 µs
    on the target machine. A window mostly off the path (it held an abandoned branch) starts
    the windows small again; after two such windows in a row the path hops between branches
    all along, and the CTE walks the rest, reading path lines only. A missing line ends the
    path, as it ends the CTE's join.
    """
    want = start_pos
    taken = 0
    window = 0
    poor = 0
    while True:
        if expect is not None and taken < expect:
            window = expect - taken
        else:
            window = min(max(window * 2, _FIRST_WINDOW), _MAX_WINDOW)
        low = want - window
        rows = conn.execute(_WINDOW_ROWS, (transcript_id, want, low)).fetchall()
        hits = 0
        for row in rows:
            if row[0] != want:
                if row[0] < want:
                    return  # `want` is not stored
                continue  # a line of another branch
            yield row
            hits += 1
            if row[3] is None:
                return
            want = row[3]
        taken += hits
        if want > low:
            return  # `want` is not stored
        if hits * 2 >= len(rows):
            poor = 0
            continue
        poor += 1
        if poor == 2:
            left = expect - taken if expect is not None and taken < expect else _FIRST_WINDOW
            yield from _cte_rows(conn, transcript_id, want, left)
            return
        window = 0


def _cte_rows(
    conn: sqlite3.Connection, transcript_id: int, start_pos: int, chunk: int
) -> Iterator[tuple[Any, ...]]:
    """The same rows walked by the recursive CTE, `chunk` (then more) per statement."""
    start: int | None = start_pos
    while start is not None:
        rows = conn.execute(
            _WALK_ROWS, {"start": start, "tid": transcript_id, "max_depth": chunk - 1}
        ).fetchall()
        yield from rows
        start = rows[-1][3] if len(rows) == chunk else None
        chunk = min(chunk * 2, _MAX_WINDOW)


def _info_of(conn: sqlite3.Connection, transcript: int | TranscriptInfo) -> TranscriptInfo:
    return transcript if isinstance(transcript, TranscriptInfo) else get_info(conn, transcript)


def active_path(
    conn: sqlite3.Connection, transcript: int | TranscriptInfo, to_entry_id: str | None = None
) -> list[StoredEntry]:
    """Root -> leaf (or -> `to_entry_id`) entries, in path order."""
    navigated = navigation(conn, transcript)
    if navigated is not None and (to_entry_id is None or to_entry_id in navigated.nav.by_id):
        return navigated.path(to_entry_id)
    if to_entry_id is None:
        info = _info_of(conn, transcript)
        if info.leaf_pos is None:
            return []
        transcript_id, start = info.transcript_id, info.leaf_pos
    else:
        transcript_id = transcript if isinstance(transcript, int) else transcript.transcript_id
        start = entry_by_id(conn, transcript_id, to_entry_id).pos
    rows = list(path_rows(conn, transcript_id, start))
    rows.reverse()
    return [StoredEntry(*r) for r in rows]


def recent_entries(
    conn: sqlite3.Connection,
    transcript: int | TranscriptInfo,
    *,
    limit: int = 50,
    max_bytes: int | None = None,
    types: frozenset[str] | None = None,
) -> list[StoredEntry]:
    """The last `limit` entries of the active path (oldest first), optionally only of
    `types`, stopping before the total line bytes would exceed `max_bytes` (the newest entry
    is always included so a single huge message is still shown)."""
    limit = max(0, min(limit, 1000))
    info = _info_of(conn, transcript)
    if info.leaf_pos is None or limit == 0:
        return []
    navigated = navigation(conn, info)
    if navigated is not None:
        rows: Iterator[tuple[Any, ...]] = (
            _row_of(entry) for entry in reversed(navigated.path(None))
        )
        return _recent_of(rows, limit, max_bytes, types)
    if types is None and max_bytes is None:
        walk = path_rows(conn, info.transcript_id, info.leaf_pos, expect=limit)
        picked = list(itertools.islice(walk, limit))
        picked.reverse()
        return [StoredEntry(*r) for r in picked]
    # A type filter skips entries: read further ahead than the count asked for.
    ahead = limit if types is None else max(limit * 2, 64)
    walk = path_rows(conn, info.transcript_id, info.leaf_pos, expect=ahead)
    return _recent_of(walk, limit, max_bytes, types)


def pick_recent(
    leaf_first: Iterable[StoredEntry],
    limit: int,
    max_bytes: int | None,
    types: frozenset[str] | None,
) -> list[StoredEntry]:
    """`recent_entries`' choice over the entries of a path walked leaf first."""
    return _recent_of((_row_of(entry) for entry in leaf_first), limit, max_bytes, types)


def _recent_of(
    leaf_first: Iterator[tuple[Any, ...]],
    limit: int,
    max_bytes: int | None,
    types: frozenset[str] | None,
) -> list[StoredEntry]:
    """`recent_entries`' choice over the rows of a path walked leaf first; oldest first."""
    entries: list[StoredEntry] = []
    used = 0
    for row in leaf_first:
        if types is not None and row[4] not in types:
            continue
        entry = StoredEntry(*row)
        if max_bytes is not None:
            size = entry.size
            if entries and used + size > max_bytes:
                break
            used += size
        entries.append(entry)
        if len(entries) >= limit:
            break
    entries.reverse()
    return entries


def page(
    conn: sqlite3.Connection,
    transcript_id: int,
    *,
    after_pos: int | None = None,
    before_pos: int | None = None,
    limit: int = 100,
) -> list[StoredEntry]:
    """Lines in file order after or before a position (header and damaged lines included)."""
    if before_pos is not None:
        rows = conn.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM transcript_lines WHERE transcript_id = ? AND pos < ? "
            "ORDER BY pos DESC LIMIT ?",
            (transcript_id, before_pos, limit),
        ).fetchall()
        rows.reverse()
    else:
        rows = conn.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM transcript_lines WHERE transcript_id = ? AND pos > ? "
            "ORDER BY pos LIMIT ?",
            (transcript_id, -1 if after_pos is None else after_pos, limit),
        ).fetchall()
    return [_entry(r) for r in rows]


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a reader got to: which transcript (and which content of it) and which line."""

    transcript_id: int
    generation: int
    pos: int

    def encode(self) -> str:
        return f"{self.transcript_id}.{self.generation}.{self.pos}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            tid, gen, pos = (int(part) for part in text.split("."))
        except ValueError as exc:
            raise ValueError(f"not a transcript cursor: {text!r}") from exc
        return cls(tid, gen, pos)


@dataclass(frozen=True, slots=True)
class Changes:
    """Lines added since a cursor; `replaced` means start over from `entries` (all lines)."""

    entries: list[StoredEntry]
    cursor: Cursor
    replaced: bool


def changes_since(
    conn: sqlite3.Connection, current: TranscriptInfo, cursor: Cursor | None, limit: int = 1000
) -> Changes:
    """Lines of `current` after `cursor`. When the cursor belongs to another transcript (the
    session was reset or re-imported) or another generation, `replaced` is True and the
    lines are read from the start."""
    after = read_after(current, cursor)
    entries = page(conn, current.transcript_id, after_pos=after, limit=limit)
    return changes_of(current, cursor, after, entries)


def read_after(current: TranscriptInfo, cursor: Cursor | None) -> int:
    """The position `changes_since` reads after: the cursor's, or -1 (from the start) when
    the cursor is None or belongs to another transcript or generation."""
    if cursor is None or _replaced(current, cursor):
        return -1
    return cursor.pos


def _replaced(current: TranscriptInfo, cursor: Cursor) -> bool:
    return cursor.transcript_id != current.transcript_id or (
        cursor.generation != current.generation
    )


def changes_of(
    current: TranscriptInfo, cursor: Cursor | None, after: int, entries: list[StoredEntry]
) -> Changes:
    """`changes_since`'s answer once the lines after `after` are read."""
    last = entries[-1].pos if entries else after
    return Changes(
        entries=entries,
        cursor=Cursor(current.transcript_id, current.generation, last),
        replaced=cursor is not None and _replaced(current, cursor),
    )


def resolve_labels(label_entries: Iterable[Any]) -> dict[str, str]:
    """pi's labelsById over `label` entries in file order: target id -> label, the last
    entry per target winning and an empty or missing label clearing it."""
    resolved: dict[str, str] = {}
    for value in label_entries:
        target, label = value.get("targetId"), value.get("label")
        if not isinstance(target, str):
            continue
        if isinstance(label, str) and label:
            resolved[target] = label
        else:
            resolved.pop(target, None)
    return resolved


def labels(conn: sqlite3.Connection, transcript_id: int) -> dict[str, str]:
    """Resolved labels (`resolve_labels`) of every label entry of the transcript."""
    rows = conn.execute(
        "SELECT line FROM transcript_lines WHERE transcript_id = ? AND type = 'label' "
        "AND kind = 'entry' ORDER BY pos",
        (transcript_id,),
    )
    return resolve_labels(parse_stored(line) for (line,) in rows)


def name_of(session_info: Any) -> str | None:
    """The session name a `session_info` entry sets, as pi reads it: its name trimmed; an
    empty (or missing) name clears the name."""
    name = session_info.get("name")
    return (js_trim(name) or None) if isinstance(name, str) else None


def session_name(conn: sqlite3.Connection, transcript_id: int) -> str | None:
    """The name set by the latest `session_info` entry (pi's getSessionName)."""
    row = conn.execute(
        "SELECT line FROM transcript_lines WHERE transcript_id = ? AND type = 'session_info' "
        "AND kind = 'entry' ORDER BY pos DESC LIMIT 1",
        (transcript_id,),
    ).fetchone()
    return None if row is None else name_of(parse_stored(row[0]))


@dataclass(frozen=True, slots=True)
class TreeNode:
    """An entry of the tree view, without its payload."""

    pos: int
    id: str | None
    parent_pos: int | None
    type: str | None
    role: str | None
    timestamp: str | None
    label: str | None
    children: list[TreeNode]


def tree(conn: sqlite3.Connection, transcript_id: int) -> list[TreeNode]:
    """Every entry as a forest, labels resolved (`build_tree`). Reads only indexed columns
    plus label entries. A transcript following today's tree rules gets the rules' parents
    and keeps its children in file order."""
    rows = conn.execute(
        "SELECT pos, entry_id, parent_pos, type, role, timestamp FROM transcript_lines "
        "WHERE transcript_id = ? AND kind = 'entry' ORDER BY pos",
        (transcript_id,),
    ).fetchall()
    navigated = navigation(conn, transcript_id)
    if navigated is not None:
        rows = navigated.tree_rows(rows)
    return build_tree(rows, labels(conn, transcript_id), by_time=navigated is None)


def build_tree(
    rows: Iterable[tuple[int, str | None, int | None, str | None, str | None, str | None]],
    names: dict[str, str],
    *,
    by_time: bool = True,
) -> list[TreeNode]:
    """The forest of (pos, id, parent_pos, type, role, timestamp) rows in file order: roots
    in file order, each node's children oldest first as pi's getTree sorts them
    (`sort_by_time`), or in file order."""
    nodes: dict[int, TreeNode] = {}
    roots: list[TreeNode] = []
    for pos, entry_id, parent_pos, kind, role, timestamp in rows:
        node = TreeNode(pos, entry_id, parent_pos, kind, role, timestamp,
                        names.get(entry_id) if entry_id else None, [])  # fmt: skip
        nodes[pos] = node
        parent = nodes.get(parent_pos) if parent_pos is not None else None
        (parent.children if parent is not None else roots).append(node)
    if by_time:
        for node in nodes.values():
            if len(node.children) > 1:
                sort_by_time(node.children)
    return roots


def sort_by_time(nodes: list[TreeNode]) -> None:
    """Sort sibling nodes in place as pi does: JavaScript's Array.prototype.sort with
    `(a, b) => new Date(a.timestamp) - new Date(b.timestamp)`.

    With every timestamp readable that is a stable sort by time. An unreadable timestamp
    makes the comparison NaN, which JavaScript counts as "equal", and the order then depends
    on V8's algorithm: for fewer than 64 elements (V8 sorts those with one run and a binary
    insertion sort) this replays it step for step."""
    items = [(epoch_ms(node.timestamp), node) for node in nodes]
    known = [(time, node) for time, node in items if time is not None]
    if len(known) == len(items):
        nodes[:] = [node for _, node in sorted(known, key=lambda item: item[0])]
        return

    def compare(a: int | None, b: int | None) -> int:
        return 0 if a is None or b is None else (a > b) - (a < b)

    run = 2
    descending = compare(items[1][0], items[0][0]) < 0
    while run < len(items):
        order = compare(items[run][0], items[run - 1][0])
        if (order >= 0) if descending else (order < 0):
            break
        run += 1
    if descending:
        items[:run] = items[:run][::-1]
    for start in range(run, len(items)):
        pivot = items[start]
        left, right = 0, start
        while left < right:
            mid = left + ((right - left) >> 1)
            if compare(pivot[0], items[mid][0]) < 0:
                right = mid
            else:
                left = mid + 1
        items[left + 1 : start + 1] = items[left:start]
        items[left] = pivot
    nodes[:] = [node for _, node in items]


@dataclass(frozen=True, slots=True)
class TranscriptCounts:
    lines: int
    entries: int
    damaged: int
    bytes: int
    messages_by_role: dict[str, int]


def counts(conn: sqlite3.Connection, transcript_id: int) -> TranscriptCounts:
    """Counts and sizes from indexed columns, no payload read."""
    info = get_info(conn, transcript_id)
    roles = dict(
        conn.execute(
            "SELECT role, count(*) FROM transcript_lines WHERE transcript_id = ? "
            "AND type = 'message' AND role IS NOT NULL GROUP BY role",
            (transcript_id,),
        ).fetchall()
    )
    return TranscriptCounts(
        info.line_count, info.entry_count, info.damaged_count, info.byte_size, roles
    )


def all_entries(conn: sqlite3.Connection, transcript_id: int) -> list[StoredEntry]:
    """Every line of a transcript with its columns, in file order (read in pages)."""
    entries: list[StoredEntry] = []
    after = -1
    while batch := page(conn, transcript_id, after_pos=after, limit=5000):
        entries.extend(batch)
        after = batch[-1].pos
    return entries


# --- today's tree rules ------------------------------------------------------------------------

# Named: the planner would rather take the (transcript_id, entry_id) index and read every
# line of the transcript.
_NAVIGATION_PROBE = (
    "SELECT 1 FROM transcript_lines INDEXED BY ix_transcript_lines_navigation "
    f"WHERE transcript_id = ? AND {NAVIGATION_LINES} LIMIT 1"
)


@dataclass(slots=True)
class Navigated:
    """A transcript read by today's tree rules: its entries and their tree."""

    entries: list[StoredEntry]
    """Every entry line, in file order (`nav` indexes into it)."""
    values: list[Any]
    nav: Navigation

    def path(self, to_entry_id: str | None) -> list[StoredEntry]:
        """Root -> leaf (or -> `to_entry_id`), leaf controls left out."""
        nodes = self.nav.active_path() if to_entry_id is None else self.nav.path(to_entry_id)
        return [self.entries[node.index] for node in nodes]

    def context_entries(self) -> list[StoredEntry]:
        """The entries the model context is built from (`Navigation.context_indexes`)."""
        return [self.entries[i] for i in self.nav.context_indexes(self.values)]

    def append_point(self) -> tuple[str | None, int | None]:
        """(id, pos) the next append to the leaf hangs on."""
        target = self.nav.append_parent_id
        node = self.nav.by_id.get(target) if target is not None else None
        return (None, None) if node is None else (node.id, self.entries[node.index].pos)

    def tree_rows(self, rows: list[Any]) -> list[Any]:
        """`tree`'s rows with the rules' parents, leaf controls left out."""
        by_pos = {self.entries[node.index].pos: node for node in self.nav.nodes}
        out = []
        for pos, entry_id, parent_pos, kind, role, timestamp in rows:
            node = by_pos.get(pos)
            if node is not None:
                if is_leaf_control(node.value):
                    continue
                parent = self.nav.by_id.get(node.parent_id) if node.parent_id else None
                parent_pos = None if parent is None else self.entries[parent.index].pos
            out.append((pos, entry_id, parent_pos, kind, role, timestamp))
        return out


def navigation(conn: sqlite3.Connection, transcript: int | TranscriptInfo) -> Navigated | None:
    """The transcript read by today's tree rules, when it holds a `leaf` or `reset` entry or
    a side append (one probe of a partial index); None for every other transcript, which
    keeps the JSONL-era rules. Such a transcript is read whole: the rules place each entry by
    what came before it."""
    transcript_id = transcript if isinstance(transcript, int) else transcript.transcript_id
    if conn.execute(_NAVIGATION_PROBE, (transcript_id,)).fetchone() is None:
        return None
    return navigated_of(all_entries(conn, transcript_id))


def navigated_of(lines: Iterable[StoredEntry]) -> Navigated:
    """A transcript's lines in file order, read by today's tree rules."""
    entries = [e for e in lines if e.kind == "entry"]
    values: list[Any] = []
    for entry in entries:
        try:
            values.append(entry.value())
        except ValueError:
            values.append(None)
    return Navigated(entries, values, scan_navigation(values))


def _row_of(entry: StoredEntry) -> tuple[Any, ...]:
    return (entry.pos, entry.id, entry.parent_id, entry.parent_pos, entry.type, entry.role,
            entry.timestamp, entry.raw, entry.kind, entry.damage)  # fmt: skip
