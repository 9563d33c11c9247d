"""The maintainer views: what each returns on a sample built through the Store API, checked
against the store's own answers (active path, labels) and against the data written."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from inspection_data import USAGE_1, USAGE_2, USAGE_ABANDONED, Sample, copy_db

from store_sql import Store
from store_sql.schema.extra_sql import VIEWS


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Sample]:
    root = tmp_path_factory.getbasetemp()
    return copy_db(root, tmp_path_factory.mktemp("views"))


def rows(db: Path, sql: str, params: Any = ()) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def test_every_view_reads_without_error_despite_damaged_and_non_json_lines(
    sample: tuple[Path, Sample],
) -> None:
    db, _ = sample
    for name in VIEWS:
        assert isinstance(rows(db, f"SELECT * FROM {name}"), list)
    # Filters on computed columns cannot make SQLite parse a bad line (the CASE guards).
    assert rows(db, "SELECT count(*) AS n FROM messages WHERE text LIKE '%needle%'")[0]["n"] == 5
    assert rows(db, "SELECT count(*) AS n FROM resolved_labels WHERE label <> 'x'")[0]["n"] == 1


def test_sessions_view_has_main_columns_and_the_live_transcript(
    sample: tuple[Path, Sample],
) -> None:
    db, s = sample
    by_key = {r["session_key"]: r for r in rows(db, "SELECT * FROM sessions")}
    assert set(by_key) == {
        "agent:main:main",
        "agent:main:other",
        "agent:main:weird",
        "agent:ops:main",
    }
    main = by_key["agent:main:main"]
    assert main["session_id"] == "s-main"
    assert main["chat_type"] == "direct"
    assert main["channel"] == "telegram"
    assert main["label"] == "the main one"
    assert main["updated_at"] == 1770720000000
    assert main["updated_at_iso"] == "2026-02-10T10:40:00.000Z"
    assert main["transcript_id"] == s.main_transcript  # the live one, not the reset archive
    assert main["transcript_file"] == "s-main.jsonl"
    assert main["damaged_lines"] == 2


def test_messages_view_extracts_role_text_and_tool_names(sample: tuple[Path, Sample]) -> None:
    db, s = sample
    by_id = {r["entry_id"]: r for r in rows(db, "SELECT * FROM messages")}
    user = by_id[s.user_hello]
    assert (user["role"], user["text"], user["session_key"]) == (
        "user", "Hello World, find the NEEDLE please", "agent:main:main")  # fmt: skip
    kept = by_id[s.reply_kept]
    assert kept["text"] == "kept needle reply"  # thinking blocks left out
    assert kept["tool_names"] == "bash,read"
    assert (kept["provider"], kept["model"], kept["stop_reason"]) == (
        "anthropic", "claude-sonnet-4-5", "toolUse")  # fmt: skip
    assert (kept["input_tokens"], kept["output_tokens"], kept["total_tokens"], kept["cost"]) == (
        100, 20, 132, 0.25)  # fmt: skip
    result = by_id[s.tool_result]
    assert (result["tool_names"], result["tool_call_id"], result["is_error"]) == (
        "bash",
        "call_0",
        1,
    )
    assert by_id[s.bash]["text"] == "ls -la\nREADME.md"
    texts = {r["text"] for r in by_id.values()}
    assert "ok, a plain string content" in texts  # string content
    assert "日本語のテキスト final answer" in texts


def test_messages_view_skips_damaged_lines_and_superseded_transcripts(
    sample: tuple[Path, Sample],
) -> None:
    db, s = sample
    found = rows(db, "SELECT transcript_id, transcript_kind, line_pk FROM messages")
    transcripts = {r["transcript_id"] for r in found}
    assert s.superseded_transcript not in transcripts
    assert s.weird_transcript not in transcripts  # its "entry" line is not JSON
    assert {r["transcript_kind"] for r in found} == {"live", "reset"}  # archives included
    damaged = rows(db, "SELECT line_pk FROM transcript_lines WHERE kind = 'damaged'")
    assert len(damaged) == 2
    assert not {d["line_pk"] for d in damaged} & {r["line_pk"] for r in found}


def test_active_path_view_matches_the_store_api(sample: tuple[Path, Sample]) -> None:
    db, s = sample

    async def api_paths() -> dict[int, list[int]]:
        store = await Store.open(db)
        try:
            out = {}
            for tid in (s.main_transcript, s.archive_transcript, s.weird_transcript):
                out[tid] = [e.pos for e in await store.transcripts.active_path("main", tid)]
            return out
        finally:
            await store.close()

    expected = asyncio.run(api_paths())
    view = rows(db, "SELECT transcript_id, pos FROM active_path ORDER BY transcript_id, depth DESC")
    got: dict[int, list[int]] = {}
    for r in view:
        got.setdefault(r["transcript_id"], []).append(r["pos"])
    for tid, path in expected.items():
        assert got[tid] == path
    on_path = rows(
        db, "SELECT entry_id FROM active_path WHERE transcript_id = ?", (s.main_transcript,)
    )
    main_ids = {r["entry_id"] for r in on_path}
    assert s.reply_kept in main_ids
    assert s.reply_abandoned not in main_ids  # the abandoned branch is off the path
    assert s.superseded_transcript not in got


def test_resolved_labels_view_matches_the_store_api(sample: tuple[Path, Sample]) -> None:
    db, s = sample

    async def api_labels() -> dict[str, str]:
        store = await Store.open(db)
        try:
            return await store.transcripts.labels("main", s.main_transcript)
        finally:
            await store.close()

    view = rows(db, "SELECT * FROM resolved_labels WHERE transcript_id = ?", (s.main_transcript,))
    assert {r["target_id"]: r["label"] for r in view} == asyncio.run(api_labels())
    # the last label of a target wins; "" cleared the other target
    assert {r["target_id"]: r["label"] for r in view} == {s.label_target: "start"}
    assert view[0]["target_pos"] == 1


def test_session_stats_view_counts_sizes_and_token_totals(sample: tuple[Path, Sample]) -> None:
    db, s = sample
    stats = {r["session_key"]: r for r in rows(db, "SELECT * FROM session_stats")}
    main = stats["agent:main:main"]
    usages = (USAGE_1, USAGE_2, USAGE_ABANDONED)  # every branch counts: it was spent
    assert main["usage_input_tokens"] == sum(u["input"] for u in usages)
    assert main["usage_output_tokens"] == sum(u["output"] for u in usages)
    assert main["usage_cache_read_tokens"] == sum(u["cacheRead"] for u in usages)
    assert main["usage_cache_write_tokens"] == sum(u["cacheWrite"] for u in usages)
    assert main["usage_total_tokens"] == sum(u["totalTokens"] for u in usages)
    assert main["usage_cost"] == pytest.approx(0.875)
    assert (main["messages"], main["user_messages"], main["assistant_messages"],
            main["tool_results"]) == (6, 1, 3, 1)  # fmt: skip
    assert main["damaged_lines"] == 2
    assert main["other_transcripts"] == 1  # the reset archive
    live = rows(db, "SELECT byte_size, entry_count FROM transcripts WHERE transcript_id = ?",
                (s.main_transcript,))[0]  # fmt: skip
    assert (main["transcript_bytes"], main["entries"]) == (live["byte_size"], live["entry_count"])
    assert stats["agent:main:other"]["usage_total_tokens"] == 0


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="the sqlite3 shell is not installed")
def test_views_work_in_the_sqlite3_shell(sample: tuple[Path, Sample]) -> None:
    db, _ = sample
    for name in VIEWS:
        proc = subprocess.run(
            ["sqlite3", "-readonly", str(db), f"SELECT count(*) FROM {name};"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, proc.stderr
        assert int(proc.stdout.strip()) > 0
    schema = subprocess.run(["sqlite3", "-readonly", str(db), ".schema messages"],
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert "-- One row per `message` entry" in schema.stdout
