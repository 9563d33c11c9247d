"""Session maintenance: the gateway's cleanup policy applied to the store (docs/FORMATS.md §5).

The rules are the gateway's (openclaw `src/config/sessions/store-maintenance.ts`,
`store-maintenance-operations.ts`, `disk-budget.ts`, `cleanup-service.ts`):

- prune entries whose `updatedAt` is older than `pruneAfter` (30 days), then cap the count to
  `maxEntries` (500) keeping the newest; protected entries are never removed and shrink the
  cap's budget instead (with 25 removable entries kept when protected ones fill the cap).
  Protected: `agent:*:main` and `global`, thread/topic keys, `<channel>:group|channel:*`
  keys, entries whose chatType (or origin.chatType) is group, channel or thread, archived
  entries (`archivedAt`), model-locked ones, and the caller's active key. Synthetic keys
  (subagent, acp, cron, hook, node, heartbeat) are not protected, whatever their chat type.
- the transcripts of removed sessions no other entry uses become `.deleted.` archives;
  then archives older than the archive retention are deleted, and checkpoint snapshots no
  entry names any more are released once older than `pruneAfter`.
- disk budget: when the agent's files (sessions.json as export writes it, transcripts,
  archives, snapshots, kept files) exceed `maxDiskBytes`, archives and unreferenced
  snapshots go oldest first, then the oldest unprotected entries with their transcripts,
  until the total is under `highWaterBytes` (80% of the maximum by default).
- mode `warn` changes nothing (it reports); `enforce` applies. A dry run reports exactly
  what `enforce` would do and writes nothing.

The policy and its parsing are in maintenance/policy.py. Everything is decided by
`plan_cleanup`, a pure function over `AgentFacts` (read in one
snapshot by `steps.read_facts`); `maintenance_api` then applies the plan with the
short writer steps of `maintenance_steps` and returns the space to the file system.
Deviations from the gateway (a database has no mtimes) are noted where they are made.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from store_sql.formats import jsjson
from store_sql.lifecycle.rows import transcript_candidates
from store_sql.maintenance.policy import MaintenancePolicy, Mode, entry_high_water

_MIN_OVER_CAP_REMOVABLE: Final = 25
_ARCHIVE_KINDS: Final = frozenset({"reset", "deleted"})


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


@dataclass(slots=True)
class EntryColumns:
    """The agent's entries, one list per field, in index order (entry i is `keys[i]`).

    Columns, not one object per entry: a cleanup reads 100,000 entries, and as many small
    container objects each made the garbage collector run full collections that hold the
    GIL (and so stall the event loop) for 0.1-1 s, measured; lists of strings and numbers
    are a handful of objects."""

    keys: list[str] = field(default_factory=list)
    session_ids: list[str | None] = field(default_factory=list)
    updated: list[float | None] = field(default_factory=list)
    files: list[str | None] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    preserved: list[bool] = field(default_factory=list)
    """Protected, archived or model-locked (the active key is added by the plan)."""

    def __len__(self) -> int:
        return len(self.keys)

    def removal(self, i: int) -> Removal:
        return Removal(self.keys[i], self.session_ids[i], self.updated[i], self.files[i])


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
    entries: EntryColumns
    files: list[FileFact]
    other_bytes: int
    """Kept files (backups, sidecars, prompt blobs)."""


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
    entries: EntryColumns
    pruned: list[int] = field(default_factory=list)
    """Entry indexes (see `EntryColumns`); `removals()` gives what to remove."""
    capped: list[int] = field(default_factory=list)
    archived_transcripts: int = 0
    archives_scanned: int = 0
    expired: list[FileFact] = field(default_factory=list)
    """Archives past retention."""
    unreferenced_scanned: int = 0
    unreferenced: list[FileFact] = field(default_factory=list)
    """Snapshots no checkpoint names, older than pruneAfter."""
    budget: BudgetSweep | None = None
    budget_files: list[FileFact] = field(default_factory=list)
    evicted: list[int] = field(default_factory=list)
    """Entries the disk budget removes (their unshared transcripts are deleted)."""
    prune_after_ms: int = 0

    def removals(self, indexes: Sequence[int]) -> list[Removal]:
        return [self.entries.removal(i) for i in indexes]

    @property
    def before_count(self) -> int:
        return len(self.entries)

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


def _newest_first(updated: float | None) -> float:
    return -updated if updated is not None else math.inf


def _removable_budget(max_entries: int, preserved: int) -> int:
    budget = max(0, max_entries - preserved)
    if budget > 0 or max_entries <= 0:
        return budget
    return min(max_entries, _MIN_OVER_CAP_REMOVABLE)


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
    entries = facts.entries
    plan = CleanupPlan(facts.agent_id, policy.mode, dry_run, entries)
    plan.prune_after_ms = policy.prune_after_ms
    updated = entries.updated
    keep = [p or k == active_key for p, k in zip(entries.preserved, entries.keys, strict=True)]
    remaining = list(range(len(entries)))
    # A dry run previews entry removals whatever the mode; a warn run changes nothing.
    entries_apply = dry_run or policy.mode == "enforce"
    if entries_apply:
        cutoff = now_ms - policy.prune_after_ms
        plan.pruned = [
            i for i in remaining
            if not keep[i] and (u := updated[i]) is not None and u < cutoff
        ]  # fmt: skip
        gone = set(plan.pruned)
        remaining = [i for i in remaining if i not in gone]
        if force or len(remaining) >= entry_high_water(policy.max_entries):
            removable = [i for i in remaining if not keep[i]]
            budget = _removable_budget(policy.max_entries, len(remaining) - len(removable))
            if len(removable) > budget:
                # Newest first, a missing updatedAt as -Infinity; ties keep index order.
                newest = sorted(removable, key=lambda i: _newest_first(updated[i]))
                gone = set(newest[budget:])
                plan.capped = [i for i in remaining if i in gone]
                remaining = [i for i in remaining if i not in gone]
    files = _after_archiving(plan, facts, remaining)
    if entries_apply:
        files = _archive_cleanup(plan, files, policy, now_ms)
    _disk_budget(plan, facts, remaining, files, policy, keep)
    return plan


def _after_archiving(plan: CleanupPlan, facts: AgentFacts, remaining: list[int]) -> list[FileFact]:
    """The files once the removed sessions' unshared transcripts are `.deleted.` archives."""
    sids, paths = facts.entries.session_ids, facts.entries.files
    used = {sids[i] for i in remaining}
    names: set[str] = set()
    for i in [*plan.pruned, *plan.capped]:
        sid = sids[i]
        if sid and sid not in used:
            names.update(transcript_candidates(sid, paths[i]))
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


