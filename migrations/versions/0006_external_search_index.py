"""The full-text index keeps no copy of the text: entry_text_fts becomes an external-content,
detail=none trigram index over the view entry_search_text, rebuilt from the stored lines.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

from store_sql.schema import extra_sql as schema_sql
from store_sql.schema import pg_sql

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for statement in pg_sql.EXTERNAL_INDEX_STATEMENTS:
            op.execute(statement)
        return
    op.execute("DROP TRIGGER IF EXISTS transcript_lines_fts_delete")
    op.execute("DROP TRIGGER IF EXISTS transcript_lines_search_mark")
    op.execute("DROP TABLE IF EXISTS entry_text_fts")
    for statement in schema_sql.EXTERNAL_INDEX_STATEMENTS:
        op.execute(statement)
    # Every stored line is indexed here, in the revision's transaction, so searches use the
    # index from the first open on; the mark then stands after the last line.
    # (FTS5's own 'rebuild' cannot read this view: its correlated json_each subquery fails
    # inside the full-table scan FTS5 prepares, so the rows go in as the indexer puts them.)
    op.execute(
        "INSERT INTO entry_text_fts (rowid, text) SELECT line_pk, text FROM entry_search_text"
    )
    op.execute(
        "UPDATE search_index_state SET indexed_upto = "
        "(SELECT coalesce(max(line_pk), 0) FROM transcript_lines) WHERE id = 1"
    )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for statement in pg_sql.EXTERNAL_INDEX_DROP_STATEMENTS:
            op.execute(statement)
        return
    # 0002's index keeps its own copy of the text: the lines up to the mark go back into it
    # with the text they were indexed with, so the mark stays true.
    op.execute(
        "CREATE TEMP TABLE indexed_text AS SELECT line_pk, text FROM entry_search_text "
        "WHERE line_pk <= (SELECT indexed_upto FROM search_index_state WHERE id = 1)"
    )
    for statement in schema_sql.EXTERNAL_INDEX_DROP_STATEMENTS:
        op.execute(statement)
    op.execute(schema_sql.FTS_TABLE)
    op.execute("INSERT INTO entry_text_fts (rowid, text) SELECT line_pk, text FROM indexed_text")
    op.execute("DROP TABLE temp.indexed_text")
    op.execute(schema_sql.FTS_DELETE_TRIGGER)
    op.execute(schema_sql.SEARCH_MARK_TRIGGER)
