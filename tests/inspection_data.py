"""A small but awkward sample database for the maintainer-inspection tests (views, console,
search, stats, doctor), built through the Store API.

It holds two agents; a session with a branch (an abandoned assistant reply), tool calls and
results, a bash execution, labels set, moved and cleared, and a compaction; a `/reset`
archive of that session; a superseded old version of a transcript; damaged lines (one a
BLOB of invalid UTF-8, one truncated JSON) and an "entry" line that is not JSON at all.
Building it costs a few seconds (creating a database syncs several times), so it is built
once per test process and copied.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from store_sql import Store
from store_sql.engine.opening import prepare
from store_sql.formats import jsjson
from store_sql.transcripts import appends as transcript_appends
from store_sql.transcripts import rows as tx

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Sample:
    """Ids of the entries the tests talk about."""

    user_hello: str
    reply_kept: str
    reply_abandoned: str
    tool_result: str
    bash: str
    compaction: str
    label_target: str
    main_transcript: int
    archive_transcript: int
    superseded_transcript: int
    weird_transcript: int


USAGE_1 = {"input": 100, "output": 20, "cacheRead": 5, "cacheWrite": 7, "totalTokens": 132,
           "cost": {"total": 0.25}}  # fmt: skip
USAGE_2 = {"input": 40, "output": 10, "cacheRead": 0, "cacheWrite": 0, "totalTokens": 50,
           "cost": {"total": 0.5}}  # fmt: skip
USAGE_ABANDONED = {"input": 1, "output": 2, "cacheRead": 0, "cacheWrite": 0, "totalTokens": 3,
                   "cost": {"total": 0.125}}  # fmt: skip


def _assistant(text: str, usage: dict[str, Any], tools: tuple[str, ...] = ()) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "thinking", "thinking": "secret plan"}]
    content.append({"type": "text", "text": text})
    for i, name in enumerate(tools):
        content.append({"type": "toolCall", "id": f"call_{i}", "name": name, "arguments": {}})
    return {
        "role": "assistant",
        "content": content,
        "api": "anthropic-messages",
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "usage": usage,
        "stopReason": "toolUse" if tools else "stop",
        "timestamp": 1770720706278,
    }


def _raw_lines(
    conn: sqlite3.Connection, transcript_id: int, lines: list[tuple[bytes, str]]
) -> None:
    """Append lines as an import would store them: (bytes, kind) with no tree columns."""
    pos = tx.get_info(conn, transcript_id).line_count
    rows = []
    for i, (raw, kind) in enumerate(lines):
        rows.append(
            tx.LineRow(pos + i, tx.stored_line(raw), kind, None, None, None, None, None, None,
                       None, len(raw), "truncated line" if kind == "damaged" else None)
        )  # fmt: skip
    tx.insert_lines(conn, transcript_id, rows, ends_with_newline=True)


def _archive(conn: sqlite3.Connection, session_id: str) -> int:
    tid = tx.insert_transcript(
        conn,
        agent_id="main",
        rel_dir="agents/main/sessions",
        session_id=session_id,
        kind="reset",
        file_name=f"{session_id}.jsonl.reset.2026-02-10T09-15-21.653Z",
        version=3,
        archived_at="2026-02-10T09-15-21.653Z",
    )
    header = tx.header_value(session_id, cwd="/w", timestamp="2026-02-09T00:00:00.000Z",
                             parent_session=None)  # fmt: skip
    head = jsjson.dumps(header).encode()
    rows = [tx.LineRow(0, head.decode(), "header", session_id, None, None, "session", None,
                       header["timestamp"], None, len(head), None)]  # fmt: skip
    tx.insert_lines(conn, tid, rows, ends_with_newline=True)
    transcript_appends.append_entries(
        conn,
        tid,
        [{"type": "message", "timestamp": "2026-02-09T10:00:00.000Z",
          "message": {"role": "user", "content": "archived needle from before the reset"}}],
    )  # fmt: skip
    return tid


async def build(path: Path) -> Sample:
    store = await Store.open(path)
    try:
        sample = await _fill(store)
        await store.search.catch_up()  # the template holds a complete full-text index
        return sample
    finally:
        await store.close()


async def _fill(store: Store) -> Sample:
    t = store.transcripts
    await store.sessions.patch("main", "agent:main:main", {
        "sessionId": "s-main", "updatedAt": 1770720000000, "chatType": "direct",
        "channel": "telegram", "label": "the main one", "model": "claude-sonnet-4-5"})  # fmt: skip
    await store.sessions.patch("main", "agent:main:other",
                               {"sessionId": "s-other", "updatedAt": 1770710000000})  # fmt: skip
    await store.sessions.patch("main", "agent:main:weird",
                               {"sessionId": "s-weird", "updatedAt": 1770700000000})  # fmt: skip
    await store.sessions.patch("ops", "agent:ops:main",
                               {"sessionId": "s-ops", "updatedAt": 1770730000000})  # fmt: skip
    main = await t.create("main", "s-main", cwd="/w", timestamp="2026-02-10T10:00:00.000Z")
    user = await t.append(
        "main", "s-main",
        [{"type": "message", "timestamp": "2026-02-10T10:00:01.000Z",
          "message": {"role": "user", "content": [
              {"type": "text", "text": "Hello World, find the NEEDLE please"}]}}],
    )  # fmt: skip
    abandoned = await t.append(
        "main", "s-main",
        [{"type": "message", "timestamp": "2026-02-10T10:00:02.000Z",
          "message": _assistant("abandoned needle reply", USAGE_ABANDONED)}],
    )  # fmt: skip
    kept = await t.append(
        "main", "s-main",
        [{"type": "message", "timestamp": "2026-02-10T10:00:03.000Z",
          "message": _assistant("kept needle reply", USAGE_1, ("bash", "read"))}],
        parent_id=user[0].id,
    )  # fmt: skip
    result = await t.append(
        "main", "s-main",
        [{"type": "message", "timestamp": "2026-02-10T10:00:04.000Z",
          "message": {"role": "toolResult", "toolCallId": "call_0", "toolName": "bash",
                      "content": [{"type": "text", "text": "total 0"}], "isError": True}}],
    )  # fmt: skip
    bash = await t.append(
        "main", "s-main",
        [{"type": "message", "timestamp": "2026-02-10T10:00:05.000Z",
          "message": {"role": "bashExecution", "command": "ls -la", "output": "README.md",
                      "exitCode": 0}}],
    )  # fmt: skip
    await t.append("main", "s-main", [{"type": "label", "targetId": user[0].id, "label": "first",
                                        "timestamp": "2026-02-10T10:00:06.000Z"}])  # fmt: skip
    await t.append("main", "s-main", [{"type": "label", "targetId": user[0].id, "label": "start",
                                        "timestamp": "2026-02-10T10:00:07.000Z"}])  # fmt: skip
    await t.append("main", "s-main", [{"type": "label", "targetId": kept[0].id, "label": "gone",
                                        "timestamp": "2026-02-10T10:00:08.000Z"}])  # fmt: skip
    await t.append("main", "s-main", [{"type": "label", "targetId": kept[0].id, "label": "",
                                        "timestamp": "2026-02-10T10:00:09.000Z"}])  # fmt: skip
    compaction = await t.append_compaction("main", "s-main", "summary of the needle hunt",
                                           kept[0].id, 1234)  # fmt: skip
    await t.append(
        "main", "s-main",
        [{"type": "message", "timestamp": "2026-02-10T10:00:11.000Z",
          "message": _assistant("日本語のテキスト final answer", USAGE_2)}],
    )  # fmt: skip
    await store.write(lambda c: _raw_lines(c, main.transcript_id, [
        (b'{"type":"message","id":"dead","message":{"role":"us\xff\xfe', "damaged"),
        (b'{"type":"message","id":"cut","parentId":', "damaged")]))  # fmt: skip

    await t.create("main", "s-other", cwd="/w", timestamp="2026-02-10T11:00:00.000Z")
    await t.append(
        "main", "s-other",
        [{"type": "message", "timestamp": "2026-02-10T11:00:01.000Z",
          "message": {"role": "user", "content": "ok, a plain string content"}}],
    )  # fmt: skip
    archive = await store.write(lambda c: _archive(c, "s-main"))

    # An old version of s-other's file, superseded by the current one.
    old = await store.write(lambda c: _archive(c, "s-old"))
    await store.write(lambda c: c.execute(
        "UPDATE transcripts SET superseded_by = ? WHERE transcript_id = ?",
        (main.transcript_id, old)))  # fmt: skip

    weird = await t.create("main", "s-weird", cwd="/w", timestamp="2026-02-10T12:00:00.000Z")
    await store.write(lambda c: _raw_lines(c, weird.transcript_id, [(b"not json at all", "entry")]))

    await t.create("ops", "s-ops", cwd="/ops", timestamp="2026-02-10T13:00:00.000Z")
    await t.append(
        "ops", "s-ops",
        [{"type": "message", "timestamp": "2026-02-10T13:00:01.000Z",
          "message": {"role": "user", "content": [{"type": "text", "text": "ops needle check"}]}}],
    )  # fmt: skip
    return Sample(
        user_hello=user[0].id,
        reply_kept=kept[0].id,
        reply_abandoned=abandoned[0].id,
        tool_result=result[0].id,
        bash=bash[0].id,
        compaction=compaction.id,
        label_target=user[0].id,
        main_transcript=main.transcript_id,
        archive_transcript=archive,
        superseded_transcript=old,
        weird_transcript=weird.transcript_id,
    )


_TEMPLATE: tuple[Path, Sample] | None = None


def template(tmp_root: Path) -> tuple[Path, Sample]:
    """The sample database, built once per test process (do not modify it: copy it)."""
    global _TEMPLATE
    if _TEMPLATE is None:
        path = tmp_root / "template.sqlite"
        # On its own thread: callers may be async fixtures, inside a running loop.
        with ThreadPoolExecutor(1) as pool:
            sample = pool.submit(lambda: asyncio.run(build(path))).result()
        _TEMPLATE = (path, sample)
    return _TEMPLATE


def copy_db(tmp_root: Path, dest_dir: Path, name: str = "store.sqlite") -> tuple[Path, Sample]:
    """A private copy of the sample database (the template is checkpointed: one file)."""
    src, sample = template(tmp_root)
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / name
    shutil.copyfile(src, dest)
    dest.chmod(0o600)
    return dest, sample


def digest(path: Path) -> str | None:
    """sha256 of a file, None when it does not exist. Only for files no connection in this
    process has open: closing a descriptor drops this process's POSIX locks on the file."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


