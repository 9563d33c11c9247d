"""store_sql reads and writes transcripts as the real pi does (tools/oracles: npm
`@mariozechner/pi-coding-agent`, pinned), on every transcript of the shared corpus and on
generated ones (tests/pi_compare.py says what is compared)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pi_compare import differences
from pi_oracle import PiOracle

from store_sql.importer.api import import_path
from store_sql.store import Store

ROOT = Path(__file__).resolve().parent.parent
# The shared reference material lies beside the repository; STORE_SQL_SHARED points elsewhere.
CORPUS = Path(os.environ.get("STORE_SQL_SHARED", ROOT.parent / "shared")) / "corpus"

# Every tree of the corpus that holds transcripts, and the agent to file a bare sessions dir
# under (None: a state dir, agents from its layout).
CORPUS_TREES = [
    ("sample-state", None),
    ("openclaw-2026.9/sample-state/legacy-state", None),
    ("openclaw-2026.9/generated-31/legacy-state", None),
    ("openclaw/pi-mono", "pi"),
]


@pytest.mark.parametrize(("tree", "agent"), CORPUS_TREES)
async def test_every_corpus_transcript_reads_as_pi_reads_it(
    store: Store, pi: PiOracle, tree: str, agent: str | None
) -> None:
    root = CORPUS / tree
    if not root.is_dir():
        pytest.skip(f"corpus tree not found at {root}")
    report = await import_path(store, root, agent=agent)
    assert report.ok, report.as_dict()
    found: list[str] = []
    compared = 0
    for owner in sorted({f.agent for f in report.files if f.agent}):
        for info in await store.transcripts.list_transcripts(owner):
            if info.superseded_by is None:
                found += await differences(store, pi, owner, info.transcript_id)
                compared += 1
    assert compared > 0
    assert found == []
