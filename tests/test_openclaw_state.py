"""Today's gateway state (docs/FORMATS.md §6), judged by the real OpenClaw 2026.9.6.

Each case is a legacy state dir migrated by `openclaw doctor --session-sqlite import` (the
oracle, tools/oracles/openclaw): the two legacy dirs of the shared corpus, read as data, and
state dirs written by tools/make_sample_state.py. On each: every session key of every
`session_nodes` is listed by `store-sql sessions list`; `store-sql export` writes every
transcript's events byte for byte; `--pre-migration` gives back the legacy input byte for
byte; OpenClaw re-imports store_sql's export with no new issue and the same counts; `verify`
finds the current state dir identical; their database is never written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zstandard
from inspection_data import ROOT, cli

ORACLE = ROOT / "tools" / "oracles" / "openclaw"
# The shared reference material sits next to the repo (a worktree is one level deeper).
CORPUS = next(
    (
        d / "shared" / "corpus" / "openclaw-2026.9"
        for d in (ROOT.parent, ROOT.parent.parent)
        if (d / "shared" / "corpus" / "openclaw-2026.9").is_dir()
    ),
    ROOT.parent / "shared" / "corpus" / "openclaw-2026.9",
)
DB = "agent/openclaw-agent.sqlite"
MIGRATE = (
    "doctor",
    "--session-sqlite",
    "import",
    "--session-sqlite-all-agents",
    "--non-interactive",
    "--yes",
    "--json",
)


def _oracle_available() -> str | None:
    done = subprocess.run(
        ["bash", str(ORACLE), "--install"], capture_output=True, text=True, check=False
    )
    if done.returncode == 3:
        return done.stderr.strip() or "the OpenClaw oracle cannot be installed here"
    assert done.returncode == 0, done.stderr
    return None


@pytest.fixture(scope="module")
def oracle() -> None:
    reason = _oracle_available()
    if reason is not None:
        pytest.skip(f"OpenClaw oracle unavailable: {reason}")


def openclaw(home: Path, *args: str) -> dict[str, Any]:
    """Run the real OpenClaw with HOME=home; its --json output."""
    env = {**os.environ, "HOME": str(home)}
    env.pop("OPENCLAW_STATE_DIR", None)
    done = subprocess.run(
        ["bash", str(ORACLE), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"openclaw {args}: {done.stderr[-2000:]}"
    value: dict[str, Any] = json.loads(done.stdout)
    return value


@dataclass(frozen=True)
class Case:
    name: str
    legacy: Path
    """The legacy state dir (never written)."""
    migrated: Path
    """The state dir after OpenClaw's migration (a scratch copy: tests copy it again)."""
    report: dict[str, Any]


def _migrate(name: str, legacy: Path, work: Path) -> Case:
    home = work / name
    shutil.copytree(legacy, home / ".openclaw", symlinks=True)
    report = openclaw(home, *MIGRATE)
    return Case(name, legacy, home / ".openclaw", report)


def _own_legacy(work: Path, seed: int) -> Path:
    out = work / f"legacy-{seed}"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "make_sample_state.py"),
            str(out),
            "--seed",
            str(seed),
        ],
        check=True,
        capture_output=True,
    )
    return out


CASE_NAMES = ["corpus-sample-state", "corpus-generated-31", "own-seed-7", "own-seed-2026"]


