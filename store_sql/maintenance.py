"""Session maintenance: the gateway's cleanup policy applied to the store (FORMATS.md §5).

The rules are the gateway's (openclaw `src/config/sessions/store-maintenance.ts`,
`store-maintenance-operations.ts`, `disk-budget.ts`, `cleanup-service.ts`):

- prune entries whose `updatedAt` is older than `pruneAfter` (30 days), then cap the count to
  `maxEntries` (500) keeping the newest; protected entries are never removed and shrink the
  cap's budget instead (with 25 removable entries kept when protected ones fill the cap).
  Protected: `agent:*:main` and `global`, thread/topic keys, `<channel>:group|channel:*`
  keys, entries whose chatType (or origin.chatType) is group, channel or thread, archived
  entries (`archivedAt`), model-locked ones, and the caller's active key; synthetic keys
  (subagent, acp, cron, hook, node, heartbeat) are never protected by their shape.
- the transcripts of removed sessions no other entry uses become `.deleted.` archives;
  then archives older than the archive retention are deleted, and checkpoint snapshots no
  entry names any more are released once older than `pruneAfter`.
- disk budget: when the agent's files (sessions.json as export writes it, transcripts,
  archives, snapshots, kept files) exceed `maxDiskBytes`, archives and unreferenced
  snapshots go oldest first, then the oldest unprotected entries with their transcripts,
  until the total is under `highWaterBytes` (80% of the maximum by default).
- mode `warn` changes nothing (it reports); `enforce` applies. A dry run reports exactly
  what `enforce` would do and writes nothing.

Everything is decided by `plan_cleanup`, a pure function over `AgentFacts` read in one
snapshot; `maintenance_api` then applies the plan in short writer transactions and returns
the space to the file system. Deviations from the gateway (a database has no mtimes) are
noted where they are made.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, NamedTuple

import orjson

from store_sql import sessions
from store_sql.checkpoints import base_name, index_rel_dir
from store_sql.errors import InvalidEntryError
from store_sql.formats import jsjson
from store_sql.lifecycle import archive_transcripts, transcript_candidates

Mode = Literal["warn", "enforce"]
DAY_MS: Final = 86_400_000
_MIN_OVER_CAP_REMOVABLE: Final = 25
_STRICT_MAX_ENTRIES: Final = 49
_ARCHIVE_KINDS: Final = frozenset({"reset", "deleted"})


# --- policy ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MaintenancePolicy:
    """`session.maintenance` as the gateway configures it. `mode` defaults to warn, so
    nothing is removed unless asked; retention of archives defaults to `pruneAfter` (None
    keeps archives for ever); the disk budget is off unless `max_disk_bytes` is set."""

    mode: Mode = "warn"
    prune_after_ms: int = 30 * DAY_MS
    max_entries: int = 500
    max_disk_bytes: int | None = None
    high_water_bytes: int | None = None
    archive_retention_ms: int | None = 30 * DAY_MS

    def __post_init__(self) -> None:
        if self.mode not in ("warn", "enforce"):
            raise InvalidEntryError(f"maintenance mode must be warn or enforce, not {self.mode!r}")
        for name in ("prune_after_ms", "max_entries"):
            if getattr(self, name) < 0:
                raise InvalidEntryError(f"{name} must not be negative")

    def high_water(self) -> int | None:
        """The budget target: `highWaterBytes` (at most the maximum), else 80% of it."""
        if self.max_disk_bytes is None or self.max_disk_bytes <= 0:
            return None
        if self.high_water_bytes is not None:
            return min(self.high_water_bytes, self.max_disk_bytes)
        return max(1, min(self.max_disk_bytes, math.floor(self.max_disk_bytes * 0.8)))


def entry_high_water(max_entries: int) -> int:
    """Entry count at which write-triggered maintenance caps (the gateway batches: small caps
    strictly, larger ones with 10% slack, at least 25). `sessions cleanup` caps at once."""
    if max_entries <= 0:
        return 1
    if max_entries <= _STRICT_MAX_ENTRIES:
        return max_entries + 1
    return max_entries + max(25, math.ceil(max_entries * 0.1))


_UNITS_MS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}
_UNITS_BYTES: Final = {
    unit: factor
    for power, letter in enumerate("bkmgt")
    for factor in [1 << (10 * power)]
    for unit in ((letter,) if letter == "b" else (letter, f"{letter}b", f"{letter}ib"))
}
_AMOUNT = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*")


def _parse_amount(text: str, units: dict[str, int], default: str, what: str) -> int:
    match = _AMOUNT.fullmatch(text.lower())
    factor = units.get((match.group(2) or default) if match else "")
    if match is None or factor is None:
        raise InvalidEntryError(
            f"cannot read {what} {text!r}: use a number with a unit ({', '.join(units)})"
        )
    return int(float(match.group(1)) * factor)


def parse_duration_ms(text: str) -> int:
    """`30d`, `12h`, `90m`, `1w` (a bare number is days, as the gateway reads pruneAfter)."""
    return _parse_amount(text, _UNITS_MS, "d", "duration")


def parse_bytes(text: str) -> int:
    """`500mb`, `2gb`, `1048576` (binary units; a bare number is bytes)."""
    return _parse_amount(text, _UNITS_BYTES, "b", "size")


# --- which entries are protected -------------------------------------------------------------

_THREAD = re.compile(r":(?:thread|topic):[^:]+")
_EXTERNAL_GROUP = re.compile(r"[^:]+:(?:group|channel):.+", re.DOTALL)


def _agent_rest(lower: str) -> str | None:
    """`<rest>` of a lowercased `agent:<id>:<rest>` key (the gateway's parseAgentSessionKey)."""
    if not lower.startswith("agent:"):
        return None
    colon = lower.find(":", 6)
    return lower[colon + 1 :] if colon > 6 and colon + 1 < len(lower) else None


_SYNTHETIC_PREFIXES: Final = ("subagent:", "acp:", "cron:", "acp-bridge:", "hook:", "node:")


def is_protected(key: str, chat_type: str | None) -> bool:
    """The gateway's isProtectedSessionMaintenanceEntry: human conversation surfaces are
    protected, synthetic automation sessions (subagent, acp, cron, hook, node, heartbeat)
    never are, whatever their chat type."""
    lower = key.lower()
    agent_rest = _agent_rest(lower)
    rest = lower if agent_rest is None else agent_rest
    if (
        rest.startswith(_SYNTHETIC_PREFIXES)
        or lower.startswith("cron:")
        or (
            "heartbeat" in rest
            and (rest == "heartbeat" or rest.endswith(":heartbeat") or ":heartbeat:" in rest)
        )
    ):
        return False
    if lower == "global" or agent_rest == "main":
        return True
    if ":" in rest and (_THREAD.search(rest) or _EXTERNAL_GROUP.fullmatch(rest)):
        return True
    return chat_type is not None and chat_type.lower() in ("group", "channel", "thread")


# --- facts -----------------------------------------------------------------------------------


# EntryFact and Removal are NamedTuples, not dataclasses: a cleanup holds 100,000 of each,
# and tuples of plain values drop out of the garbage collector's lists, where 100,000
# dataclass instances made every full collection (run on whichever thread allocates, GIL
# held) stall the event loop for ~200 ms (measured).
class EntryFact(NamedTuple):
    key: str
    session_id: str | None
    updated_at: float | None
    session_file: str | None
    entry_bytes: int
    preserved: bool
    """Protected, archived or model-locked (the active key is added by the plan)."""


@dataclass(frozen=True, slots=True)
class FileFact:
    """A file export writes for the agent: a transcript, or a snapshot row."""

    kind: str
    """The transcript kind, or "snapshot" for a `checkpoint_snapshots` row."""
    ident: int
    file_name: str
    session_id: str | None
    size: int
    archived_ms: int
    """When it was archived (from its name), else when the row was made."""
    written_ms: int
    """Its last entry's time: the stand-in for the mtime the gateway sorts files by."""
    pinned: bool = False
    """A transcript a named snapshot points into: deleting it would lose the snapshot."""
    referenced: bool = True
    """A snapshot or `.checkpoint.` copy some entry's checkpoints still name."""


@dataclass(frozen=True, slots=True)
class AgentFacts:
    agent_id: str
    entries: list[EntryFact]
    files: list[FileFact]
    other_bytes: int
    """Kept files (backups, sidecars, prompt blobs)."""


def _time_ms(text: Any, fallback: int) -> int:
    if not isinstance(text, str):
        return fallback
    for fmt in ("%Y-%m-%dT%H-%M-%S.%fZ", "%Y-%m-%dT%H-%M-%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return int(datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp() * 1000)
        except ValueError:
            continue
    return fallback


_ENTRY_FACTS = (
    "SELECT session_key, session_id, updated_at, session_file, entry_bytes, chat_type, "
    # origin.chatType counts only when chatType is absent (`entry.chatType ?? origin...`);
    # instr() spares the JSON parse for the entries that cannot match.
    " CASE WHEN chat_type IS NULL AND instr(entry_json, '\"origin\"') > 0 "
    "  THEN json_extract(entry_json, '$.origin.chatType') END, "
    " CASE WHEN instr(entry_json, '\"archivedAt\"') > 0 "
    "  THEN json_type(entry_json, '$.archivedAt') END, "
    " CASE WHEN instr(entry_json, '\"modelSelectionLocked\"') > 0 "
    "  THEN json_extract(entry_json, '$.modelSelectionLocked') END "
    "FROM session_entries WHERE agent_id = ? ORDER BY position"
)
_NAMED_CHECKPOINTS = (
    "SELECT json_extract(c.value, '$.checkpointId'), "
    " json_extract(c.value, '$.preCompaction.sessionFile') "
    "FROM session_entries e, json_each(e.entry_json, '$.compactionCheckpoints') c "
    "WHERE e.agent_id = ? AND instr(e.entry_json, '\"compactionCheckpoints\"') > 0 "
    "AND json_type(e.entry_json, '$.compactionCheckpoints') = 'array'"
)
_TRANSCRIPT_FACTS = (
    "SELECT t.transcript_id, t.kind, t.file_name, t.session_id, "
    " coalesce(length(t.compressed_bytes), t.byte_size), t.archived_at, t.created_at, "
    " (SELECT l.timestamp FROM transcript_lines l "
    "  WHERE l.transcript_id = t.transcript_id AND l.pos = t.leaf_pos) "
    "FROM transcripts t WHERE t.agent_id = ? AND t.superseded_by IS NULL"
)
_SNAPSHOT_FACTS = (
    "SELECT snapshot_pk, checkpoint_id, file_name, transcript_id, created_at, byte_size, "
    " upto_pos, ends_with_newline "
    "FROM checkpoint_snapshots WHERE agent_id = ?"
)


def read_facts(conn: sqlite3.Connection, agent_id: str, now_ms: int) -> AgentFacts:
    """What the plan needs, read in one snapshot (reader thread)."""
    entries = []
    for key, sid, updated, file, size, chat, origin_chat, archived, locked in conn.execute(
        _ENTRY_FACTS, (agent_id,)
    ):
        if chat is None and isinstance(origin_chat, str):
            chat = origin_chat
        chat_type = chat if isinstance(chat, str) else None
        preserved = archived is not None or locked == 1 or is_protected(key, chat_type)
        entries.append(EntryFact(key, sid, updated, file, int(size), preserved))
    ids, names = set(), set()
    for cp_id, name in conn.execute(_NAMED_CHECKPOINTS, (agent_id,)):
        ids.add(cp_id)
        if isinstance(name, str):
            names.add(base_name(name.strip()))
    files: list[FileFact] = []
    pins: set[int] = set()
    for pk, cp_id, name, tid, created, size, upto, final_nl in conn.execute(
        _SNAPSHOT_FACTS, (agent_id,)
    ):
        referenced = cp_id in ids or name in names
        if referenced:
            pins.add(tid)
        if size is None:
            row = conn.execute(
                "SELECT coalesce(sum(byte_size + 1), 0) FROM transcript_lines "
                "WHERE transcript_id = ? AND pos <= ?",
                (tid, upto),
            ).fetchone()
            size = int(row[0]) - (0 if final_nl else 1)
        when = _time_ms(created, now_ms)
        files.append(FileFact("snapshot", pk, name, None, int(size), when, when, False, referenced))
    for tid, kind, name, sid, size, archived_at, created, last in conn.execute(
        _TRANSCRIPT_FACTS, (agent_id,)
    ):
        made = _time_ms(created, now_ms)
        referenced = kind != "checkpoint" or name in names
        files.append(
            FileFact(kind, tid, name, sid, int(size), _time_ms(archived_at, made),
                     _time_ms(last, made), tid in pins, referenced)
        )  # fmt: skip
    other = conn.execute(
        "SELECT coalesce(sum(length(content)), 0) FROM opaque_files WHERE agent_id = ?",
        (agent_id,),
    ).fetchone()[0]
    return AgentFacts(agent_id, entries, files, int(other))


# --- the plan --------------------------------------------------------------------------------


class Removal(NamedTuple):
    """An entry to remove, with what it held when planned (checked again when applied)."""

    key: str
    session_id: str | None
    updated_at: float | None
    session_file: str | None


@dataclass(slots=True)
class BudgetSweep:
    """The gateway's SessionDiskBudgetSweepResult."""

    total_bytes_before: int
    total_bytes_after: int
    max_bytes: int
    high_water_bytes: int
    removed_files: int = 0
    removed_entries: int = 0
    freed_bytes: int = 0
    over_budget: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "totalBytesBefore": self.total_bytes_before,
            "totalBytesAfter": self.total_bytes_after,
            "removedFiles": self.removed_files,
            "removedEntries": self.removed_entries,
            "freedBytes": self.freed_bytes,
            "maxBytes": self.max_bytes,
            "highWaterBytes": self.high_water_bytes,
            "overBudget": self.over_budget,
        }


@dataclass(slots=True)
class CleanupPlan:
    agent_id: str
    mode: Mode
    dry_run: bool
    before_count: int
    pruned: list[Removal] = field(default_factory=list)
    capped: list[Removal] = field(default_factory=list)
    archived_transcripts: int = 0
    archives_scanned: int = 0
    expired: list[FileFact] = field(default_factory=list)
    """Archives past retention."""
    unreferenced_scanned: int = 0
    unreferenced: list[FileFact] = field(default_factory=list)
    """Snapshots no checkpoint names, older than pruneAfter."""
    budget: BudgetSweep | None = None
    budget_files: list[FileFact] = field(default_factory=list)
    evicted: list[Removal] = field(default_factory=list)
    """Entries the disk budget removes (their unshared transcripts are deleted)."""
    prune_after_ms: int = 0

    @property
    def after_count(self) -> int:
        return self.before_count - len(self.pruned) - len(self.capped) - len(self.evicted)

    @property
    def would_mutate(self) -> bool:
        b = self.budget
        return bool(
            self.pruned or self.capped or self.expired or self.unreferenced or self.budget_files
            or self.evicted or (b is not None and (b.removed_files or b.removed_entries))
        )  # fmt: skip

    def report(self) -> dict[str, Any]:
        """The gateway's cleanup summary fields (camelCase, as its `--json` prints them)."""
        return {
            "agentId": self.agent_id,
            "mode": self.mode,
            "dryRun": self.dry_run,
            "beforeCount": self.before_count,
            "afterCount": self.after_count,
            "pruned": len(self.pruned),
            "capped": len(self.capped),
            "archivedTranscripts": self.archived_transcripts,
            "archiveCleanup": {
                "scannedFiles": self.archives_scanned,
                "removedFiles": len(self.expired),
            },
            "unreferencedArtifacts": {
                "scannedFiles": self.unreferenced_scanned,
                "removedFiles": len(self.unreferenced),
                "freedBytes": sum(f.size for f in self.unreferenced),
                "olderThanMs": self.prune_after_ms,
            },
            "diskBudget": None if self.budget is None else self.budget.as_json(),
            "wouldMutate": self.would_mutate,
        }


def _removal(e: EntryFact) -> Removal:
    return Removal(e.key, e.session_id, e.updated_at, e.session_file)


def _removable_budget(max_entries: int, preserved: int) -> int:
    budget = max(0, max_entries - preserved)
    if budget > 0 or max_entries <= 0:
        return budget
    return min(max_entries, _MIN_OVER_CAP_REMOVABLE)


def _newest_first(e: EntryFact) -> float:
    # The gateway sorts by updatedAt descending with a missing one as -Infinity (removed first).
    return -e.updated_at if e.updated_at is not None else math.inf


def _index_chunk(e: EntryFact) -> int:
    """Bytes an entry takes in sessions.json, with its `,\\n  ` separator."""
    return len(jsjson.dumps(e.key).encode("utf-8", "surrogatepass")) + 2 + e.entry_bytes + 4


def plan_cleanup(
    facts: AgentFacts,
    policy: MaintenancePolicy,
    *,
    now_ms: int,
    active_key: str | None = None,
    dry_run: bool = False,
    force: bool = True,
) -> CleanupPlan:
    """Decide everything a cleanup does; nothing is read or written here."""
    plan = CleanupPlan(facts.agent_id, policy.mode, dry_run, len(facts.entries))
    plan.prune_after_ms = policy.prune_after_ms
    keep = {e.key for e in facts.entries if e.preserved or e.key == active_key}
    # A dry run previews entry removals whatever the mode; a warn run changes nothing.
    entries_apply = dry_run or policy.mode == "enforce"
    remaining = list(facts.entries)
    if entries_apply:
        cutoff = now_ms - policy.prune_after_ms
        stale = {
            e.key for e in remaining
            if e.key not in keep and e.updated_at is not None and e.updated_at < cutoff
        }  # fmt: skip
        plan.pruned = [_removal(e) for e in remaining if e.key in stale]
        remaining = [e for e in remaining if e.key not in stale]
        if force or len(remaining) >= entry_high_water(policy.max_entries):
            removable = [e for e in remaining if e.key not in keep]
            budget = _removable_budget(policy.max_entries, len(remaining) - len(removable))
            if len(removable) > budget:
                over = sorted(removable, key=_newest_first)[budget:]
                over_keys = {e.key for e in over}
                plan.capped = [_removal(e) for e in remaining if e.key in over_keys]
                remaining = [e for e in remaining if e.key not in over_keys]
    files = _after_archiving(plan, facts, remaining)
    if entries_apply:
        files = _archive_cleanup(plan, files, policy, now_ms)
    _disk_budget(plan, facts, remaining, files, policy, active_key, keep)
    return plan


def _after_archiving(
    plan: CleanupPlan, facts: AgentFacts, remaining: list[EntryFact]
) -> list[FileFact]:
    """The files once the removed sessions' unshared transcripts are `.deleted.` archives."""
    used = {e.session_id for e in remaining if e.session_id}
    names: set[str] = set()
    for r in [*plan.pruned, *plan.capped]:
        if r.session_id and r.session_id not in used:
            names.update(transcript_candidates(r.session_id, r.session_file))
    files = []
    for f in facts.files:
        if f.kind in ("live", "topic") and f.file_name in names:
            plan.archived_transcripts += 1
            f = FileFact("deleted", f.ident, f.file_name, f.session_id, f.size, 1 << 62,
                         f.written_ms, f.pinned, f.referenced)  # fmt: skip
        files.append(f)
    return files


def _archive_cleanup(
    plan: CleanupPlan, files: list[FileFact], policy: MaintenancePolicy, now_ms: int
) -> list[FileFact]:
    archives = [f for f in files if f.kind in _ARCHIVE_KINDS]
    plan.archives_scanned = len(archives)
    if policy.archive_retention_ms is not None:
        cutoff = now_ms - policy.archive_retention_ms
        plan.expired = [f for f in archives if f.archived_ms < cutoff and not f.pinned]
    snapshots = [f for f in files if f.kind in ("snapshot", "checkpoint")]
    plan.unreferenced_scanned = len(snapshots)
    cutoff = now_ms - policy.prune_after_ms
    plan.unreferenced = [
        f for f in snapshots if not f.referenced and not f.pinned and f.archived_ms <= cutoff
    ]
    gone = {(f.kind, f.ident) for f in [*plan.expired, *plan.unreferenced]}
    return [f for f in files if (f.kind, f.ident) not in gone]


def _disk_budget(
    plan: CleanupPlan,
    facts: AgentFacts,
    remaining: list[EntryFact],
    files: list[FileFact],
    policy: MaintenancePolicy,
    active_key: str | None,
    keep: set[str],
) -> None:
    high = policy.high_water()
    if policy.max_disk_bytes is None or high is None:
        return
    chunks = {e.key: _index_chunk(e) for e in remaining}
    index_bytes = 2 if not remaining else 2 + sum(chunks.values())
    total = index_bytes + sum(f.size for f in files) + facts.other_bytes
    sweep = plan.budget = BudgetSweep(total, total, policy.max_disk_bytes, high)
    if total <= policy.max_disk_bytes:
        return
    sweep.over_budget = True
    if policy.mode == "warn":
        return
    removable = sorted(
        (f for f in files if not f.pinned and (f.kind in _ARCHIVE_KINDS or not f.referenced)),
        key=lambda f: f.written_ms,
    )
    for f in removable:
        if total <= high:
            break
        plan.budget_files.append(f)
        total -= f.size
        sweep.freed_bytes += f.size
        sweep.removed_files += 1
    by_session: dict[str, list[FileFact]] = {}
    for f in files:
        if f.kind in ("live", "topic") and f.session_id and not f.pinned:
            by_session.setdefault(f.session_id, []).append(f)
    users: dict[str, int] = {}
    for e in remaining:
        if e.session_id:
            users[e.session_id] = users.get(e.session_id, 0) + 1
    # Oldest first; a missing updatedAt counts as 0 here (the gateway's getEntryUpdatedAt).
    for e in sorted(remaining, key=lambda e: e.updated_at or 0):
        if total <= high:
            break
        if e.key in keep or e.key == active_key:
            continue
        plan.evicted.append(_removal(e))
        total -= chunks[e.key]
        sweep.removed_entries += 1
        if e.session_id:
            users[e.session_id] -= 1
        if e.session_id and users[e.session_id] == 0:
            names = set(transcript_candidates(e.session_id, e.session_file))
            for f in by_session.get(e.session_id, []):
                if f.file_name in names:
                    total -= f.size
                    sweep.freed_bytes += f.size
                    sweep.removed_files += 1
    sweep.total_bytes_after = total


# --- applying (writer thread) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchResult:
    removed: int
    archived: list[str]
    doomed_transcripts: list[int]
    """Transcripts of evicted sessions, to delete chunk by chunk after this batch."""


def remove_entries(
    conn: sqlite3.Connection,
    agent_id: str,
    batch: Sequence[Removal],
    when: datetime,
    *,
    archive: bool,
) -> BatchResult:
    """Remove planned entries still as planned (an entry touched since is left alone); then
    archive (or, for budget evictions, mark for deletion) transcripts no entry uses now.
    A handful of set-based statements per batch plus the delete of each entry."""
    current = {
        key: (sid, updated)
        for key, sid, updated in conn.execute(
            "SELECT session_key, session_id, updated_at FROM session_entries "
            "WHERE agent_id = ? AND session_key IN (SELECT value FROM json_each(?))",
            (agent_id, _json_list(r.key for r in batch)),
        )
    }
    removed = [r for r in batch if current.get(r.key) == (r.session_id, r.updated_at)]
    for r in removed:
        sessions.delete_entry(conn, agent_id, r.key)
    unused = {
        row[0]
        for row in conn.execute(
            "SELECT j.value FROM json_each(?) j WHERE NOT EXISTS (SELECT 1 FROM session_entries "
            "e WHERE e.agent_id = ? AND e.session_id = j.value)",
            (_json_list({r.session_id for r in removed if r.session_id}), agent_id),
        )
    }
    names = list(
        dict.fromkeys(
            name
            for r in removed
            if r.session_id and r.session_id in unused
            for name in transcript_candidates(r.session_id, r.session_file)
        )
    )
    if archive:
        return BatchResult(
            len(removed), archive_transcripts(conn, agent_id, names, "deleted", when), []
        )
    return BatchResult(len(removed), [], _unpinned_transcripts(conn, agent_id, names))


def _json_list(values: Iterable[str]) -> str:
    return orjson.dumps(list(values)).decode()


def _unpinned_transcripts(
    conn: sqlite3.Connection, agent_id: str, names: Sequence[str]
) -> list[int]:
    if not names:
        return []
    rows = conn.execute(
        "SELECT transcript_id FROM transcripts t WHERE agent_id = ? AND rel_dir = ? "
        "AND file_name IN (SELECT value FROM json_each(?)) AND kind IN ('live', 'topic') "
        "AND superseded_by IS NULL AND NOT EXISTS (SELECT 1 FROM checkpoint_snapshots s "
        "WHERE s.transcript_id = t.transcript_id)",
        (agent_id, index_rel_dir(conn, agent_id), _json_list(names)),
    ).fetchall()
    return [int(r[0]) for r in rows]


def transcript_versions(conn: sqlite3.Connection, transcript_id: int) -> list[int]:
    """A transcript and the older versions it superseded, oldest first: deleting only the
    current one would make an old version current again."""
    rows = conn.execute(
        "WITH RECURSIVE older(id) AS (SELECT ? UNION "
        " SELECT t.transcript_id FROM transcripts t JOIN older ON t.superseded_by = older.id) "
        "SELECT id FROM older ORDER BY id",
        (transcript_id,),
    ).fetchall()
    return [int(r[0]) for r in rows]


def release_snapshot_rows(conn: sqlite3.Connection, snapshot_pks: Iterable[int]) -> int:
    """Delete snapshot rows (planned as unreferenced or over budget)."""
    count = 0
    for pk in snapshot_pks:
        count += conn.execute(
            "DELETE FROM checkpoint_snapshots WHERE snapshot_pk = ?", (pk,)
        ).rowcount
    return count


VACUUM_THRESHOLD_PAGES: Final = 1024
"""Free pages (4 MiB at 4 KiB pages) above which a cleanup gives space back to the file
system with `incremental_vacuum`; below it the pages are simply reused by later writes."""
VACUUM_STEP_PAGES: Final = 2048
"""Pages freed per writer transaction (~55 ms measured), so other writes interleave."""


def free_pages(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA freelist_count").fetchone()[0])


def vacuum_step(conn: sqlite3.Connection, max_pages: int = VACUUM_STEP_PAGES) -> int:
    """Return up to `max_pages` free pages to the file system; the pages still free after.

    Python's sqlite3 steps `PRAGMA incremental_vacuum(N)` once, which frees one page, and
    leaves the statement open (a later RELEASE then fails); so one page per statement, each
    cursor closed at once."""
    for _ in range(min(max_pages, free_pages(conn))):
        conn.execute("PRAGMA incremental_vacuum(1)").close()
    return free_pages(conn)
