"""Appends on PostgreSQL: a whole writer group in two statements (the twin of appends.py).

Several processes may append to one transcript, so a group first locks the rows of every
transcript it appends to (`FOR UPDATE`, in transcript_id order, so two groups cannot
deadlock on them) and reads their leaf and counters under that lock; the lock is held to
COMMIT, so another process's group waits and then sees the new leaf. A group is:

1. lock: resolve every target, lock its transcript row, and say whether the transcript
   holds lines that make it follow today's tree rules (`tables.NAVIGATION_LINES`);
2. place the entries (`appends.append_to_chain`, the same code as on SQLite) and write
   everything in one statement: the lines, their idempotency keys, the transcripts'
   counters and leaves (`unnest` arrays).

The placing assumes what is by far the common case: no stored entry holds one of the
group's idempotency keys or new ids, and no transcript the lock saw without today's tree
rules gained such a line meanwhile. The write checks all three against the stored rows (its
snapshot is taken after the lock, so it sees every other writer's commit) and writes
nothing when one fails; the group then reads what its appends need (`_LOOKUP`: the entries
holding their keys, the parents they name, the append point of each navigating
transcript) and is placed and written again. A group naming explicit parents or appending
to a navigating transcript reads those up front: three statements.

Idempotency keys hold across processes through `idempotency_keys`' primary key as well: a
key stored meanwhile by a writer that did not lock the transcript (none of the store's
does) makes the append fail with ConflictError; it is never written twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from store_sql.addresses import LEAF, check_target
from store_sql.engine.pg.connection import CombinablePgMutation
from store_sql.errors import ConflictError, NotFoundError
from store_sql.schema.navigation_lines import NAVIGATION_LINES
from store_sql.transcripts import pg_reads
from store_sql.transcripts.appends import (
    Appended,
    Chain,
    NewIdTakenError,
    StoredKey,
)
from store_sql.transcripts.appends import append_to_chain as place
from store_sql.transcripts.entry_lines import prepare_entry
from store_sql.transcripts.rows import INFO_COLUMNS, info_of_row, now_iso, pick_live

if TYPE_CHECKING:
    import asyncpg

__all__ = ["PgAppendMutation", "append_group"]

# NAVIGATION_LINES names its columns unqualified: inside `EXISTS (SELECT ... FROM
# transcript_lines ...)` they are that table's, the innermost scope.
# The targets are found through the primary key and ix_transcripts_session (an OR of the
# two would scan the table), then locked. A row changed by another writer while the lock
# waited comes back as it is now: a live transcript superseded meanwhile is no longer live
# (`_lock` then looks again).
_LOCK = (
    f"SELECT {INFO_COLUMNS}, EXISTS (SELECT 1 FROM transcript_lines n WHERE "
    f"n.transcript_id = t.transcript_id AND {NAVIGATION_LINES}) "
    "FROM transcripts t WHERE transcript_id IN ("
    "SELECT unnest($1::bigint[]) UNION ALL SELECT l.transcript_id "
    "FROM unnest($2::text[], $3::text[]) AS u(agent_id, session_id) "
    "JOIN transcripts l ON l.agent_id = u.agent_id AND l.session_id = u.session_id "
    "AND l.kind IN ('live', 'fork') AND l.superseded_by IS NULL) "
    "ORDER BY transcript_id FOR UPDATE OF t"
)
_LOCK_LOOKS = 3
"""Looks for the live transcripts: one more each time one was replaced while the lock
waited (what is live then is locked already)."""

# One statement, three questions, told apart by the first column.
_LOOKUP = (
    "SELECT 'k', k.transcript_id, k.key, l.entry_id, l.pos, l.parent_id "
    "FROM unnest($1::bigint[], $2::text[]) AS u(tid, key) "
    "JOIN idempotency_keys k ON k.transcript_id = u.tid AND k.key = u.key "
    "JOIN transcript_lines l ON l.transcript_id = k.transcript_id AND l.pos = k.pos "
    "UNION ALL "
    "SELECT 'p', u.tid, u.name, NULL, (SELECT max(l.pos) FROM transcript_lines l "
    "WHERE l.transcript_id = u.tid AND l.entry_id = u.name AND l.kind = 'entry' "
    "AND l.pos < u.before), NULL "
    "FROM unnest($3::bigint[], $4::text[], $5::bigint[]) AS u(tid, name, before) "
    "UNION ALL "
    "SELECT 'n', u.tid, NULL, NULL, NULL, NULL FROM unnest($6::bigint[]) AS u(tid) "
    "WHERE EXISTS (SELECT 1 FROM transcript_lines l WHERE l.transcript_id = u.tid AND "
    f"{NAVIGATION_LINES})"
)

# Every write is guarded by `refused`: a stored entry with a new id or a new key, or a
# navigating line in a transcript placed without today's tree rules ($18). The checks are
# scalar subqueries with LIMIT, which the planner runs per new line as an index probe; as
# joins it hashed them against a scan of the whole table.
_WRITE = (
    "WITH new AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], "
    "$5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[], "
    "$12::bigint[]) AS n(transcript_id, pos, line, entry_id, parent_id, parent_pos, type, role, "
    "timestamp, idempotency_key, byte_size, side_append)), "
    "refused(why, tid, entry_id) AS ((SELECT 'id', n.transcript_id, n.entry_id FROM new n "
    "WHERE (SELECT true FROM transcript_lines l WHERE l.transcript_id = n.transcript_id "
    "AND l.entry_id = n.entry_id LIMIT 1)) "
    "UNION ALL (SELECT 'key', NULL, NULL FROM new n WHERE (SELECT true FROM idempotency_keys k "
    "WHERE k.transcript_id = n.transcript_id AND k.key = n.idempotency_key LIMIT 1) LIMIT 1) "
    "UNION ALL (SELECT 'navigation', NULL, NULL FROM unnest($18::bigint[]) AS u(tid) "
    "WHERE EXISTS "
    "(SELECT 1 FROM transcript_lines l WHERE l.transcript_id = u.tid AND "
    f"{NAVIGATION_LINES}) LIMIT 1)), "
    "lines AS (INSERT INTO transcript_lines (transcript_id, pos, line, kind, entry_id, "
    "parent_id, parent_pos, type, role, timestamp, idempotency_key, byte_size, side_append) "
    "SELECT transcript_id, pos, line, 'entry', entry_id, parent_id, parent_pos, type, role, "
    "timestamp, idempotency_key, byte_size, side_append FROM new "
    "WHERE NOT EXISTS (SELECT 1 FROM refused)), "
    "keys AS (INSERT INTO idempotency_keys (transcript_id, key, pos) "
    "SELECT transcript_id, idempotency_key, pos FROM new "
    "WHERE idempotency_key IS NOT NULL AND NOT EXISTS (SELECT 1 FROM refused) "
    "ON CONFLICT DO NOTHING RETURNING 1), "
    "moved AS (UPDATE transcripts t SET line_count = t.line_count + a.lines, "
    "entry_count = t.entry_count + a.lines, "
    "byte_size = t.byte_size + a.bytes "
    "+ (CASE WHEN t.ends_with_newline <> 0 OR t.line_count = 0 THEN 0 ELSE 1 END), "
    "ends_with_newline = 1, leaf_pos = a.leaf_pos, leaf_id = a.leaf_id "
    "FROM unnest($13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[], $17::text[]) "
    "AS a(transcript_id, lines, bytes, leaf_pos, leaf_id) "
    "WHERE t.transcript_id = a.transcript_id AND NOT EXISTS (SELECT 1 FROM refused)) "
    "SELECT (SELECT array_agg(ARRAY[why, tid::text, entry_id]) FROM refused), "
    "(SELECT count(*) FROM keys)"
)
_ATTEMPTS = 3
"""Placings of one group: the optimistic one, one after the lookup and with the taken ids
known, one more for a new id drawn again that a stored entry has."""


class PgAppendMutation(CombinablePgMutation):
    """One caller's append on PostgreSQL, as a writer mutation the writer combines with the
    appends queued beside it (`combine`: one `append_group` for the whole run)."""

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
        # Checked and serialised on the caller's side, as on SQLite.
        self.entries = [prepare_entry(fields) for fields in entries]
        self.parent_id = parent_id

    async def __call__(self, conn: asyncpg.Connection) -> list[Appended]:
        return (await append_group(conn, [self]))[0]

    @classmethod
    async def combine(
        cls, conn: asyncpg.Connection, mutations: Sequence[PgAppendMutation]
    ) -> list[list[Appended]]:
        return await append_group(conn, mutations)


class _Stored:
    """`appends.StoredLines` answered from what `_LOOKUP` read for the group."""

    __slots__ = ("keys", "navigated", "parents", "taken")

    def __init__(self, taken: set[tuple[int, str]]) -> None:
        self.taken = taken
        """Stored ids an earlier placing of the group drew (the write refused them)."""
        self.keys: dict[tuple[int, str], StoredKey] = {}
        self.parents: dict[tuple[int, str], int | None] = {}
        self.navigated: dict[int, tuple[str | None, int | None]] = {}

    def append_point(self, transcript_id: int) -> tuple[str | None, int | None] | None:
        return self.navigated.get(transcript_id)

    def parent_pos(self, transcript_id: int, parent_id: str, before_pos: int) -> int | None:
        return self.parents.get((transcript_id, parent_id))

    def stored_key(self, transcript_id: int, key: str) -> StoredKey | None:
        return self.keys.get((transcript_id, key))

    def id_taken(self, transcript_id: int, entry_id: str) -> bool:
        # The write checks every new id against the stored ones; an id it refused is
        # drawn again.
        return (transcript_id, entry_id) in self.taken


async def append_group(
    conn: asyncpg.Connection, mutations: Sequence[PgAppendMutation]
) -> list[list[Appended]]:
    """Run `mutations` in order as one, with the same entries and results as running them
    one after another. Any error leaves the caller (the writer) to run them again alone."""
    locked = await _lock(conn, mutations)
    careful = False
    taken: set[tuple[int, str]] = set()
    for _ in range(_ATTEMPTS):
        chains = _chains(locked, mutations)
        stored, unchecked = await _look_up(
            conn, locked, chains, mutations, careful=careful, taken=taken
        )
        now = now_iso()
        results = [
            place(stored, chains[(m.agent_id, m.target)], m.entries, m.parent_id, now)
            for m in mutations
        ]
        unique = {id(chain): chain for chain in chains.values()}.values()
        refused = await _write(conn, [chain for chain in unique if chain.params], unchecked)
        if refused is None:
            return results
        taken.update(refused)
        careful = True
    raise NewIdTakenError("every id drawn for this append is taken by a stored entry; retrying")


class _Locked:
    """The group's transcripts as the lock read them."""

    __slots__ = ("navigating", "rows")

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int | str], Any] = {}
        """Each target's row (`INFO_COLUMNS`)."""
        self.navigating: set[int] = set()
        """Transcripts that held a navigating line when the lock was taken."""


