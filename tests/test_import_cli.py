"""`store-sql import|export|verify` as a person or a script runs them: real subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from command_line import store_sql
from conftest import claim_a_terminal

from store_sql import Store, import_path
from store_sql.cli.main import main

SID = "31ac7d57-f314-4633-a816-1ff578dde822"
BODY = (
    b'{"type":"session","version":3,"id":"' + SID.encode() + b'","timestamp":"t","cwd":"/w"}\n'
    b'{"type":"message","id":"a1","parentId":null,"timestamp":"t","message":{"role":"user"}}\n'
    b'{"type":"message","id":"a2","parentId":"a1","timest'
)
INDEX = (
    b'{\n  "agent:main:main": {\n    "sessionId": "'
    + SID.encode()
    + b'",\n    "updatedAt": 1\n  }\n}'
)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    folder = tmp_path / "state" / "agents" / "main" / "sessions"
    folder.mkdir(parents=True)
    (folder / "sessions.json").write_bytes(INDEX)
    (folder / f"{SID}.jsonl").write_bytes(BODY)
    (folder / f"{SID}.jsonl.lock").write_bytes(b"")
    return tmp_path / "state"


def test_import_json_report_then_export_and_verify(state: Path, tmp_path: Path) -> None:
    done = store_sql("import", state, "--db", "t.db", "--json", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stderr == b""  # no progress bar when stderr is not a terminal
    report = json.loads(done.stdout)
    assert report["ok"]
    assert report["totals"]["files"] == 2
    assert report["totals"]["damaged"] == 1
    [transcript] = [f for f in report["files"] if f["kind"] == "live"]
    assert transcript["damaged"] == [{"line": 3, "reason": "truncated JSON (torn line)"}]
    assert [Path(s["path"]).name for s in report["skipped"]] == [f"{SID}.jsonl.lock"]

    exported = store_sql("export", "out", "--db", "t.db", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    out = tmp_path / "out/agents/main/sessions"
    assert (out / f"{SID}.jsonl").read_bytes() == BODY
    assert (out / "sessions.json").read_bytes() == INDEX

    same = store_sql("verify", state, "--db", "t.db", cwd=tmp_path)
    assert same.returncode == 0, same.stdout
    assert b"identical" in same.stdout

    (state / "agents/main/sessions/sessions.json").write_bytes(INDEX.replace(b"1\n", b"2\n"))
    differs = store_sql("verify", state, "--db", "t.db", "--json", cwd=tmp_path)
    assert differs.returncode == 1
    [difference] = json.loads(differs.stdout)["differences"]
    assert difference == {
        "rel_path": "agents/main/sessions/sessions.json",
        "kind": "different",
        "first_differing_byte": INDEX.index(b"1\n"),
    }


def test_dry_run_then_one_session_to_stdout_or_a_file(state: Path, tmp_path: Path) -> None:
    dry = store_sql("import", state, "--db", "t.db", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert b"line 3: truncated JSON (torn line)" in dry.stdout
    assert b"would import 2 files" in dry.stdout
    assert store_sql("import", state, "--db", "t.db", cwd=tmp_path).returncode == 0

    jsonl = store_sql("export", "-", "--db", "t.db", "--session", "agent:main:main", cwd=tmp_path)
    markdown = store_sql(
        "export", "one.md", "--db", "t.db", "--session", SID, "--format", "markdown", cwd=tmp_path
    )

    assert jsonl.returncode == 0
    assert jsonl.stdout == BODY
    assert markdown.returncode == 0
    assert (tmp_path / "one.md").read_bytes().startswith(b"# main / ")


def test_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = store_sql("import", tmp_path / "nope", "--db", "t.db", cwd=tmp_path)
    no_db = store_sql("verify", tmp_path, "--db", "absent.db", cwd=tmp_path)

    for done in (missing, no_db):
        assert done.returncode == 2, done
        assert done.stderr.decode().startswith("store-sql: ")
        assert done.stderr.count(b"\n") == 1
    assert not (tmp_path / "absent.db").exists()


async def test_a_file_that_cannot_be_imported_makes_the_exit_status_1(
    state: Path, tmp_path: Path
) -> None:
    async with await Store.open(tmp_path / "t.db") as store:
        await import_path(store, state)
        await store.sessions.patch("main", "agent:main:main", {"label": "changed by the API"})
    (state / "agents/main/sessions/sessions.json").write_bytes(INDEX.replace(b"1\n", b"2\n"))

    done = store_sql("import", state, "--db", "t.db", cwd=tmp_path)

    assert done.returncode == 1
    assert b"error  agents/main/sessions/sessions.json" in done.stdout
    assert b"refusing to replace or merge" in done.stdout


def test_a_terminal_gets_a_progress_bar(
    state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process (a pty would cost another subprocess): stderr claims to be a terminal."""
    terminal = claim_a_terminal(monkeypatch)

    assert main(["import", str(state), "--db", str(tmp_path / "t.db")]) == 0

    drawn = terminal.getvalue()
    assert "\r[" in drawn
    assert "100.0%" in drawn
    assert drawn.endswith("\r\033[K")  # the bar is erased before the report is printed
