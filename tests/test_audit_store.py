"""The database, API and console side of an adversarial audit (docs/GUARANTEES.md).

Each case runs the real `store-sql` program as a subprocess (or the API on a real SQLite
file) with the input a hostile or unlucky user gave it, and checks the promise: nothing is
lost or replaced, and whatever is refused is refused with one line naming the reason and a
non-zero exit, never a Python traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store_sql.errors import (
    DamagedIndexError,
    DatabaseCorruptError,
    ImportFailedError,
    InvalidEntryError,
    NotFoundError,
    StoreError,
    WriteFailedError,
)
from store_sql.formats import jsjson
from store_sql.formats.sessions_json import entry_text, render_index, salvage_index
from store_sql.importer.chunks import LineChunker
from store_sql.store import Store

STORE_SQL = Path(sys.executable).with_name("store-sql")
SESSIONS = "agents/main/sessions"


def run(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`store-sql ARGS` as a real subprocess."""
    return subprocess.run(
        [str(STORE_SQL), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(*args: str | Path) -> str:
    done = run(*args)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def refused(*args: str | Path) -> str:
    """The command exits non-zero with one line on stderr (no traceback); that line."""
    done = run(*args)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode != 0, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


# --- D1: a damaged sessions.json is never replaced by a write ----------------------------------


def gateway_index(count: int) -> bytes:
    """sessions.json as the gateway writes it, `count` entries of ~150 bytes each."""
    members = [
        f'  "agent:main:s{n}": {{\n    "sessionId": "sid-{n:04d}",\n    "updatedAt": '
        f'{1767225600000 + n},\n    "label": "session number {n} with some text"\n  }}'
        for n in range(count)
    ]
    return ("{\n" + ",\n".join(members) + "\n}").encode()


def deep_index() -> bytes:
    """Valid JSON that JSON.parse reads, but nested past what the store can parse."""
    deep = "[" * 5000 + "]" * 5000
    return (
        '{\n  "agent:main:a": {\n    "sessionId": "sa",\n    "updatedAt": 1\n  },\n'
        f'  "agent:main:deep": {{\n    "sessionId": "sd",\n    "updatedAt": 2,\n    "x": {deep}\n'
        '  },\n  "agent:main:b": {\n    "sessionId": "sb",\n    "updatedAt": 3\n  }\n}'
    ).encode()


DAMAGED = {"torn": gateway_index(40)[:1500], "deep": deep_index()}


def state_with_index(root: Path, data: bytes) -> Path:
    sessions = root / "state" / SESSIONS
    sessions.mkdir(parents=True)
    (sessions / "sessions.json").write_bytes(data)
    return root / "state"


@pytest.mark.parametrize("damage", sorted(DAMAGED))
def test_a_write_to_a_damaged_index_is_refused_and_export_keeps_its_bytes(
    tmp_path: Path, damage: str
) -> None:
    data = DAMAGED[damage]
    db = tmp_path / "s.sqlite"
    ok("import", state_with_index(tmp_path, data), "--db", db)
    line = refused(
        "sessions", "patch", "--db", db, "--agent", "main", "k", '{"sessionId":"n1","updatedAt":5}'
    )
    assert "sessions.json" in line
    assert "sessions recover --agent main" in line
    ok("export", tmp_path / "out", "--db", db)
    assert (tmp_path / "out" / SESSIONS / "sessions.json").read_bytes() == data


async def test_the_api_refuses_every_write_to_a_damaged_index(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    ok("import", state_with_index(tmp_path, DAMAGED["torn"]), "--db", db)
    async with await Store.open(db) as store:
        entry = {"sessionId": "n1", "updatedAt": 5}
        attempts = [
            store.sessions.patch("main", "k", entry),
            store.sessions.put("main", "k", entry),
            store.sessions.update("main", "k", lambda _old: entry),
        ]
        for attempt in attempts:
            with pytest.raises(DamagedIndexError, match="sessions recover --agent main"):
                await attempt
        assert await store.sessions.render_json("main") == DAMAGED["torn"]


@pytest.mark.parametrize("damage", sorted(DAMAGED))
def test_recover_salvages_the_readable_entries_and_keeps_the_original_bytes(
    tmp_path: Path, damage: str
) -> None:
    data = DAMAGED[damage]
    db = tmp_path / "s.sqlite"
    ok("import", state_with_index(tmp_path, data), "--db", db)
    result = orjson.loads(ok("sessions", "recover", "--db", db, "--agent", "main", "--json"))
    assert result["lost"], "the damage is reported"
    listed = orjson.loads(ok("sessions", "list", "--db", db, "--json"))
    keys = {s["key"] for s in listed["sessions"]}
    if damage == "torn":
        assert len(keys) == result["salvaged"] >= 8
        assert keys == {f"agent:main:s{n}" for n in range(len(keys))}
    else:
        assert keys == {"agent:main:a", "agent:main:b"}
    # Now writable, and the original is exported beside the new index, byte for byte.
    ok("sessions", "patch", "--db", db, "k", '{"sessionId":"n1","updatedAt":5}')
    out = tmp_path / "out"
    ok("export", out, "--db", db)
    kept = sorted((out / SESSIONS).glob("sessions.json.invalid-*"))
    assert [p.name for p in kept] == [Path(result["kept_as"]).name]
    assert kept[0].read_bytes() == data
    written = orjson.loads((out / SESSIONS / "sessions.json").read_bytes())
    assert set(written) == keys | {"k"}
    # Re-importing the same damaged file changes nothing (it was recovered already).
    ok("import", tmp_path / "state", "--db", db)
    listed = orjson.loads(ok("sessions", "list", "--db", db, "--json"))
    assert {s["key"] for s in listed["sessions"]} == keys | {"k"}


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
_indexes = st.dictionaries(
    st.text(min_size=1, max_size=12),
    st.dictionaries(st.text(max_size=6), _values, max_size=4),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(index=_indexes, cut=st.integers(0, 10**6), noise=st.binary(max_size=4))
def test_salvage_reads_exactly_the_whole_entries_before_a_tear(
    index: dict[str, dict[str, object]], cut: int, noise: bytes
) -> None:
    """A gateway-written index torn anywhere (and garbage appended) salvages only entries
    equal to the originals, and every entry that ends before the tear."""
    data = render_index((k, entry_text(v)) for k, v in index.items())
    cut = min(cut, len(data))
    torn = data[:cut] + noise
    salvaged = salvage_index(torn)
    got = {e.key: e.value for e in salvaged.entries}
    assert all(index[k] == v for k, v in got.items())
    for key, value in index.items():
        member = b"  " + orjson.dumps(key) + b": " + entry_text(value).encode()
        at = data.find(b"\n" + member)
        if data.isascii() and at >= 0 and at + 1 + len(member) < cut:
            assert key in got


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_salvage_never_raises(data: bytes) -> None:
    salvage_index(data)


def test_recover_refuses_an_index_that_is_not_damaged(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    ok("import", state_with_index(tmp_path, gateway_index(3)), "--db", db)
    line = refused("sessions", "recover", "--db", db, "--agent", "main")
    assert "nothing to recover" in line
    line = refused("sessions", "recover", "--db", db, "--agent", "other")
    assert "no session index" in line


def test_an_empty_file_index_is_refused_too_and_recovers_to_empty(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    ok("import", state_with_index(tmp_path, b""), "--db", db)
    refused("sessions", "patch", "--db", db, "k", '{"sessionId":"n1","updatedAt":5}')
    ok("sessions", "recover", "--db", db)
    ok("sessions", "patch", "--db", db, "k", '{"sessionId":"n1","updatedAt":5}')
    ok("export", tmp_path / "out", "--db", db)
    kept = list((tmp_path / "out" / SESSIONS).glob("sessions.json.invalid-*"))
    assert len(kept) == 1
    assert kept[0].read_bytes() == b""


# --- D2: --db must be a regular file (or missing); reads never create one ----------------------

READ_COMMANDS = [
    ("sessions", "list"),
    ("sessions", "get", "k"),
    ("sessions", "delete", "k"),
    ("sessions", "cleanup"),
    ("transcript", "show", "s1"),
    ("checkpoints", "list", "k"),
    ("stats",),
    ("search", "hello"),
    ("export", "OUT"),
]


def _special_files(tmp_path: Path) -> dict[str, Path]:
    found = {}
    fifo = tmp_path / "fifo.db"
    os.mkfifo(fifo)
    found["fifo"] = fifo
    directory = tmp_path / "dir.db"
    directory.mkdir()
    found["directory"] = directory
    device = tmp_path / "null.db"
    try:
        os.mknod(device, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null of our own
    except PermissionError:
        pass
    else:
        found["device"] = device
    return found


@pytest.mark.parametrize("command", [*READ_COMMANDS, ("sessions", "patch", "k", "{}")])
def test_a_db_that_is_not_a_regular_file_is_refused_and_left_alone(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    for kind, path in _special_files(tmp_path).items():
        mode = path.lstat().st_mode
        args = [a.replace("OUT", str(tmp_path / "out")) for a in command]
        line = refused(*args, "--db", path)
        assert "not a regular file" in line, (kind, line)
        assert path.lstat().st_mode == mode, f"the {kind} was replaced"
        assert not list(tmp_path.glob(".*creating*"))


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_a_read_of_a_missing_db_says_so_and_creates_nothing(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    db = tmp_path / "sub" / "missing.sqlite"
    args = [a.replace("OUT", str(tmp_path / "out")) for a in command]
    line = refused(*args, "--db", db)
    assert re.search(r"no (such )?database", line), line
    assert not db.parent.exists()


def test_a_write_creates_a_missing_db(tmp_path: Path) -> None:
    db = tmp_path / "new" / "s.sqlite"
    ok("sessions", "patch", "--db", db, "k", '{"sessionId":"n1","updatedAt":5}')
    assert db.is_file()


def test_doctor_names_what_a_db_that_is_not_a_file_is(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.db"
    os.mkfifo(fifo)
    done = run("doctor", "--db", fifo, "--json")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    checks = {c["name"]: c for c in orjson.loads(done.stdout)["checks"]}
    assert "not a regular file (a FIFO)" in checks["database"]["summary"]


# --- D5: a transcript id belongs to one agent ---------------------------------------------------


async def test_a_transcript_id_of_another_agent_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    async with await Store.open(db) as store:
        info = await store.transcripts.create("main", "s1", cwd="/w")
        await store.transcripts.create("ops", "s2", cwd="/w")
        entry = {"type": "message", "message": {"role": "user", "content": "x"}}
        with pytest.raises(NotFoundError, match="agent 'main'"):
            await store.transcripts.append("ops", info.transcript_id, [entry])
        with pytest.raises(NotFoundError):
            await store.transcripts.info("ops", info.transcript_id)
        for flag in (True, False):
            with pytest.raises(InvalidEntryError, match="bool"):
                await store.transcripts.append("main", flag, [entry])
        assert (await store.transcripts.info("main", info.transcript_id)).line_count == 1
    message = '{"type":"message","message":{"role":"user","content":"x"}}'
    target = f"#{info.transcript_id}"
    line = refused("transcript", "append", "--db", db, "--agent", "ops", target, message)
    assert "agent 'main'" in line
    refused("transcript", "show", "--db", db, "--agent", "ops", target)
    ok("transcript", "append", "--db", db, "--agent", "main", target, message)


# --- D8: private from the first byte ----------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent

_UPGRADE_UNDER_A_FILE_SIZE_LIMIT = """
import asyncio, os, resource, signal, sys
from store_sql.store import Store

os.umask(0o022)
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # SIGXFSZ kills at the limit
asyncio.run(Store.open(sys.argv[1]))
"""


async def _fill(db: Path) -> None:
    async with await Store.open(db) as store:
        await store.transcripts.create("main", "s1", cwd="/w")
        entry = {"type": "message", "message": {"role": "user", "content": "x" * 100_000}}
        await store.transcripts.append("main", "s1", [entry] * 30)


def test_the_upgrade_backup_is_owner_only_while_it_is_written(tmp_path: Path) -> None:
    """A child upgrading a database is killed (SIGXFSZ) while VACUUM INTO writes the backup:
    the partial backup it leaves shows the mode the file had all along."""
    db = tmp_path / "s.sqlite"
    asyncio.run(_fill(db))
    subprocess.run(
        [sys.executable, "-m", "alembic", "-x", f"db={db}", "downgrade", "0001"],
        cwd=ROOT, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    assert db.stat().st_size > 2_000_000
    done = subprocess.run(
        [sys.executable, "-c", _UPGRADE_UNDER_A_FILE_SIZE_LIMIT, str(db), "1000000"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == -25, done.stderr  # SIGXFSZ, in the middle of VACUUM INTO
    partial = list(tmp_path.glob(".s.sqlite.backup-*.partial"))
    assert len(partial) == 1, list(tmp_path.iterdir())
    assert stat.S_IMODE(partial[0].stat().st_mode) == 0o600


def test_directories_created_for_a_database_and_an_export_are_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "s.sqlite"
    entry = '{"sessionId":"n1","updatedAt":5}'
    for args in (
        ("sessions", "patch", "--db", db, "k", entry),
        ("export", tmp_path / "x" / "y" / "out", "--db", db),
    ):
        done = subprocess.run(
            [str(STORE_SQL), *map(str, args)], capture_output=True, text=True, umask=0,
            timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    for folder in ("a", "a/b", "x", "x/y", "x/y/out"):
        assert stat.S_IMODE((tmp_path / folder).stat().st_mode) == 0o700, folder


# --- D10, D13, D14: values the store cannot keep are refused up front -------------------------


@pytest.mark.parametrize("patch", ['{"x":1e400}', '{"y":"\\ud800"}'])
def test_patch_json_prints_what_was_stored(tmp_path: Path, patch: str) -> None:
    db = tmp_path / "s.sqlite"
    ok("sessions", "patch", "--db", db, "k", '{"sessionId":"n1","updatedAt":5}')
    out = ok("sessions", "patch", "--json", "--db", db, "k", patch)
    assert '"key": "k"' in out
    # 1e400 is Infinity to JSON.parse, which JSON.stringify writes as null: the value as the
    # gateway would store it. A lone surrogate is kept, escaped.
    assert ('"x": null' in out) if "x" in patch else ('"\\ud800"' in out)
    assert json.loads(ok("sessions", "get", "--db", db, "k"))  # the stdlib reads both


async def test_out_of_range_and_mistyped_arguments_raise_store_errors(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "s.sqlite") as store:
        await store.transcripts.create("main", "s1", cwd="/w")
        await store.sessions.patch("main", "k", {"sessionId": "s1", "updatedAt": 1})
        calls = [
            store.sessions.patch("main", "k2", {"sessionId": "s", "updatedAt": 10**400}),
            store.sessions.patch("main", "k2", {"sessionId": "s", "updatedAt": 2**63}),
            store.sessions.touch("main", "k", 10**400),
            store.sessions.list_entries("main", limit=10**30),
            store.sessions.list_entries("main", offset=-(10**30)),
            store.sessions.list_entries("main", updated_after=10**30),
            store.sessions.count_entries("main", updated_before=10**30),
            store.transcripts.changes_since("main", "s1", "garbage"),  # type: ignore[arg-type]
            store.transcripts.changes_since("main", "s1", None, limit=10**30),
            store.transcripts.recent("main", "s1", limit=True),
            store.search.find("a\0b"),
            store.search.find("\ud800"),
            store.search.find("x", role="\udcff"),
        ]
        for names in ("../x", "a/b", "a\0b", ".."):
            calls.append(store.sessions.patch("main", "k3", {"sessionId": names, "updatedAt": 1}))
        for n, call in enumerate(calls):
            try:
                await call
            except StoreError:
                continue
            pytest.fail(f"call {n} did not raise a StoreError")
        # Other numbers out of SQLite's range are kept in the entry, not in its column.
        entry = await store.sessions.patch("main", "k", {"inputTokens": 10**400})
        assert jsjson.dumps(entry["inputTokens"]) == str(10**400)
        assert await store.sessions.get("main", "k") == entry


@pytest.mark.parametrize("key", [7, {"a": 1}, ["k"], True, "\ud800"])
async def test_an_idempotency_key_the_store_cannot_compare_is_refused(
    tmp_path: Path, key: object
) -> None:
    async with await Store.open(tmp_path / "s.sqlite") as store:
        await store.transcripts.create("main", "s1", cwd="/w")
        entry = {
            "type": "message",
            "message": {"role": "user", "content": "x", "idempotencyKey": key},
        }
        with pytest.raises(InvalidEntryError, match="idempotencyKey"):
            await store.transcripts.append("main", "s1", [entry])
        assert (await store.transcripts.info("main", "s1")).line_count == 1


def test_search_text_the_store_cannot_search_is_refused_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    ok("sessions", "patch", "--db", db, "k", '{"sessionId":"n1","updatedAt":5}')
    for text in ("x\udcffy", "\udcff"):
        done = subprocess.run(
            [os.fsencode(STORE_SQL), b"search", os.fsencode(text), b"--db", os.fsencode(db)],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        assert b"Traceback" not in done.stderr, done.stderr
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1


# --- every refused argument of the audit, through the program ----------------------------------

_BIG = "1" + "0" * 30
_MESSAGE = '{"type":"message","message":{"role":"user","content":"x","idempotencyKey":%s}}'
CLI_REFUSALS = {
    # Numbers on the command line are read as JavaScript reads them: 1e400 is Infinity.
    "updatedAt past 64 bits": (
        ("sessions", "patch", "k2", '{"sessionId":"s","updatedAt":1' + "0" * 400 + "}"),
        "updatedAt",
    ),
    "sessionId ../x": (
        ("sessions", "patch", "k2", '{"sessionId":"../x","updatedAt":1}'),
        "sessionId",
    ),
    "sessionId a/b": (
        ("sessions", "patch", "k2", '{"sessionId":"a/b","updatedAt":1}'),
        "sessionId",
    ),
    "sessionId a\\b": (
        ("sessions", "patch", "k2", '{"sessionId":"a\\\\b","updatedAt":1}'),
        "sessionId",
    ),
    "sessionId NUL": (
        ("sessions", "patch", "k2", '{"sessionId":"a\\u0000b","updatedAt":1}'),
        "sessionId",
    ),
    "sessionId ..": (("sessions", "patch", "k2", '{"sessionId":"..","updatedAt":1}'), "sessionId"),
    "--limit 10**30": (("sessions", "list", "--limit", _BIG), "limit"),
    "--offset -10**30": (("sessions", "list", "--offset", "-" + _BIG), "offset"),
    "--updated-after 10**30": (("sessions", "list", "--updated-after", _BIG), "updated_after"),
    "tail --limit 10**30": (("transcript", "tail", "s1", "--limit", _BIG), "limit"),
    "idempotencyKey 7": (("transcript", "append", "s1", _MESSAGE % "7"), "idempotencyKey"),
    "idempotencyKey object": (
        ("transcript", "append", "s1", _MESSAGE % '{"a":1}'),
        "idempotencyKey",
    ),
    "idempotencyKey lone surrogate": (
        ("transcript", "append", "s1", _MESSAGE % '"\\ud800"'),
        "idempotencyKey",
    ),
    "sql --timeout nan": (("sql", "--timeout", "nan", "SELECT 1"), "--timeout"),
    "sql zeroblob": (("sql", "SELECT zeroblob(900000000)"), "--max-bytes"),
    "sql CREATE TEMP TABLE": (("sql", "CREATE TEMP TABLE z(x)"), "CREATE TEMP TABLE"),
    "export --session into a directory": (("export", "{tmp}", "--session", "k"), "directory"),
    "export --session into a missing folder": (
        ("export", "{tmp}/missing/x.jsonl", "--session", "k"),
        "missing",
    ),
}


@pytest.fixture(scope="module")
def cli_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("cli") / "s.sqlite"

    async def fill() -> None:
        async with await Store.open(db) as store:
            await store.transcripts.create("main", "s1", cwd="/w")
            await store.sessions.patch("main", "k", {"sessionId": "s1", "updatedAt": 1})

    asyncio.run(fill())
    return db


@pytest.mark.parametrize("case", sorted(CLI_REFUSALS))
def test_every_refused_argument_is_one_line_through_the_program(
    cli_db: Path, tmp_path: Path, case: str
) -> None:
    """`store-sql` as a subprocess: non-zero exit, one line on stderr naming what is wrong,
    no traceback, and the database unchanged."""
    args, named = CLI_REFUSALS[case]
    args = tuple(a.replace("{tmp}", str(tmp_path)) for a in args)
    before = cli_db.read_bytes()
    line = refused(*args, "--db", cli_db)
    assert named in line, line
    assert cli_db.read_bytes() == before


# --- D4: a damaged page never ends in a traceback ----------------------------------------------

PAGE = 4096


async def _many_lines(db: Path) -> None:
    async with await Store.open(db) as store:
        for n in range(3):
            sid = f"s{n}"
            await store.sessions.patch("main", f"k{n}", {"sessionId": sid, "updatedAt": n + 1})
            await store.transcripts.create("main", sid, cwd="/w")
            for chunk in range(6):
                entries = [
                    {"type": "message", "message": {"role": "user", "content": f"hello {i} " * 20}}
                    for i in range(50 * chunk, 50 * chunk + 50)
                ]
                await store.transcripts.append("main", sid, entries)
        await store.search.catch_up()


def _pages(db: Path) -> dict[str, int]:
    """A page of each kind the audit damaged, found with the dbstat table."""
    conn = sqlite3.connect(db)
    try:

        def page(where: str) -> int:
            rows = conn.execute(f"SELECT pageno FROM dbstat WHERE {where} ORDER BY pageno")
            found = [r[0] for r in rows]
            assert found, where
            return int(found[len(found) // 2])

        return {
            "lines_leaf": page("name = 'transcript_lines' AND pagetype = 'leaf'"),
            "lines_interior": page("name = 'transcript_lines' AND pagetype = 'internal'"),
            "index": page(
                "name = (SELECT name FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name = 'transcript_lines' AND sql IS NOT NULL LIMIT 1)"
            ),
            "fts": page("name = 'entry_text_fts_data' AND pagetype = 'leaf'"),
            "schema": 1,
            "schema_leaf": page("name = 'sqlite_schema' AND pagetype = 'leaf'"),
            "table_root": int(
                conn.execute(
                    "SELECT rootpage FROM sqlite_master WHERE name = 'session_entries'"
                ).fetchone()[0]
            ),
        }
    finally:
        conn.close()


@pytest.fixture(scope="module")
def healthy_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    db = tmp_path_factory.mktemp("healthy") / "s.sqlite"
    asyncio.run(_many_lines(db))
    return db, _pages(db)


def _damaged(tmp_path: Path, healthy: tuple[Path, dict[str, int]], kind: str) -> Path:
    source, pages = healthy
    db = tmp_path / "s.sqlite"
    data = bytearray(source.read_bytes())
    start = (pages[kind] - 1) * PAGE + (100 if pages[kind] == 1 else 0)
    data[start : start + 64] = bytes(b ^ 0xFF for b in data[start : start + 64])
    db.write_bytes(bytes(data))
    return db


DAMAGE_KINDS = [
    "lines_leaf",
    "lines_interior",
    "index",
    "fts",
    "schema",
    "schema_leaf",
    "table_root",
]


@pytest.mark.parametrize("kind", DAMAGE_KINDS)
def test_doctor_finishes_and_reports_page_damage(
    tmp_path: Path, healthy_db: tuple[Path, dict[str, int]], kind: str
) -> None:
    db = _damaged(tmp_path, healthy_db, kind)
    done = run("doctor", "--db", db, "--json")
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2, done.stdout
    report = orjson.loads(done.stdout)
    assert report["status"] == "error"
    assert any(c["status"] == "error" for c in report["checks"] if c["name"] != "sqlite_library")


@pytest.mark.parametrize("kind", DAMAGE_KINDS)
def test_every_command_on_a_damaged_page_gives_one_line_or_works(
    tmp_path: Path, healthy_db: tuple[Path, dict[str, int]], kind: str
) -> None:
    db = _damaged(tmp_path, healthy_db, kind)
    for args in (
        ("stats",),
        ("sessions", "list"),
        ("transcript", "show", "s1"),
        ("search", "hello"),
        ("sql", "SELECT count(*), sum(length(line)) FROM transcript_lines"),
        ("transcript", "append", "s1", '{"type":"message","message":{"role":"user"}}'),
        ("export", tmp_path / "out"),
    ):
        done = run(*args, "--db", db)
        assert "Traceback" not in done.stderr, (args, done.stderr)
        if done.returncode not in (0, 1) or "malformed" in done.stderr:
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1, (args, done.stderr)
            assert "doctor" in lines[0], (args, lines[0])


def test_export_writes_what_it_can_read_and_lists_the_rest(
    tmp_path: Path, healthy_db: tuple[Path, dict[str, int]]
) -> None:
    db = _damaged(tmp_path, healthy_db, "lines_leaf")
    out = tmp_path / "out"
    done = run("export", out, "--db", db, "--json")
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1
    report = orjson.loads(done.stdout)
    refused = {r["rel_path"]: r["reason"] for r in report["refused"]}
    assert refused, "the unreadable transcript is listed"
    assert all("damaged" in reason for reason in refused.values())
    written = {f["rel_path"] for f in report["files"]}
    assert f"{SESSIONS}/sessions.json" in written
    assert written.isdisjoint(refused)
    for name in refused:
        assert not (out / name).exists()


async def test_api_reads_of_a_damaged_page_raise_a_store_error(
    tmp_path: Path, healthy_db: tuple[Path, dict[str, int]]
) -> None:
    db = _damaged(tmp_path, healthy_db, "lines_leaf")
    async with await Store.open(db, full_text=False) as store:

        async def read_every_transcript() -> None:
            for sid in ("s0", "s1", "s2"):
                await store.transcripts.active_path("main", sid)

        with pytest.raises(DatabaseCorruptError, match="doctor"):
            await read_every_transcript()


# --- D15: the console and the reports say what really happened ---------------------------------

ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"


@pytest.fixture(scope="module")
def small_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("small") / "s.sqlite"
    ok("sessions", "patch", "--db", db, "k", '{"sessionId":"n1","updatedAt":5}')
    return db


def _finish(proc: subprocess.Popen[Any], timeout: float) -> tuple[Any, Any]:
    """`proc.communicate(timeout=...)`, killing the child when it does not end in time, so
    a failing test leaves no process (a server, a query) running behind it."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise


def _as_at_a_terminal() -> None:
    """Run in the child before it starts: Ctrl-C's default action, as a shell at a terminal
    gives its commands. A test run started in the background of a script (`cmd &`) inherits
    SIGINT ignored, and the program rightly keeps an ignored SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_a_query_says_interrupted_not_timed_out(small_db: Path) -> None:
    proc = subprocess.Popen(
        [str(STORE_SQL), "sql", "--db", str(small_db), "--timeout", "600", ENDLESS],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_as_at_a_terminal,
    )  # fmt: skip
    # The query runs once the program has the database open.
    fds = Path(f"/proc/{proc.pid}/fd")
    for _ in range(600):
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) == str(small_db) for fd in fds.iterdir()):
                break
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = _finish(proc, 60)
    assert "Traceback" not in err, err
    assert "600 s" not in err, err
    assert "interrupted" in err
    assert proc.returncode == 130


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_a_timeout_that_is_not_a_positive_number_is_refused(small_db: Path, value: str) -> None:
    line = refused("sql", "--db", small_db, "--timeout", value, "SELECT 1")
    assert "--timeout" in line


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("CREATE TEMP TABLE z(x)", "CREATE TEMP TABLE"),
        ("CREATE INDEX i ON session_entries(label)", "CREATE INDEX"),
        ("DROP TABLE session_entries", "DROP TABLE"),
        ("VACUUM", "VACUUM"),
        ("  -- a comment\n  delete from session_entries", "DELETE"),
        ("ATTACH 'x.db' AS x", "ATTACH"),
    ],
)
def test_a_refused_statement_is_named_for_what_it_is(small_db: Path, sql: str, named: str) -> None:
    line = refused("sql", "--db", small_db, sql)
    assert "read-only" in line
    assert named in line, line


def test_a_symlink_loop_is_reported_as_a_loop(tmp_path: Path) -> None:
    sessions = tmp_path / "state" / SESSIONS
    sessions.mkdir(parents=True)
    (sessions / "a.jsonl").symlink_to("b.jsonl")
    (sessions / "b.jsonl").symlink_to("a.jsonl")
    report = orjson.loads(ok("import", tmp_path / "state", "--db", tmp_path / "s.db", "--json"))
    text = orjson.dumps(report).decode()
    assert "symlink loop" in text
    assert "broken symlink" not in text


# --- D9: what the console prints is bounded in bytes, not only in rows --------------------------


_MEASURED = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(done.stderr)
print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _peak_rss_kib(*args: str | Path) -> tuple[int, str, int]:
    """Exit status, stderr and peak RSS (KiB) of `store-sql ARGS`, measured by a parent of
    its own so no other child of this test process counts."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED, str(STORE_SQL), *map(str, args)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    code, peak = done.stdout.split()
    return int(code), done.stderr, int(peak)


def test_a_huge_value_is_refused_in_one_line_without_being_built(small_db: Path) -> None:
    code, err, peak_kib = _peak_rss_kib("sql", "--db", small_db, "SELECT zeroblob(900000000)")
    assert "Traceback" not in err
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "--max-bytes" in lines[0]
    assert peak_kib < 900_000, "the 900 MB value was built"


@pytest.mark.parametrize("shape", ["--json", "--csv"])
def test_a_row_past_the_byte_bound_is_cut_before_it_is_rendered(small_db: Path, shape: str) -> None:
    """A 90 MB blob within a raised --max-bytes of 100 MB is fetched (SQLite's copy and
    Python's), but its base64 or hex form (120 MB, 180 MB) would pass the bound: the row is
    cut before it is rendered (measured 223 MB peak; rendering it first took 487 MB in JSON
    and 1.9 GB in CSV)."""
    code, err, peak_kib = _peak_rss_kib(
        "sql", "--db", small_db, shape, "--max-bytes", "100000000", "SELECT zeroblob(90000000)"
    )
    assert code == 0, err
    assert "output cut after 0 rows" in err
    assert peak_kib < 330_000


def test_output_is_cut_at_max_bytes_with_a_notice(small_db: Path) -> None:
    sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100) "
    sql += "SELECT x, zeroblob(1000) FROM c"
    done = run("sql", "--db", small_db, "--json", "--max-bytes", "10000", sql)
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout)
    assert result["truncated"] is True
    assert 0 < result["row_count"] < 10
    assert "10000 bytes" in done.stderr


_ROWS_1E6 = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 1000000) "
    "SELECT x, printf('%080d', x) AS padding FROM c"
)
_STREAMED = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
sys.stderr.write(done.stderr.decode())
print(done.returncode, len(done.stdout), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


@pytest.mark.parametrize("shape", ["--table", "--csv", "--json"])
def test_a_million_rows_stream_in_memory_that_does_not_grow_with_the_result(
    small_db: Path, shape: str
) -> None:
    """Rows go to stdout as they are fetched: printing a million ~100-byte rows (over 60 MB
    of output; the collected result would take several hundred MB of Python objects) peaks
    under a bound that holds for any result size. The output is read by the measuring
    parent, so a program that kept the rows could not hide them."""
    done = subprocess.run(
        [sys.executable, "-c", _STREAMED, str(STORE_SQL), "sql", "--db", str(small_db),
         shape, "--max-rows", "2000000", "--max-bytes", str(10**12), "--timeout", "600", _ROWS_1E6],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    code, printed, peak_kib = map(int, done.stdout.split())
    assert "Traceback" not in done.stderr, done.stderr
    assert code == 0, done.stderr
    assert done.stderr == ""
    assert printed > 60_000_000
    assert peak_kib < 120_000, f"peak RSS {peak_kib} KiB grew with the result"


def test_streamed_json_is_one_document_with_every_row(small_db: Path) -> None:
    sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 250) "
    sql += "SELECT x, 'r' || x AS name, x'00ff' AS b FROM c"
    result = orjson.loads(ok("sql", "--db", small_db, "--json", sql))
    assert result["row_count"] == 250
    assert result["truncated"] is False
    assert result["rows"][249] == {
        "x": 250, "name": "r250", "b": {"$base64": True, "encoded": "AP8="}
    }  # fmt: skip


def test_a_table_longer_than_its_width_block_stays_aligned(small_db: Path) -> None:
    sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 250) "
    sql += "SELECT x, 'name' AS n FROM c"
    lines = ok("sql", "--db", small_db, "--max-rows", "300", sql).splitlines()
    assert lines[0] == "x    n"
    assert lines[1] == "1    name"
    assert lines[250] == "250  name"
    assert lines[-1] == "(250 rows)"


@pytest.mark.parametrize("shape", ["--table", "--csv", "--json"])
def test_an_endless_result_is_cut_at_max_bytes_while_streaming(small_db: Path, shape: str) -> None:
    """An endless query ends at the byte bound, in whatever format: rows are counted as they
    are printed, not after the whole result is read (that would run into the time limit)."""
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"
    done = run("sql", "--db", small_db, shape, "--max-rows", str(10**9), "--timeout", "600",
               "--max-bytes", "100000", endless)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "output cut after" in done.stderr
    assert "100000 bytes" in done.stderr
    assert 10_000 < len(done.stdout) < 101_000


def test_a_closed_stdout_ends_the_output_quietly(small_db: Path) -> None:
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"
    proc = subprocess.Popen(
        [str(STORE_SQL), "sql", "--db", str(small_db), "--csv", "--max-rows", str(10**9),
         "--timeout", "600", "--max-bytes", str(10**12), endless],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.read(1000)
    proc.stdout.close()  # as `| head` does
    _, err = _finish(proc, 120)
    assert err == b""
    assert proc.returncode == 141


# --- Ctrl-C at any moment of a long command's start-up -----------------------------------------


def _has_loaded(pid: int, library: str) -> bool:
    with contextlib.suppress(OSError):
        return library in Path(f"/proc/{pid}/maps").read_text()
    return False


@pytest.fixture(scope="module")
def sigint_commands(
    tmp_path_factory: pytest.TempPathFactory, small_db: Path
) -> dict[str, list[str]]:
    root = tmp_path_factory.mktemp("sigint")
    state = state_with_index(root, gateway_index(40))
    for n in range(40):
        (state / SESSIONS / f"sid-{n:04d}.jsonl").write_text(
            '{"type":"session","version":3,"id":"s","timestamp":"t","cwd":"/"}\n' * 200
        )
    return {
        "sql": ["sql", "--db", str(small_db), "--timeout", "600", ENDLESS],
        "import": ["import", str(state), "--db", str(root / "i.db")],
        "export": ["export", str(root / "out"), "--db", str(small_db)],
        "serve": ["serve", "--db", str(root / "served.db"), "--port", "0"],
    }


@pytest.mark.parametrize("command", ["sql", "import", "export", "serve"])
def test_ctrl_c_at_any_moment_of_start_up_exits_130_in_one_line(
    sigint_commands: dict[str, list[str]], command: str
) -> None:
    """SIGINT right after the program's code starts and at delays from there (imports,
    argument parsing, opening the database, the work itself): one line, exit 130, never a
    traceback. The program's start is seen from outside as the moment it maps orjson (a
    native library it loads first thing); a SIGINT before the interpreter itself is up is
    the interpreter's (it ends the process by the signal, printing nothing)."""
    outcomes = []
    for delay in (0.0, 0.01, 0.03, 0.08, 0.15, 0.3, 0.6):
        proc = subprocess.Popen(
            [str(STORE_SQL), *sigint_commands[command]],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            preexec_fn=_as_at_a_terminal,
        )  # fmt: skip
        while proc.poll() is None and not _has_loaded(proc.pid, "orjson"):
            time.sleep(0.001)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = _finish(proc, 120)
        assert "Traceback" not in err, (delay, err)
        outcomes.append(proc.returncode)
        if proc.returncode == 130:
            assert err.strip().splitlines()[-1] == "store-sql: interrupted", (delay, err)
        elif proc.returncode == -signal.SIGINT:
            # The signal came while the interpreter was finishing after the command's work:
            # it ends the process by the signal, printing nothing.
            assert err == "", (delay, err)
        else:  # the command ended before the signal came, or serve stopped gracefully
            assert proc.returncode == 0, (delay, err)
    assert outcomes[0] == 130


def test_ctrl_c_before_the_interpreter_is_up_prints_nothing(small_db: Path) -> None:
    proc = subprocess.Popen(
        [str(STORE_SQL), "sql", "--db", str(small_db), "SELECT 1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_as_at_a_terminal,
    )  # fmt: skip
    proc.send_signal(signal.SIGINT)
    _, err = _finish(proc, 60)
    assert "Traceback" not in err
    assert proc.returncode in (-signal.SIGINT, 130)


class _CountingStream(io.BytesIO):
    """A source that counts what was read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        block = super().read(size)
        self.read_bytes += len(block)
        return block


@pytest.mark.parametrize("at_end", [False, True])
def test_a_line_longer_than_sqlite_stores_is_refused_before_it_is_read_whole(
    at_end: bool,
) -> None:
    head = b'{"type":"session","version":3,"id":"s","timestamp":"t","cwd":"/"}\n'
    long_line = b'{"type":"message","x":"' + b"a" * 50_000 + b'"}'
    data = head + long_line + (b"" if at_end else b"\n" + head * 10_000)
    stream = _CountingStream(data)
    chunker = LineChunker(stream, chunk_bytes=4096, max_line_bytes=20_000)
    with pytest.raises(ImportFailedError, match=r"line 2 .* longer than 20000 bytes"):
        list(chunker)
    assert stream.read_bytes < 40_000, "the line was read whole before it was refused"


async def test_a_write_refused_by_another_writers_lock_costs_one_busy_timeout(
    tmp_path: Path,
) -> None:
    """From the failing write to a closed store: one busy_timeout, not one more for the
    indexer's step and one more for the closing checkpoint. What is counted is waits: with a
    4 s busy_timeout, two waits would take 8 s, and a busy machine adds far less than 4 s."""
    db = tmp_path / "s.sqlite"
    async with await Store.open(db) as store:
        await store.sessions.patch("main", "k", {"sessionId": "s", "updatedAt": 1})
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holding the write lock
    try:
        store = await Store.open(db, busy_timeout_ms=4000)
        started = time.monotonic()
        with pytest.raises(WriteFailedError, match="SQLITE_BUSY"):
            await store.sessions.patch("main", "k", {"label": "x"})
        await store.close()
        waited = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    waits = int(waited // 4.0)
    assert waits == 1, f"the refused write and close took {waited:.1f} s (busy_timeout 4 s)"
