"""Appending entries to a transcript (docs/FORMATS.md §3): ids, parents, idempotency.

One writer serialises appends, so reading the leaf and inserting the new lines happen in
one transaction: an append is O(1) in the transcript's size and concurrent appenders form
a chain. The appends of one writer group run as one (`AppendMutation.combine`): the same
entries and results as running them one after another, with a handful of statements for
the whole run instead of four or five per append. Lines are written exactly as pi's
SessionManager writes them (JSON.stringify, its field order).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from store_sql.addresses import LEAF
from store_sql.engine.writer import CombinableMutation
from store_sql.errors import InvalidEntryError, NotFoundError
from store_sql.schema.navigation_lines import side_append
from store_sql.transcripts.entry_lines import EntryTemplate, prepare_entry
from store_sql.transcripts.reads import navigation
from store_sql.transcripts.rows import (
    ADVANCE_SQL,
    TranscriptInfo,
    advance_params,
    get_info,
    new_entry_id,
    now_iso,
    resolve_parent_pos,
    resolve_target,
)


@dataclass(frozen=True, slots=True)
class Appended:
    """The result of appending one entry."""

    id: str
    pos: int
    existed: bool
    """True when an entry with the same idempotency key was already there (nothing written)."""
    parent_id: str | None = None
    """The entry's `parentId` (the stored one when `existed`); None for a root."""


StoredKey = tuple[str | None, int, str | None]
"""The entry holding an idempotency key: (entry_id, pos, parent_id)."""


class StoredLines(Protocol):
    """What an append reads of a transcript's stored lines, for `append_to_chain`. On SQLite
    each answer is a query as the append goes (`SqliteLines`); on PostgreSQL a group reads
    everything its appends need in one statement first (pg_appends.py)."""

    def append_point(self, transcript_id: int) -> tuple[str | None, int | None] | None:
        """(id, pos) the next append to the leaf hangs on, for a transcript following
        today's tree rules (`reads.Navigated.append_point`); None for any other."""
        ...

    def parent_pos(self, transcript_id: int, parent_id: str, before_pos: int) -> int | None:
        """`rows.resolve_parent_pos`."""
        ...

    def stored_key(self, transcript_id: int, key: str) -> StoredKey | None:
        """The oldest stored entry holding an idempotency key."""
        ...

    def id_taken(self, transcript_id: int, entry_id: str) -> bool:
        """Whether a stored line has this entry id."""
        ...


class SqliteLines:
    """`StoredLines` answered by queries on a SQLite connection."""

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def append_point(self, transcript_id: int) -> tuple[str | None, int | None] | None:
        navigated = navigation(self.conn, transcript_id)
        return None if navigated is None else navigated.append_point()

    def parent_pos(self, transcript_id: int, parent_id: str, before_pos: int) -> int | None:
        return resolve_parent_pos(self.conn, transcript_id, parent_id, before_pos)

    def stored_key(self, transcript_id: int, key: str) -> StoredKey | None:
        return find_by_idempotency_key(self.conn, transcript_id, key)

    def id_taken(self, transcript_id: int, entry_id: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM transcript_lines WHERE transcript_id = ? AND entry_id = ? LIMIT 1",
            (transcript_id, entry_id),
        ).fetchone()
        return row is not None


def find_by_idempotency_key(
    conn: sqlite3.Connection, transcript_id: int, key: str
) -> StoredKey | None:
    # `+pos`: without it SQLite may walk the (transcript_id, pos) index to avoid a sort and
    # scan the whole transcript (38-68 ms at 100,000 lines) instead of the key index.
    row = conn.execute(
        "SELECT entry_id, pos, parent_id FROM transcript_lines WHERE transcript_id = ? "
        "AND idempotency_key = ? ORDER BY +pos LIMIT 1",
        (transcript_id, key),
    ).fetchone()
    return None if row is None else (row[0], int(row[1]), row[2])


