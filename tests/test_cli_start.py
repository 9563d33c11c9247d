"""`store-sql` starts without the libraries its command does not use, checked in real
subprocesses through `sys.modules` (how fast it starts is tools/bench/bench_cli_start.py's).

Building the parser, `--help` of every command, and reading an up-to-date SQLite store
(the CLI's `sessions list`, the library's `Store.open`) load no SQLAlchemy and no Alembic:
those are for creating and upgrading a schema. The server (uvicorn, starlette) loads only
for `serve`, the PostgreSQL driver and the domains' PostgreSQL twins (`pg_*` modules) only
for a PostgreSQL store, the HTTP client only for a writing command that finds a server's
discovery file, and the transcript append path only for a command that appends."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import store_sql
from store_sql.admin import sql_console
from store_sql.admin import stats as admin_stats
from store_sql.cli import export_cmd, search_cmd, serve_cmd, sql_cmd, stats_cmd
from store_sql.exporter.plan import INDEX_LAYOUTS
from store_sql.search.query import DEFAULT_LIMIT
from store_sql.service.bodies import DEFAULT_MAX_BODY
from store_sql.transcripts.rows import KINDS

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "state"
SERVER = ("uvicorn", "starlette")
SCHEMA_TOOLS = ("sqlalchemy", "alembic")
DRIVER = ("asyncpg",)
TWINS = tuple(
    module.name
    for module in pkgutil.walk_packages(store_sql.__path__, "store_sql.")
    if module.name.rsplit(".", 1)[-1].startswith("pg_")
)
HTTP_CLIENT = ("http.client",)
APPEND_PATH = ("store_sql.transcripts.appends",)

# The child runs `body`, then writes the top-level packages it loaded, of those asked for,
# as JSON on stderr's last line (stdout is the command's).
_CHILD = """
import json, sys
{body}
wanted = {wanted!r}
sys.stderr.write("\\n" + json.dumps(sorted(m for m in wanted if m in sys.modules)) + "\\n")
"""


def loaded(body: str, wanted: tuple[str, ...]) -> tuple[list[str], str]:
    """The packages of `wanted` that a fresh interpreter running `body` loaded, and its
    stdout."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(body=body, wanted=wanted)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stderr.splitlines()[-1]), done.stdout


def test_building_the_parser_loads_no_library() -> None:
    body = "from store_sql.cli.main import build_parser\nbuild_parser()"
    wanted = (*SCHEMA_TOOLS, *SERVER, *DRIVER, "asyncio", "sqlite3", "store_sql.store")
    assert loaded(body, wanted)[0] == []


def test_help_of_every_command_loads_no_heavy_library() -> None:
    body = """
import contextlib, io
from store_sql.cli.main import build_parser, main
commands = build_parser()._subparsers._group_actions[0].choices
for argv in [["--help"], *([name, "--help"] for name in commands)]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(argv)
print(len(commands))
"""
    modules, out = loaded(body, (*SCHEMA_TOOLS, *SERVER, *DRIVER))
    assert modules == []
    assert int(out) >= 13


