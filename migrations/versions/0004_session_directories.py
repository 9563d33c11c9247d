"""The directory-backed session index (sessions.d): session_directories and
session_entry_files.

Revision ID: 0004
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

from store_sql.schema import tables as schema

revision = "0004"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema.session_directories.create(op.get_bind(), checkfirst=True)
    schema.session_entry_files.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    schema.session_entry_files.drop(op.get_bind(), checkfirst=True)
    schema.session_directories.drop(op.get_bind(), checkfirst=True)
