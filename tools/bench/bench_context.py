"""The model context against the real pi (tools/oracles: npm `@mariozechner/pi-coding-agent`).

Metrics (ratio orientation in harness.py: > 1 means the store did better):
- `transcripts.context_10k_vs_pi`: `store.transcripts.context()` of a 10,000-entry v3
  transcript (one chain with a 3-entry abandoned branch every 1,000 entries, the messages of
  tools/bench/fixtures.py) vs pi building the context of the same file in Node in the same
  run: read the file, `parseSessionEntries`, `migrateSessionEntries`, `buildSessionContext`
  (what pi does when it loads a session). ratio = speedup.
- `transcripts.context_10k_v1_vs_pi`: the same conversation as a v1 file (no ids, one chain;
  imported as it is, so the store migrates it in memory on every read, tools/oracles' pi on
  every load). ratio = speedup.

Both sides produce the same messages (checked first: the same JSON text). Store rounds and
pi's rounds alternate; each keeps its fastest (harness.Fastest). Without Node or npm the
rows are error rows saying why.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Any

import fixtures
import orjson
from fixtures import AGENT
from harness import Fastest, Row, abest_of, bench_dir, row, run_async

from store_sql import Store
from store_sql.formats import jsjson
from store_sql.importer.api import import_path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "oracles"))
from pi_oracle import PiOracle

V3 = "context-v3"
V1 = "context-v1"
ENTRIES = 10_000


def v1_file(fixture: fixtures.TranscriptFixture, session_id: str) -> bytes:
    """The fixture's active path as a v1 transcript: no `version`, no ids, file order."""
    header = {k: v for k, v in fixture.header.items() if k != "version"}
    header["id"] = session_id
    lines = [jsjson.dumps(header).encode()]
    for raw in fixture.lines[1:]:
        value = orjson.loads(raw)
        del value["id"], value["parentId"]
        lines.append(orjson.dumps(value))
    return b"\n".join(lines) + b"\n"


async def _main(quick: bool) -> list[Row]:
    work = bench_dir() / "context"
    work.mkdir(exist_ok=True)
    parents = fixtures.chain_with_side_branches(ENTRIES)
    v3 = fixtures.build_transcript(V3, parents, seed=11)
    v3_path = fixtures.write_file(work / f"{V3}.jsonl", v3.file_bytes())
    chain = fixtures.build_transcript(
        V1, [None if i == 0 else i - 1 for i in range(ENTRIES)], seed=11
    )
    v1_path = fixtures.write_file(work / "sessions" / f"{V1}.jsonl", v1_file(chain, V1))
    rounds = 3 if quick else 7
    fastest = Fastest()
    pi = PiOracle.start()
    try:
        async with await Store.open(work / "store.sqlite") as store:
            await fixtures.load_transcript(store, v3)
            report = await import_path(store, v1_path, agent=AGENT)
            assert report.ok, report.as_dict()
            await store.search.catch_up()  # the indexer is idle while the rounds run
            for sid, path in ((V3, v3_path), (V1, v1_path)):
                ours = (await store.transcripts.context(AGENT, sid)).as_dict()
                theirs: dict[str, Any] = pi.read(path.read_bytes())
                assert jsjson.dumps(ours) == theirs["context"], sid
            for _ in range(rounds):
                for sid, path in ((V3, v3_path), (V1, v1_path)):
                    call = partial(store.transcripts.context, AGENT, sid)
                    fastest.add(sid, await abest_of(call, repeat=1, number=1))
                    fastest.add(f"{sid}-pi", pi.time_context(path, rounds=1) / 1e3)
    finally:
        pi.close()
    ms = 1e3
    return [
        row(
            "transcripts.context_10k_vs_pi",
            fastest[V3] * ms,
            fastest[f"{V3}-pi"] * ms,
            "ms/op",
            False,
        ),
        row(
            "transcripts.context_10k_v1_vs_pi",
            fastest[V1] * ms,
            fastest[f"{V1}-pi"] * ms,
            "ms/op",
            False,
        ),
    ]


def run(quick: bool) -> list[Row]:
    return run_async(lambda: _main(quick))
