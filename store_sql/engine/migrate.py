"""Alembic, driven from code: where the revisions are and how they run.

The revisions live in the top-level `migrations/` folder, installed as the package
`store_sql._migrations`. pysqlite does not open transactions around DDL by itself; the
engine below does (SQLAlchemy's documented recipe), so each revision is all-or-nothing and
a crash in the middle of a migration leaves the previous revision intact.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any


def script_location() -> str:
    import importlib.util

    spec = importlib.util.find_spec("store_sql._migrations")
    if spec is None or spec.origin is None:
        raise RuntimeError("store_sql is installed without its migrations (store_sql._migrations)")
    return str(Path(spec.origin).parent)


def _alembic_config() -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", script_location())
    return cfg


@cache
def known_revisions() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    return frozenset(rev.revision for rev in script.walk_revisions())


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic autogenerate filter: leave out what `schema_sql` builds outside the metadata.

    The FTS5 table and its shadow tables (`entry_text_fts_data`, `_idx`, ...) are reflected
    as plain tables; without this filter `alembic revision --autogenerate` proposes dropping
    the full-text index. Pass it as `include_object=` to `context.configure` (env.py) and
    to `MigrationContext.configure(opts=...)` when comparing."""
    return not (type_ == "table" and reflected and (name or "").startswith(_FTS_PREFIX))


_FTS_PREFIX = "entry_text_fts"


def transactional_engine(path: Path, *, durable: bool = True) -> Any:
    """A SQLAlchemy engine on `path` whose transactions really are SQLite transactions.

    `durable=False` skips the sync at each commit: for a file nobody else sees yet, which its
    creator syncs once when it is complete."""
    from sqlalchemy import create_engine, event

    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _no_implicit_tx(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA foreign_keys = ON")
        if not durable:
            dbapi_conn.execute("PRAGMA synchronous = OFF")

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def upgrade_to_head(path: Path, *, durable: bool = True) -> None:
    """Upgrade `path` to the newest revision, each revision in one transaction
    (`durable`: see `transactional_engine`)."""
    _run(path, "upgrade", "head", durable=durable)


def downgrade_to(path: Path, revision: str) -> None:
    """Downgrade `path` to `revision` ("base": no schema at all); for maintainers and tests."""
    _run(path, "downgrade", revision)


def _run(path: Path, direction: str, revision: str, *, durable: bool = True) -> None:
    engine = transactional_engine(path, durable=durable)
    try:
        with engine.connect() as conn:
            run_alembic(conn, direction, revision)
    finally:
        engine.dispose()


def run_alembic(connection: Any, direction: str, revision: str) -> None:
    """Run Alembic's `direction` ("upgrade" or "downgrade") to `revision` on a SQLAlchemy
    connection of either dialect (the revisions branch on it)."""
    from alembic import command

    cfg = _alembic_config()
    cfg.attributes["connection"] = connection
    getattr(command, direction)(cfg, revision)
