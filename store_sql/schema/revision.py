"""Which schema the code expects, and what marks a SQLite file as a store_sql database.

Kept apart from `schema/tables.py` (which builds the tables with SQLAlchemy, for DDL and
Alembic) so opening a store that is already up to date needs no SQLAlchemy."""

from __future__ import annotations

# The revision the code expects; tests/test_migrations.py checks it is Alembic's head.
SCHEMA_REVISION = "0009"

# PRAGMA application_id marks a file as ours ("SQLS"), so `Store.open` can refuse a
# SQLite database that belongs to someone else instead of writing tables into it.
APPLICATION_ID = 0x53514C53
