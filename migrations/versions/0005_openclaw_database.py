"""Sources read from OpenClaw's SQLite state: agent_databases (whose index came from an
openclaw-agent.sqlite), database_transcripts (where each transcript read from it came from,
so a re-import reads only new events) and pre_migration_files (what OpenClaw moved into
session-sqlite-import-archive/, with the names the files had before); and the partial index
that finds the lines making a transcript follow today's tree rules.

Revision ID: 0005
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

from store_sql.schema import tables as schema

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None

_TABLES = (schema.agent_databases, schema.database_transcripts, schema.pre_migration_files)


# The index as this revision made it (0007 moves its condition onto a column): a text
# search in the line (PostgreSQL's `line` is NULL for a line kept as bytes, never an entry).
_NAVIGATION_INDEX = (
    "CREATE INDEX IF NOT EXISTS ix_transcript_lines_navigation "
    "ON transcript_lines (transcript_id, pos) WHERE kind = 'entry' AND "
    "(type IN ('leaf', 'reset') OR instr(line, '\"appendMode\":\"side\"') > 0)"
)


_PG_NAVIGATION_INDEX = (
    "CREATE INDEX IF NOT EXISTS ix_transcript_lines_navigation "
    "ON transcript_lines (transcript_id, pos) WHERE kind = 'entry' AND "
    "(type IN ('leaf', 'reset') OR strpos(line, '\"appendMode\":\"side\"') > 0)"
)


def upgrade() -> None:
    for table in _TABLES:
        table.create(op.get_bind(), checkfirst=True)
    postgresql = op.get_context().dialect.name == "postgresql"
    op.execute(_PG_NAVIGATION_INDEX if postgresql else _NAVIGATION_INDEX)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_transcript_lines_navigation")
    for table in reversed(_TABLES):
        table.drop(op.get_bind(), checkfirst=True)
