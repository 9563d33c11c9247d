"""Initial schema: session index, transcripts and their lines, opaque files, snapshots,
full-text index and maintainer views.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

from store_sql.schema import extra_sql as schema_sql
from store_sql.schema import pg_sql
from store_sql.schema import tables as schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# 0001 builds the tables of store_sql/schema/tables.py except those later revisions add
# (0002: search_index_state; 0005: the OpenClaw database sources; 0004: session_directories,
# session_entry_files), and the objects of schema_sql.INITIAL_STATEMENTS. Its transcript_lines
# has today's columns and indexes, so 0007 adds side_append only where it is missing.
# Until the first release it follows those definitions; from then on, schema changes come as new revisions
# and this file is frozen by copying the definitions it uses into it.
# tests/test_opening.py compares a database migrated to the head with the metadata.
_LATER = frozenset(
    {
        "search_index_state",
        "agent_databases",
        "database_transcripts",
        "pre_migration_files",
        "session_directories",
        "session_entry_files",
    }
)


def _tables() -> list[object]:
    return [t for t in schema.metadata.sorted_tables if t.name not in _LATER]


def _postgresql() -> bool:
    return bool(op.get_context().dialect.name == "postgresql")


def upgrade() -> None:
    schema.metadata.create_all(op.get_bind(), tables=_tables())
    statements = pg_sql.INITIAL_STATEMENTS if _postgresql() else schema_sql.INITIAL_STATEMENTS
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    statements = (
        pg_sql.INITIAL_DROP_STATEMENTS if _postgresql() else schema_sql.INITIAL_DROP_STATEMENTS
    )
    for statement in statements:
        op.execute(statement)
    schema.metadata.drop_all(op.get_bind(), tables=_tables())
