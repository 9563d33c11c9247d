"""Appending entries to a transcript (FORMATS.md §3): ids, parents, idempotency.

One writer serialises appends, so reading the leaf and inserting the new lines happen in
one transaction: an append is O(1) in the transcript's size and concurrent appenders form
a chain. Lines are written exactly as pi's SessionManager writes them (JSON.stringify, its
field order).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from store_sql.errors import InvalidEntryError, NotFoundError
from store_sql.formats import jsjson
from store_sql.sqltext import text_or_none
from store_sql.transcripts import (
    ADVANCE_SQL,
    TranscriptInfo,
    advance_params,
    get_info,
    new_entry_id,
    now_iso,
    resolve_parent_pos,
    resolve_target,
)

LEAF: Final = "<leaf>"
"""Append as a child of the current leaf (the default)."""


@dataclass(frozen=True, slots=True)
class Appended:
    """The result of appending one entry."""

    id: str
    pos: int
    existed: bool
    """True when an entry with the same idempotency key was already there (nothing written)."""


# pi writes `custom` and `custom_message` entries with their payload before the tree fields
# (SessionManager.appendCustomEntry / appendCustomMessageEntry); every other type after them.
_PAYLOAD_FIRST = frozenset({"custom", "custom_message"})


def _entry_object(
    fields: Mapping[str, Any], entry_id: str, parent_id: str | None, timestamp: str
) -> dict[str, Any]:
    kind = fields.get("type")
    if not isinstance(kind, str) or not kind:
        raise InvalidEntryError(f"an entry needs a non-empty string 'type', got {kind!r}")
    for reserved in ("id", "parentId"):
        if reserved in fields:
            raise InvalidEntryError(
                f"entries get their {reserved!r} from the store; remove it from the entry"
            )
    payload = {k: v for k, v in fields.items() if k not in ("type", "timestamp")}
    tree = {"id": entry_id, "parentId": parent_id, "timestamp": timestamp}
    if kind in _PAYLOAD_FIRST:
        return {"type": kind, **payload, **tree}
    return {"type": kind, **tree, **payload}


def _new_id(conn: sqlite3.Connection, transcript_id: int, taken: Container[str]) -> str:
    """A new id, unique among this transcript's entries and this run's."""

    def is_taken(candidate: str) -> bool:
        if candidate in taken:
            return True
        row = conn.execute(
            "SELECT 1 FROM transcript_lines WHERE transcript_id = ? AND entry_id = ? LIMIT 1",
            (transcript_id, candidate),
        ).fetchone()
        return row is not None

    return new_entry_id(is_taken)


def _idempotency_key(fields: Mapping[str, Any]) -> str | None:
    message = fields.get("message")
    if fields.get("type") == "message" and isinstance(message, Mapping):
        return text_or_none(message.get("idempotencyKey"))
    return None


def find_by_idempotency_key(
    conn: sqlite3.Connection, transcript_id: int, key: str
) -> tuple[str | None, int] | None:
    # `+pos`: without it SQLite may walk the (transcript_id, pos) index to avoid a sort and
    # scan the whole transcript (38-68 ms at 100,000 lines) instead of the key index.
    row = conn.execute(
        "SELECT entry_id, pos FROM transcript_lines WHERE transcript_id = ? "
        "AND idempotency_key = ? ORDER BY +pos LIMIT 1",
        (transcript_id, key),
    ).fetchone()
    return None if row is None else (row[0], int(row[1]))


@dataclass(slots=True)
class _Chain:
    """A transcript as appends see it while they run: its leaf and next position move with
    each entry, before anything is written, so that the appends of a whole group can go in
    with one statement (`AppendMutation.combine`)."""

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
    stored_keys: dict[str, tuple[str | None, int]] | None = None
    """Stored entries of the keys this run uses, read up front (None: look each one up)."""
    check_ids: bool = True
    """False: new ids are checked against the stored ones after the run (`_check_new_ids`)."""

    @classmethod
    def of(cls, info: TranscriptInfo) -> _Chain:
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
    ) -> _Chain:
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
    "parent_pos, type, role, timestamp, idempotency_key, byte_size) "
    "VALUES (?, ?, CAST(? AS TEXT), 'entry', ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _append_to_chain(
    conn: sqlite3.Connection,
    chain: _Chain,
    entries: Sequence[Mapping[str, Any]],
    parent_id: str | None,
    now: str | None = None,
) -> list[Appended]:
    transcript_id = chain.transcript_id
    if parent_id == LEAF:
        parent, parent_pos = chain.leaf_id, chain.leaf_pos
    elif parent_id is None:
        parent, parent_pos = None, None
    else:
        # An entry of this run is the newest with its id; else the nearest stored one.
        parent_pos = chain.new_ids.get(parent_id)
        if parent_pos is None:
            parent_pos = resolve_parent_pos(conn, transcript_id, parent_id, chain.stored_lines)
        if parent_pos is None:
            raise NotFoundError(f"transcript {chain.file_name} has no entry {parent_id!r}")
        parent = parent_id
    results: list[Appended] = []
    for fields in entries:
        if type(fields) is not dict and not isinstance(fields, Mapping):
            raise InvalidEntryError(f"an entry must be a JSON object, got {type(fields).__name__}")
        key = _idempotency_key(fields)
        if key is not None:
            existing = chain.keys.get(key)
            if existing is None:
                if chain.stored_keys is None:
                    found = find_by_idempotency_key(conn, transcript_id, key)
                else:
                    found = chain.stored_keys.get(key)
                if found is not None:
                    existing = Appended(id=found[0] or "", pos=found[1], existed=True)
            if existing is not None:
                results.append(Appended(existing.id, existing.pos, existed=True))
                continue
        if chain.check_ids:
            entry_id = _new_id(conn, transcript_id, chain.new_ids)
        else:
            entry_id = new_entry_id(chain.new_ids.__contains__)
        timestamp = fields.get("timestamp")
        if type(timestamp) is not str:
            timestamp = now if now is not None else now_iso()
        value = _entry_object(fields, entry_id, parent, timestamp)
        line = jsjson.dumps_bytes(value)
        message = value.get("message")
        role = text_or_none(message.get("role")) if type(message) is dict else None
        pos = chain.pos
        chain.params.append(
            (transcript_id, pos, line, entry_id, parent, parent_pos,
             text_or_none(value["type"]), role, text_or_none(timestamp), key, len(line))
        )  # fmt: skip
        chain.added_bytes += len(line) + 1
        appended = Appended(entry_id, pos, False)
        if key is not None:
            chain.keys[key] = appended
        chain.new_ids[entry_id] = pos
        results.append(appended)
        parent, parent_pos = entry_id, pos
        chain.pos = pos + 1
        chain.leaf_id, chain.leaf_pos = entry_id, pos
    return results


def _write_chains(conn: sqlite3.Connection, chains: Iterable[_Chain]) -> None:
    """Insert every line the chains hold and move each transcript's counters and leaf: two
    statements, however many appends and transcripts."""
    chains = [chain for chain in chains if chain.params]
    conn.executemany(_INSERT_APPENDED, [p for chain in chains for p in chain.params])
    conn.executemany(
        ADVANCE_SQL,
        [
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
        ],
    )


def append_entries(
    conn: sqlite3.Connection,
    transcript: int | TranscriptInfo,
    entries: Sequence[Mapping[str, Any]],
    *,
    parent_id: str | None = LEAF,
) -> list[Appended]:
    """Append entries as a chain: the first is a child of the leaf (or of `parent_id`;
    None starts a new root), each next one a child of the previous.

    An entry whose `message.idempotencyKey` is already in the transcript is not written; its
    result names the existing entry, and the chain goes on from the new entries only."""
    # A caller that just resolved the transcript passes its info: one query less per append.
    info = transcript if isinstance(transcript, TranscriptInfo) else get_info(conn, transcript)
    chain = _Chain.of(info)
    results = _append_to_chain(conn, chain, entries, parent_id)
    _write_chains(conn, [chain])
    return results


class NewIdTakenError(InvalidEntryError):
    """A combined run drew an id a stored entry already has (about 1 in 40,000 at 100,000
    entries): the writer reruns the appends one by one, and they draw again."""


class AppendMutation:
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
        self.entries = entries
        self.parent_id = parent_id

    def __call__(self, conn: sqlite3.Connection) -> list[Appended]:
        info = resolve_target(conn, self.agent_id, self.target)
        return append_entries(conn, info, self.entries, parent_id=self.parent_id)

    @staticmethod
    def combine(
        conn: sqlite3.Connection, mutations: Sequence[AppendMutation]
    ) -> list[list[Appended]]:
        """Run `mutations` in order as one. Any error (a missing transcript, a bad entry, an
        id collision) leaves the writer to rerun them one by one, each in its own savepoint,
        so only the failing caller sees it."""
        chains = _chains(conn, mutations)
        _prefetch_keys(conn, chains, mutations)
        # One clock reading for the run: its entries commit together anyway.
        now = now_iso()
        results = [
            _append_to_chain(conn, chains[(m.agent_id, m.target)], m.entries, m.parent_id, now)
            for m in mutations
        ]
        unique = {id(chain): chain for chain in chains.values()}.values()
        _check_new_ids(conn, unique)
        _write_chains(conn, unique)
        return results


def _chains(
    conn: sqlite3.Connection, mutations: Sequence[AppendMutation]
) -> dict[tuple[str, int | str], _Chain]:
    """A chain per target, with one query per agent for the session ids. Two names of one
    transcript (its session id and its transcript_id) share a chain."""
    wanted: dict[str, set[str]] = {}
    for m in mutations:
        if type(m.target) is str:
            wanted.setdefault(m.agent_id, set()).add(m.target)
    by_id: dict[int, _Chain] = {}
    chains: dict[tuple[str, int | str], _Chain] = {}
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
                chain = by_id[row[0]] = _Chain.checked(*row)
                chain.check_ids = False
            chains[(agent_id, sid)] = chain
    for m in mutations:
        name = (m.agent_id, m.target)
        if name not in chains:  # a transcript_id
            info = resolve_target(conn, m.agent_id, m.target)
            chain = by_id.get(info.transcript_id)
            if chain is None:
                chain = by_id[info.transcript_id] = _Chain.of(info)
                chain.check_ids = False
            chains[name] = chain
    return chains


def _live_rows(
    conn: sqlite3.Connection, agent_id: str, session_ids: Iterable[str]
) -> dict[str, tuple[Any, ...]]:
    """`transcripts.find_live` for many sessions, reading only what a chain needs:
    {session_id: (transcript_id, file_name, version, line_count, leaf_id, leaf_pos)}."""
    best: dict[str, tuple[Any, ...]] = {}
    for tid, sid, file_name, version, lines, leaf_id, leaf_pos in conn.execute(
        "SELECT transcript_id, session_id, file_name, version, line_count, leaf_id, leaf_pos "
        "FROM transcripts WHERE agent_id = ? AND session_id IN (SELECT value FROM json_each(?)) "
        "AND kind IN ('live', 'fork') AND superseded_by IS NULL",
        (agent_id, orjson.dumps(list(session_ids)).decode()),
    ):
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
    chains: dict[tuple[str, int | str], _Chain],
    mutations: Sequence[AppendMutation],
) -> None:
    """The stored entries of every idempotency key the run uses, with one query."""
    by_tid = {chain.transcript_id: chain for chain in chains.values()}
    wanted: set[tuple[int, str]] = set()
    for m in mutations:
        tid = chains[(m.agent_id, m.target)].transcript_id
        for fields in m.entries:
            key = _idempotency_key(fields) if isinstance(fields, Mapping) else None
            if key is not None:
                wanted.add((tid, key))
    for chain in by_tid.values():
        chain.stored_keys = {}
    if not wanted:
        return
    # Newest first, so the oldest entry of each key is the one left in the dict, as
    # find_by_idempotency_key answers.
    for tid, key, entry_id, pos in conn.execute(
        "SELECT l.transcript_id, l.idempotency_key, l.entry_id, l.pos FROM "
        + _PAIRS_JOIN.format(column="idempotency_key")
        + " ORDER BY l.pos DESC",
        (orjson.dumps(sorted(wanted)).decode(),),
    ):
        stored = by_tid[tid].stored_keys
        assert stored is not None
        stored[key] = (entry_id, int(pos))


def _check_new_ids(conn: sqlite3.Connection, chains: Iterable[_Chain]) -> None:
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