async def _lock(conn: asyncpg.Connection, mutations: Sequence[PgAppendMutation]) -> _Locked:
    """Lock every target's transcript row and resolve each target to its row."""
    ids: set[int] = set()
    sessions: set[tuple[str, str]] = set()
    for m in mutations:
        target = check_target(m.target)
        if isinstance(target, int):
            ids.add(target)
        elif "\x00" not in target:
            # No PostgreSQL text holds NUL: such a session has no transcript (`_resolved`).
            sessions.add((m.agent_id, target))
    for look in range(_LOCK_LOOKS):
        rows = await conn.fetch(
            _LOCK, sorted(ids), [a for a, _ in sessions], [s for _, s in sessions]
        )
        locked = _resolved(rows, sessions, mutations, final=look == _LOCK_LOOKS - 1)
        if locked is not None:
            return locked
    raise AssertionError("unreachable: the last look resolves or raises")


def _resolved(
    rows: Sequence[Any],
    sessions: set[tuple[str, str]],
    mutations: Sequence[PgAppendMutation],
    *,
    final: bool,
) -> _Locked | None:
    """Each target's locked row; None when a session's live transcript was replaced while
    the lock waited (look again), unless `final`."""
    locked = _Locked()
    by_tid = {row[0]: row for row in rows}
    live: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        if row[-1]:
            locked.navigating.add(row[0])
        # INFO_COLUMNS: 1 agent_id, 3 session_id, 4 kind, 18 superseded_by
        if row[4] in ("live", "fork") and row[18] is None and (row[1], row[3]) in sessions:
            live.setdefault((row[1], row[3]), []).append(row)
    for m in mutations:
        name = (m.agent_id, m.target)
        if name in locked.rows:
            continue
        if isinstance(m.target, int):
            row = by_tid.get(m.target)
            if row is None:
                raise NotFoundError(f"no transcript with id {m.target}")
            if row[1] != m.agent_id:
                raise NotFoundError(
                    f"agent {m.agent_id!r} has no transcript with id {m.target} (it belongs to "
                    f"agent {row[1]!r})"
                )
        else:
            found = live.get((m.agent_id, m.target))
            if not found and not final and any((r[1], r[3]) == name for r in rows):
                return None
            if not found:
                raise NotFoundError(
                    f"agent {m.agent_id!r} has no live transcript for session {m.target!r}"
                )
            row = pick_live(m.target, found)
        locked.rows[name] = row
    return locked


