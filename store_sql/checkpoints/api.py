"""The async API of compaction checkpoints: `store.checkpoints`.

Persisting is one writer mutation (entry, snapshot row and trim together); listing and
reading go to the reader pool; branch and restore build the new transcript on a reader and
write it, with the entry that uses it, in one writer mutation. On PostgreSQL the functions
are the twins in checkpoints/pg_entries.py, pg_snapshots.py and pg_forks.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from store_sql.addresses import check_agent_id, check_session_key
from store_sql.checkpoints import entries as cps
from store_sql.checkpoints import forks as forks
from store_sql.checkpoints.entries import Checkpoint, CheckpointSpec, Persisted
from store_sql.checkpoints.forks import ForkResult
from store_sql.checkpoints.snapshots import CapturedSnapshot, capture_snapshot
from store_sql.engine.namespace import Namespace, postgres_twin

if TYPE_CHECKING:
    from store_sql.checkpoints import pg_entries as pg_cps
    from store_sql.checkpoints import pg_forks
    from store_sql.checkpoints import pg_snapshots as pg_snap
else:
    pg_cps = postgres_twin("store_sql.checkpoints.pg_entries")
    pg_forks = postgres_twin("store_sql.checkpoints.pg_forks")
    pg_snap = postgres_twin("store_sql.checkpoints.pg_snapshots")


class CheckpointAPI(Namespace):
    """Compaction checkpoints of a session: persist, list, get, branch, restore."""

    async def capture(self, agent_id: str, session_id: str) -> CapturedSnapshot:
        """Where the session's live transcript stands now (a read; O(1)).

        Capture before appending the compaction entry and hand the result to `persist`, so
        the snapshot is the transcript as it was before compaction, as the gateway's copy."""
        check_agent_id(agent_id)
        return await self._read_rows(
            capture_snapshot, pg_snap.capture_snapshot, agent_id, session_id
        )

    async def persist(
        self,
        agent_id: str,
        key: str,
        spec: CheckpointSpec,
        *,
        snapshot: CapturedSnapshot | None = None,
        max_retained_bytes: int = cps.DEFAULT_MAX_RETAINED_BYTES,
    ) -> Persisted:
        """Append a checkpoint to the entry of `key` (newest 25 kept, then the byte budget
        over snapshots, newest always kept) and record its snapshot, in one transaction.

        Without `snapshot`, the entry's live transcript is captured as it stands. A missing
        key stores nothing and raises NotFoundError."""
        check_agent_id(agent_id)
        check_session_key(key)
        return await self._write_rows(
            cps.persist_checkpoint,
            pg_cps.persist_checkpoint,
            agent_id,
            key,
            spec,
            snapshot,
            max_retained_bytes=max_retained_bytes,
        )

    async def list_checkpoints(self, agent_id: str, key: str) -> list[Checkpoint]:
        """The checkpoints of `key`, newest `createdAt` first."""
        check_agent_id(agent_id)
        return await self._read_rows(cps.list_checkpoints, pg_cps.list_checkpoints, agent_id, key)

    async def get(self, agent_id: str, key: str, checkpoint_id: str) -> Checkpoint:
        """One checkpoint by id (NotFoundError when the key or the id is unknown)."""
        check_agent_id(agent_id)
        return await self._read_rows(
            cps.get_checkpoint, pg_cps.get_checkpoint, agent_id, key, checkpoint_id
        )

    async def snapshot_bytes(self, agent_id: str, key: str, checkpoint_id: str) -> bytes:
        """The `<sessionId>.checkpoint.<uuid>.jsonl` file of a checkpoint, as exported."""
        check_agent_id(agent_id)
        return await self._read_rows(
            cps.checkpoint_snapshot_bytes,
            pg_cps.checkpoint_snapshot_bytes,
            agent_id,
            key,
            checkpoint_id,
        )

    async def branch(
        self,
        agent_id: str,
        key: str,
        checkpoint_id: str,
        *,
        new_key: str | None = None,
        cwd: str | None = None,
    ) -> ForkResult:
        """A new session (key `agent:<id>:dashboard:<uuid>` unless given) whose transcript
        holds the snapshot's entries up to the checkpoint's leaf; `key` is unchanged."""
        check_agent_id(agent_id)
        if new_key is not None:
            check_session_key(new_key)
        return await self._fork(agent_id, key, checkpoint_id, "branch", new_key, cwd)

    async def restore(
        self, agent_id: str, key: str, checkpoint_id: str, *, cwd: str | None = None
    ) -> ForkResult:
        """Make a copy of the checkpoint's snapshot the session's active transcript (new
        session id, same key, checkpoints kept)."""
        check_agent_id(agent_id)
        return await self._fork(agent_id, key, checkpoint_id, "restore", None, cwd)

    async def _fork(
        self,
        agent_id: str,
        key: str,
        checkpoint_id: str,
        mode: forks.ForkMode,
        new_key: str | None,
        cwd: str | None,
    ) -> ForkResult:
        """Plan on a reader, then write the transcript and its entry in one mutation."""
        if self._pg is not None:
            pg_plan = await self._pg.read(
                lambda c: pg_forks.plan_fork(c, agent_id, key, checkpoint_id, cwd=cwd)
            )
            return await self._pg.write(lambda c: pg_forks.commit_fork(c, pg_plan, mode, new_key))
        plan = await self._db.read(
            lambda c: forks.plan_fork(c, agent_id, key, checkpoint_id, cwd=cwd)
        )
        return await self._db.write(lambda c: forks.commit_fork(c, plan, mode, new_key))
