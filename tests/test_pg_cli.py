"""`--db postgresql://...` on the command line and on `store-sql serve`, in real processes.

The session commands give the same output on both backends; every command runs on
PostgreSQL, and one that did not would refuse the URL in one line before it ran, never
taking it for a path (no file appears); a password never shows. The PostgreSQL-only parts
(URL refusals, the server on a URL) are PostgreSQL's by nature; the rest runs on both
backends."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from command_line import python_m

from store_sql.cli.common import refuse_unported
from store_sql.cli.main import build_parser
from store_sql.errors import BackendNotSupportedError
from store_sql.service.discovery import Address
from store_sql.service.remote import ServiceClient

REPO = Path(__file__).resolve().parent.parent
STORE_SQL = Path(sys.executable).with_name("store-sql")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return python_m(*args, cwd=cwd)


def ok(*args: str, cwd: Path) -> str:
    done = cli(*args, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_session_commands_print_the_same_on_both_backends(
    backend_location: str | Path, tmp_path: Path
) -> None:
    db = str(backend_location)
    ok("migrate", "--db", db, cwd=tmp_path)
    entry = '{"sessionId": "s1", "updatedAt": 1700000000000, "label": "ü", "n": 1.5}'
    patched = ok("sessions", "patch", "agent:main:a", entry, "--db", db, cwd=tmp_path)
    assert patched == (
        '{\n  "sessionId": "s1",\n  "updatedAt": 1700000000000,\n  "label": "ü",\n  "n": 1.5\n}\n'
    )
    ok("sessions", "patch", "agent:main:b", '{"sessionId": "s2", "updatedAt": 5}', "--db", db,
       cwd=tmp_path)  # fmt: skip
    listed = json.loads(ok("sessions", "list", "--json", "--db", db, cwd=tmp_path))
    assert [s["key"] for s in listed["sessions"]] == ["agent:main:a", "agent:main:b"]
    got = ok("sessions", "get", "agent:main:a", "--db", db, cwd=tmp_path)
    assert got == patched
    ok("sessions", "delete", "agent:main:b", "--db", db, cwd=tmp_path)
    listed = json.loads(ok("sessions", "list", "--json", "--db", db, cwd=tmp_path))
    assert [s["key"] for s in listed["sessions"]] == ["agent:main:a"]


def _every_command() -> list[list[str]]:
    """Every leaf command of the parser that takes `--db`, with placeholder arguments its
    parser accepts (`copy` names its two stores as positional arguments instead)."""
    found: list[list[str]] = []

    def walk(parser: Any, words: list[str]) -> None:
        subs = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        if not subs:
            if not any("--db" in a.option_strings for a in parser._actions):
                return  # copy names its stores as arguments (tests/test_copy.py)
            positional = [
                "x"
                for a in parser._actions
                if not a.option_strings and a.nargs not in ("?", "*") and a.dest != "help"
            ]
            required = [
                word
                for a in parser._actions
                if a.option_strings and a.required
                for word in (a.option_strings[0], "x")
            ]
            found.append([*words, *positional, *required])
            return
        for name, child in subs[0].choices.items():
            walk(child, [*words, name])

    walk(build_parser(), [])
    return found


def _on_postgres(command: list[str]) -> bool:
    args = build_parser().parse_args([*command, "--db", "postgresql://x@/y"])
    return bool(getattr(args, "on_postgres", False))


def test_every_command_is_on_postgresql() -> None:
    assert [" ".join(c[:2]) for c in _every_command() if not _on_postgres(c)] == []


def _without_timing(said: str) -> str:
    """An import's report without its duration and the SQLite indexer's backlog line (on
    PostgreSQL the server indexes as lines are written)."""
    lines = [line for line in said.splitlines() if not line.startswith("full-text index:")]
    return re.sub(r", in [0-9.]+s$", "", "\n".join(lines), flags=re.MULTILINE)


SAMPLE = REPO / "samples" / "state"
SAMPLE_SESSION = "b19c5100-4b94-45e6-bd8c-ad7d7f3c7591"
SAMPLE_CHECKPOINT = "a9db3840-0e0a-43fd-a0ff-bcbca5e879ee"


def test_every_command_on_postgresql_prints_what_it_prints_on_sqlite(
    pg_url: str, tmp_path: Path
) -> None:
    """The sample state through import, reads, search, export and verify, once into a
    SQLite file and once into PostgreSQL: the same output, and the export byte for byte."""
    if not SAMPLE.is_dir():
        pytest.skip(f"the sample state is missing at {SAMPLE}")
    outputs: dict[str, list[str]] = {}
    for name, db in (("sqlite", str(tmp_path / "s.sqlite")), ("postgresql", pg_url)):
        out = tmp_path / f"export-{name}"
        said = [
            _without_timing(ok("import", str(SAMPLE), "--db", db, cwd=tmp_path)),
            ok("sessions", "list", "--db", db, cwd=tmp_path),
            ok("transcript", "show", SAMPLE_SESSION, "--db", db, cwd=tmp_path),
            ok("transcript", "tail", SAMPLE_SESSION, "--db", db, cwd=tmp_path),
            ok("transcript", "tree", SAMPLE_SESSION, "--db", db, cwd=tmp_path),
            ok("search", "hello", "--db", db, cwd=tmp_path),
            ok("sql", "SELECT count(*) AS n FROM transcript_lines", "--db", db, cwd=tmp_path),
            ok("verify", str(SAMPLE), "--db", db, cwd=tmp_path),
            ok("sessions", "cleanup", "--db", db, cwd=tmp_path),
            ok("checkpoints", "list", "agent:main:main", "--db", db, cwd=tmp_path),
            ok(
                "checkpoints",
                "show",
                "agent:main:main",
                SAMPLE_CHECKPOINT,
                "--snapshot",
                "--db",
                db,
                cwd=tmp_path,
            ),
        ]
        ok("export", str(out), "--db", db, cwd=tmp_path)
        ok("stats", "--db", db, cwd=tmp_path)
        # Each backend has its own checks (1 on SQLite older than 3.51.3: a warning).
        doctor = cli("doctor", "--db", db, cwd=tmp_path)
        assert doctor.returncode in (0, 1), doctor.stderr
        assert "Traceback" not in doctor.stderr
        outputs[name] = said
    snapshot = (
        SAMPLE
        / "agents/main/sessions"
        / (f"{SAMPLE_SESSION}.checkpoint.41b7d338-9616-499f-8203-2279f9aacbf8.jsonl")
    )
    assert outputs["sqlite"][-1].encode() == snapshot.read_bytes()
    assert outputs["postgresql"] == outputs["sqlite"]
    files = sorted(
        p.relative_to(tmp_path / "export-sqlite")
        for p in (tmp_path / "export-sqlite").rglob("*")
        if p.is_file()
    )
    assert files
    for rel in files:
        assert (tmp_path / "export-postgresql" / rel).read_bytes() == (
            tmp_path / "export-sqlite" / rel
        ).read_bytes(), rel


def test_a_command_not_on_postgresql_refuses_the_url_in_one_line(tmp_path: Path) -> None:
    """Every command is on PostgreSQL now; the refusal stays for one that is not (it runs
    before the command, so no file appears under the URL's name)."""
    url = "postgresql://me:s3cret@/nowhere?host=/nonexistent"
    with pytest.raises(BackendNotSupportedError) as refused:
        refuse_unported(argparse.Namespace(db=url, command_name="store-sql future"))
    message = str(refused.value)
    assert message.splitlines() == [message]
    assert "`store-sql future` is not on PostgreSQL yet" in message
    assert "s3cret" not in message
    refuse_unported(argparse.Namespace(db=url, command_name="x", on_postgres=True))
    refuse_unported(argparse.Namespace(db=str(tmp_path / "s.sqlite"), command_name="x"))
    assert list(tmp_path.iterdir()) == []


def test_ported_commands_name_the_url_with_its_password_masked(tmp_path: Path) -> None:
    url = "postgresql://me:s3cret@/nowhere?host=/nonexistent"
    for command in (["sessions", "list"], ["migrate"]):
        done = cli(*command, "--db", url, "--json", cwd=tmp_path)
        assert done.returncode == 2
        error = json.loads(done.stderr)
        assert error["error"] == "DatabaseRefusedError"
        assert "postgresql://me:***@/nowhere" in error["message"]
        assert "s3cret" not in done.stderr
        assert list(tmp_path.iterdir()) == []


def test_serve_on_a_url_answers_session_routes(pg_url: str, tmp_path: Path) -> None:
    ok("migrate", "--db", pg_url, cwd=tmp_path)
    sock = tmp_path / "s.sock"
    token_file = tmp_path / "token"
    refused = cli("serve", "--db", pg_url, "--socket", str(sock), cwd=tmp_path)
    assert refused.returncode == 2
    assert "needs --token-file" in refused.stderr
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(STORE_SQL),
                "serve",
                "--db",
                pg_url,
                "--socket",
                str(sock),
                "--token-file",
                str(token_file),
                "--json",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        deadline = time.monotonic() + 60
        while not log.read_text().strip() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        announced = json.loads(log.read_text().splitlines()[0])
        assert announced["db"] == pg_url
        client = ServiceClient(Address(str(sock), None, None), token_file.read_text().strip())
        put = client.request(
            "PATCH", "/v1/agents/main/sessions/k", {"patch": {"sessionId": "s", "updatedAt": 3}}
        )
        assert put.status == 200, put.body
        listed = client.request("GET", "/v1/agents/main/sessions")
        assert [s["key"] for s in listed.json()["sessions"]] == ["k"]
        stats = client.request("GET", "/v1/stats")
        assert stats.status == 200, stats.body
        assert (stats.json()["sessions"], stats.json()["dialect"]) == (1, "postgresql")
        searched = client.request("GET", "/v1/search?q=nothing+here")
        assert searched.status == 200, searched.body
        assert searched.json()["hits"] == []
        checkpoints = client.request("GET", "/v1/agents/main/sessions/k/checkpoints")
        assert checkpoints.status == 200, checkpoints.body
        assert checkpoints.json()["checkpoints"] == []
        assert not list(tmp_path.glob("*.serve"))  # no discovery file for a URL
    finally:
        proc.terminate()
        proc.wait(timeout=60)
