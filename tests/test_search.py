"""Full-text search: `store.search` and `store-sql search`. The index is written behind the
appends (search_index.py; tests/test_search_index.py), deleted with its lines, and rebuilt
on demand (in batches, beside live appends)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from inspection_data import Sample, cli, copy_db, fts_rows
from pg_copy import copy_store, create_schema

from store_sql import Store
from store_sql.schema.extra_sql import SEARCH_TEXT_CHARS
from store_sql.search.query import InvalidSearchError, make_snippet, normalize_since


@pytest.fixture
async def store(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> AsyncIterator[Store]:
    db, _ = copy_db(tmp_path_factory.getbasetemp(), tmp_path)
    opened = await Store.open(db)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def sample_location(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> tuple[Path, str | Path]:
    """A copy of the inspection sample, and where to open it: that file, or a fresh
    PostgreSQL database it is copied into row for row (`sample_store`)."""
    db, _ = copy_db(tmp_path_factory.getbasetemp(), tmp_path)
    if request.param == "sqlite":
        return db, db
    url: str = request.getfixturevalue("pg_url")
    return db, url


@pytest.fixture
async def sample_store(sample_location: tuple[Path, str | Path]) -> AsyncIterator[Store]:
    """The inspection sample opened on SQLite, or copied into PostgreSQL and opened there."""
    db, location = sample_location
    if isinstance(location, str):
        await create_schema(location)
        await copy_store(db, location)
    opened = await Store.open(location)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Sample]:
    return copy_db(tmp_path_factory.getbasetemp(), tmp_path_factory.mktemp("search"))


# --- finding ---------------------------------------------------------------------------------


async def test_finds_a_substring_case_insensitively_with_key_entry_and_snippet(
    sample_store: Store,
) -> None:
    store = sample_store
    result = await store.search.find("NeEdLe", agent_id="main", role="user")
    assert result.mode == "fts"
    assert result.notice is None
    hit = next(h for h in result.hits if h.transcript_kind == "live")
    assert (hit.session_key, hit.session_id, hit.role, hit.pos) == (
        "agent:main:main",
        "s-main",
        "user",
        1,
    )
    assert hit.entry_id is not None
    assert len(hit.entry_id) == 8
    assert hit.snippet == "Hello World, find the [NEEDLE] please"


async def test_hits_come_newest_first_and_the_limit_says_there_is_more(sample_store: Store) -> None:
    store = sample_store
    result = await store.search.find("needle", limit=3)
    assert [h.timestamp for h in result.hits] == sorted(
        (h.timestamp for h in result.hits), reverse=True
    )
    assert len(result.hits) == 3
    assert result.more
    everything = await store.search.find("needle", limit=100)
    assert not everything.more
    # user, two assistant replies, compaction summary, the archive, the ops agent
    assert len(everything.hits) == 6


async def test_filters_agent_session_role_since_and_kind(sample_store: Store) -> None:
    store = sample_store
    s = store.search
    assert {h.agent_id for h in (await s.find("needle", agent_id="ops")).hits} == {"ops"}
    by_key = await s.find("needle", session="agent:main:main")
    by_id = await s.find("needle", session="s-main")
    assert by_key.hits == by_id.hits
    assert {h.transcript_kind for h in by_key.hits} == {"live", "reset"}  # archives of the session
    assert {h.role for h in (await s.find("needle", role="assistant")).hits} == {"assistant"}
    since = await s.find("needle", since="2026-02-10T10:00:02.500Z")
    assert all(h.timestamp and h.timestamp >= "2026-02-10T10:00:02.500Z" for h in since.hits)
    assert "abandoned" not in " ".join(h.snippet for h in since.hits)
    only_reset = await s.find("needle", kinds=["reset"])
    assert [h.snippet for h in only_reset.hits] == ["archived [needle] from before the reset"]


async def test_active_path_only_leaves_out_abandoned_branches(sample_store: Store) -> None:
    store = sample_store
    everything = await store.search.find("reply", session="agent:main:main")
    on_path = await store.search.find("reply", session="agent:main:main", active_path_only=True)
    assert {h.snippet for h in everything.hits} == {"kept needle [reply] bash read",
                                                    "abandoned needle [reply]"}  # fmt: skip
    assert [h.snippet for h in on_path.hits] == ["kept needle [reply] bash read"]


async def test_short_text_falls_back_to_a_scan_and_says_so(sample_store: Store) -> None:
    store = sample_store
    result = await store.search.find("ok")
    assert result.mode == "like"
    assert result.notice is not None
    assert "shorter than 3 characters" in result.notice
    assert [h.session_key for h in result.hits] == ["agent:main:other"]
    assert result.hits[0].snippet == "[ok], a plain string content"
    assert len((await store.search.find("%")).hits) == 0  # LIKE wildcards are literal


async def test_non_ascii_text_is_found(sample_store: Store) -> None:
    store = sample_store
    result = await store.search.find("テキスト")
    assert [h.role for h in result.hits] == ["assistant"]
    assert result.hits[0].snippet.startswith("日本語の[テキスト]")


async def test_raw_fts5_queries_and_their_errors(sample_store: Store) -> None:
    store = sample_store
    result = await store.search.find("needle AND reset", raw=True)
    assert result.mode == "fts-raw"
    assert [h.transcript_kind for h in result.hits] == ["reset"]
    with pytest.raises(InvalidSearchError, match="FTS5"):
        await store.search.find('"unbalanced', raw=True)
    with pytest.raises(InvalidSearchError, match="search text"):
        await store.search.find("  ")
    with pytest.raises(InvalidSearchError, match="ISO"):
        await store.search.find("needle", since="last tuesday")


def test_since_accepts_dates_zones_and_naive_times() -> None:
    assert normalize_since("2026-02-10") == "2026-02-10T00:00:00.000Z"
    assert normalize_since("2026-02-10T12:00:00+02:00") == "2026-02-10T10:00:00.000Z"
    assert normalize_since("2026-02-10T12:00:00.5Z") == "2026-02-10T12:00:00.500Z"


def test_snippets_mark_the_match_and_cut_long_text() -> None:
    text = "x" * 100 + " the Needle\n\nis here " + "y" * 200
    snippet = make_snippet(text, "needle")
    assert "the [Needle] is here" in snippet
    assert snippet.startswith("…")
    assert snippet.endswith("…")
    assert len(snippet) < 150


# --- keeping the index -----------------------------------------------------------------------


async def test_an_append_is_searchable_at_once_and_deleted_lines_leave_the_index(
    store: Store,
) -> None:
    await store.transcripts.append_message(
        "main", "s-other", {"role": "user", "content": "a fresh haystack word"}
    )
    hits = (await store.search.find("haystack")).hits
    assert [h.session_key for h in hits] == ["agent:main:other"]
    tid = hits[0].transcript_id
    await store.write(
        lambda c: c.execute("DELETE FROM transcript_lines WHERE transcript_id = ?", (tid,))
    )
    assert (await store.search.find("haystack")).hits == []


async def test_rebuild_recreates_exactly_what_the_indexer_wrote(store: Store) -> None:
    await store.search.catch_up()
    before = fts_rows(store.path)
    await store.write(lambda c: c.execute("DELETE FROM entry_text_fts"))
    assert (await store.search.find("needle")).hits == []
    report = await store.search.rebuild(batch_size=4)
    assert fts_rows(store.path) == before
    assert report.rows_indexed == len(before)
    assert report.unreadable == 1  # the "entry" line that is not JSON
    assert report.batches >= 4
    assert len((await store.search.find("needle")).hits) == 6


async def test_rebuild_in_batches_beside_concurrent_appends(store: Store) -> None:
    async def append_many() -> None:
        for i in range(40):
            await store.transcripts.append_message(
                "main", "s-other", {"role": "user", "content": f"concurrent marker {i}"}
            )

    await asyncio.gather(store.search.rebuild(batch_size=2), append_many())
    await store.search.catch_up()
    indexed = fts_rows(store.path)
    assert sum("concurrent marker" in text for text in indexed.values()) == 40
    conn = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)
    try:
        orphans = conn.execute(
            "SELECT count(*) FROM entry_text_fts "
            "WHERE rowid NOT IN (SELECT line_pk FROM transcript_lines)"
        ).fetchone()[0]
    finally:
        conn.close()
    assert orphans == 0
    assert len((await store.search.find("concurrent marker", limit=100)).hits) == 40


# --- the command -----------------------------------------------------------------------------


def test_cli_search_prints_keys_entry_ids_and_snippets(sample: tuple[Path, Sample]) -> None:
    db, s = sample
    proc = cli("search", "--db", str(db), "needle", "--session", "agent:main:main",
               "--active-path-only", "--role", "user", "--since", "2026-02-10")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "agent:main:main" in proc.stdout
    assert (
        f"entry {s.user_hello} (pos 1, user): Hello World, find the [NEEDLE] please" in proc.stdout
    )
    assert proc.stdout.splitlines()[-1] == "(1 hit)"


def test_cli_search_json_short_text_and_no_hits(sample: tuple[Path, Sample]) -> None:
    db, _ = sample
    proc = cli("search", "--db", str(db), "--json", "ok")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["mode"] == "like"
    assert out["hits"][0]["session_key"] == "agent:main:other"
    assert "shorter than 3 characters" in proc.stderr
    nothing = cli("search", "--db", str(db), "no such text anywhere")
    assert nothing.returncode == 1
    assert nothing.stdout.strip() == "(0 hits)"


def test_cli_rebuild_then_search_and_refuse_a_missing_database(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    db, _ = copy_db(tmp_path_factory.getbasetemp(), tmp_path)
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM entry_text_fts")
    conn.commit()
    conn.close()
    proc = cli("search", "--db", str(db), "--rebuild", "--json", "needle")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["rebuild"]["rows_indexed"] > 0
    assert len(out["hits"]) == 6
    missing = tmp_path / "typo.sqlite"
    for args in (["needle"], ["--rebuild"]):
        proc = cli("search", "--db", str(missing), *args)
        assert proc.returncode == 2
        assert "no such database" in proc.stderr
        assert not missing.exists()


async def test_a_store_without_the_indexer_still_finds_new_entries_by_scanning(
    tmp_path: Path,
) -> None:
    async with await Store.open(tmp_path / "quiet.sqlite", full_text=False) as quiet:
        await quiet.transcripts.create("main", "s1", cwd="/w")
        appended = await quiet.transcripts.append_message(
            "main", "s1", {"role": "user", "content": "the Zebra crossing"}
        )
        await asyncio.sleep(0.05)  # time enough for an indexer, were there one
        assert fts_rows(quiet.path) == {}
        found = await quiet.search.find("zebra")
        assert [h.entry_id for h in found.hits] == [appended.id]
        assert "[Zebra]" in found.hits[0].snippet
        assert (found.unsearched, found.notice) == (0, None)
        # A raw query is checked against the text too, so it scans the waiting lines alike.
        raw = await quiet.search.find("zebra NOT horse", raw=True)
        assert [h.entry_id for h in raw.hits] == [appended.id]
        assert raw.unsearched == 0
        assert (await quiet.search.find("zebra NOT crossing", raw=True)).hits == []
        assert await quiet.search.catch_up() == 2
        assert list(fts_rows(quiet.path).values()) == ["the Zebra crossing"]
        raw = await quiet.search.find("zebra NOT horse", raw=True)
        assert [h.entry_id for h in raw.hits] == [appended.id]
        assert raw.unsearched == 0


async def test_an_append_is_found_at_once_and_leaves_with_its_transcript(backend: Store) -> None:
    """On both backends: an entry is searchable as soon as its append returns (PostgreSQL
    indexes it in the append's transaction), a NUL in its text fails nothing, and deleting
    the transcript takes its lines out of the results."""
    info = await backend.transcripts.create("main", "s-zebra", cwd="/w")
    await backend.transcripts.append_message(
        "main", "s-zebra", {"role": "user", "content": "a zebra\u0000crossing, then more zebra"}
    )
    await backend.transcripts.append_message(
        "main", "s-zebra", {"role": "assistant", "content": [{"type": "text", "text": "Zebras"}]}
    )
    found = await backend.search.find("ZEBRA")
    assert [h.role for h in found.hits] == ["assistant", "user"]
    assert found.unsearched == 0
    assert "[zebra]" in found.hits[1].snippet
    await backend.lifecycle.delete_transcript(info.transcript_id)
    assert (await backend.search.find("zebra")).hits == []


async def test_text_past_the_cap_is_not_searchable(backend: Store) -> None:
    """Only the first SEARCH_TEXT_CHARS characters of a line's text are searchable (counted
    in characters: the filler takes two bytes each), alike when the line is scanned above the
    indexer's mark and when it is found through the index; the index forgets it exactly."""
    head = "é" * (SEARCH_TEXT_CHARS - 30)
    text = head + "kestrel" + "y" * 18 + "osprey heron"  # "osprey" straddles the cap
    assert text.index("osprey") == SEARCH_TEXT_CHARS - 5
    info = await backend.transcripts.create("main", "s-long", cwd="/w")
    await backend.transcripts.append_message("main", "s-long", {"role": "user", "content": text})
    for indexed in (False, True):
        if indexed:
            await backend.search.catch_up()
        for term, found in (("kestrel", 1), ("ospre", 1), ("osprey", 0), ("heron", 0)):
            hits = (await backend.search.find(term)).hits
            assert len(hits) == found, (term, indexed)
    # The index itself holds the capped text: trigrams past the cap were never given to it.
    assert [_fts_matches(backend, t) for t in ("kestrel", "heron")] in ([1, 0], [None, None])
    await backend.lifecycle.delete_transcript(info.transcript_id)
    assert (await backend.search.find("kestrel")).hits == []
    # Forgotten with the text it was indexed with: nothing of the line is left in it.
    assert _fts_matches(backend, "kestrel") in (0, None)


def _fts_matches(store: Store, term: str) -> int | None:
    """Rows of entry_text_fts that hold every trigram of `term`, read from the index alone
    (None on PostgreSQL); raises when FTS5 finds its index inconsistent."""
    if store.dialect != "sqlite":
        return None
    conn = sqlite3.connect(store.path)
    try:
        conn.execute("INSERT INTO entry_text_fts (entry_text_fts) VALUES ('integrity-check')")
        match = " AND ".join(f'"{term[i : i + 3]}"' for i in range(len(term) - 2))
        found = conn.execute(
            "SELECT count(*) FROM entry_text_fts WHERE entry_text_fts MATCH ?", (match,)
        ).fetchone()[0]
        conn.rollback()
        return int(found)
    finally:
        conn.close()
