"""Security: what docs/GUARANTEES.md "Security" promises.

- Files store_sql writes are 0600 and directories it creates 0700, whatever the umask
  (export output, the database and its -wal/-shm).
- Export never writes outside its root: session ids and stored names with `..`, `/`,
  absolute paths or NUL are refused and reported, symlinks planted in the output are not
  followed; import never reads through a symlink leaving its root.
- The read-only SQL console (`store-sql sql`) cannot change the database or create files.
- No pickle, marshal, shelve, eval(), exec() or shell=True anywhere in store_sql/.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from store_sql import Store, export_tree, import_path
from store_sql.errors import InvalidEntryError
from store_sql.schema.tables import APPLICATION_ID
from store_sql.transcripts import rows as transcripts

PACKAGE = Path(__file__).resolve().parents[1] / "store_sql"
STORE_SQL = Path(sys.executable).with_name("store-sql")
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
HEADER = (
    b'{"type":"session","version":3,"id":"s1","timestamp":"2026-01-01T00:00:00.000Z","cwd":"/"}'
)


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def tree(root: Path) -> dict[str, str]:
    """Everything under root, links not followed: a hash, a link target or a kind."""
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                found[str(path)] = "-> " + os.readlink(path)
            elif stat.S_ISREG(mode):
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[str(path)] = "dir"
    return found


async def test_export_writes_files_0600_and_directories_0700(tmp_path: Path) -> None:
    state = tmp_path / "state" / "agents" / "main" / "sessions"
    (state / "skills-prompts" / "sha256" / "ab").mkdir(parents=True)
    (state / "s1.jsonl").write_bytes(HEADER + b"\n")
    (state / "sessions.json").write_bytes(b"{}")
    (state / "skills-prompts" / "sha256" / "ab" / "abcd.txt").write_bytes(b"prompt")
    for path in state.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    out = tmp_path / "out"
    with umask(0o000):  # the most permissive umask must not widen anything
        async with await Store.open(tmp_path / "store.sqlite") as store:
            assert (await import_path(store, tmp_path / "state")).ok
            report = await export_tree(store, out)
        db_files = [tmp_path / "store.sqlite", tmp_path / "store.sqlite-shm"]
    assert report.ok
    assert len(report.files) == 3
    modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*")}
    modes["out"] = stat.S_IMODE(out.stat().st_mode)
    modes.update({p.name: stat.S_IMODE(p.stat().st_mode) for p in db_files})
    wrong = {
        name: oct(mode)
        for name, mode in modes.items()
        if mode != (0o700 if (tmp_path / name).is_dir() else 0o600)
    }
    assert not wrong, wrong


async def test_the_backup_taken_before_an_upgrade_is_0600(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    conn = sqlite3.connect(db)  # ours (application_id) but at Alembic's base revision
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("CREATE TABLE scratch (x)")
    conn.execute("DROP TABLE scratch")
    conn.close()
    with umask(0o000):
        async with await Store.open(db) as store:
            backup = store.open_report.backup_path
    assert store.open_report.upgraded_from == "base"
    assert backup is not None
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "session_id", ["../escaped", "../../etc/passwd", "/abs/olute", "nul\0byte"]
)
async def test_export_refuses_session_ids_that_would_leave_the_output(
    tmp_path: Path, session_id: str
) -> None:
    sandbox = tmp_path / "sandbox"
    out = sandbox / "deep" / "out"
    sandbox.mkdir()
    async with await Store.open(tmp_path / "store.sqlite") as store:
        # Written below the API (which may refuse such ids): an older or a tampered database.
        await store.write(
            lambda c: transcripts.create_transcript(
                c, "main", session_id, rel_dir="agents/main/sessions", cwd="/"
            )
        )
        await store.transcripts.create("main", "fine", cwd="/")
        report = await export_tree(store, out)
    assert [f.rel_path for f in report.files] == ["agents/main/sessions/fine.jsonl"]
    assert len(report.refused) == 1
    refused_name, reason = report.refused[0]
    assert refused_name.endswith(f"{session_id}.jsonl")
    assert any(why in reason for why in ("'..' part", "absolute", "NUL", "empty"))
    outside = {p for p in tree(sandbox) if not p.startswith(str(out))}
    assert outside == {str(sandbox / "deep")}, "export wrote outside its root"


@pytest.mark.parametrize("session_id", ["../escaped", "..", "a/b", "a\\b", "nul\0byte", ""])
async def test_the_api_refuses_session_ids_that_are_not_file_names(
    tmp_path: Path, session_id: str
) -> None:
    async with await Store.open(tmp_path / "store.sqlite") as store:
        with pytest.raises(InvalidEntryError, match="invalid session id"):
            await store.transcripts.create("main", session_id, cwd="/")
        assert await store.transcripts.list_transcripts("main") == []


async def test_export_refuses_tampered_names_and_does_not_follow_planted_symlinks(
    tmp_path: Path,
) -> None:
    sandbox, victim_dir = tmp_path / "sandbox", tmp_path / "victim"
    out = sandbox / "out"
    (out / "agents" / "main").mkdir(parents=True)
    victim_dir.mkdir()
    (victim_dir / "victim.txt").write_bytes(b"do not touch")
    # A directory of the output is a symlink leaving it; so is a file inside another one.
    (out / "agents" / "main" / "sessions").symlink_to(victim_dir)
    (out / "agents" / "ops" / "sessions").mkdir(parents=True)
    (out / "agents" / "ops" / "sessions" / "o1.jsonl").symlink_to(victim_dir / "victim.txt")
    async with await Store.open(tmp_path / "store.sqlite") as store:
        await store.transcripts.create("main", "s1", cwd="/")
        await store.transcripts.create("ops", "o1", cwd="/")

        def tamper(conn: sqlite3.Connection) -> None:
            # Names that only a tampered or hostile database could hold.
            conn.execute(
                "INSERT INTO opaque_files (agent_id, rel_dir, file_name, kind, content, sha256, "
                "imported_at) VALUES ('ops', 'agents/ops/sessions', '../../../../victim/x', "
                "'other', x'41', '', '')"
            )
            conn.execute(
                "INSERT INTO transcripts (agent_id, rel_dir, session_id, kind, file_name, "
                "created_at) VALUES ('ops', '../../victim', 'z', 'live', 'z.jsonl', '')"
            )
            conn.execute(
                f"INSERT INTO session_indexes (agent_id, rel_dir) VALUES ('zz', '{victim_dir}')"
            )

        await store.write(tamper)
        before = tree(victim_dir)
        report = await export_tree(store, out)
    assert tree(victim_dir) == before, "export wrote through a symlink or a tampered name"
    refused = dict(report.refused)
    # Both planted links are refused ("resolves outside"), not followed and not replaced.
    assert "resolves outside" in refused["agents/main/sessions/s1.jsonl"]
    assert "resolves outside" in refused["agents/ops/sessions/o1.jsonl"]
    assert (out / "agents" / "ops" / "sessions" / "o1.jsonl").is_symlink()
    assert any("is absolute" in why for why in refused.values())
    assert sum("'..' part" in why for why in refused.values()) == 2
    assert len(refused) == 5, refused


async def test_import_never_reads_through_a_symlink_leaving_its_root(tmp_path: Path) -> None:
    secret = tmp_path / "secret.jsonl"
    secret.write_bytes(HEADER.replace(b'"s1"', b'"TOP-SECRET-MARKER"') + b"\n")
    sessions = tmp_path / "state" / "agents" / "main" / "sessions"
    sessions.mkdir(parents=True)
    (sessions / "s1.jsonl").write_bytes(HEADER + b"\n")
    (sessions / "leak.jsonl").symlink_to(secret)
    (sessions / "up").symlink_to(tmp_path)
    db = tmp_path / "store.sqlite"
    async with await Store.open(db) as store:
        report = await import_path(store, tmp_path / "state")
    assert [f.rel_path for f in report.files] == ["agents/main/sessions/s1.jsonl"]
    assert {Path(s.path).name for s in report.skipped} == {"leak.jsonl", "up"}
    assert b"TOP-SECRET-MARKER" not in _database_bytes(db)


def _database_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


@pytest.fixture(scope="module")
def small_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed store with one session entry, built once and copied by each test."""
    db = tmp_path_factory.mktemp("small") / "store.sqlite"

    async def create() -> None:
        async with await Store.open(db) as store:
            await store.sessions.patch("main", "k", {"sessionId": "s", "updatedAt": 1})

    asyncio.run(create())
    return db


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM transcript_lines",
        "UPDATE session_entries SET entry_json = 'x'",
        "INSERT INTO opaque_files DEFAULT VALUES",
        "DROP TABLE transcripts",
        "CREATE TABLE t (x)",
        "CREATE TEMP TABLE t (x)",
        "WITH x AS (SELECT 1) DELETE FROM transcripts",
        "ATTACH DATABASE '{dir}/attached.sqlite' AS a",
        "VACUUM INTO '{dir}/copy.sqlite'",
        "PRAGMA journal_mode = DELETE",
        "PRAGMA user_version = 7",
        "PRAGMA wal_checkpoint(TRUNCATE)",
        "SELECT load_extension('{dir}/evil')",
        "REINDEX",
        "BEGIN IMMEDIATE",
    ],
)
def test_the_read_only_sql_console_cannot_write(
    tmp_path: Path, statement: str, small_db: Path
) -> None:
    db = tmp_path / "store.sqlite"
    shutil.copyfile(small_db, db)
    before = tree(tmp_path)
    done = subprocess.run(
        [str(STORE_SQL), "sql", statement.format(dir=tmp_path), "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "refused" in done.stderr or "failed" in done.stderr, done.stderr
    after = tree(tmp_path)
    # Reading a WAL database needs the -shm index and a -wal, which SQLite creates when
    # missing: the -wal may appear, empty. The database is unchanged; nothing else appears.
    after.pop(str(db) + "-shm", None)
    before.pop(str(db) + "-shm", None)
    if str(db) + "-wal" not in before:
        assert after.pop(str(db) + "-wal", EMPTY_SHA256) == EMPTY_SHA256
    assert after == before


# `pickle`-like loaders run code from data; eval/exec run code from strings; shell=True
# hands strings to a shell. None has a place in a store that reads untrusted files.
_FORBIDDEN = re.compile(
    r"^\s*(import|from)\s+(pickle|cPickle|marshal|shelve|dill)\b"
    r"|(?<![\w.])(eval|exec)\s*\("
    r"|\bshell\s*=\s*True"
    r"|\byaml\.load\s*\(",
    re.MULTILINE,
)


def test_no_pickle_eval_exec_or_shell_in_the_package() -> None:
    sources = sorted(PACKAGE.rglob("*.py")) + sorted((PACKAGE.parent / "migrations").rglob("*.py"))
    assert len(sources) > 20
    hits = [
        f"{path.relative_to(PACKAGE.parent)}:{text[: m.start()].count(chr(10)) + 1}: {m.group(0)}"
        for path in sources
        for text in [path.read_text()]
        for m in _FORBIDDEN.finditer(text)
    ]
    assert not hits, hits


def test_the_forbidden_pattern_catches_what_it_should() -> None:
    for bad in ["import pickle", "from marshal import loads", "x = eval(s)", "exec (code)",
                "run(cmd, shell=True)", "yaml.load(f)"]:  # fmt: skip
        assert _FORBIDDEN.search(bad), bad
    for fine in ["conn.execute(sql)", "ast.literal_eval(s)", "cursor.executescript(x)",
                 "evaluate(x)", "self.exec_driver_sql(x)", "# unpickled"]:  # fmt: skip
        assert not _FORBIDDEN.search(fine), fine
