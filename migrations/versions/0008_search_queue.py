"""On PostgreSQL the full-text index leaves the write path: an insert trigger queues entry
lines in search_pending, the background indexer moves their text into search_text under a
trigram index, and the index on transcript_lines goes. SQLite already indexes in the
background: nothing changes there.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

from store_sql.schema import pg_sql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for statement in pg_sql.SEARCH_QUEUE_STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for statement in pg_sql.SEARCH_QUEUE_DROP_STATEMENTS:
        op.execute(statement)