def _chains(
    locked: _Locked, mutations: Sequence[PgAppendMutation]
) -> dict[tuple[str, int | str], Chain]:
    """A fresh chain per target; a session id and the transcript_id of the same
    transcript share one."""
    chains: dict[tuple[str, int | str], Chain] = {}
    made: dict[int, Chain] = {}
    for name, row in locked.rows.items():
        chain = made.get(row[0])
        if chain is None:
            chain = made[row[0]] = Chain.of(info_of_row(row[:-1]))
        chains[name] = chain
    return chains


async def _look_up(
    conn: asyncpg.Connection,
    locked: _Locked,
    chains: dict[tuple[str, int | str], Chain],
    mutations: Sequence[PgAppendMutation],
    *,
    careful: bool,
    taken: set[tuple[int, str]],
) -> tuple[_Stored, list[int]]:
    """What the appends need of the stored lines, and the transcripts placed without it
    (to be checked by the write). Not `careful`: only the named parents and the append
    points of transcripts the lock saw navigating; else the keys and every append point."""
    keys: set[tuple[int, str]] = set()
    parents: set[tuple[int, str, int]] = set()
    to_leaf: set[int] = set()
    for m in mutations:
        chain = chains[(m.agent_id, m.target)]
        tid = chain.transcript_id
        if careful:
            keys.update((tid, entry.key) for entry in m.entries if entry.key is not None)
        if m.parent_id == LEAF:
            to_leaf.add(tid)
        elif m.parent_id is not None:
            parents.add((tid, m.parent_id, chain.stored_lines))
    stored = _Stored(taken)
    asked = to_leaf if careful else to_leaf & locked.navigating
    unchecked = sorted(to_leaf - asked)
    if not (keys or parents or asked):
        return stored, unchecked
    key_list, parent_list = sorted(keys), sorted(parents)
    rows = await conn.fetch(
        _LOOKUP,
        [t for t, _ in key_list], [k for _, k in key_list],
        [t for t, _, _ in parent_list], [p for _, p, _ in parent_list],
        [b for _, _, b in parent_list],
        sorted(asked),
    )  # fmt: skip
    for tag, tid, name, entry_id, pos, parent_id in rows:
        if tag == "k":
            stored.keys[(tid, name)] = (entry_id, int(pos), parent_id)
        elif tag == "p":
            stored.parents[(tid, name)] = None if pos is None else int(pos)
        else:
            navigated = await pg_reads.navigation(conn, tid)
            if navigated is not None:
                stored.navigated[tid] = navigated.append_point()
    return stored, unchecked