@pytest.fixture(scope="module")
def cases(oracle: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    work = tmp_path_factory.mktemp("openclaw-cases")
    found: dict[str, Case] = {}
    for corpus_case in ("sample-state", "generated-31"):
        legacy = CORPUS / corpus_case / "legacy-state"
        if legacy.is_dir():
            found[f"corpus-{corpus_case}"] = _migrate(f"corpus-{corpus_case}", legacy, work)
    for seed in (7, 2026):
        found[f"own-seed-{seed}"] = _migrate(f"own-seed-{seed}", _own_legacy(work, seed), work)
    return found


@pytest.fixture(params=CASE_NAMES)
def case(request: pytest.FixtureRequest, cases: dict[str, Case]) -> Case:
    name: str = request.param
    if name not in cases:
        pytest.skip(f"{name}: the shared corpus is not next to the repo ({CORPUS})")
    return cases[name]


def state_copy(case: Case, dest: Path) -> Path:
    """A copy of the migrated state dir (their databases are only ever read, but the tests
    never even open the oracle's own files)."""
    shutil.copytree(case.migrated, dest, symlinks=True)
    return dest


def databases(state: Path) -> dict[str, Path]:
    return {d.parent.parent.name: d for d in sorted(state.glob(f"agents/*/{DB}"))}


def read_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.text_factory = bytes
    return conn


def expected_transcripts(db: Path) -> dict[str, bytes]:
    """<sessionId>.jsonl -> the events of transcript_events in seq order, one per line."""
    conn = read_db(db)
    try:
        out: dict[str, list[bytes]] = {}
        for sid, event, packed in conn.execute(
            "SELECT session_id, event_json, event_zstd FROM transcript_events "
            "ORDER BY session_id, seq"
        ):
            if event is None:
                event = zstandard.ZstdDecompressor().decompress(packed)
            out.setdefault(sid.decode() + ".jsonl", []).append(event + b"\n")
        return {name: b"".join(lines) for name, lines in out.items()}
    finally:
        conn.close()


def session_keys(db: Path) -> list[str]:
    conn = read_db(db)
    try:
        return [row[0].decode() for row in conn.execute("SELECT session_key FROM session_nodes")]
    finally:
        conn.close()


def tree_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def digests(state: Path) -> dict[str, str]:
    """Every file of every agent's agent/ dir (database, -wal, -shm), by content."""
    return {
        str(p.relative_to(state)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(state.glob("agents/*/agent/*"))
        if p.is_file()
    }


def run(*args: str) -> dict[str, Any]:
    done = cli(*args, "--json")
    assert done.returncode == 0, done.stderr + done.stdout[-2000:]
    value: dict[str, Any] = json.loads(done.stdout)
    return value


# --- the "done means" points, on every case -------------------------------------------------


@dataclass(frozen=True)
class Imported:
    """One case imported twice (the second time changes nothing) and exported both ways."""

    state: Path
    store: str
    report: dict[str, Any]
    again: dict[str, Any]
    digests_before: dict[str, str]
    digests_after: dict[str, str]
    out: Path
    rollback: dict[str, Any]
    rollback_dir: Path


_IMPORTED: dict[str, Imported] = {}


@pytest.fixture
def imported(case: Case, tmp_path_factory: pytest.TempPathFactory) -> Imported:
    if case.name not in _IMPORTED:
        work = tmp_path_factory.mktemp(f"imported-{case.name}")
        state = state_copy(case, work / "state")
        store = str(work / "store.sqlite")
        before = digests(state)
        report = run("import", str(state), "--db", store)
        again = run("import", str(state), "--db", store)
        after = digests(state)
        run("export", str(work / "out"), "--db", store)
        rollback = run("export", str(work / "rollback"), "--db", store, "--pre-migration")
        _IMPORTED[case.name] = Imported(
            state, store, report, again, before, after, work / "out", rollback,
            work / "rollback",
        )  # fmt: skip
    return _IMPORTED[case.name]


def test_import_lists_every_session_and_exports_every_transcript_byte_for_byte(
    case: Case, imported: Imported
) -> None:
    assert imported.report["ok"]
    dbs = databases(imported.state)
    assert {d["agent"] for d in imported.report["databases"]} == set(dbs)
    for agent, db in dbs.items():
        listed = run(
            "sessions", "list", "--db", imported.store, "--agent", agent, "--limit", "100000"
        )
        keys = [s["key"] for s in listed["sessions"]]
        assert sorted(keys) == sorted(session_keys(db)), agent
    for agent, db in dbs.items():
        transcripts = expected_transcripts(db)
        for name, data in transcripts.items():
            exported = imported.out / "agents" / agent / "sessions" / name
            assert exported.read_bytes() == data, name
        # Every event the migration imported comes out.
        reported = next(t for t in case.report["targets"] if t["agentId"] == agent)
        lines = sum(data.count(b"\n") for data in transcripts.values())
        assert lines == reported["importedTranscriptEvents"]
    verified = run("verify", str(imported.state), "--db", imported.store)
    assert verified["identical"], verified["differences"]


def test_pre_migration_export_is_the_legacy_input_byte_for_byte(
    case: Case, imported: Imported
) -> None:
    assert not imported.rollback["conflicts"]
    assert tree_files(imported.rollback_dir) == tree_files(case.legacy)
    # What the archive lacked is exactly the sessions the migration found no transcript for.
    missing = {
        issue["sessionKey"]
        for target in case.report["targets"]
        for issue in target["issues"]
        if issue["code"] == "transcript_missing"
    }
    listed = {text.split("'")[1] for text in imported.rollback["not_in_archive"]}
    assert listed == missing


def test_pre_migration_names_come_back_without_the_run_manifests(
    case: Case, tmp_path: Path
) -> None:
    state = state_copy(case, tmp_path / "state")
    shutil.rmtree(state / "session-sqlite-migration-runs")
    store = str(tmp_path / "store.sqlite")
    run("import", str(state), "--db", store)
    out = tmp_path / "rollback"
    run("export", str(out), "--db", store, "--pre-migration")
    assert tree_files(out) == tree_files(case.legacy)


def test_the_same_import_and_exports_on_postgresql(
    case: Case, imported: Imported, tmp_path: Path, pg_url: str
) -> None:
    """The databases, transcripts and migration archive imported into PostgreSQL export the
    same files as from SQLite, and the same pre-migration files; a re-import reads nothing."""
    state = state_copy(case, tmp_path / "state")
    assert run("import", str(state), "--db", pg_url)["ok"]
    again = run("import", str(state), "--db", pg_url)
    assert {f["status"] for f in again["files"]} <= {"unchanged", "skipped"}
    run("export", str(tmp_path / "out"), "--db", pg_url)
    assert tree_files(tmp_path / "out") == tree_files(imported.out)
    rollback = run("export", str(tmp_path / "rollback"), "--db", pg_url, "--pre-migration")
    assert tree_files(tmp_path / "rollback") == tree_files(case.legacy)
    assert rollback["not_in_archive"] == imported.rollback["not_in_archive"]
    assert run("verify", str(state), "--db", pg_url)["identical"]


def test_openclaw_reimports_the_export_with_no_new_issue_and_the_same_counts(
    case: Case, imported: Imported, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(imported.out, home / ".openclaw")
    again = openclaw(home, *MIGRATE)
    before = {t["agentId"]: t for t in case.report["targets"]}
    assert {t["agentId"] for t in again["targets"]} == set(before)
    for target in again["targets"]:
        first = before[target["agentId"]]
        assert target["importedEntries"] == first["sqliteEntries"]
        assert target["importedTranscriptEvents"] == first["importedTranscriptEvents"]
    # Damaged transcripts were cut to their readable prefix by the first migration, and a
    # session without a transcript no longer names a file: the export holds nothing to fix.
    assert again["totals"]["issues"] == 0, [t["issues"] for t in again["targets"]]


def test_import_never_writes_their_database_and_a_second_import_reads_nothing(
    imported: Imported,
) -> None:
    # A stopped gateway leaves no -wal/-shm; a reader of a WAL database creates them, as
    # any SQLite reader does. The database itself is never changed.
    before, after = imported.digests_before, imported.digests_after
    for name, digest in before.items():
        assert after[name] == digest, name
    empty = hashlib.sha256(b"").hexdigest()
    for name in after.keys() - before.keys():
        assert (name.endswith("-wal") and after[name] == empty) or name.endswith("-shm"), name
    statuses = {f["status"] for f in imported.again["files"]}
    assert statuses == {"unchanged"}
    assert imported.again["totals"]["lines"] == 0


# --- one state dir, changed the way the gateway changes it -----------------------------------


@pytest.fixture
def live_state(cases: dict[str, Case], tmp_path: Path) -> Path:
    return state_copy(cases["own-seed-7"], tmp_path / "state")


def gateway(db: Path) -> sqlite3.Connection:
    """A writer standing in for the gateway (on the test's copy of its database)."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA ignore_check_constraints = 1")
    return conn


def append_events(db: Path, session_id: str, events: list[bytes], created_at: int) -> None:
    conn = gateway(db)
    try:
        (last,) = conn.execute(
            "SELECT max(seq) FROM transcript_events WHERE session_id = ?", (session_id,)
        ).fetchone()
        conn.executemany(
            "INSERT INTO transcript_events (session_id, seq, event_json, created_at) "
            "VALUES (?, ?, ?, ?)",
            [(session_id, last + 1 + i, e.decode(), created_at) for i, e in enumerate(events)],
        )
    finally:
        conn.close()


def a_session(db: Path) -> str:
    conn = read_db(db)
    try:
        row = conn.execute(
            "SELECT session_id FROM transcript_events GROUP BY session_id "
            "ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
        return str(row[0].decode())
    finally:
        conn.close()


def file_record(report: dict[str, Any], name: str) -> dict[str, Any]:
    (record,) = [f for f in report["files"] if f["rel_path"].endswith("/" + name)]
    return record


def test_reimport_reads_only_new_events_and_a_rewrite_becomes_a_new_version(
    live_state: Path, tmp_path: Path
) -> None:
    db = live_state / "agents" / "main" / DB
    store = str(tmp_path / "store.sqlite")
    run("import", str(live_state), "--db", store)
    sid = a_session(db)
    last = expected_transcripts(db)[f"{sid}.jsonl"].splitlines()[-1]
    leaf = json.loads(last)["id"]
    new = [
        json.dumps(
            {"type": "message", "id": f"e000000{i}",
             "parentId": leaf if i == 0 else f"e000000{i - 1}",
             "timestamp": "2026-12-07T10:00:00.000Z",
             "message": {"role": "user", "content": f"more {i}"}},
            separators=(",", ":"),
        ).encode()
        for i in range(3)
    ]  # fmt: skip
    append_events(db, sid, new, 1_796_000_000_000)
    report = run("import", str(live_state), "--db", store)
    record = file_record(report, f"{sid}.jsonl")
    assert (record["status"], record["lines"]) == ("appended", 3)
    others = [f for f in report["files"] if f["kind"] == "live" and f is not record]
    assert {f["status"] for f in others} == {"unchanged"}
    out = tmp_path / "out"
    run("export", str(out), "--db", store)
    exported = (out / "agents" / "main" / "sessions" / f"{sid}.jsonl").read_bytes()
    assert exported == expected_transcripts(db)[f"{sid}.jsonl"]
    assert exported.endswith(new[-1] + b"\n")

    # A compaction rewrites the transcript: every row is deleted and written again, stamped
    # with the time of the rewrite (OpenClaw's replaceSqliteSessionTranscriptEvents).
    conn = gateway(db)
    try:
        rows = conn.execute(
            "SELECT event_json FROM transcript_events WHERE session_id = ? ORDER BY seq", (sid,)
        ).fetchall()
        conn.execute("DELETE FROM transcript_events WHERE session_id = ?", (sid,))
        kept = [rows[0][0], *(r[0] for r in rows[-4:])]
        conn.executemany(
            "INSERT INTO transcript_events (session_id, seq, event_json, created_at) "
            "VALUES (?, ?, ?, ?)",
            [(sid, seq, text, 1_796_100_000_000) for seq, text in enumerate(kept)],
        )
    finally:
        conn.close()
    report = run("import", str(live_state), "--db", store)
    record = file_record(report, f"{sid}.jsonl")
    assert record["status"] == "new_version"
    assert "rewrote" in record["message"]
    run("export", str(tmp_path / "out2"), "--db", store)
    exported = (tmp_path / "out2" / "agents" / "main" / "sessions" / f"{sid}.jsonl").read_bytes()
    assert exported == expected_transcripts(db)[f"{sid}.jsonl"]
    history = run("sql", "--db", store, "SELECT count(*) AS n FROM transcripts WHERE "
                  f"file_name = '{sid}.jsonl'")  # fmt: skip
    assert history["rows"][0]["n"] == 2


def test_a_write_in_progress_is_not_seen_and_does_not_block_the_import(
    live_state: Path, tmp_path: Path
) -> None:
    db = live_state / "agents" / "main" / DB
    sid = a_session(db)
    before = expected_transcripts(db)
    writer = gateway(db)
    try:
        writer.execute("PRAGMA journal_mode = WAL")
        writer.execute("BEGIN IMMEDIATE")
        writer.execute(
            "INSERT INTO transcript_events (session_id, seq, event_json, created_at) "
            'VALUES (?, 100000, \'{"type":"custom","id":"ffff0000"}\', 1)',
            (sid,),
        )
        store = str(tmp_path / "store.sqlite")
        report = run("import", str(live_state), "--db", store)
        assert report["ok"]
        run("export", str(tmp_path / "out"), "--db", store)
        exported = tmp_path / "out" / "agents" / "main" / "sessions" / f"{sid}.jsonl"
        assert exported.read_bytes() == before[f"{sid}.jsonl"]
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_an_unknown_schema_version_is_refused_with_both_versions(
    live_state: Path, tmp_path: Path
) -> None:
    db = live_state / "agents" / "ops" / DB
    conn = gateway(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    done = cli("import", str(live_state), "--db", str(tmp_path / "store.sqlite"), "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    (ops,) = [d for d in report["databases"] if d["agent"] == "ops"]
    assert ops["status"] == "error"
    assert "version 99" in ops["message"]
    assert "knows 23" in ops["message"]
    (main,) = [d for d in report["databases"] if d["agent"] == "main"]
    assert main["status"] == "read"
    human = cli("import", str(live_state), "--db", str(tmp_path / "store2.sqlite"))
    assert "version 99" in human.stdout
    assert "Traceback" not in human.stderr


def test_compressed_events_archives_and_cold_storage_come_out_byte_for_byte(
    live_state: Path, tmp_path: Path
) -> None:
    db = live_state / "agents" / "main" / DB
    expected = expected_transcripts(db)
    sids = sorted(name.removesuffix(".jsonl") for name in expected)
    zipped, cold, archived, cold_file = sids[0], sids[1], sids[2], sids[3]
    cctx = zstandard.ZstdCompressor()
    conn = gateway(db)
    try:
        # Compressed events: event_json NULL, event_zstd the event's zstd frame.
        navigation = json.dumps(
            {"version": 1, "report": {}, "navigation": {}, "reset": {}, "model": {},
             "modelBytes": 0, "modelWithoutCheckpointBytes": 0, "withoutCustomDataBytes": 0}
        )  # fmt: skip
        for seq, text in conn.execute(
            "SELECT seq, event_json FROM transcript_events WHERE session_id = ?", (zipped,)
        ).fetchall():
            raw = text.encode()
            conn.execute(
                "UPDATE transcript_events SET event_json = NULL, event_zstd = ?, "
                "event_utf8_bytes = ?, navigation_json = ? WHERE session_id = ? AND seq = ?",
                (cctx.compress(raw), len(raw), navigation, zipped, seq),
            )
        # Cold storage: the events move into a zstd archive of records, kept in the database
        # or as a file in the sessions dir's cold/.
        for sid, storage in ((cold, "sqlite"), (cold_file, "file")):
            rows = conn.execute(
                "SELECT seq, event_json, created_at FROM transcript_events "
                "WHERE session_id = ? ORDER BY seq",
                (sid,),
            ).fetchall()
            records = [{"kind": "header", "version": 1, "sessionId": sid, "generation": "g1"}]
            records += [
                {"kind": "event", "row": {"seq": s, "event_json": t, "created_at": c}}
                for s, t, c in reversed(rows)
            ]
            blob = cctx.compress(b"".join(json.dumps(r).encode() + b"\n" for r in records))
            digest = hashlib.sha256(blob).hexdigest()
            if storage == "file":
                cold_dir = live_state / "agents" / "main" / "sessions" / "cold"
                cold_dir.mkdir(exist_ok=True)
                (cold_dir / f"{digest}.jsonl.zst").write_bytes(blob)
            conn.execute("DELETE FROM transcript_events WHERE session_id = ?", (sid,))
            conn.execute(
                "INSERT INTO session_transcript_cold_archives (session_id, generation, "
                "archive_name, archive_sha256, event_count, raw_bytes, archive_bytes, last_seq, "
                "archived_at, storage, archive_blob) VALUES (?, 'g1', ?, ?, ?, 0, ?, ?, 1, ?, ?)",
                (sid, f"{digest}.jsonl.zst", digest, len(rows), len(blob), rows[-1][0], storage,
                 blob if storage == "sqlite" else None),
            )  # fmt: skip
        # Archives of a reset: one plain, one compressed and named .zst.
        reset_bytes = expected[f"{archived}.jsonl"]
        for name, encoding, blob in (
            (f"{archived}.jsonl.reset.2026-12-01T10-00-00.000Z", "identity", reset_bytes),
            (f"{archived}.jsonl.deleted.2026-12-02T10-00-00.000Z.zst", "zstd",
             cctx.compress(reset_bytes)),
        ):  # fmt: skip
            conn.execute(
                "INSERT INTO session_transcript_archives (session_id, generation, session_key, "
                "reason, encoding, archive_blob, archive_sha256, archive_name, created_at) "
                "VALUES (?, ?, 'agent:main:x', ?, ?, ?, ?, ?, 1)",
                (archived, name, "reset" if ".reset." in name else "deleted", encoding, blob,
                 hashlib.sha256(blob).hexdigest(), name),
            )  # fmt: skip
    finally:
        conn.close()
    store = str(tmp_path / "store.sqlite")
    report = run("import", str(live_state), "--db", store)
    (main,) = [d for d in report["databases"] if d["agent"] == "main"]
    assert (main["archives"], main["cold_archives"]) == (2, 2)
    out = tmp_path / "out" / "agents" / "main" / "sessions"
    run("export", str(tmp_path / "out"), "--db", store)
    assert (out / f"{zipped}.jsonl").read_bytes() == expected[f"{zipped}.jsonl"]
    assert (out / f"{cold}.jsonl").read_bytes() == expected[f"{cold}.jsonl"]
    assert (out / f"{cold_file}.jsonl").read_bytes() == expected[f"{cold_file}.jsonl"]
    reset = out / f"{archived}.jsonl.reset.2026-12-01T10-00-00.000Z"
    assert reset.read_bytes() == reset_bytes
    deleted = out / f"{archived}.jsonl.deleted.2026-12-02T10-00-00.000Z.zst"
    assert zstandard.ZstdDecompressor().decompress(deleted.read_bytes()) == reset_bytes
    again = run("import", str(live_state), "--db", store)
    assert all(f["status"] == "unchanged" for f in again["files"]), [
        (f["rel_path"], f["status"]) for f in again["files"] if f["status"] != "unchanged"
    ]
    assert run("verify", str(live_state), "--db", store)["identical"]


def test_a_store_of_the_legacy_files_moves_on_to_the_migrated_state(
    cases: dict[str, Case], tmp_path: Path
) -> None:
    case = cases["own-seed-7"]
    store = str(tmp_path / "store.sqlite")
    run("import", str(case.legacy), "--db", store)
    state = state_copy(case, tmp_path / "state")
    report = run("import", str(state), "--db", store)
    assert report["ok"]
    damaged = {
        Path(issue["message"].split(":")[0]).name
        for target in case.report["targets"]
        for issue in target["issues"]
        if issue["code"] == "transcript_malformed"
    }
    lives = {Path(f["rel_path"]).name: f for f in report["files"] if f["kind"] == "live"}
    for name in damaged:
        # OpenClaw kept only the readable prefix: another transcript than the file stored.
        assert lives[name]["status"] == "new_version"
    # A clean file OpenClaw stored line for line is the same transcript: nothing is read.
    assert "unchanged" in {f["status"] for f in lives.values()}
    out = tmp_path / "out"
    run("export", str(out), "--db", store)
    for agent, db in databases(state).items():
        for name, data in expected_transcripts(db).items():
            assert (out / "agents" / agent / "sessions" / name).read_bytes() == data, name