EMPTY = hashlib.sha256(b"").hexdigest()


def files_digest(db: Path) -> dict[str, str | None]:
    """Digests of the database and its -wal. (-shm is left out: it is shared memory that
    every reader writes its read mark into, not data.)"""
    return {s: digest(Path(f"{db}{s}")) for s in ("", "-wal")}


def assert_untouched(db: Path, before: dict[str, str | None]) -> None:
    """The database and WAL are as they were, except that a missing -wal may now exist,
    empty: SQLite creates it to read a WAL database."""
    after = files_digest(db)
    assert after[""] == before[""], "the database file changed"
    assert after["-wal"] == before["-wal"] or (before["-wal"] is None and after["-wal"] == EMPTY)


def cli(*args: str, check: bool = False, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `store-sql` as a real subprocess."""
    proc = subprocess.run(
        [sys.executable, "-m", "store_sql", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"store-sql {args} failed ({proc.returncode}): {proc.stderr}")
    return proc


# A writer in another process: `hold` writes, says "ready" and waits for a line on stdin
# before closing; `crash` writes and exits without closing (the WAL keeps the frames);
# `loop` appends until stdin closes, printing how many it wrote.
WRITER_SCRIPT = """
import asyncio, os, sys
from store_sql import EngineSettings, Store

async def main(db, mode):
    # No background checkpoint: after "ready" this writer changes no file of its own accord.
    store = await Store.open(db, settings=EngineSettings(checkpoint_interval_s=0))
    await store.sessions.patch("main", "agent:main:live", {"sessionId": "s-live", "updatedAt": 1})
    if await store.transcripts.find("main", "s-live") is None:
        await store.transcripts.create("main", "s-live", cwd="/w")
    msg = {"role": "user", "content": "written by the other process"}
    for _ in range(20):
        await store.transcripts.append_message("main", "s-live", msg)
    await store.search.catch_up()  # so no indexing step writes after "ready"
    print("ready", flush=True)
    if mode == "crash":
        os._exit(0)
    if mode == "loop":
        n = 0
        reader = asyncio.create_task(asyncio.to_thread(sys.stdin.readline))
        while not reader.done():
            await store.transcripts.append_message("main", "s-live", msg)
            n += 1
            await asyncio.sleep(0.002)
        print(n, flush=True)
    else:
        await asyncio.to_thread(sys.stdin.readline)
    await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def start_writer(db: Path, mode: str) -> subprocess.Popen[str]:
    """Start a writer process on `db` and wait until it has written (see WRITER_SCRIPT)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(db), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", f"writer did not start: {line!r}"
    return proc


def scratch_connection(
    tmp_path_factory: pytest.TempPathFactory, name: str
) -> Iterator[sqlite3.Connection]:
    """A new database on one plain connection without fsync, for property tests that write
    thousands of small transcripts (the body of a module-scoped fixture)."""
    path = tmp_path_factory.mktemp(name) / f"{name}.sqlite"
    prepare(path)
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA synchronous = OFF")  # scratch data: no fsync per example
    try:
        yield connection
    finally:
        connection.close()


def fts_rows(db: Path) -> dict[int, str]:
    """The lines the full-text index holds: {line_pk: text}. The index keeps no text (it
    reads it from the entry_search_text view), so a line counts as held when a MATCH on
    its own text's trigrams finds it; texts under 3 characters, which have no trigram,
    when they are at or below the indexer's mark."""
    from store_sql.search.terms import trigram_match

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        mark = conn.execute("SELECT indexed_upto FROM search_index_state").fetchone()[0]
        held: dict[int, str] = {}
        for line_pk, text in conn.execute("SELECT line_pk, text FROM entry_search_text"):
            match = trigram_match(text)
            if match is None:
                if line_pk <= mark:
                    held[line_pk] = text
            elif conn.execute(
                "SELECT 1 FROM entry_text_fts WHERE entry_text_fts MATCH ? AND rowid = ?",
                (match, line_pk),
            ).fetchone():
                held[line_pk] = text
        return held
    finally:
        conn.close()
