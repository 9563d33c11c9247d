"""SQLAlchemy Core statements compiled to PostgreSQL SQL text with `$n` parameters.

As on SQLite (engine/statements.py), Core builds the statements that are built at run time
(list filters) so they follow the schema; asyncpg runs the text."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect

_DIALECT: Any = asyncpg_dialect.dialect()  # type: ignore[no-untyped-call]


def compile_pg(statement: Any) -> tuple[str, list[Any]]:
    """The PostgreSQL text of a Core statement and its parameters in `$n` order."""
    compiled = statement.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
    return str(compiled), [compiled.params[name] for name in compiled.positiontup]
