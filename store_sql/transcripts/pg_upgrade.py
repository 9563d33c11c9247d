"""Migrating a v1/v2 transcript to v3 on PostgreSQL (the twin of upgrade.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from store_sql.transcripts import pg_reads, pg_rows
from store_sql.transcripts.rows import TranscriptInfo
from store_sql.transcripts.upgrade import check_migratable, migrated_rows, v3_transcript

if TYPE_CHECKING:
    import asyncpg


async def migrate_to_v3(conn: asyncpg.Connection, transcript_id: int) -> TranscriptInfo:
    """upgrade.migrate_to_v3. The old transcript's row stays locked to COMMIT, so a second
    process migrating it at once waits and then finds it superseded."""
    await conn.execute(
        "SELECT 1 FROM transcripts WHERE transcript_id = $1 FOR UPDATE", transcript_id
    )
    old = await pg_rows.get_info(conn, transcript_id)
    check_migratable(old)
    rows = migrated_rows(await pg_reads.all_entries(conn, transcript_id))
    new_id = await pg_rows.insert_transcript(conn, **v3_transcript(old))
    await pg_rows.insert_lines(conn, new_id, rows, ends_with_newline=old.ends_with_newline)
    await conn.execute(
        "UPDATE transcripts SET superseded_by = $1 WHERE transcript_id = $2", new_id, transcript_id
    )
    return await pg_rows.get_info(conn, new_id)
