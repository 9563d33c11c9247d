"""SQLAlchemy Core statements compiled once to SQLite SQL text.

Statements are built with Core (so they follow the schema) but executed on the raw sqlite3
connection: SQLAlchemy's async engine adds 250-500 µs per statement, a raw execute ~5 µs.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import sqlite

_DIALECT = sqlite.dialect(paramstyle="named")


def compile_sql(statement: Any) -> str:
    """SQLite SQL text of a Core statement, with named (`:name`) parameters."""
    return str(statement.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True}))