@dataclass(slots=True)
class Chain:
    """A transcript as appends see it while they run: its leaf and next position move with
    each entry, before anything is written, so that the appends of a whole group can go in
    with one statement (`appends.AppendMutation.combine`)."""

    transcript_id: int
    file_name: str
    stored_lines: int
    """Lines stored before this run (its new lines come after them)."""
    pos: int
    leaf_id: str | None
    leaf_pos: int | None
    params: list[tuple[Any, ...]] = field(default_factory=list)
    """`_INSERT_APPENDED` parameters of the lines this run adds."""
    added_bytes: int = 0
    new_ids: dict[str, int] = field(default_factory=dict)
    """Ids written by the appends of this run, and their positions."""
    keys: dict[str, Appended] = field(default_factory=dict)
    """Idempotency keys written by the appends of this run."""
    stored_keys: dict[str, StoredKey] | None = None
    """Stored entries of the keys this run uses, read up front (None: look each one up)."""
    check_ids: bool = True
    """False: new ids are checked against the stored ones after the run (`_check_new_ids`)."""

    @classmethod
    def of(cls, info: TranscriptInfo) -> Chain:
        if info.superseded_by is not None:
            raise InvalidEntryError(
                f"transcript {info.transcript_id} was superseded by {info.superseded_by}; "
                "append there"
            )
        return cls.checked(
            info.transcript_id, info.file_name, info.version, info.line_count,
            info.leaf_id, info.leaf_pos,
        )  # fmt: skip

    @classmethod
    def checked(
        cls,
        transcript_id: int,
        file_name: str,
        version: int | None,
        line_count: int,
        leaf_id: str | None,
        leaf_pos: int | None,
    ) -> Chain:
        if version is not None and version < 2:
            raise InvalidEntryError(
                f"transcript {file_name} is a v1 transcript (entries have no ids); "
                "migrate it to v3 first (store-sql transcript migrate)"
            )
        return cls(transcript_id, file_name, line_count, line_count, leaf_id, leaf_pos)


# Appended lines are JSON text jsjson wrote (lone surrogates escaped, so always valid
# UTF-8): bound as bytes and cast, so they are never decoded to str and encoded again.
_INSERT_APPENDED = (
    "INSERT INTO transcript_lines (transcript_id, pos, line, kind, entry_id, parent_id, "
    "parent_pos, type, role, timestamp, idempotency_key, byte_size, side_append) "
    "VALUES (?, ?, CAST(? AS TEXT), 'entry', ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def append_to_chain(
    stored: StoredLines,
    chain: Chain,
    entries: Sequence[EntryTemplate],
    parent_id: str | None,
    now: str | None = None,
) -> list[Appended]:
    transcript_id = chain.transcript_id
    if parent_id == LEAF:
        parent, parent_pos = chain.leaf_id, chain.leaf_pos
        if not chain.new_ids and (point := stored.append_point(transcript_id)) is not None:
            # Today's tree rules: the next append hangs on the append point, which a leaf
            # control or a side append keeps apart from the last entry in file order.
            parent, parent_pos = point
    elif parent_id is None:
        parent, parent_pos = None, None
    else:
        # An entry of this run is the newest with its id; else the nearest stored one.
        parent_pos = chain.new_ids.get(parent_id)
        if parent_pos is None:
            parent_pos = stored.parent_pos(transcript_id, parent_id, chain.stored_lines)
        if parent_pos is None:
            raise NotFoundError(f"transcript {chain.file_name} has no entry {parent_id!r}")
        parent = parent_id
    new_ids = chain.new_ids

    def is_taken(candidate: str) -> bool:
        # Unchecked ids are checked against the stored ones after the run (_check_new_ids).
        return candidate in new_ids or (
            chain.check_ids and stored.id_taken(transcript_id, candidate)
        )

    results: list[Appended] = []
    for entry in entries:
        key = entry.key
        if key is not None:
            existing = chain.keys.get(key)
            if existing is None:
                if chain.stored_keys is None:
                    found = stored.stored_key(transcript_id, key)
                else:
                    found = chain.stored_keys.get(key)
                if found is not None:
                    existing = Appended(found[0] or "", found[1], True, found[2])
            if existing is not None:
                results.append(Appended(existing.id, existing.pos, True, existing.parent_id))
                continue
        entry_id = new_entry_id(is_taken)
        if now is None:
            now = now_iso()
        line = entry.line(entry_id, parent, now)
        pos = chain.pos
        chain.params.append(
            (transcript_id, pos, line, entry_id, parent, parent_pos, entry.type, entry.role,
             now if entry.timestamp_json is None else entry.timestamp, key, len(line),
             side_append(line))
        )  # fmt: skip
        chain.added_bytes += len(line) + 1
        appended = Appended(entry_id, pos, False, parent)
        if key is not None:
            chain.keys[key] = appended
        chain.new_ids[entry_id] = pos
        results.append(appended)
        parent, parent_pos = entry_id, pos
        chain.pos = pos + 1
        chain.leaf_id, chain.leaf_pos = entry_id, pos
    return results


def write_chains(conn: sqlite3.Connection, chains: Iterable[Chain]) -> None:
    """Insert every line the chains hold and move each transcript's counters and leaf: two
    statements, however many appends and transcripts."""
    chains = [chain for chain in chains if chain.params]
    lines = [p for chain in chains for p in chain.params]
    advances = [
        advance_params(
            chain.transcript_id,
            lines=len(chain.params),
            entries=len(chain.params),
            damaged=0,
            line_bytes=chain.added_bytes,
            leaf=(chain.leaf_pos, chain.leaf_id),
            ends_with_newline=True,
        )
        for chain in chains
    ]
    if len(lines) == 1:  # a lone append: execute costs less than executemany of one row
        conn.execute(_INSERT_APPENDED, lines[0])
        conn.execute(ADVANCE_SQL, advances[0])
        return
    conn.executemany(_INSERT_APPENDED, lines)
    conn.executemany(ADVANCE_SQL, advances)