def _index_chunk(key: str, entry_bytes: int) -> int:
    """Bytes an entry takes in sessions.json, with its `,\\n  ` separator."""
    return len(jsjson.dumps(key).encode("utf-8", "surrogatepass")) + 2 + entry_bytes + 4


def _disk_budget(
    plan: CleanupPlan,
    facts: AgentFacts,
    remaining: list[int],
    files: list[FileFact],
    policy: MaintenancePolicy,
    keep: list[bool],
) -> None:
    high = policy.high_water()
    if policy.max_disk_bytes is None or high is None:
        return
    e = facts.entries
    chunks = {i: _index_chunk(e.keys[i], e.sizes[i]) for i in remaining}
    total = 2 + sum(chunks.values()) + sum(f.size for f in files) + facts.other_bytes
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
    users: dict[str | None, int] = {}
    for i in remaining:
        users[e.session_ids[i]] = users.get(e.session_ids[i], 0) + 1
    # Oldest first; a missing updatedAt counts as 0 here (the gateway's getEntryUpdatedAt).
    for i in sorted(remaining, key=lambda i: e.updated[i] or 0):
        if total <= high:
            break
        if keep[i]:
            continue
        plan.evicted.append(i)
        total -= chunks[i]
        sweep.removed_entries += 1
        sid = e.session_ids[i]
        users[sid] -= 1
        if sid and users[sid] == 0:
            names = set(transcript_candidates(sid, e.files[i]))
            for f in by_session.get(sid, []):
                if f.file_name in names:
                    total -= f.size
                    sweep.freed_bytes += f.size
                    sweep.removed_files += 1
    sweep.total_bytes_after = total