async def _write(
    conn: asyncpg.Connection, chains: list[Chain], unchecked: list[int]
) -> list[tuple[int, str]] | None:
    """Write the chains' lines, keys and counters. None when written; when a check refused
    them (nothing written), the stored ids among the new ones."""
    if not chains:
        return None
    lines: list[list[Any]] = [[] for _ in range(12)]
    for chain in chains:
        for params in chain.params:
            for column, value in zip(lines, params, strict=True):
                column.append(value)
    texts = lines[2]
    for i, line in enumerate(texts):
        texts[i] = line.decode("utf-8")  # jsjson's JSON text: valid UTF-8, never a raw NUL
    keyed = sum(1 for key in lines[9] if key is not None)
    row = await conn.fetchrow(
        _WRITE,
        *lines,
        [c.transcript_id for c in chains],
        [len(c.params) for c in chains],
        [c.added_bytes for c in chains],
        [c.leaf_pos for c in chains],
        [c.leaf_id for c in chains],
        unchecked,
    )
    assert row is not None  # a SELECT without FROM gives one row
    refused, stored_keys = row
    if refused:
        return [(int(tid), entry_id) for why, tid, entry_id in refused if why == "id"]
    if stored_keys != keyed:
        raise ConflictError(
            "an idempotency key of this append was stored meanwhile by a writer that did not "
            "lock the transcript; append again"
        )
    return None