def _sample_store(tmp_path: Path) -> Path:
    db = tmp_path / "s.sqlite"
    done = subprocess.run(
        [sys.executable, "-m", "store_sql", "import", str(SAMPLE), "--db", str(db), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return db


def test_sessions_list_of_an_up_to_date_store_loads_no_schema_tools_nor_driver(
    tmp_path: Path,
) -> None:
    db = _sample_store(tmp_path)
    body = f"""
from store_sql.cli.main import main
code = main(["sessions", "list", "--db", {str(db)!r}, "--json"])
assert code == 0, code
"""
    modules, out = loaded(body, (*SCHEMA_TOOLS, *SERVER, *DRIVER))
    assert modules == []
    listed = json.loads(out)
    assert listed["total"] == len(listed["sessions"]) > 0


def test_sessions_list_loads_no_twin_nor_the_append_path(tmp_path: Path) -> None:
    db = _sample_store(tmp_path)
    body = f"""
from store_sql.cli.main import main
assert main(["sessions", "list", "--db", {str(db)!r}, "--json"]) == 0
"""
    assert loaded(body, (*TWINS, *APPEND_PATH))[0] == []


# A writing command with no STORE_SQL_LOCAL: it looks for a server, as on a user's machine.
_WRITE = """
import os
from store_sql.cli.main import main
os.environ.pop("STORE_SQL_LOCAL", None)
code = main({argv!r})
assert code == 0, code
"""


def test_a_sessions_patch_without_a_server_loads_no_twin_no_http_client_no_append_path(
    tmp_path: Path,
) -> None:
    db = _sample_store(tmp_path)
    key = _first_session(db)["key"]
    argv = ["sessions", "patch", key, '{"label": "patched"}', "--db", str(db), "--json"]
    modules, out = loaded(_WRITE.format(argv=argv), (*TWINS, *DRIVER, *HTTP_CLIENT, *APPEND_PATH))
    assert modules == []
    assert json.loads(out)["via"] == "local"
    assert _first_session(db)["label"] == "patched"


def test_a_transcript_append_without_a_server_loads_no_twin_nor_http_client(
    tmp_path: Path,
) -> None:
    db = _sample_store(tmp_path)
    session_id = _first_session(db)["session_id"]
    entry = '{"type": "custom", "customType": "start-up", "data": {}}'
    argv = ["transcript", "append", session_id, entry, "--db", str(db), "--json"]
    modules, out = loaded(_WRITE.format(argv=argv), (*TWINS, *DRIVER, *HTTP_CLIENT))
    assert modules == []
    assert json.loads(out)["via"] == "local"


def test_import_into_and_export_of_a_sqlite_store_load_no_twin(tmp_path: Path) -> None:
    db = _sample_store(tmp_path)
    body = f"""
import os
from store_sql.cli.main import main
os.environ.pop("STORE_SQL_LOCAL", None)
assert main(["import", {str(SAMPLE)!r}, "--db", {str(db)!r}, "--json"]) == 0
assert main(["export", "--db", {str(db)!r}, {str(tmp_path / "out")!r}, "--json"]) == 0
"""
    assert loaded(body, (*TWINS, *DRIVER, *HTTP_CLIENT))[0] == []
    assert (tmp_path / "out").is_dir()


def test_every_twin_named_at_run_time_is_the_one_the_type_checker_reads() -> None:
    """`postgres_twin("m")` under `else:` stands for `from ... import ...` under
    TYPE_CHECKING: the same name for the same module, in every module that uses it."""
    users = 0
    for path in sorted((ROOT / "store_sql").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
                named = _twin_names(node.orelse)
                if named:
                    users += 1
                    imported = _imported_modules(node.body)
                    assert {name: imported.get(name) for name in named} == named, path
    assert users >= 6


def _twin_names(body: list[ast.stmt]) -> dict[str, str]:
    return {
        target.id: call.args[0].value
        for statement in body
        if isinstance(statement, ast.Assign)
        and isinstance(call := statement.value, ast.Call)
        and ast.unparse(call.func) == "postgres_twin"
        and isinstance(call.args[0], ast.Constant)
        for target in statement.targets
        if isinstance(target, ast.Name)
    }


def _imported_modules(body: list[ast.stmt]) -> dict[str, str]:
    return {
        alias.asname or alias.name: f"{statement.module}.{alias.name}"
        for statement in body
        if isinstance(statement, ast.ImportFrom)
        for alias in statement.names
    }


def _first_session(db: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "store_sql", "sessions", "list", "--db", str(db), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    first: dict[str, object] = json.loads(done.stdout)["sessions"][0]
    return first


def test_store_open_and_every_namespace_load_no_schema_tools_nor_driver(tmp_path: Path) -> None:
    db = _sample_store(tmp_path)
    body = f"""
import asyncio
import store_sql

async def work():
    async with await store_sql.Store.open({str(db)!r}, create=False) as store:
        for name in ("checkpoints", "lifecycle", "maintenance", "search"):
            getattr(store, name)
        sessions = await store.sessions.list_entries("main")
        return sessions, await store.transcripts.list_transcripts("main")

summaries, transcripts = asyncio.run(work())
print(len(summaries), len(transcripts))
"""
    modules, out = loaded(body, (*SCHEMA_TOOLS, *SERVER, *DRIVER))
    assert modules == []
    assert all(int(n) > 0 for n in out.split())


def test_creating_a_store_uses_the_schema_tools(tmp_path: Path) -> None:
    """The other side of the tests above: a new database is made by Alembic's migrations."""
    body = f"""
import asyncio
import store_sql

async def work():
    async with await store_sql.Store.open({str(tmp_path / "new.sqlite")!r}):
        pass

asyncio.run(work())
"""
    assert loaded(body, SCHEMA_TOOLS)[0] == sorted(SCHEMA_TOOLS)


def test_the_defaults_the_parser_spells_are_the_library_s() -> None:
    assert search_cmd.KINDS == KINDS
    assert search_cmd.DEFAULT_LIMIT == DEFAULT_LIMIT
    assert export_cmd.INDEX_LAYOUTS == INDEX_LAYOUTS
    assert stats_cmd.DEFAULT_TOP == admin_stats.DEFAULT_TOP
    assert serve_cmd.DEFAULT_MAX_BODY == DEFAULT_MAX_BODY
    assert (sql_cmd.DEFAULT_MAX_ROWS, sql_cmd.DEFAULT_MAX_BYTES, sql_cmd.DEFAULT_TIMEOUT_S) == (
        sql_console.DEFAULT_MAX_ROWS,
        sql_console.DEFAULT_MAX_BYTES,
        sql_console.DEFAULT_TIMEOUT_S,
    )