def append_entries(
    conn: sqlite3.Connection,
    transcript: int | TranscriptInfo,
    entries: Sequence[Mapping[str, Any] | EntryTemplate],
    *,
    parent_id: str | None = LEAF,
) -> list[Appended]:
    """Append entries as a chain: the first is a child of the leaf (or of `parent_id`;
    None starts a new root), each next one a child of the previous.

    An entry whose `message.idempotencyKey` is already in the transcript is not written; its
    result names the existing entry, and the chain goes on from the new entries only.
    Entries may come prepared already (`entry_lines.prepare_entry`, as AppendMutation does
    on the caller's side)."""
    # A caller that just resolved the transcript passes its info: one query less per append.
    info = transcript if isinstance(transcript, TranscriptInfo) else get_info(conn, transcript)
    templates = [e if isinstance(e, EntryTemplate) else prepare_entry(e) for e in entries]
    chain = Chain.of(info)
    results = append_to_chain(SqliteLines(conn), chain, templates, parent_id)
    write_chains(conn, [chain])
    return results


# --- appends of one writer group, run as one ---------------------------------------------


class NewIdTakenError(InvalidEntryError):
    """A combined run drew an id a stored entry already has (about 1 in 40,000 at 100,000
    entries): the writer reruns the appends one by one, and they draw again."""


class AppendMutation(CombinableMutation):
    """One caller's append, as a writer mutation that can be combined with its neighbours.

    Called alone it is `append_entries`. The writer hands a run of consecutive
    AppendMutations of one group to `combine` instead (engine/writer.py): the same entries
    and results as running them one after another, but with a handful of statements for the
    whole run instead of four or five per append: transcripts, idempotency keys and id
    collisions are looked up in bulk and every line goes in with one executemany."""

    __slots__ = ("agent_id", "entries", "parent_id", "target")

    def __init__(
        self,
        agent_id: str,
        target: int | str,
        entries: Sequence[Mapping[str, Any]],
        parent_id: str | None,
    ) -> None:
        self.agent_id = agent_id
        self.target = target
        # Checked and serialised here, on the caller's side: the writer only places them.
        self.entries = [prepare_entry(fields) for fields in entries]
        self.parent_id = parent_id

    def __call__(self, conn: sqlite3.Connection) -> list[Appended]:
        if type(self.target) is str:
            # A lone append reads only the columns a chain needs (`append_entries` would
            # read the whole TranscriptInfo): the gateway's hot path.
            chain = Chain.checked(*_live_row(conn, self.agent_id, self.target))
        else:
            chain = Chain.of(resolve_target(conn, self.agent_id, self.target))
        results = append_to_chain(SqliteLines(conn), chain, self.entries, self.parent_id)
        write_chains(conn, [chain])
        return results

    @classmethod
    def combine(
        cls, conn: sqlite3.Connection, mutations: Sequence[AppendMutation]
    ) -> list[list[Appended]]:
        """Run `mutations` in order as one. Any error (a missing transcript, a bad entry, an
        id collision) leaves the writer to rerun them one by one, each in its own savepoint,
        so only the failing caller sees it."""
        chains = _chains(conn, mutations)
        _prefetch_keys(conn, chains, mutations)
        # One clock reading for the run: its entries commit together anyway.
        now = now_iso()
        stored = SqliteLines(conn)
        results = [
            append_to_chain(stored, chains[(m.agent_id, m.target)], m.entries, m.parent_id, now)
            for m in mutations
        ]
        unique = {id(chain): chain for chain in chains.values()}.values()
        _check_new_ids(conn, unique)
        write_chains(conn, unique)
        return results


def _chains(
    conn: sqlite3.Connection, mutations: Sequence[AppendMutation]
) -> dict[tuple[str, int | str], Chain]:
    """A chain per target, with one query per agent for the session ids. Two names of one
    transcript (its session id and its transcript_id) share a chain."""
    wanted: dict[str, set[str]] = {}
    for m in mutations:
        if type(m.target) is str:
            wanted.setdefault(m.agent_id, set()).add(m.target)
    by_id: dict[int, Chain] = {}
    chains: dict[tuple[str, int | str], Chain] = {}
    for agent_id, session_ids in wanted.items():
        found = _live_rows(conn, agent_id, session_ids)
        if len(found) < len(session_ids):
            missing = min(session_ids - found.keys())
            raise NotFoundError(
                f"agent {agent_id!r} has no live transcript for session {missing!r}"
            )
        for sid, row in found.items():
            chain = by_id.get(row[0])
            if chain is None:
                chain = by_id[row[0]] = Chain.checked(*row)
                chain.check_ids = False
            chains[(agent_id, sid)] = chain
    for m in mutations:
        name = (m.agent_id, m.target)
        if name not in chains:  # a transcript_id
            info = resolve_target(conn, m.agent_id, m.target)
            chain = by_id.get(info.transcript_id)
            if chain is None:
                chain = by_id[info.transcript_id] = Chain.of(info)
                chain.check_ids = False
            chains[name] = chain
    return chains


