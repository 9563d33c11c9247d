"""The async API of session maintenance: `store.maintenance`.

A cleanup reads the agent's facts in one snapshot, plans everything (`maintenance.plan_cleanup`)
and, unless it is a dry run, applies the plan as a sequence of short writer transactions:
entry removals in batches, transcript deletions a chunk of lines at a time, incremental
vacuum a few thousand pages at a time. Between two of them the writer serves everyone else,
so reads and other writes keep answering during a 100,000-entry cleanup (measured in
tools/bench/bench_checkpoints.py). Each step re-checks what it removes, so a session touched
after the plan was made is left alone.

Space goes back to the file system at the end: free pages past a threshold are returned with
`incremental_vacuum` (the database is created with auto_vacuum=INCREMENTAL), and the WAL is
checkpointed and truncated after large deletes.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from store_sql.addresses import check_agent_id
from store_sql.engine import vacuum
from store_sql.engine.namespace import Namespace, postgres_twin
from store_sql.engine.wal import file_size, wal_path
from store_sql.lifecycle.rows import delete_transcript_chunk
from store_sql.maintenance import plan as mt
from store_sql.maintenance import steps as steps
from store_sql.maintenance.plan import CleanupPlan, FileFact
from store_sql.maintenance.policy import MaintenancePolicy
from store_sql.sessions.rows import list_agents

if TYPE_CHECKING:
    from store_sql.engine.pg.database import PgDatabase
    from store_sql.lifecycle import pg_rows as pg_lc
    from store_sql.maintenance import pg_steps
    from store_sql.sessions import pg_rows as pg_sessions
else:
    pg_lc = postgres_twin("store_sql.lifecycle.pg_rows")
    pg_steps = postgres_twin("store_sql.maintenance.pg_steps")
    pg_sessions = postgres_twin("store_sql.sessions.pg_rows")

ENTRY_BATCH: int = 500
"""Entries removed per writer transaction: small enough that other writes wait only briefly
behind a cleanup (docs/TESTING.md gives the measured time per batch)."""


_NOTHING_TO_RECLAIM: dict[str, Any] = {
    "freePagesBefore": 0,
    "pagesVacuumed": 0,
    "dbBytesBefore": 0,
    "dbBytesAfter": 0,
    "walBytesBefore": 0,
    "walBytesAfter": 0,
    "bytesReclaimed": 0,
}


class MaintenanceAPI(Namespace):
    """Cleanup by the gateway's maintenance policy, and giving space back."""

    async def plan(
        self,
        agent_id: str,
        policy: MaintenancePolicy | None = None,
        *,
        active_key: str | None = None,
        dry_run: bool = True,
        force: bool = True,
        now_ms: int | None = None,
    ) -> CleanupPlan:
        """What a cleanup would do, read in one snapshot; nothing is written."""
        check_agent_id(agent_id)
        now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
        rules = policy or MaintenancePolicy()
        if self._pg is not None:
            facts = await self._pg.read(lambda c: pg_steps.read_facts(c, agent_id, now))
            return await asyncio.to_thread(
                mt.plan_cleanup,
                facts,
                rules,
                now_ms=now,
                active_key=active_key,
                dry_run=dry_run,
                force=force,
            )
        # Planning runs on the reader's thread too: for 100,000 entries it is a second of
        # Python that must not stall the event loop (and every other caller's await).
        return await self._db.read(
            lambda c: mt.plan_cleanup(
                steps.read_facts(c, agent_id, now),
                rules,
                now_ms=now,
                active_key=active_key,
                dry_run=dry_run,
                force=force,
            )
        )

    async def cleanup(
        self,
        agent_id: str,
        policy: MaintenancePolicy | None = None,
        *,
        active_key: str | None = None,
        dry_run: bool = False,
        force: bool = True,
        now_ms: int | None = None,
        reclaim: bool = True,
    ) -> dict[str, Any]:
        """Run maintenance on one agent and return the gateway's cleanup summary.

        `force` caps to `maxEntries` at once (what `sessions cleanup` does); False applies the
        gateway's batched high-water mark instead. A dry run returns the same report and
        changes nothing."""
        plan = await self.plan(
            agent_id, policy, active_key=active_key, dry_run=dry_run, force=force, now_ms=now_ms
        )
        if dry_run or plan.mode == "warn":  # warn reports, and writes nothing at all
            report = plan.report()
            report["spaceReclaimed"] = await self._space_preview()
            if not dry_run:
                report["applied"] = True
            return report
        before = self._sizes()
        report = await self._apply(plan, now_ms)
        report["spaceReclaimed"] = (
            await self.reclaim_space(before=before, wal=plan.would_mutate) if reclaim else None
        )
        return report

    async def _agents(self) -> list[str]:
        return await self._read_rows(list_agents, pg_sessions.list_agents)

    async def cleanup_all(
        self,
        policy: MaintenancePolicy | None = None,
        *,
        active_key: str | None = None,
        dry_run: bool = False,
        now_ms: int | None = None,
    ) -> dict[str, Any]:
        """`cleanup` for every agent; space is reclaimed once at the end."""
        policy = policy or MaintenancePolicy()
        before = self._sizes()
        stores = []
        for agent_id in await self._agents():
            stores.append(
                await self.cleanup(
                    agent_id,
                    policy,
                    active_key=active_key,
                    dry_run=dry_run,
                    now_ms=now_ms,
                    reclaim=False,
                )
            )
        mutated = any(s["wouldMutate"] for s in stores)
        space = (
            await self._space_preview()
            if dry_run or policy.mode == "warn"
            else await self.reclaim_space(before=before, wal=mutated)
        )
        for s in stores:
            s.pop("spaceReclaimed", None)
        return {
            "allAgents": True,
            "mode": policy.mode,
            "dryRun": dry_run,
            "stores": stores,
            "spaceReclaimed": space,
        }

    # --- applying a plan ---------------------------------------------------------------------

    async def _apply(self, plan: CleanupPlan, now_ms: int | None) -> dict[str, Any]:
        report = plan.report()
        when = datetime.fromtimestamp(now_ms / 1000, UTC) if now_ms else datetime.now(UTC)
        agent = plan.agent_id
        pruned, archived, _ = await self._remove(plan, plan.pruned, when, archive=True)
        capped, more, _ = await self._remove(plan, plan.capped, when, archive=True)
        expired = await self._delete_files(plan.expired)
        unreferenced = await self._delete_files(plan.unreferenced)
        await self._delete_files(plan.budget_files)
        evicted, _, doomed = await self._remove(plan, plan.evicted, when, archive=False)
        for transcript_id in doomed:
            await self._delete_versions(transcript_id)
        if self._pg is not None:
            count = await self._pg.read(
                lambda c: c.fetchval(
                    "SELECT count(*) FROM session_entries WHERE agent_id = $1", agent
                )
            )
        else:
            count = await self._db.read(
                lambda c: c.execute(
                    "SELECT count(*) FROM session_entries WHERE agent_id = ?", (agent,)
                ).fetchone()[0]
            )
        report.update(
            pruned=pruned, capped=capped, archivedTranscripts=archived + more, afterCount=count
        )
        report["archiveCleanup"]["removedFiles"] = expired
        report["unreferencedArtifacts"]["removedFiles"] = unreferenced
        if plan.budget is not None:
            report["diskBudget"]["removedEntries"] = evicted
        report["applied"] = True
        return report

    async def _remove(
        self, plan: CleanupPlan, indexes: list[int], when: datetime, *, archive: bool
    ) -> tuple[int, int, list[int]]:
        removed = archived = 0
        doomed: list[int] = []
        for start in range(0, len(indexes), ENTRY_BATCH):
            batch = plan.removals(indexes[start : start + ENTRY_BATCH])
            if self._pg is not None:
                result = await self._pg.write(
                    partial(
                        pg_steps.remove_entries,
                        agent_id=plan.agent_id,
                        batch=batch,
                        when=when,
                        archive=archive,
                    )
                )
            else:
                result = await self._db.write(
                    partial(
                        steps.remove_entries,
                        agent_id=plan.agent_id,
                        batch=batch,
                        when=when,
                        archive=archive,
                    )
                )
            removed += result.removed
            archived += len(result.archived)
            doomed += result.doomed_transcripts
        return removed, archived, doomed

    async def _delete_files(self, files: list[FileFact]) -> int:
        snapshots = [f.ident for f in files if f.kind == "snapshot"]
        done = 0
        if snapshots and self._pg is not None:
            done += await self._pg.write(lambda c: pg_steps.release_snapshot_rows(c, snapshots))
        elif snapshots:
            done += await self._db.write(lambda c: steps.release_snapshot_rows(c, snapshots))
        for f in files:
            if f.kind != "snapshot":
                await self._delete_versions(f.ident)
                done += 1
        return done

    async def _delete_versions(self, transcript_id: int) -> None:
        if self._pg is not None:
            await self._delete_versions_pg(self._pg, transcript_id)
            return
        for version in await self._db.read(lambda c: steps.transcript_versions(c, transcript_id)):
            while True:
                _, finished = await self._db.write(
                    partial(delete_transcript_chunk, transcript_id=version)
                )
                if finished:
                    break

    async def _delete_versions_pg(self, pg: PgDatabase, transcript_id: int) -> None:
        for version in await pg.read(lambda c: pg_steps.transcript_versions(c, transcript_id)):
            while True:
                _, finished = await pg.write(
                    partial(pg_lc.delete_transcript_chunk, transcript_id=version)
                )
                if finished:
                    break

    # --- space -------------------------------------------------------------------------------

    def _sizes(self) -> tuple[int, int]:
        if self._pg is not None:
            return 0, 0  # the server's files are its own business
        return file_size(self._db.path), file_size(wal_path(self._db.path))

    async def _space_preview(self) -> dict[str, Any]:
        if self._pg is not None:
            return dict(_NOTHING_TO_RECLAIM)
        db, wal = self._sizes()
        free = await self._db.read(vacuum.free_pages)
        return {
            "freePagesBefore": free,
            "pagesVacuumed": 0,
            "dbBytesBefore": db,
            "dbBytesAfter": db,
            "walBytesBefore": wal,
            "walBytesAfter": wal,
            "bytesReclaimed": 0,
        }

    async def reclaim_space(
        self,
        *,
        before: tuple[int, int] | None = None,
        wal: bool = True,
        threshold_pages: int = vacuum.VACUUM_THRESHOLD_PAGES,
        checkpoint_timeout_s: float = 0.25,
    ) -> dict[str, Any]:
        """Give free pages back (when more than `threshold_pages` are free) and truncate the
        WAL; report the bytes returned to the file system. The truncation waits at most
        `checkpoint_timeout_s` for readers (new writes wait meanwhile, as with the writer's
        own forced checkpoint), and is simply skipped when they do not finish in time.
        On PostgreSQL the server reuses and returns space itself (autovacuum): every
        figure is 0."""
        if self._pg is not None:
            return dict(_NOTHING_TO_RECLAIM)
        db_before, wal_before = before or self._sizes()
        free = await self._db.write(vacuum.free_pages)
        remaining = free
        if free > threshold_pages:
            while remaining > 0:
                after = await self._db.write(vacuum.vacuum_step)
                if after >= remaining:  # other writers took the pages meanwhile
                    break
                remaining = after
        vacuumed = free - remaining
        if wal or vacuumed:
            await self._db.truncate_wal(checkpoint_timeout_s)
        db_after, wal_after = self._sizes()
        return {
            "freePagesBefore": free,
            "pagesVacuumed": vacuumed,
            "dbBytesBefore": db_before,
            "dbBytesAfter": db_after,
            "walBytesBefore": wal_before,
            "walBytesAfter": wal_after,
            "bytesReclaimed": max(0, db_before + wal_before - db_after - wal_after),
        }
