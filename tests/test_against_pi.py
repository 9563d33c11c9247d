"""store_sql reads and writes transcripts as the real pi does (tools/oracles: npm
`@mariozechner/pi-coding-agent`, pinned), on every transcript of the shared corpus and on
generated ones (tests/pi_compare.py says what is compared)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import LONG_ENV, transcript_rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pi_compare import differences
from pi_oracle import PiOracle

from store_sql.formats import jsjson
from store_sql.formats.js_numbers import NumberLiteral
from store_sql.importer.api import import_path
from store_sql.store import Store
from store_sql.transcripts import rows as transcripts_rows

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


# --- generated transcripts -------------------------------------------------------------------

LONG = os.environ.get(LONG_ENV) == "1"
EXAMPLES = {1: 600, 2: 300, 3: 900}  # per version; --long: 10x
START_MS = 1_765_000_000_000
WHITESPACE = ["", " ", "\t", "\n", "\u00a0", "\ufeff", "\u2028", "\x1c", "\u3000"]

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
odd_numbers = st.sampled_from(
    [NumberLiteral("1.0"), NumberLiteral("1E5"), NumberLiteral("-0"), 0.000009, 1e21, 2.5, 7]
)


def entry_id(n: int) -> str:
    return f"{(n * 2654435761 + 12345) % 2**32:08x}"


def iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    )


@st.composite
def transcripts(draw: st.DrawFn, version: int) -> bytes:
    """A transcript of `version` as pi and OpenClaw write them, plus the damage real files
    carry: random branches (v2/v3), compactions keeping any entry (or none), branch summaries,
    labels set and cleared, session names, damaged and blank lines, no final newline."""
    header: dict[str, Any] = {"type": "session", "id": "gen", "timestamp": iso(START_MS)}
    if version > 1:
        header["version"] = version
    header["cwd"] = "/w"
    lines = [jsjson.dumps(header)]
    ids: list[str] = []  # ids of the entries so far (v1: their index among parsed lines)
    parsed = 1
    clock = START_MS
    for n in range(draw(st.integers(0, 24))):
        damage = draw(st.sampled_from([None] * 8 + ["glued", "torn", "blank"]))
        if damage == "glued":
            lines.append('{"type":"message","message":{"role":"user"}}{"type":"custom"}')
            continue
        if damage == "torn":
            lines.append('{"type":"message","timestamp":"2025-01-0')
            continue
        if damage == "blank":
            lines.append(draw(st.sampled_from(["", "  ", "\t"])))
            continue
        clock += draw(st.sampled_from([0, 1, 1000, 60_000]))
        kind = draw(
            st.sampled_from(
                ["message"] * 4 + ["model_change", "thinking_level_change", "compaction",
                 "branch_summary", "custom", "custom_message", "label", "session_info"]
            )
        )  # fmt: skip
        value: dict[str, Any] = {"type": kind}
        if version > 1:
            value["id"] = entry_id(n)
            choice = draw(st.sampled_from(["previous"] * 3 + ["earlier", "root"]))
            parent: str | None = ids[-1] if ids else None
            if choice == "earlier" and ids:
                parent = draw(st.sampled_from(ids))
            elif choice == "root":
                parent = None
            value["parentId"] = parent
        if draw(st.integers(0, 30)) != 0:  # now and then no timestamp at all
            value["timestamp"] = iso(clock)
        if kind == "message":
            roles = ["user", "assistant", "toolResult", "bashExecution"]
            role = draw(st.sampled_from(roles + (["hookMessage"] if version < 3 else [])))
            message: dict[str, Any] = {
                "role": role,
                "content": [{"type": "text", "text": draw(texts)}],
            }
            if role == "assistant":
                message["provider"] = draw(st.sampled_from(["anthropic", "openai"]))
                message["model"] = draw(st.sampled_from(["m1", "m2"]))
                message["usage"] = {"cost": draw(odd_numbers)}
            message["timestamp"] = clock
            value["message"] = message
        elif kind == "model_change":
            value["provider"], value["modelId"] = "p", draw(st.sampled_from(["m3", "m4"]))
        elif kind == "thinking_level_change":
            value["thinkingLevel"] = draw(st.sampled_from(["off", "low", "high"]))
        elif kind == "compaction":
            value["summary"] = draw(texts)
            if version == 1:
                value["firstKeptEntryIndex"] = draw(
                    st.one_of(st.integers(-1, parsed + 2), st.just(NumberLiteral("1.0")),
                              st.just(2.5), st.just("3"))
                )  # fmt: skip
            else:
                value["firstKeptEntryId"] = draw(st.sampled_from([*ids, "nope0000"]))
            value["tokensBefore"] = draw(st.integers(0, 10**6))
        elif kind == "branch_summary":
            if version > 1 and ids:
                value["parentId"] = draw(st.sampled_from(ids))
            value["fromId"] = value.get("parentId") or "root"
            value["summary"] = draw(st.sampled_from(["", "went elsewhere"]))
        elif kind == "custom":
            value["customType"] = "ext"
            if draw(st.booleans()):
                value["data"] = {"n": draw(odd_numbers)}
        elif kind == "custom_message":
            value["customType"] = "note"
            value["content"] = draw(st.one_of(texts, st.just([{"type": "text", "text": "t"}])))
            value["display"] = draw(st.booleans())
            if draw(st.booleans()):
                value["details"] = {"d": 1}
        elif kind == "label":
            value["targetId"] = draw(st.sampled_from([*ids, "nope0000"]))
            label = draw(st.sampled_from([None, "", "mark", "other"]))
            if label is not None:
                value["label"] = label
        elif kind == "session_info":
            pad = draw(st.sampled_from(WHITESPACE))
            name = draw(st.sampled_from([None, "", "named", "renamed"]))
            if name is not None:
                value["name"] = pad + name + draw(st.sampled_from(WHITESPACE))
        lines.append(jsjson.dumps(value))
        ids.append(value.get("id", str(parsed)))
        parsed += 1
    text = "\n".join(lines)
    if draw(st.integers(0, 9)) > 0:
        text += "\n"
    return text.encode("utf-8")


class GeneratedRun:
    """One store on one event loop for all examples of a property (hypothesis runs them in
    one test call)."""

    def __init__(self, path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.store = self.loop.run_until_complete(Store.open(path))
        self.count = 0

    def load(self, data: bytes) -> int:
        self.count += 1
        rows, ends_with_newline, version = transcript_rows(data)

        def write(conn: sqlite3.Connection) -> int:
            tid = transcripts_rows.insert_transcript(
                conn,
                agent_id="main",
                rel_dir="agents/main/sessions",
                session_id=f"g{self.count}",
                kind="live",
                file_name=f"g{self.count}.jsonl",
                version=version,
            )
            transcripts_rows.insert_lines(conn, tid, rows, ends_with_newline=ends_with_newline)
            return tid

        return self.loop.run_until_complete(self.store.write(write))

    def close(self) -> None:
        self.loop.run_until_complete(self.store.close())
        self.loop.close()


@pytest.fixture
def generated(tmp_path: Path) -> Iterator[GeneratedRun]:
    run = GeneratedRun(tmp_path / "generated.sqlite")
    try:
        yield run
    finally:
        run.close()


@pytest.mark.parametrize("version", [1, 2, 3])
def test_generated_transcripts_read_as_pi_reads_them(
    generated: GeneratedRun, pi: PiOracle, version: int
) -> None:
    @settings(
        max_examples=EXAMPLES[version] * (10 if LONG else 1),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=transcripts(version), other_leaf=st.integers(0, 30))
    def reads_as_pi(data: bytes, other_leaf: int) -> None:
        tid = generated.load(data)
        store = generated.store
        leaf_ids: tuple[str, ...] = ()
        if version > 1:
            nodes = generated.loop.run_until_complete(store.transcripts.page("main", tid))
            ids = [e.id for e in nodes if e.kind == "entry" and e.id]
            leaf_ids = (ids[other_leaf % len(ids)],) if ids else ()
        found = generated.loop.run_until_complete(
            differences(store, pi, "main", tid, leaf_ids=leaf_ids)
        )
        assert found == [], data.decode()

    reads_as_pi()
