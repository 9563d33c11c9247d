"""`store-sql sessions|transcript|migrate` as real subprocesses (python -m store_sql)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from command_line import python_m

from store_sql import Store
from store_sql.engine.migrate import head_revision
from store_sql.formats import jsjson

REPO = Path(__file__).resolve().parent.parent
A = "main"
KEY = "agent:main:main"
SID = "abc"


def cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return python_m(*args, cwd=cwd or REPO, env=env, timeout=60)


def ok(*args: str, **kwargs: Any) -> str:
    done = cli(*args, **kwargs)
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class Fixture:
    db: str
    user_id: str
    assistant_id: str
    tool_id: str
    branch_id: str
    user_time: str


@pytest.fixture
async def populated(tmp_path: Path) -> Fixture:
    db = tmp_path / "cli.sqlite"
    asking = {"role": "user", "content": [{"type": "text", "text": "first line\nsecond line"}]}
    calling = {
        "role": "assistant",
        "provider": "p",
        "model": "m",
        "content": [
            {"type": "text", "text": "let me read it"},
            {"type": "toolCall", "id": "c1", "name": "read", "arguments": {"path": "/etc/x"}},
        ],
    }
    result = {
        "role": "toolResult",
        "toolName": "read",
        "content": [{"type": "text", "text": "the file\nbody"}],
    }
    store = await Store.open(db)
    try:
        s, t = store.sessions, store.transcripts
        await s.patch(
            A,
            KEY,
            {
                "sessionId": SID,
                "updatedAt": 300,
                "label": "old",
                "model": "m1",
                "chatType": "direct",
            },
        )
        await s.patch(A, "agent:main:group", {"sessionId": "g", "updatedAt": 200, "label": "team"})
        await s.patch(A, "7", {"sessionId": "seven", "updatedAt": 100})
        await t.create(A, SID, cwd="/work", timestamp="2025-01-01T00:00:00.000Z")
        u = await t.append_message(A, SID, asking)
        a = await t.append_message(A, SID, calling)
        r = await t.append_message(A, SID, result)
        b = (
            await t.append(
                A,
                SID,
                [{"type": "message", "message": {"role": "user", "content": "try again"}}],
                parent_id=u.id,
            )
        )[0]
        await t.append_label(A, SID, u.id, "start")
        await t.create(A, "tools", cwd="/work")  # a linear transcript through a tool call
        await t.append(
            A, "tools", [{"type": "message", "message": m} for m in (asking, calling, result)]
        )
        user_time = (await t.entry(A, SID, u.id)).timestamp
    finally:
        await store.close()
    assert user_time is not None
    return Fixture(str(db), u.id, a.id, r.id, b.id, user_time.replace("T", " ")[:19])


# --- sessions --------------------------------------------------------------------------------


def test_sessions_patch_the_documented_example(populated: Fixture) -> None:
    out = ok(
        "sessions",
        "patch",
        "--db",
        populated.db,
        "--agent",
        "main",
        KEY,
        '{"label":"x","model":null}',
    )
    expected = {"sessionId": SID, "updatedAt": 300, "label": "x", "chatType": "direct"}
    assert out == jsjson.dumps(expected, indent=2) + "\n"
    assert ok("sessions", "get", "--db", populated.db, KEY) == out


def test_numbers_given_as_json_text_are_written_as_javascript_writes_them(
    populated: Fixture,
) -> None:
    # JSON.parse then JSON.stringify, as the gateway stores a new value: 1e21 -> 1e+21,
    # 1.0 -> 1, -0 -> 0, integers past 2**53 rounded to a double, 1e400 -> null.
    patch = '{"b":1e21,"c":1.0,"d":-0,"e":12345678901234567890,"f":1e400,"g":[1E5,0.10]}'
    ok("sessions", "patch", "--db", populated.db, KEY, patch)
    with sqlite3.connect(populated.db) as conn:
        (stored,) = conn.execute(
            "SELECT entry_json FROM session_entries WHERE session_key = ?", (KEY,)
        ).fetchone()
    assert '"b": 1e+21,' in stored
    assert '"c": 1,' in stored
    assert '"d": 0,' in stored
    assert '"e": 12345678901234567000,' in stored
    assert '"f": null,' in stored
    assert '"g": [\n      100000,\n      0.1\n    ]' in stored
    entry = '{"type":"custom","customType":"n","data":{"x":1e21,"y":2.50}}'
    ok("transcript", "append", "--db", populated.db, SID, entry)
    with sqlite3.connect(populated.db) as conn:
        (line,) = conn.execute(
            'SELECT line FROM transcript_lines WHERE line LIKE \'%"customType":"n"%\''
        ).fetchone()
    assert '"data":{"x":1e+21,"y":2.5}' in line


def test_sessions_patch_refuses_bad_json_with_exit_2(populated: Fixture) -> None:
    done = cli("sessions", "patch", "--db", populated.db, KEY, "{bad")
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        "store-sql: PATCH_JSON is not valid JSON: invalid JSON: Expecting property name "
        "enclosed in double quotes (line 1, column 2)\n",
    )
    done = cli("sessions", "patch", "--json", "--db", populated.db, KEY, "[1, 2]")
    assert (done.returncode, done.stdout) == (2, "")
    assert json.loads(done.stderr) == {
        "error": "InvalidEntryError",
        "message": 'PATCH_JSON must be a JSON object, e.g. \'{"label":"x"}\'',
    }


def test_sessions_patch_creating_an_entry_needs_the_required_fields(populated: Fixture) -> None:
    done = cli("sessions", "patch", "--db", populated.db, "agent:main:new", '{"label":"x"}')
    assert (done.returncode, done.stderr) == (
        2,
        "store-sql: session 'agent:main:new' of agent 'main': "
        "missing sessionId; missing updatedAt\n",
    )


def test_sessions_list_human_and_json(populated: Fixture) -> None:
    out = ok("sessions", "list", "--db", populated.db)
    lines = out.splitlines()
    assert lines[0].split() == [
        "key",
        "session_id",
        "updated_at",
        "label",
        "chat_type",
        "channel",
        "model",
    ]
    assert [line.split()[0] for line in lines[1:4]] == [KEY, "agent:main:group", "7"]
    assert lines[-1] == "(3 of 3 sessions of agent main)"
    data = json.loads(
        ok(
            "sessions",
            "list",
            "--json",
            "--db",
            populated.db,
            "--limit",
            "1",
            "--offset",
            "1",
            "--updated-before",
            "300",
        )
    )
    assert data["agent"] == "main"
    assert data["total"] == 2
    assert [(r["key"], r["session_id"], r["updated_at"], r["label"]) for r in data["sessions"]] == [
        ("7", "seven", 100, None)
    ]


def test_sessions_get_prints_the_entry_as_sessions_json_holds_it(populated: Fixture) -> None:
    assert ok("sessions", "get", "--db", populated.db, "7") == (
        '{\n  "sessionId": "seven",\n  "updatedAt": 100\n}\n'
    )
    done = cli("sessions", "get", "--db", populated.db, "agent:main:nope")
    assert (done.returncode, done.stderr) == (
        2,
        "store-sql: agent 'main' has no session 'agent:main:nope'\n",
    )


def test_sessions_delete(populated: Fixture) -> None:
    assert ok("sessions", "delete", "--db", populated.db, "7") == "deleted 7\n"
    done = cli("sessions", "delete", "--json", "--db", populated.db, "7")
    assert done.returncode == 1
    assert json.loads(done.stdout) == {
        "agent": "main",
        "key": "7",
        "deleted": False,
        "via": "local",
    }


def test_the_database_defaults_to_store_sql_db_or_the_working_directory(
    populated: Fixture, tmp_path: Path
) -> None:
    out = ok("sessions", "get", "7", env={"STORE_SQL_DB": populated.db})
    assert json.loads(out)["sessionId"] == "seven"
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "STORE_SQL_DB"}

    def run_here(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "store_sql", *args],
            cwd=workdir,
            env={**env, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    # A read of the default database that does not exist yet says so and creates nothing.
    done = run_here("sessions", "list", "--json")
    assert done.returncode == 2
    assert "no such database" in json.loads(done.stderr)["message"]
    assert not (workdir / "store.sqlite").exists()
    done = run_here("sessions", "patch", "k", '{"sessionId":"s","updatedAt":1}')
    assert done.returncode == 0, done.stderr
    done = run_here("sessions", "list", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["total"] == 1
    assert (workdir / "store.sqlite").exists()


# --- transcript ------------------------------------------------------------------------------


def test_transcript_show_renders_the_active_path(populated: Fixture) -> None:
    lines = ok("transcript", "show", "--db", populated.db, SID).splitlines()
    # the active path: root user message -> the branch "try again" -> the label
    assert lines[0].split()[2] == populated.user_id
    assert lines[0].endswith("user  first line")
    assert lines[1].strip() == "second line"
    assert lines[2].split()[2] == populated.branch_id
    assert lines[2].endswith("user  try again")
    assert lines[3].endswith(f"label  label {populated.user_id} = 'start'")
    assert len(lines) == 4
    assert lines[0].startswith(populated.user_time)


def test_transcript_show_folds_tool_calls_and_results(populated: Fixture) -> None:
    out = ok("transcript", "show", "--db", populated.db, "tools")
    assert "assistant  let me read it" in out
    assert "[tool call read: {'path': '/etc/x'}]" in out
    assert "toolResult  [tool result read: the file body]" in out


def test_transcript_show_json(populated: Fixture) -> None:
    data = json.loads(ok("transcript", "show", "--json", "--db", populated.db, SID))
    assert [e["id"] for e in data][:2] == [populated.user_id, populated.branch_id]
    assert data[1]["parentId"] == populated.user_id
    assert data[1]["role"] == "user"
    assert data[1]["pos"] == 4
    assert data[1]["kind"] == "entry"
    assert data[1]["damage"] is None
    assert json.loads(data[1]["line"])["message"]["content"] == "try again"


def test_transcript_tail(populated: Fixture) -> None:
    data = json.loads(ok("transcript", "tail", "--json", "-n", "2", "--db", populated.db, SID))
    assert [e["pos"] for e in data] == [4, 5]
    one = ok("transcript", "tail", "--max-bytes", "1", "--db", populated.db, SID).splitlines()
    assert len(one) == 1
    assert one[0].endswith(f"label  label {populated.user_id} = 'start'")


def test_transcript_tree_shows_branches_and_labels(populated: Fixture) -> None:
    p = populated
    out = ok("transcript", "tree", "--db", p.db, SID)
    assert out.splitlines() == [
        f"+ {p.user_id} user [start]",
        f"  - {p.assistant_id} assistant",
        f"    {p.tool_id} toolResult",
        f"  - {p.branch_id} user",
        f"    {out.splitlines()[-1].split()[0]} label",
    ]
    roots = json.loads(ok("transcript", "tree", "--json", "--db", p.db, SID))
    assert roots[0]["id"] == p.user_id
    assert roots[0]["label"] == "start"
    assert [c["id"] for c in roots[0]["children"]] == [p.assistant_id, p.branch_id]


def test_transcript_append(populated: Fixture) -> None:
    entry = '{"type":"message","message":{"role":"user","content":"hi","idempotencyKey":"k"}}'
    out = ok(
        "transcript", "append", "--db", populated.db, SID, "--parent", populated.tool_id, entry
    )
    assert out.startswith("appended ")
    assert out.endswith(" at line 7\n")
    new_id = out.split()[1]
    again = json.loads(ok("transcript", "append", "--json", "--db", populated.db, SID, entry))
    assert again == {
        "id": new_id,
        "pos": 6,
        "existed": True,
        "parent_id": populated.tool_id,
        "via": "local",
    }
    done = cli("transcript", "append", "--db", populated.db, "nope", '{"type":"custom"}')
    assert done.returncode == 2
    assert done.stderr == "store-sql: agent 'main' has no live transcript for session 'nope'\n"


def test_transcript_migrate_and_transcript_ids(populated: Fixture) -> None:
    with sqlite3.connect(populated.db) as conn:  # a v1 transcript, as an import stores it
        conn.execute(
            "INSERT INTO transcripts (agent_id, rel_dir, session_id, kind, file_name, "
            "version, created_at) VALUES ('main', 'agents/main/sessions', 'old', 'live', "
            "'old.jsonl', 1, '2025-01-01T00:00:00.000Z')"
        )
        tid = conn.execute("SELECT max(transcript_id) FROM transcripts").fetchone()[0]
        header = '{"type":"session","id":"old","timestamp":"2025-01-01T00:00:00.000Z","cwd":"/"}'
        entry = (
            '{"type":"message","timestamp":"2025-01-01T00:00:01.000Z",'
            '"message":{"role":"user","content":"v1"}}'
        )
        conn.execute(
            "INSERT INTO transcript_lines (transcript_id, pos, line, kind, entry_id, type, "
            "byte_size) VALUES (?, 0, ?, 'header', 'old', 'session', ?)",
            (tid, header, len(header)),
        )
        conn.execute(
            "INSERT INTO transcript_lines (transcript_id, pos, line, kind, type, role, "
            "byte_size) VALUES (?, 1, ?, 'entry', 'message', 'user', ?)",
            (tid, entry, len(entry)),
        )
        conn.execute(
            "UPDATE transcripts SET line_count = 2, entry_count = 1, leaf_pos = 1 "
            "WHERE transcript_id = ?",
            (tid,),
        )
    conn.close()
    done = cli("transcript", "append", "--db", populated.db, "old", '{"type":"custom"}')
    assert done.returncode == 2
    assert "migrate it to v3 first (store-sql transcript migrate)" in done.stderr
    out = ok("transcript", "migrate", "--db", populated.db, "old")
    assert out == f"migrated to v3 as transcript #{tid + 1}\n"
    new = json.loads(ok("transcript", "show", "--json", "--db", populated.db, "old"))
    assert json.loads(new[0]["line"])["parentId"] is None
    original = json.loads(ok("transcript", "show", "--json", "--db", populated.db, f"#{tid}"))
    # The original is kept as it was; reads show it as pi does (migrated in memory, with the
    # id the migration wrote).
    assert original[0]["line"] == new[0]["line"]
    assert json.loads(new[0]["line"])["id"] == "00000001"
    with sqlite3.connect(populated.db) as conn:
        stored = conn.execute(
            "SELECT line FROM transcript_lines WHERE transcript_id = ? AND pos = 1", (tid,)
        ).fetchone()[0]
    conn.close()
    assert stored == entry


# --- migrate ---------------------------------------------------------------------------------


def downgrade_to_base(db: Path) -> None:
    """What `alembic downgrade base` does (test_opening runs the real command): an older
    database, still ours, whose schema is gone."""
    from store_sql.engine.migrate import downgrade_to

    downgrade_to(db, "base")


def test_migrate_creates_reports_and_upgrades(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    assert ok("migrate", "--db", str(db)) == f"created {db}\n"
    assert ok("migrate", "--db", str(db)) == f"{db} is up to date\n"
    downgrade_to_base(db)
    report = json.loads(ok("migrate", "--json", "--db", str(db)))
    assert report["created"] is False
    assert report["upgraded_from"] == "base"
    assert report["backup"] is not None
    assert Path(report["backup"]).exists()
    with sqlite3.connect(db) as conn:
        assert (
            conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == head_revision()
        )


def test_migrate_refuses_a_foreign_file_untouched(tmp_path: Path) -> None:
    db = tmp_path / "foreign.sqlite"
    db.write_bytes(b"not a database")
    done = cli("migrate", "--db", str(db))
    assert done.returncode == 2
    assert done.stderr == f"store-sql: {db}: not a SQLite database (refusing to touch it)\n"
    assert db.read_bytes() == b"not a database"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.sqlite"]
