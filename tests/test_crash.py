"""Crash safety: a real process is SIGKILLed at random moments; nothing acknowledged is lost.

docs/GUARANTEES.md "Crashes" is the promise tested here:
- every write whose `await` returned is in the database after a process kill;
- one mutation (`store.write(fn)`) is all-or-nothing: three entries and an index change
  written together are all there or none is;
- the file passes `PRAGMA integrity_check`, every transcript's parent chain, counters and
  leaf agree with its lines;
- an import killed midway left its sources untouched, holds only whole prefixes of them, and
  re-running it completes the import with an export byte-identical to the sources;
- a v1 -> v3 transcript migration killed midway left either the v1 transcript untouched or
  the complete v3 version, never a part; creating a new database leaves none or a whole one.

Default run: a handful of kills of each kind; `--long` (docs/TESTING.md): 200+ writer kills.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from store_sql import Store, import_path
from store_sql.engine.migrate import head_revision

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import crash_child  # noqa: E402
from crash_child import Child  # noqa: E402

STORE_SQL = Path(sys.executable).with_name("store-sql")
SEED = int(os.environ.get("STORE_SQL_CRASH_SEED", "0")) or random.SystemRandom().randrange(1 << 30)


@pytest.fixture
def rng() -> random.Random:
    """A seeded RNG; the seed is printed so a failing run can be replayed
    (STORE_SQL_CRASH_SEED=<seed>)."""
    print(f"crash seed {SEED}")
    return random.Random(SEED)


# --- the writer: acknowledged operations -----------------------------------------------------


@dataclass
class Killed:
    lines: list[str]
    """Complete lines the child printed (a line cut by the kill is dropped)."""
    before_ready: bool


@dataclass
class Acks:
    """Everything the children acknowledged, over every run."""

    appended: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (sid, id)
    combined: dict[str, tuple[str, list[str], int]] = field(default_factory=dict)
    increments: dict[str, list[int]] = field(default_factory=lambda: collections.defaultdict(list))
    touches: dict[str, int] = field(default_factory=dict)
    count: int = 0

    def add(self, line: str) -> None:
        parts = line.split(" ")
        kind = parts[0]
        if kind in ("OPENING", "READY"):
            return
        self.count += 1
        if kind == "A":
            self.appended[parts[2]] = (parts[1], parts[3])
        elif kind == "C":
            self.combined[parts[2]] = (parts[1], parts[3].split(","), int(parts[4]))
        elif kind == "I":
            self.increments[parts[1]].append(int(parts[2]))
        elif kind == "T":
            self.touches[parts[1]] = max(self.touches.get(parts[1], 0), int(parts[2]))
        else:
            raise AssertionError(f"unexpected line from the child: {line!r}")


def run_writer_and_kill(db: Path, run: int, rng: random.Random, tmp: Path) -> Killed:
    child = Child(
        ["writer", str(db), f"r{run}", str(rng.randrange(1 << 30))],
        tmp / f"writer-{run}.err",
    )
    before_ready = rng.random() < 0.2
    if before_ready:
        # Inside start-up: Python imports, Store.open (creating the database on the first
        # run, WAL recovery on the others), the setup mutation.
        time.sleep(rng.uniform(0.0, 0.7))
    else:
        if not child.wait_for(lambda line: line == "READY"):
            child.finish()  # raises, showing the child's stderr
            raise AssertionError("the child ended before READY")
        time.sleep(rng.uniform(0.0, 0.4))
    return Killed(child.kill(), before_ready)


def read_only(db: Path) -> sqlite3.Connection:
    """What another process sees: a plain read-only connection (no checkpoint, no recovery
    beyond what SQLite itself does on open)."""
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)


def check_integrity(conn: sqlite3.Connection) -> None:
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    # The background indexer's state after a kill: every index row belongs to a stored
    # entry at or below the mark (an indexing step commits whole or not at all). A
    # database killed before its schema was created has no such state.
    has_state = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE name = 'search_index_state'"
    ).fetchone()[0]
    if not has_state:
        return
    mark = conn.execute("SELECT indexed_upto FROM search_index_state").fetchone()[0]
    has_text_view = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE name = 'entry_search_text'"
    ).fetchone()[0]
    if not has_text_view:
        # Revisions before the external-content index keep the text in the index itself:
        # no row may stand above the mark.
        above = conn.execute(
            "SELECT count(*) FROM entry_text_fts WHERE rowid > ?", (mark,)
        ).fetchone()[0]
        assert above == 0
        return
    # The index keeps no text: a line is in it when a MATCH on its own text's trigrams finds
    # it. Lines above the mark must not be; lines at or below it must.
    from store_sql.search.terms import trigram_match

    for line_pk, text in conn.execute("SELECT line_pk, text FROM entry_search_text"):
        match = trigram_match(text)
        if match is None:
            continue
        found = conn.execute(
            "SELECT count(*) FROM entry_text_fts WHERE entry_text_fts MATCH ? AND rowid = ?",
            (match, line_pk),
        ).fetchone()[0]
        assert found == (line_pk <= mark), (line_pk, mark, text)


def check_transcript_shape(conn: sqlite3.Connection, transcript_id: int) -> list[tuple[Any, ...]]:
    """Counters, leaf and the parent chain of a transcript agree with its lines; returns
    its entry rows (pos, entry_id, idempotency_key)."""
    info = conn.execute(
        "SELECT line_count, entry_count, byte_size, leaf_pos, leaf_id, ends_with_newline "
        "FROM transcripts WHERE transcript_id = ?",
        (transcript_id,),
    ).fetchone()
    rows = conn.execute(
        "SELECT pos, kind, entry_id, parent_id, parent_pos, idempotency_key, byte_size, "
        "length(CAST(line AS BLOB)), json_extract(line, '$.id'), json_extract(line, '$.parentId') "
        "FROM transcript_lines WHERE transcript_id = ? ORDER BY pos",
        (transcript_id,),
    ).fetchall()
    line_count, entry_count, byte_size, leaf_pos, leaf_id, ends_with_newline = info
    assert [r[0] for r in rows] == list(range(len(rows))), "positions are not contiguous"
    assert line_count == len(rows)
    entries = [r for r in rows if r[1] == "entry"]
    assert entry_count == len(entries)
    assert all(r[6] == r[7] for r in rows), "byte_size differs from the stored line"
    assert byte_size == sum(r[6] + 1 for r in rows) - (0 if ends_with_newline else 1)
    assert rows[0][1] == "header"
    previous: tuple[Any, ...] | None = None
    for r in entries:
        assert (r[8], r[9]) == (r[2], r[3]), f"columns disagree with the line at pos {r[0]}"
        if previous is None:
            assert (r[3], r[4]) == (None, None), "the first entry is not a root"
        else:
            assert (r[3], r[4]) == (previous[2], previous[0]), f"broken chain at pos {r[0]}"
        previous = r
    if previous is None:
        assert (leaf_pos, leaf_id) == (None, None)
    else:
        assert (leaf_pos, leaf_id) == (previous[0], previous[2]), "leaf is not the last entry"
    return [(r[0], r[2], r[5]) for r in entries]


def verify_writer_db(conn: sqlite3.Connection, acks: Acks) -> dict[str, int]:
    check_integrity(conn)
    conn.execute("BEGIN")  # one snapshot for everything below
    try:
        entries_seen = 0
        index = {
            key: json.loads(text)
            for key, text in conn.execute(
                "SELECT session_key, entry_json FROM session_entries WHERE agent_id = 'main'"
            )
        }
        for sid in crash_child.SESSIONS:
            tid = conn.execute(
                "SELECT transcript_id FROM transcripts WHERE agent_id = 'main' "
                "AND session_id = ? AND kind = 'live' AND superseded_by IS NULL",
                (sid,),
            ).fetchall()
            if not tid:
                continue  # the first run was killed before its setup committed
            assert len(tid) == 1
            entries = check_transcript_shape(conn, tid[0][0])
            entries_seen += len(entries)
            keys = collections.Counter(key for _, _, key in entries)
            assert not [k for k, n in keys.items() if n > 1], "an idempotency key twice"
            by_key = {key: (pos, entry_id) for pos, entry_id, key in entries}
            for key, (asid, entry_id) in acks.appended.items():
                if asid == sid:
                    assert by_key.get(key, (0, None))[1] == entry_id, f"lost append {key}"
            # Combined mutations: all three entries, consecutive and chained, or none.
            groups = sorted((by_key[k][0], k.rsplit(".", 1)[0]) for k in by_key if k.endswith(".0"))
            for pos, group in groups:
                got = [by_key.get(f"{group}.{i}") for i in range(3)]
                assert None not in got, f"combined write {group} half-applied: {got}"
                assert [g[0] for g in got if g] == [pos, pos + 1, pos + 2]
            for key in by_key:
                if key.endswith((".1", ".2")):
                    assert f"{key[:-2]}.0" in by_key, f"combined write {key} half-applied"
            entry = index[crash_child.session_key(sid)]
            assert entry["combined"] == len(groups), "index and transcript disagree"
            if groups:
                assert entry["lastCombined"] == by_key[f"{groups[-1][1]}.2"][1]
            for key, (csid, ids, count) in acks.combined.items():
                if csid == sid:
                    assert [by_key.get(f"{key}.{i}", (0, None))[1] for i in range(3)] == ids
                    assert count <= entry["combined"]
        for key, values in acks.increments.items():
            assert len(set(values)) == len(values), f"{key}: an increment was lost and redone"
            assert index[key]["n"] >= max(values), f"{key}: acknowledged increment lost"
        for key, value in acks.touches.items():
            assert index[key]["updatedAt"] >= value, f"{key}: acknowledged touch lost"
        return {"entries": entries_seen}
    finally:
        conn.execute("COMMIT")


def writer_kills(tmp_path: Path, rng: random.Random, kills: int) -> None:
    db = tmp_path / "crash.sqlite"
    acks = Acks()
    started = time.monotonic()
    max_wal = 0
    created = False
    in_start_up = 0
    for run in range(kills):
        killed = run_writer_and_kill(db, run, rng, tmp_path)
        in_start_up += killed.before_ready
        for line in killed.lines:
            acks.add(line)
        if not db.exists():
            # Killed before the first run created it: then nothing can have been acknowledged.
            assert not created, "the database vanished"
            assert not acks.count
            continue
        created = True
        max_wal = max(max_wal, _size(Path(f"{db}-wal")))
        conn = read_only(db)
        try:
            stats = verify_writer_db(conn, acks)
        finally:
            conn.close()
    # Finally through the library: Store.open on the crashed file, the same checks, close.
    final = asyncio.run(_final_open(db))
    conn = read_only(db)
    try:
        stats = verify_writer_db(conn, acks)
    finally:
        conn.close()
    print(
        f"{kills} kills ({in_start_up} during start-up) in {time.monotonic() - started:.1f}s: "
        f"{acks.count} acknowledged operations, {stats['entries']} entries, all present; "
        f"max WAL after a kill {max_wal} bytes; {final}"
    )
    assert acks.count > 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


async def _final_open(db: Path) -> str:
    store = await Store.open(db)
    try:
        assert store.open_report.upgraded_from is None
        check = await store.read(lambda c: c.execute("PRAGMA quick_check").fetchall())
        assert check == [("ok",)]
        info = await store.transcripts.info("main", "s0")
        leaf = await store.transcripts.leaf("main", "s0")
        assert leaf is not None
        assert (leaf.pos, leaf.id) == (info.leaf_pos, info.leaf_id)
        return f"reopened with Store.open: leaf of s0 at line {info.leaf_pos}"
    finally:
        await store.close()


def test_sigkill_during_writes_loses_no_acknowledged_write(
    tmp_path: Path, rng: random.Random
) -> None:
    writer_kills(tmp_path, rng, kills=5)


@pytest.mark.slow
def test_sigkill_during_writes_200_times(tmp_path: Path, rng: random.Random) -> None:
    writer_kills(tmp_path, rng, kills=int(os.environ.get("STORE_SQL_CRASH_KILLS", "200")))


# --- creating a database ---------------------------------------------------------------------


def test_sigkill_while_creating_a_database_leaves_none_or_a_whole_one(
    tmp_path: Path, rng: random.Random
) -> None:
    outcomes: collections.Counter[str] = collections.Counter()
    for n in range(4):
        db = tmp_path / f"new-{n}.sqlite"
        child = Child(["writer", str(db), "c", "1"], tmp_path / f"create-{n}.err")
        assert child.wait_for(lambda line: line == "OPENING")
        # Opening a new path (schema built by Alembic, then READY) takes about 0.6-0.8 s.
        time.sleep(rng.uniform(0.0, 0.6))
        child.kill()
        if db.exists():
            conn = read_only(db)
            try:
                check_integrity(conn)
                revision = conn.execute("SELECT version_num FROM alembic_version").fetchall()
                assert revision == [(head_revision(),)], "a half-built database was left"
            finally:
                conn.close()
        outcomes["complete" if db.exists() else "absent"] += 1
        asyncio.run(_reopen_and_write(db))
        leftovers = [p.name for p in tmp_path.glob(f".{db.name}.creating-*")]
        assert not leftovers, f"temporary files of the killed creation remain: {leftovers}"
    print(f"database creation killed: {dict(outcomes)}")


async def _reopen_and_write(db: Path) -> None:
    async with await Store.open(db) as store:
        await store.sessions.patch("main", "after-crash", {"sessionId": "x", "updatedAt": 1})
        assert (await store.sessions.get("main", "after-crash")) is not None


# --- import ----------------------------------------------------------------------------------


def _line(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def make_state_dir(root: Path, big_bytes: int) -> dict[str, bytes]:
    """An OpenClaw state dir with two agents, two transcripts larger than an import chunk
    (4 MB), small ones, damaged lines, a CRLF file and one without a final newline."""
    rng = random.Random(7)
    files: dict[str, bytes] = {}
    for agent, sizes in (("main", [big_bytes, big_bytes // 2, 20_000, 3_000]), ("ops", [9_000])):
        index: dict[str, Any] = {}
        for n, size in enumerate(sizes):
            sid = f"{agent}-{n:04d}-0000-4000-8000-000000000000"
            lines = [
                _line({"type": "session", "version": 3, "id": sid,
                       "timestamp": "2026-01-02T03:04:05.678Z", "cwd": "/work/é"})
            ]  # fmt: skip
            parent, total, i = None, 0, 0
            while total < size:
                eid = f"{rng.getrandbits(32):08x}"
                text = " ".join(rng.choice(("alpha", "βeta", "gamma", "0.000009", "日本")) for _ in
                                range(rng.randint(5, 300)))  # fmt: skip
                lines.append(_line({
                    "type": "message", "id": eid, "parentId": parent,
                    "timestamp": "2026-01-02T03:04:06.000Z",
                    "message": {"role": "user" if i % 2 == 0 else "assistant",
                                "content": [{"type": "text", "text": text}],
                                "usage": {"cost": 0.000009}},
                }))  # fmt: skip
                total += len(lines[-1]) + 1
                parent, i = eid, i + 1
            body = b"\n".join(lines) + b"\n"
            if n == 2:  # glued records and a blank line in the middle, torn last line
                body += lines[1] + lines[2] + b"\n\n" + lines[3][:40]
            if n == 3:
                body = body.replace(b"\n", b"\r\n")
            files[f"agents/{agent}/sessions/{sid}.jsonl"] = body
            index[f"agent:{agent}:{n}"] = {
                "sessionId": sid, "updatedAt": 1767225600000 + n, "sessionFile": f"{sid}.jsonl",
            }  # fmt: skip
        files[f"agents/{agent}/sessions/sessions.json"] = json.dumps(
            index, indent=2, ensure_ascii=False
        ).encode()
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return files


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def check_import_prefixes(db: Path, sources: dict[str, bytes]) -> int:
    """Every stored transcript is an exact prefix of its source, up to `source_size`."""
    conn = read_only(db)
    try:
        check_integrity(conn)
        conn.execute("BEGIN")
        rows = conn.execute(
            "SELECT transcript_id, rel_dir, file_name, source_size, byte_size, "
            "ends_with_newline FROM transcripts WHERE superseded_by IS NULL"
        ).fetchall()
        for tid, rel_dir, name, source_size, byte_size, ends in rows:
            lines = [
                bytes(r[0]) if isinstance(r[0], bytes) else r[0].encode("utf-8", "surrogatepass")
                for r in conn.execute(
                    "SELECT line FROM transcript_lines WHERE transcript_id = ? ORDER BY pos",
                    (tid,),
                )
            ]
            stored = b"\n".join(lines) + (b"\n" if ends and lines else b"")
            source = sources[f"{rel_dir}/{name}"]
            assert source_size == byte_size == len(stored), name
            assert source.startswith(stored), f"{name}: stored lines are not a source prefix"
        conn.execute("COMMIT")
        return len(rows)
    finally:
        conn.close()


def import_kills(
    tmp_path: Path, rng: random.Random, rounds: int, kills: int, big_bytes: int
) -> None:
    """`rounds` fresh databases, each import killed `kills` times, then resumed to the end."""
    src = tmp_path / "state"
    sources = make_state_dir(src, big_bytes)
    before = tree_hashes(src)
    total = sum(len(b) for b in sources.values())
    partial: list[list[int]] = []
    statuses: collections.Counter[str] = collections.Counter()
    for round_ in range(rounds):
        db = tmp_path / f"import-{round_}.sqlite"
        partial.append([])
        for n in range(kills):
            child = Child(["import", str(db), str(src)], tmp_path / f"import-{round_}-{n}.err")
            target = rng.uniform(0.05, 0.95) * total
            finished = not child.wait_for(
                lambda line, at=target: line.startswith("P ") and int(line.split()[1]) >= at
            )
            if not finished:
                time.sleep(rng.uniform(0.0, 0.3))  # into the next chunk: parsing or its commit
            child.kill()
            partial[-1].append(check_import_prefixes(db, sources) if db.exists() else 0)
            assert tree_hashes(src) == before, "the import changed its source files"
        statuses += resume_and_compare(tmp_path / f"export-{round_}", db, src, sources)
        assert tree_hashes(src) == before
    print(
        f"import of {total} bytes: {rounds} databases, each import killed {kills} times "
        f"(transcripts stored at each kill: {partial}); resumed runs: {dict(statuses)}; "
        "exports byte-identical"
    )


def resume_and_compare(
    out: Path, db: Path, src: Path, sources: dict[str, bytes]
) -> collections.Counter[str]:
    """Finish the import with the command line, then export and compare byte for byte."""
    done = subprocess.run(
        [str(STORE_SQL), "import", str(src), "--db", str(db), "--json"],
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    assert report["ok"], report
    statuses = collections.Counter(f["status"] for f in report["files"])
    assert set(statuses) <= {"imported", "appended", "unchanged"}, statuses
    check_import_prefixes(db, sources)
    done = subprocess.run(
        [str(STORE_SQL), "export", str(out), "--db", str(db)],
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    exported = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert sorted(exported) == sorted(sources)
    for rel, data in sources.items():
        assert exported[rel] == data, f"{rel} differs after the resumed import"
    return statuses


def test_sigkill_during_import_then_resume_gives_an_identical_export(
    tmp_path: Path, rng: random.Random
) -> None:
    import_kills(tmp_path, rng, rounds=1, kills=2, big_bytes=5_000_000)


@pytest.mark.slow
def test_sigkill_during_import_many_times(tmp_path: Path, rng: random.Random) -> None:
    import_kills(tmp_path, rng, rounds=8, kills=3, big_bytes=9_000_000)


# --- migration of a v1 transcript ------------------------------------------------------------


def _v1_file(lines: int) -> bytes:
    out = [_line({"type": "session", "id": "v1", "timestamp": "2025-01-01T00:00:00.000Z",
                  "cwd": "/w", "provider": "anthropic", "modelId": "claude"})]  # fmt: skip
    for i in range(lines):
        if i and i % 1000 == 0:
            out.append(_line({"type": "compaction", "summary": f"up to {i}",
                              "firstKeptEntryIndex": i - 10, "tokensBefore": 1000}))  # fmt: skip
        else:
            role = ("user", "assistant", "hookMessage")[i % 3]
            out.append(_line({"type": "message", "timestamp": "2025-01-01T00:00:01.000Z",
                              "message": {"role": role, "content": f"turn {i} " * 8}}))  # fmt: skip
    return b"\n".join(out) + b"\n"


@pytest.fixture
def v1_template(tmp_path: Path) -> tuple[Path, bytes]:
    """A closed store holding one large v1 transcript (session `v1`), and its file bytes."""
    data = _v1_file(8000)
    sessions_dir = tmp_path / "v1src" / "agents" / "main" / "sessions"
    sessions_dir.mkdir(parents=True)
    (sessions_dir / "v1.jsonl").write_bytes(data)
    db = tmp_path / "v1-template.sqlite"

    async def build() -> None:
        async with await Store.open(db) as store:
            report = await import_path(store, tmp_path / "v1src")
            assert report.ok

    asyncio.run(build())
    return db, data


def migration_state(db: Path, source: bytes) -> str:
    """'v1' (untouched), or 'v3' (complete new version, old one superseded); else fail."""
    conn = read_only(db)
    try:
        check_integrity(conn)
        rows = conn.execute(
            "SELECT transcript_id, version, superseded_by, line_count FROM transcripts "
            "WHERE session_id = 'v1' ORDER BY transcript_id"
        ).fetchall()
        old_lines = [
            r[0].encode()
            for r in conn.execute(
                "SELECT line FROM transcript_lines WHERE transcript_id = ? ORDER BY pos",
                (rows[0][0],),
            )
        ]
        assert b"\n".join(old_lines) + b"\n" == source, "the v1 original was changed"
        if len(rows) == 1:
            assert rows[0][1:3] == (1, None)
            return "v1"
        assert len(rows) == 2, rows
        (_, _, superseded_by, old_count), (new_id, version, _, new_count) = rows
        assert (superseded_by, version, new_count) == (new_id, 3, old_count)
        entries = check_transcript_shape(conn, new_id)
        assert len(entries) == old_count - 1
        header = conn.execute(
            "SELECT json_extract(line, '$.version') FROM transcript_lines "
            "WHERE transcript_id = ? AND pos = 0",
            (new_id,),
        ).fetchone()
        assert header == (3,)
        return "v3"
    finally:
        conn.close()


def migration_kills(tmp_path: Path, template: tuple[Path, bytes], rng: random.Random,
                    kills: int) -> None:  # fmt: skip
    db_template, source = template
    # One run to the end measures how long a migration takes.
    db = tmp_path / "measure.sqlite"
    shutil.copyfile(db_template, db)
    child = Child(["migrate", str(db)], tmp_path / "measure.err")
    assert child.wait_for(lambda line: line == "MIGRATING")
    started = time.monotonic()
    assert child.wait_for(lambda line: line.startswith("DONE"))
    duration = time.monotonic() - started
    child.finish()
    assert migration_state(db, source) == "v3"
    outcomes: collections.Counter[str] = collections.Counter()
    for n in range(kills):
        db = tmp_path / f"migrate-{n}.sqlite"
        shutil.copyfile(db_template, db)
        child = Child(["migrate", str(db)], tmp_path / f"migrate-{n}.err")
        assert child.wait_for(lambda line: line == "MIGRATING")
        if n == kills - 1:
            # The last kill lands after the commit (while the store closes and checkpoints),
            # so every run checks the "complete v3" side as well.
            assert child.wait_for(lambda line: line.startswith("DONE"))
        else:
            time.sleep(rng.uniform(0.0, duration * 1.5))
        lines = child.kill()
        state = migration_state(db, source)
        if any(line.startswith("DONE") for line in lines):
            assert state == "v3", "an acknowledged migration was lost"
        outcomes[state] += 1
        if state == "v1":  # re-running completes it
            Child(["migrate", str(db)], tmp_path / f"again-{n}.err").finish()
            assert migration_state(db, source) == "v3"
    print(
        f"v1->v3 migration of 8000 lines ({duration:.2f}s) killed {kills} times: {dict(outcomes)}"
    )


def test_sigkill_during_v1_to_v3_migration_leaves_old_or_new_never_a_mix(
    tmp_path: Path, v1_template: tuple[Path, bytes], rng: random.Random
) -> None:
    migration_kills(tmp_path, v1_template, rng, kills=3)


@pytest.mark.slow
def test_sigkill_during_v1_to_v3_migration_many_times(
    tmp_path: Path, v1_template: tuple[Path, bytes], rng: random.Random
) -> None:
    migration_kills(tmp_path, v1_template, rng, kills=30)


# --- power loss: what the promise rests on ---------------------------------------------------


@pytest.mark.parametrize(("synchronous", "level"), [("NORMAL", 1), ("FULL", 2)])
async def test_the_durability_level_is_the_one_asked_for(
    tmp_path: Path, synchronous: Any, level: int
) -> None:
    # Power loss cannot be simulated here; docs/GUARANTEES.md states what SQLite documents for
    # WAL mode with each level. This checks the writer really runs with the level promised.
    async with await Store.open(tmp_path / "s.sqlite", synchronous=synchronous) as store:
        got = await store.write(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
        mode = await store.write(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
    assert (got, mode) == (level, "wal")


async def test_at_normal_the_wal_is_synced_within_the_interval_of_a_commit(
    tmp_path: Path,
) -> None:
    # What bounds a power cut's loss at NORMAL (docs/GUARANTEES.md): once a commit is
    # sync_interval_s old, the writer fsyncs the WAL, also when no write follows it.
    from store_sql.engine.pragmas import EngineSettings

    settings = EngineSettings(sync_interval_s=0.05)
    async with await Store.open(tmp_path / "s.sqlite", settings=settings, full_text=False) as store:
        await store.transcripts.create("main", "s1", cwd="/w")
        assert store.metrics()["wal_syncs"] == 0  # not due yet
        for _ in range(40):  # a burst within one interval costs one sync, not forty
            await store.transcripts.append_message("main", "s1", {"role": "user", "content": "x"})
        await asyncio.sleep(0.3)
        burst = store.metrics()["wal_syncs"]
        assert 1 <= burst <= 6
        await asyncio.sleep(0.2)
        assert store.metrics()["wal_syncs"] == burst  # nothing new to sync
    full = EngineSettings(synchronous="FULL", sync_interval_s=0.05)
    async with await Store.open(tmp_path / "f.sqlite", settings=full, full_text=False) as store:
        await store.transcripts.create("main", "s1", cwd="/w")
        await asyncio.sleep(0.2)
        assert store.metrics()["wal_syncs"] == 0  # every commit synced itself


# --- a schema upgrade ------------------------------------------------------------------------

_UPGRADE_CHILD = (
    "import sys; from pathlib import Path; from store_sql.engine.opening import prepare; "
    "print('UPGRADING', flush=True); prepare(Path(sys.argv[1])); print('DONE', flush=True)"
)


@pytest.fixture
def base_revision_template(tmp_path: Path) -> Path:
    """A database of ours at Alembic's base revision holding data of its own: what an
    upgrade must carry over (made with a real `alembic downgrade base`)."""
    template = tmp_path / "template.sqlite"
    asyncio.run(_create_and_close(template))
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "-x", f"db={template}", "downgrade", "base"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    conn = sqlite3.connect(template)
    conn.execute("CREATE TABLE kept_note (text TEXT)")
    conn.executemany("INSERT INTO kept_note VALUES (?)", [(f"note {n}",) for n in range(500)])
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return template


async def _create_and_close(db: Path) -> None:
    store = await Store.open(db)
    await store.close()


def _revision_and_notes(db: Path) -> tuple[str | None, int]:
    conn = read_only(db)
    try:
        check_integrity(conn)
        rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        notes = conn.execute("SELECT count(*) FROM kept_note").fetchone()[0]
    finally:
        conn.close()
    return (rows[0][0] if rows else None), notes


# What each revision adds that tells it from the one before (0001: the tables and views;
# 0002: the full-text indexer's mark and its trigger; 0005: the OpenClaw database sources;
# 0004, after 0005: the sessions.d tables; 0006, after 0004: the search text view and the
# trigger that replaces 0002's; 0007 adds no object: 0001 made today's transcript_lines, with
# its side_append column and navigation index, so 0007 only fills the column again; 0008
# changes PostgreSQL only; 0009 redefines the search text view and triggers in place).
_REVISION_OBJECTS: dict[str | None, frozenset[str]] = {
    None: frozenset(),
    "0001": frozenset({"transcript_lines", "messages"}),
    "0002": frozenset({"transcript_lines", "messages", "search_index_state",
                       "transcript_lines_search_mark"}),
    "0005": frozenset({"transcript_lines", "messages", "search_index_state",
                       "transcript_lines_search_mark", "agent_databases",
                       "database_transcripts", "pre_migration_files"}),
    "0004": frozenset({"transcript_lines", "messages", "search_index_state",
                       "transcript_lines_search_mark", "agent_databases",
                       "database_transcripts", "pre_migration_files", "session_directories",
                       "session_entry_files"}),
    "0006": frozenset({"transcript_lines", "messages", "search_index_state",
                       "agent_databases", "database_transcripts", "pre_migration_files",
                       "session_directories", "session_entry_files", "entry_search_text",
                       "transcript_lines_search_delete"}),
}  # fmt: skip
_REVISION_OBJECTS["0007"] = _REVISION_OBJECTS["0006"]
_REVISION_OBJECTS["0008"] = _REVISION_OBJECTS["0007"]  # PostgreSQL only
_REVISION_OBJECTS["0009"] = _REVISION_OBJECTS["0008"]
_EVERY_OBJECT = frozenset().union(*_REVISION_OBJECTS.values())


def _schema_objects(db: Path) -> frozenset[str]:
    conn = read_only(db)
    try:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    return frozenset(names) & _EVERY_OBJECT


def test_sigkill_during_a_schema_upgrade_leaves_a_whole_revision_and_whole_backups(
    tmp_path: Path, base_revision_template: Path, rng: random.Random
) -> None:
    assert head_revision() in _REVISION_OBJECTS, "name what the new revision adds above"
    outcomes: collections.Counter[str] = collections.Counter()
    for n in range(6):
        work = tmp_path / f"upgrade-{n}"
        work.mkdir()
        db = work / "store.sqlite"
        shutil.copyfile(base_revision_template, db)
        child = subprocess.Popen(
            [sys.executable, "-c", _UPGRADE_CHILD, str(db)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "UPGRADING"
        # The upgrade (backup, Alembic import, revisions 0001 to 0007) takes 0.3-0.8 s here.
        time.sleep(rng.uniform(0.0, 0.8))
        child.kill()
        child.wait(timeout=30)
        revision, notes = _revision_and_notes(db)
        # Each revision commits on its own (transaction_per_migration): a kill between two
        # of them leaves the earlier one, whole, and the next open goes on from there.
        assert revision in _REVISION_OBJECTS, f"an unknown revision: {revision!r}"
        assert _schema_objects(db) == _REVISION_OBJECTS[revision], f"half of {revision!r}"
        assert notes == 500
        for backup in work.glob("store.sqlite.backup-*"):
            # A file with a backup's name is always a whole backup (written, then renamed).
            assert _revision_and_notes(backup) == (None, 500), backup.name
        outcomes[revision or "base"] += 1
        assert prepare_in_child(db) == "DONE"
        assert _revision_and_notes(db) == (head_revision(), 500)
    print(f"schema upgrade killed: {dict(outcomes)}")


def prepare_in_child(db: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _UPGRADE_CHILD, str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[-1]
