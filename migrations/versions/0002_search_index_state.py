"""The full-text index is written behind the appends: search_index_state (the indexer's
mark) and the trigger that keeps the mark below reused line numbers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

from store_sql.schema import extra_sql as schema_sql
from store_sql.schema import pg_sql
from store_sql.schema import tables as schema

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema.search_index_state.create(op.get_bind(), checkfirst=True)
    if op.get_context().dialect.name == "postgresql":
        for statement in pg_sql.SEARCH_STATE_STATEMENTS:
            op.execute(statement)
        return
    # Under 0001 every append and import wrote its index rows in its own transaction: the
    # lines already stored are indexed, so the mark starts after them.
    op.execute(
        "INSERT OR IGNORE INTO search_index_state (id, indexed_upto) "
        "SELECT 1, coalesce(max(line_pk), 0) FROM transcript_lines"
    )
    for statement in schema_sql.SEARCH_STATE_STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        op.execute("DROP TRIGGER IF EXISTS transcript_lines_search_mark")
    schema.search_index_state.drop(op.get_bind(), checkfirst=True)