_LIVE_COLUMNS = (
    "SELECT transcript_id, session_id, file_name, version, line_count, leaf_id, leaf_pos "
    "FROM transcripts WHERE agent_id = ? AND kind IN ('live', 'fork') "
    "AND superseded_by IS NULL AND session_id "
)


def _live_rows(
    conn: sqlite3.Connection, agent_id: str, session_ids: Iterable[str]
) -> dict[str, tuple[Any, ...]]:
    """`transcripts.find_live` for many sessions, reading only what a chain needs:
    {session_id: (transcript_id, file_name, version, line_count, leaf_id, leaf_pos)}."""
    return _best_live(
        conn.execute(
            _LIVE_COLUMNS + "IN (SELECT value FROM json_each(?))",
            (agent_id, orjson.dumps(list(session_ids)).decode()),
        )
    )


def _live_row(conn: sqlite3.Connection, agent_id: str, session_id: str) -> tuple[Any, ...]:
    """`_live_rows` of one session, which must have a live transcript."""
    found = _best_live(conn.execute(_LIVE_COLUMNS + "= ?", (agent_id, session_id)))
    if not found:
        raise NotFoundError(f"agent {agent_id!r} has no live transcript for session {session_id!r}")
    return found[session_id]


def _best_live(rows: Iterable[tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    best: dict[str, tuple[Any, ...]] = {}
    for tid, sid, file_name, version, lines, leaf_id, leaf_pos in rows:
        row = (tid, file_name, version, lines, leaf_id, leaf_pos)
        other = best.get(sid)
        # find_live's choice: `<sessionId>.jsonl` first, then the newest.
        named = f"{sid}.jsonl"
        if other is None or (file_name == named, tid) > (other[1] == named, other[0]):
            best[sid] = row
    return best


# (transcript_id, text) pairs come as one JSON array of arrays, walked first (CROSS JOIN
# fixes the order) so each pair is one lookup on a two-column index. A row-value
# `(transcript_id, x) IN (SELECT ...)` instead made SQLite use transcript_id alone and read
# every line of each transcript. json_extract rather than `->>`, which needs SQLite 3.38.
_PAIRS_JOIN = (
    "json_each(?) AS j CROSS JOIN transcript_lines AS l "
    "ON l.transcript_id = json_extract(j.value, '$[0]') "
    "AND l.{column} = json_extract(j.value, '$[1]')"
)


def _prefetch_keys(
    conn: sqlite3.Connection,
    chains: dict[tuple[str, int | str], Chain],
    mutations: Sequence[AppendMutation],
) -> None:
    """The stored entries of every idempotency key the run uses, with one query."""
    by_tid = {chain.transcript_id: chain for chain in chains.values()}
    wanted: set[tuple[int, str]] = set()
    for m in mutations:
        tid = chains[(m.agent_id, m.target)].transcript_id
        for entry in m.entries:
            if entry.key is not None:
                wanted.add((tid, entry.key))
    for chain in by_tid.values():
        chain.stored_keys = {}
    if not wanted:
        return
    # Newest first, so the oldest entry of each key is the one left in the dict, as
    # find_by_idempotency_key answers.
    for tid, key, entry_id, pos, parent_id in conn.execute(
        "SELECT l.transcript_id, l.idempotency_key, l.entry_id, l.pos, l.parent_id FROM "
        + _PAIRS_JOIN.format(column="idempotency_key")
        + " ORDER BY l.pos DESC",
        (orjson.dumps(sorted(wanted)).decode(),),
    ):
        stored = by_tid[tid].stored_keys
        assert stored is not None
        stored[key] = (entry_id, int(pos), parent_id)


def _check_new_ids(conn: sqlite3.Connection, chains: Iterable[Chain]) -> None:
    """One query for every id the run drew: a stored entry with one of them sends the run
    back to the writer, to be done one append at a time."""
    drawn = [(c.transcript_id, i) for c in chains for i in c.new_ids]
    if not drawn:
        return
    taken = conn.execute(
        "SELECT l.transcript_id, l.entry_id FROM "
        + _PAIRS_JOIN.format(column="entry_id")
        + " LIMIT 1",
        (orjson.dumps(drawn).decode(),),
    ).fetchone()
    if taken is not None:
        raise NewIdTakenError(
            f"transcript {taken[0]}: new id {taken[1]!r} is taken by a stored entry; retrying"
        )
