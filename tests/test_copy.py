"""`store-sql copy SRC DST`: a whole store into another, as a person runs it (real
subprocesses, real files, the test PostgreSQL server), compared by exporting both sides and
comparing every file's bytes with `==`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import command_line
import pytest
from conftest import claim_a_terminal

from store_sql import CopyFailedError, Store, copy_store, export_digests, import_path
from store_sql.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("STORE_SQL_SHARED", ROOT.parent / "shared"))
SAMPLE_STATE = SHARED / "corpus" / "sample-state"
PI_MONO = SHARED / "corpus" / "openclaw" / "pi-mono"

needs_corpus = pytest.mark.skipif(
    not SAMPLE_STATE.is_dir(), reason=f"corpus not found at {SAMPLE_STATE}"
)


def store_sql(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return command_line.store_sql(*args, cwd=cwd, timeout=300)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def exported(db: str | Path, out: Path, cwd: Path) -> dict[str, bytes]:
    done = store_sql("export", out, "--db", db, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return tree_bytes(out)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A SQLite store holding the corpus: two agents, pi's real transcripts, damaged lines."""
    if not SAMPLE_STATE.is_dir():
        pytest.skip(f"corpus not found at {SAMPLE_STATE}")
    db = tmp_path / "src.sqlite"
    for args in ((SAMPLE_STATE,), (PI_MONO, "--agent", "pi")):
        done = store_sql("import", *args, "--db", db, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    return db


def test_copy_sqlite_to_sqlite_verifies_and_leaves_the_source_as_it_was(
    source: Path, tmp_path: Path
) -> None:
    before = sha256(source)
    done = store_sql("copy", source, "dst.sqlite", "--json", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["verified"] is True
    assert report["differences"] == []
    assert report["files"] > 30
    assert report["rows"]["transcript_lines"] > 3000
    assert sha256(source) == before
    ours = exported(tmp_path / "dst.sqlite", tmp_path / "out-dst", tmp_path)
    theirs = exported(source, tmp_path / "out-src", tmp_path)
    assert sorted(ours) == sorted(theirs)
    for rel, data in theirs.items():
        assert ours[rel] == data, rel


def test_a_non_empty_destination_is_refused_unless_replace(source: Path, tmp_path: Path) -> None:
    assert store_sql("copy", source, "dst.sqlite", cwd=tmp_path).returncode == 0

    again = store_sql("copy", source, "dst.sqlite", cwd=tmp_path)
    assert again.returncode == 2
    message = again.stderr.decode()
    assert message.count("\n") == 1
    assert "Traceback" not in message
    assert "not empty" in message
    assert "--replace" in message

    replaced = store_sql("copy", source, "dst.sqlite", "--replace", "--json", cwd=tmp_path)
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads(replaced.stdout)["replaced"] is True


def test_a_missing_source_or_the_same_store_twice_is_one_line(tmp_path: Path) -> None:
    missing = store_sql("copy", "nothing.sqlite", "dst.sqlite", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.decode().count("\n") == 1
    assert not (tmp_path / "nothing.sqlite").exists()

    same = store_sql("copy", "dst.sqlite", "./dst.sqlite", cwd=tmp_path)
    assert same.returncode == 2
    assert "same store" in same.stderr.decode()


def test_a_terminal_gets_a_progress_bar(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: stderr claims to be a terminal."""
    terminal = claim_a_terminal(monkeypatch)

    assert main(["copy", str(source), str(tmp_path / "dst.sqlite")]) == 0

    drawn = terminal.getvalue()
    assert "\r[" in drawn
    assert "rows " in drawn
    assert "100.0%" in drawn
    assert drawn.endswith("\r\033[K")


@needs_corpus
async def test_copy_keeps_versions_and_what_only_the_store_knows(tmp_path: Path) -> None:
    """Rows are copied with their keys: superseded versions (history, not files) and API
    changes survive, and a copy into a copy's copy exports the same bytes."""
    state = tmp_path / "state"
    shutil.copytree(SAMPLE_STATE, state)
    async with await Store.open(tmp_path / "a.sqlite") as a:
        await import_path(a, state)
        live = next((state / "agents" / "main" / "sessions").glob("*.jsonl"))
        live.write_bytes(b"changed\n" + live.read_bytes())  # a new version on re-import
        await import_path(a, state)
        await a.sessions.patch("main", "agent:main:main", {"label": "copied"})
        async with await Store.open(tmp_path / "b.sqlite") as b:
            report = await copy_store(a, b)
            assert report.verified, report.differences

            def versions(conn: Any) -> list[tuple[int, int | None]]:
                return conn.execute(
                    "SELECT transcript_id, superseded_by FROM transcripts ORDER BY 1"
                ).fetchall()

            assert await b.read(versions) == await a.read(versions)
            assert sum(1 for _, newer in await b.read(versions) if newer is not None) == 1
            assert report.rows["transcripts"] == len(await a.read(versions))
            entry = await b.sessions.get("main", "agent:main:main")
            assert entry is not None
            assert entry["label"] == "copied"
            assert await export_digests(b) == await export_digests(a)
            with pytest.raises(CopyFailedError, match="not empty"):
                await copy_store(a, b)


def test_copy_round_trips_through_postgresql(source: Path, tmp_path: Path, pg_url: str) -> None:
    """SQLite -> PostgreSQL -> SQLite with the real command: each copy verifies, and the three
    stores export the same bytes."""
    before = sha256(source)
    to_pg = store_sql("copy", source, pg_url, "--json", cwd=tmp_path)
    assert to_pg.returncode == 0, to_pg.stderr
    assert json.loads(to_pg.stdout)["verified"] is True

    back = store_sql("copy", pg_url, "back.sqlite", "--json", cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    report = json.loads(back.stdout)
    assert report["verified"] is True
    assert report["rows"] == json.loads(to_pg.stdout)["rows"]

    assert sha256(source) == before
    theirs = exported(source, tmp_path / "out-src", tmp_path)
    for name, db in (("pg", pg_url), ("back", tmp_path / "back.sqlite")):
        ours = exported(db, tmp_path / f"out-{name}", tmp_path)
        assert sorted(ours) == sorted(theirs)
        for rel, data in theirs.items():
            assert ours[rel] == data, (name, rel)

    again = store_sql("copy", source, pg_url, cwd=tmp_path)
    assert again.returncode == 2
    assert "not empty" in again.stderr.decode()


def test_a_value_the_destination_cannot_hold_stops_the_copy_in_one_line(
    source: Path, tmp_path: Path, pg_url: str
) -> None:
    """SQLite's INTEGER column takes a float; PostgreSQL's bigint cannot: the copy stops,
    names the value, and says the destination holds part of the copy."""
    conn = sqlite3.connect(source)
    with conn:
        conn.execute("UPDATE transcripts SET version = 2.5 WHERE transcript_id = 3")
    conn.close()
    before = sha256(source)

    done = store_sql("copy", source, pg_url, cwd=tmp_path)

    assert done.returncode == 2
    message = done.stderr.decode()
    assert message.count("\n") == 1
    assert "Traceback" not in message
    assert "transcripts.version holds 2.5" in message
    assert "--replace" in message
    assert sha256(source) == before
