"""A long line's searchable text is computed with the line parsed once: the view and the
triggers that define the text give lines longer than `extra_sql.LONG_LINE_BYTES` the
one-pass expression (`extra_sql.line_search_text_sql`), which reads the line twice in all
where the per-reference expression reads it at each of its references. SQLite only: on
PostgreSQL the text is a function of the parsed line already, and nothing changes there.

The one-pass expression gives the same text as the other, except where an object holds a
key twice; SQLite's external-content index must forget a line with the exact text it
indexed, so the indexed long lines are taken out with the old definition and put back with
the new one, a bounded batch of lines per statement.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from store_sql.schema import extra_sql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_BATCH = 64
"""Long lines whose text one statement computes."""


def upgrade() -> None:
    _redefine(by_size=True)


def downgrade() -> None:
    _redefine(by_size=False)


def _redefine(*, by_size: bool) -> None:
    if op.get_context().dialect.name != "sqlite":
        return
    conn = op.get_bind()
    # The lines whose text the change may touch: long, and indexed (above the mark the
    # indexer reads them through the view later, with whichever definition stands then).
    long_lines = [
        int(line_pk)
        for (line_pk,) in conn.execute(
            sa.text(
                "SELECT line_pk FROM transcript_lines WHERE kind = 'entry' "
                f"AND byte_size > {extra_sql.LONG_LINE_BYTES} AND line_pk <= "
                "(SELECT indexed_upto FROM search_index_state WHERE id = 1) ORDER BY line_pk"
            )
        )
    ]
    batches = [long_lines[i : i + _BATCH] for i in range(0, len(long_lines), _BATCH)]
    # Out with the text the standing definition gives (the view's, computed once a line)...
    for batch in batches:
        rows = extra_sql.search_text_rows_sql(_among(batch), by_size=not by_size)
        conn.execute(
            sa.text(
                "INSERT INTO entry_text_fts (entry_text_fts, rowid, text) "
                f"SELECT 'delete', line_pk, text FROM ({rows})"
            )
        )
    for statement in extra_sql.SEARCH_TEXT_DROP_STATEMENTS:
        op.execute(statement)
    chars = extra_sql.SEARCH_TEXT_CHARS
    for statement in extra_sql.search_text_statements(chars, by_size=by_size):
        op.execute(statement)
    # ...and in with the new one's.
    for batch in batches:
        rows = extra_sql.search_text_rows_sql(_among(batch), by_size=by_size)
        conn.execute(sa.text(f"INSERT INTO entry_text_fts (rowid, text) {rows}"))


def _among(line_pks: list[int]) -> str:
    return f"line_pk IN ({', '.join(str(line_pk) for line_pk in line_pks)})"
