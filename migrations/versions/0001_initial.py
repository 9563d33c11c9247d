"""Initial schema: session index, transcripts and their lines, opaque files, snapshots,
full-text index and maintainer views.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

from store_sql import schema, schema_sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Until store_sql's first release, 0001 builds the schema exactly as store_sql/schema.py
# and schema_sql.py define it. From the first release on, schema changes come as new
# revisions and this file is frozen by copying the definitions it uses into it;
# tests/test_migrations.py compares a migrated database with the metadata either way.


def upgrade() -> None:
    bind = op.get_bind()
    schema.metadata.create_all(bind)
    for statement in schema_sql.CREATE_STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for statement in schema_sql.DROP_STATEMENTS:
        op.execute(statement)
    schema.metadata.drop_all(op.get_bind())
