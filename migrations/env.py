"""Alembic environment: runs revisions on the connection store_sql hands over, or on the
database named with `-x db=PATH` when a maintainer runs `alembic` by hand."""

from __future__ import annotations

from pathlib import Path

from alembic import context

from store_sql.engine.migrate import include_object, transactional_engine
from store_sql.schema.tables import metadata

target_metadata = metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode rebuilds tables
        transaction_per_migration=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    db = context.get_x_argument(as_dictionary=True).get("db")
    if not db:
        raise SystemExit("name the database: alembic -x db=path/to/store.sqlite upgrade head")
    engine = transactional_engine(Path(db))
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported: store_sql migrations run online")
run_migrations_online()
