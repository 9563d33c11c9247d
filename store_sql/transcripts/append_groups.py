"""Appends of one writer group run as one (`AppendMutation.combine`).

The writer hands consecutive AppendMutations of a group to `combine` (engine/writer.py):
the same entries and results as running them one after another, with a handful of
statements for the whole run instead of four or five per append.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from store_sql.engine.writer import CombinableMutation
from store_sql.errors import InvalidEntryError, NotFoundError
from store_sql.transcripts.appends import (
    Appended,
    Chain,
    append_entries,
    append_to_chain,
    write_chains,
)
from store_sql.transcripts.entry_lines import prepare_entry
from store_sql.transcripts.rows import now_iso, resolve_target


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
        info = resolve_target(conn, self.agent_id, self.target)
        return append_entries(conn, info, self.entries, parent_id=self.parent_id)

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
        results = [
            append_to_chain(conn, chains[(m.agent_id, m.target)], m.entries, m.parent_id, now)
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
