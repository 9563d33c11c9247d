"""store_sql reads and writes transcripts as the real pi does (tools/oracles: npm
`@mariozechner/pi-coding-agent`, pinned), on every transcript of the shared corpus and on
generated ones (tests/pi_compare.py says what is compared)."""

from __future__ import annotations

import asyncio
import json
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
EXAMPLES = {1: 800, 2: 400, 3: 1200}  # per version; --long: 10x
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
                              st.just(NumberLiteral("1e400")), st.just(2.5), st.just("3"))
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


# --- appends ---------------------------------------------------------------------------------

UNDEFINED = {"$undefined": True}  # pi_driver.mjs passes it as `undefined`


async def appended_as_pi_appends(
    store: Store, pi: PiOracle, sid: str, append: Any, call: list[Any]
) -> bytes:
    """Append with the store and `call` ([method, *args]) with pi's SessionManager on the
    same file; the two lines are equal once pi's id and timestamp are the store's."""
    before = await store.transcripts.file_bytes("main", sid)
    done = await append()
    line = (await store.transcripts.file_bytes("main", sid))[len(before) :]
    theirs = pi.append(before, [call])
    timestamp = json.loads(line)["timestamp"]
    expected = (
        theirs["lines"][0]
        .replace(f'"id":"{theirs["ids"][0]}"'.encode(), f'"id":"{done.id}"'.encode(), 1)
        .replace(
            f'"timestamp":"{theirs["timestamps"][0]}"'.encode(),
            f'"timestamp":"{timestamp}"'.encode(),
            1,
        )
    )
    assert line == expected
    return line


async def test_each_entry_type_is_appended_as_pi_appends_it(store: Store, pi: PiOracle) -> None:
    t = store.transcripts
    sid = "appends"
    await t.create("main", sid, cwd="/w")
    user = {"role": "user", "content": [{"type": "text", "text": 'ünï 🦞 \u2028 "q"\n'}],
            "idempotencyKey": "k-1", "timestamp": 1765233665292}  # fmt: skip
    assistant = {"role": "assistant", "content": [], "provider": "anthropic", "model": "m",
                 "usage": {"cost": {"input": 0.000009, "total": 3.3e-8, "big": 1e21}}}  # fmt: skip
    tool = {"role": "toolResult", "toolCallId": "t1", "isError": False,
            "details": {"2": "b", "1": "a", "x": -0.0, "f": 2.0}}  # fmt: skip
    user2 = {**user, "idempotencyKey": "k-2"}  # a key already written would write nothing
    first = await t.append_message("main", sid, user)
    cases: list[tuple[Any, list[Any]]] = [
        (lambda: t.append_message("main", sid, assistant), ["appendMessage", assistant]),
        (lambda: t.append_message("main", sid, user2), ["appendMessage", user2]),
        (lambda: t.append_message("main", sid, tool), ["appendMessage", tool]),
        (lambda: t.append_model_change("main", sid, "openai", "gpt-5"),
         ["appendModelChange", "openai", "gpt-5"]),
        (lambda: t.append_thinking_level_change("main", sid, "high"),
         ["appendThinkingLevelChange", "high"]),
        (lambda: t.append_compaction("main", sid, "sum", first.id, 1234),
         ["appendCompaction", "sum", first.id, 1234]),
        (lambda: t.append_compaction("main", sid, "sum", first.id, 5, details={"f": ["a"]}),
         ["appendCompaction", "sum", first.id, 5, {"f": ["a"]}]),
        (lambda: t.append_compaction("main", sid, "hook", first.id, 9, from_hook=True),
         ["appendCompaction", "hook", first.id, 9, UNDEFINED, True]),
        (lambda: t.append_custom("main", sid, "ext", {"state": 1}),
         ["appendCustomEntry", "ext", {"state": 1}]),
        (lambda: t.append_custom("main", sid, "no-data"), ["appendCustomEntry", "no-data"]),
        (lambda: t.append_custom_message("main", sid, "note", "shown", True),
         ["appendCustomMessageEntry", "note", "shown", True]),
        (lambda: t.append_custom_message("main", sid, "note", [{"type": "text", "text": "x"}],
                                         False, {"d": 1}),
         ["appendCustomMessageEntry", "note", [{"type": "text", "text": "x"}], False, {"d": 1}]),
        (lambda: t.append_label("main", sid, first.id, "bookmark"),
         ["appendLabelChange", first.id, "bookmark"]),
        (lambda: t.append_label("main", sid, first.id, None), ["appendLabelChange", first.id]),
        (lambda: t.append_session_info("main", sid, " \ufeffMy session\x1c\u3000 "),
         ["appendSessionInfo", " \ufeffMy session\x1c\u3000 "]),
        (lambda: t.append_branch_summary("main", sid, first.id, "left"),
         ["branchWithSummary", first.id, "left"]),
        (lambda: t.append_branch_summary("main", sid, None, "from the root"),
         ["branchWithSummary", None, "from the root"]),
    ]  # fmt: skip
    types = set()
    for append, call in cases:
        line = await appended_as_pi_appends(store, pi, sid, append, call)
        types.add(json.loads(line)["type"])
    assert types == {"message", "model_change", "thinking_level_change", "compaction", "custom",
                     "custom_message", "label", "session_info", "branch_summary"}  # fmt: skip


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["a", "b", "0", "7", "10", "01", "-1", "é"]), inner, max_size=4
        )
    ),
    max_leaves=8,
)


@settings(max_examples=200 * (10 if LONG else 1), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(payload=json_values, kind=st.sampled_from(["message", "custom", "custom_message"]))
def test_any_payload_is_appended_as_pi_appends_it(
    generated: GeneratedRun, pi: PiOracle, payload: Any, kind: str
) -> None:
    store, sid = generated.store, "payloads"
    t = store.transcripts
    run = generated.loop.run_until_complete
    if run(t.find("main", sid)) is None:
        run(t.create("main", sid, cwd="/w"))
        run(t.append_message("main", sid, {"role": "assistant", "content": []}))
    if kind == "message":
        message = {"role": "user", "content": payload}
        call, append = ["appendMessage", message], lambda: t.append_message("main", sid, message)
    elif kind == "custom":
        call, append = (
            ["appendCustomEntry", "x", payload],
            lambda: t.append_custom("main", sid, "x", payload),
        )
    else:
        call = ["appendCustomMessageEntry", "x", "c", True, payload]
        append = lambda: t.append_custom_message("main", sid, "x", "c", True, payload)  # noqa: E731
    if payload is None and kind != "message":
        call = call[:-1]  # None means "not given", as pi's optional argument
    run(appended_as_pi_appends(store, pi, sid, append, call))
