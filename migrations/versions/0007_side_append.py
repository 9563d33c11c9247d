"""transcript_lines.side_append: whether a line holds "appendMode":"side", as a column, so
the partial index of the lines that make a transcript follow today's tree rules
(ix_transcript_lines_navigation) reads extracted columns only. Its condition searched the
line's text, which makes SQLite copy every line it inserts once more.

And a line's searchable text is its first `extra_sql.SEARCH_TEXT_CHARS` characters: the
view, triggers and PostgreSQL function that define it are replaced, and the lines indexed
with more text than that are indexed again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from store_sql.schema import extra_sql, pg_views
from store_sql.schema import tables as schema

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The index as 0005 made it, and as downgrade makes it again: a text search in the line
# (PostgreSQL's `line` is NULL for a line kept as bytes, which is never an entry).
_TEXT_SEARCH = 'instr(line, \'"appendMode":"side"\') > 0'
_PG_TEXT_SEARCH = 'strpos(line, \'"appendMode":"side"\') > 0'
_OLD_CONDITION = "kind = 'entry' AND (type IN ('leaf', 'reset') OR {search})"

_COLUMN_COMMENT = str(schema.transcript_lines.c.side_append.comment)


def _index(condition: str) -> str:
    return (
        "CREATE INDEX ix_transcript_lines_navigation "
        f"ON transcript_lines (transcript_id, pos) WHERE {condition}"
    )


def _postgresql() -> bool:
    return bool(op.get_context().dialect.name == "postgresql")


def _has_column() -> bool:
    # A database 0001 created from today's tables has the column already.
    columns = sa.inspect(op.get_bind()).get_columns("transcript_lines")
    return any(column["name"] == "side_append" for column in columns)


def upgrade() -> None:
    postgresql = _postgresql()
    if not _has_column():
        op.execute("ALTER TABLE transcript_lines ADD COLUMN side_append "
                   f"{'bigint' if postgresql else 'INTEGER'} NOT NULL DEFAULT 0")  # fmt: skip
    # Every stored line gets the column its bytes give, by the same substring test the
    # old condition made (`tables.side_append`); a line PostgreSQL keeps as bytes is
    # searched in its bytes.
    if postgresql:
        quoted = _COLUMN_COMMENT.replace("'", "''")
        op.execute(f"COMMENT ON COLUMN transcript_lines.side_append IS '{quoted}'")
        op.execute(
            f"UPDATE transcript_lines SET side_append = 1 WHERE {_PG_TEXT_SEARCH} OR "
            "position(convert_to('\"appendMode\":\"side\"', 'UTF8') in line_bytes) > 0"
        )
    else:
        op.execute(f"UPDATE transcript_lines SET side_append = 1 WHERE {_TEXT_SEARCH}")
    op.execute("DROP INDEX IF EXISTS ix_transcript_lines_navigation")
    op.execute(_index(schema.NAVIGATION_LINES))
    _search_text(extra_sql.SEARCH_TEXT_CHARS)


def _search_text(chars: int | None) -> None:
    """Define a line's searchable text as its first `chars` characters (None: all of it).

    PostgreSQL's trigram index keeps the trigrams of the text it was given for a longer
    line: a superset of the new text's, and every candidate is checked against the text, so
    searches are right without rebuilding it. SQLite's external-content index must forget
    a line with the exact text it indexed: the lines whose text may change (longer than the
    cap in bytes, so possibly in characters) are taken out with the old definition and put
    back with the new one."""
    if _postgresql():
        op.execute(pg_views.search_text_function(chars))
        return
    op.execute(
        "CREATE TEMP TABLE retexted AS SELECT line_pk FROM transcript_lines "
        f"WHERE kind = 'entry' AND byte_size > {extra_sql.SEARCH_TEXT_CHARS} "
        "AND line_pk <= (SELECT indexed_upto FROM search_index_state WHERE id = 1)"
    )
    op.execute(
        "INSERT INTO entry_text_fts (entry_text_fts, rowid, text) SELECT 'delete', line_pk, "
        "text FROM entry_search_text WHERE line_pk IN (SELECT line_pk FROM temp.retexted)"
    )
    for statement in extra_sql.SEARCH_TEXT_DROP_STATEMENTS:
        op.execute(statement)
    for statement in extra_sql.search_text_statements(chars):
        op.execute(statement)
    op.execute(
        "INSERT INTO entry_text_fts (rowid, text) SELECT line_pk, text FROM entry_search_text "
        "WHERE line_pk IN (SELECT line_pk FROM temp.retexted)"
    )
    op.execute("DROP TABLE temp.retexted")


def downgrade() -> None:
    _search_text(None)
    postgresql = _postgresql()
    op.execute("DROP INDEX IF EXISTS ix_transcript_lines_navigation")
    search = _PG_TEXT_SEARCH if postgresql else _TEXT_SEARCH
    op.execute(_index(_OLD_CONDITION.format(search=search)))
    if postgresql:
        # PostgreSQL's views name the columns `l.*` stood for when they were made, which
        # holds the column in a database 0001 built from today's tables: made again after.
        for name in reversed(pg_views.VIEWS):
            op.execute(f"DROP VIEW IF EXISTS {name}")
    op.execute("ALTER TABLE transcript_lines DROP COLUMN side_append")
    if postgresql:
        for statement in pg_views.VIEWS.values():
            op.execute(statement)
