"""Import, export, and every file compares equal, on real data and on both backends.

`../shared/corpus/sample-state` is a generated state dir (two agents, integer-like keys,
JavaScript number spellings, damaged transcripts, `.reset.` archives); `openclaw/pi-mono`
holds real pi transcripts (v1 files, compactions, a line of two glued records), imported as
one sessions dir with `agent`. Bytes are compared with `==`, and the file sets must match.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from store_sql import Store, export_digests, export_tree, import_path, verify_tree

# The shared reference material lies beside the repository; STORE_SQL_SHARED points elsewhere.
SHARED = Path(os.environ.get("STORE_SQL_SHARED", Path(__file__).resolve().parents[2] / "shared"))
CORPUS = SHARED / "corpus"
SAMPLE_STATE = CORPUS / "sample-state"
PI_MONO = CORPUS / "openclaw" / "pi-mono"

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every regular file under `root`, by posix path relative to it."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


async def test_sample_state_round_trips_byte_for_byte(backend: Store, tmp_path: Path) -> None:
    store = backend
    report = await import_path(store, SAMPLE_STATE)
    assert report.ok, report.as_dict()
    assert not report.skipped
    assert {f.agent for f in report.files} == {"main", "ops"}

    exported = await export_tree(store, tmp_path / "out")

    assert exported.ok
    assert not exported.conflicts
    source, out = tree_bytes(SAMPLE_STATE), tree_bytes(tmp_path / "out")
    assert sorted(out) == sorted(source)
    for rel, data in source.items():
        assert out[rel] == data, rel


async def test_pi_mono_transcripts_round_trip_as_one_sessions_dir(
    backend: Store, tmp_path: Path
) -> None:
    store = backend
    report = await import_path(store, PI_MONO, agent="pi")
    assert report.ok, report.as_dict()
    glued = next(f for f in report.files if f.rel_path.endswith("interleaved-write-session.jsonl"))
    assert [n for n, _ in glued.damaged] == [440]

    await export_tree(store, tmp_path / "out")

    out = tree_bytes(tmp_path / "out" / "agents" / "pi" / "sessions")
    source = tree_bytes(PI_MONO)
    assert sorted(out) == sorted(source)
    for rel, data in source.items():
        assert out[rel] == data, rel


async def test_verify_finds_the_corpus_identical_after_import(backend: Store) -> None:
    store = backend
    await import_path(store, SAMPLE_STATE)
    assert (await verify_tree(store, SAMPLE_STATE)).identical

    await import_path(store, PI_MONO, agent="pi")
    assert (await verify_tree(store, PI_MONO, agent="pi")).identical
    # The state dir lacks agent pi's files, which the store now holds.
    whole = await verify_tree(store, SAMPLE_STATE)
    assert {(d.kind, d.rel_path.split("/")[1]) for d in whole.differences} == {("missing", "pi")}
    assert (await verify_tree(store, SAMPLE_STATE, agent="ops")).identical


async def test_reimporting_the_corpus_changes_nothing(backend: Store) -> None:
    store = backend
    await import_path(store, SAMPLE_STATE)
    before = await export_digests(store)

    again = await import_path(store, SAMPLE_STATE)

    assert {f.status for f in again.files} == {"unchanged"}
    assert await export_digests(store) == before


async def test_reimporting_the_corpus_writes_nothing(store: Store) -> None:
    """SQLite only: the writer's mutation count is SQLite's engine metric."""
    await import_path(store, SAMPLE_STATE)
    before = store.metrics()["mutations"]

    await import_path(store, SAMPLE_STATE)

    assert store.metrics()["mutations"] == before
