#!/usr/bin/env python3
"""Write a small, realistic OpenClaw state directory, the same bytes for the same seed.

    python tools/make_sample_state.py samples/state --force     regenerate the bundled sample
    python tools/make_sample_state.py /tmp/state --verify-node   also check with JSON.stringify

Two agents (`main`, `ops`), 12 sessions. Everything is written as the gateway and pi write it
(`../shared/FORMATS.md`): sessions.json is `JSON.stringify(store, null, 2)` with no final
newline (via `jsjson.dumps(indent=2)`), transcript lines are compact JSON.stringify. It holds
the shapes import/export must carry byte for byte: v3 transcripts with branches, labels,
compaction, branch summaries, custom entries and idempotency keys; a v1 transcript; a
`.reset.` archive; a topic transcript; a fork; a compaction checkpoint copy; a backup of
the index; a skills-prompts blob; one damaged transcript (two records glued on one line and
a torn last line without a newline); integer-like keys, floats JavaScript spells its own way
(0.000009, 1e+21, 2.0 -> 2), non-ASCII and control characters.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from store_sql.formats import jsjson  # noqa: E402

DEFAULT_SEED = 20260210
BASE_MS = 1_770_710_400_000  # 2026-02-10T08:00:00.000Z
CWD = "/home/u/ws"
# What encodeURIComponent leaves unescaped besides letters and digits.
_URI_COMPONENT_SAFE = "-_.!~*'()"
# Texts that exercise JSON escaping: non-ASCII, astral characters, quotes, backslashes,
# control characters, tabs and line breaks.
PHRASES = (
    "hello",
    "naïve café",
    "Ünïcödé",
    "日本語のテキスト",
    "emoji 🦞🔥",
    "𝔘𝔫𝔦",
    'quote " and \\ slash /',
    "tab\there",
    "line\nbreak",
    "ctrl \u0001\u001f",
    "run the tests",
    "fix the import",
)


def iso(ms: int) -> str:
    """Date.prototype.toISOString of an epoch-ms time."""
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(ms / 1000, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def archive_stamp(ms: int) -> str:
    """The time in a `.reset.` archive name: toISOString with ':' replaced by '-'."""
    return iso(ms).replace(":", "-")


class Sample:
    """The seeded random source and clock shared by everything one run generates."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.clock = BASE_MS

    def tick(self, low: int = 200, high: int = 60_000) -> int:
        self.clock += self.rng.randrange(low, high)
        return self.clock

    def text(self, low: int = 2, high: int = 7) -> str:
        return " ".join(self.rng.choice(PHRASES) for _ in range(self.rng.randrange(low, high)))

    def uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:]}"

    def hex(self, digits: int) -> str:
        return f"{self.rng.getrandbits(4 * digits):0{digits}x}"


class Transcript:
    """A pi v3 transcript built entry by entry; `lines()` gives its JSONL lines."""

    def __init__(self, sample: Sample, session_id: str, parent_session: str | None = None):
        self.s = sample
        self.session_id = session_id
        header: dict[str, Any] = {
            "type": "session",
            "version": 3,
            "id": session_id,
            "timestamp": iso(sample.tick()),
            "cwd": CWD,
        }
        if parent_session is not None:
            header["parentSession"] = parent_session
        self.values: list[dict[str, Any]] = [header]
        self.leaf: str | None = None
        self.ids: list[str] = []

    def add(self, kind: str, parent: str | None = "<leaf>", **fields: Any) -> str:
        """Append an entry as pi's SessionManager does (custom payload before the tree
        fields, every other type after them); `parent` branches from an earlier entry."""
        entry_id = self.s.hex(8)
        while entry_id in self.ids:
            entry_id = self.s.hex(8)
        tree = {
            "id": entry_id,
            "parentId": self.leaf if parent == "<leaf>" else parent,
            "timestamp": iso(self.s.tick()),
        }
        if kind in ("custom", "custom_message"):
            value = {"type": kind, **fields, **tree}
        else:
            value = {"type": kind, **tree, **fields}
        self.values.append(value)
        self.ids.append(entry_id)
        self.leaf = entry_id
        return entry_id

    def user(self, parent: str | None = "<leaf>") -> str:
        message = {
            "role": "user",
            "content": self.s.text(),
            "timestamp": self.s.clock,
            "idempotencyKey": f"chat:{self.s.uuid()}",
        }
        return self.add("message", parent, message=message)

    def assistant(self, *, tool: bool = True) -> str:
        content: list[dict[str, Any]] = [
            {"type": "thinking", "thinking": self.s.text()},
            {"type": "text", "text": self.s.text()},
        ]
        if tool:
            content.append(
                {
                    "type": "toolCall",
                    "id": f"toolu_{self.s.hex(12)}",
                    "name": "bash",
                    "arguments": {"command": "ls -la"},
                }
            )
        cost = self.s.rng.choice((0.000009, 0.002865, 0.30000000000000004, 1.5, 0.0))
        message = {
            "role": "assistant",
            "content": content,
            "api": "anthropic-messages",
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "usage": {
                "input": self.s.rng.randrange(50, 4000),
                "output": 191,
                "cacheRead": 0,
                "cacheWrite": 1684,
                "totalTokens": 1875,
                "cost": {"input": 0.000009, "output": 0.002865, "total": cost},
            },
            "stopReason": "toolUse" if tool else "stop",
            "timestamp": self.s.clock,
        }
        return self.add("message", message=message)

    def tool_result(self) -> str:
        message = {
            "role": "toolResult",
            "toolCallId": f"toolu_{self.s.hex(12)}",
            "toolName": "bash",
            "content": [{"type": "text", "text": self.s.text()}],
            "isError": self.s.rng.random() < 0.2,
            "timestamp": self.s.clock,
        }
        return self.add("message", message=message)

    def turns(self, count: int) -> None:
        for _ in range(count):
            self.user()
            self.assistant()
            self.tool_result()
            self.assistant(tool=False)

    def lines(self) -> list[bytes]:
        return [jsjson.dumps(value).encode("utf-8") for value in self.values]

    def file(self) -> bytes:
        return b"".join(line + b"\n" for line in self.lines())


def v1_transcript(s: Sample, session_id: str) -> bytes:
    """A legacy transcript: no version, no ids; compaction by `firstKeptEntryIndex`;
    a `hookMessage` role that migration renames to `custom`."""
    values: list[dict[str, Any]] = [
        {
            "type": "session",
            "id": session_id,
            "timestamp": iso(s.tick()),
            "cwd": CWD,
            "provider": "anthropic",
            "modelId": "claude-opus-4-5",
            "thinkingLevel": "off",
        }
    ]
    for n in range(6):
        role = ("user", "assistant", "toolResult")[n % 3]
        content: Any = s.text() if role == "user" else [{"type": "text", "text": s.text()}]
        values.append(
            {
                "type": "message",
                "timestamp": iso(s.tick()),
                "message": {"role": role, "content": content, "timestamp": s.clock},
            }
        )
    values.append(
        {"type": "thinking_level_change", "timestamp": iso(s.tick()), "thinkingLevel": "high"}
    )
    values.append(
        {
            "type": "compaction",
            "timestamp": iso(s.tick()),
            "summary": s.text(8, 12),
            "firstKeptEntryIndex": 4,
            "tokensBefore": 48000,
        }
    )
    values.append(
        {
            "type": "message",
            "timestamp": iso(s.tick()),
            "message": {
                "role": "hookMessage",
                "customType": "reminder",
                "content": s.text(),
                "display": True,
                "timestamp": s.clock,
            },
        }
    )
    values.append(
        {
            "type": "message",
            "timestamp": iso(s.tick()),
            "message": {"role": "user", "content": s.text(), "timestamp": s.clock},
        }
    )

    return b"".join(jsjson.dumps(v).encode("utf-8") + b"\n" for v in values)


def entry(
    s: Sample, session_id: str, *, channel: str, chat_type: str, **extra: Any
) -> dict[str, Any]:
    """A session index entry in the field order the gateway writes."""
    value: dict[str, Any] = {
        "sessionId": session_id,
        "updatedAt": s.tick(),
        "systemSent": True,
        "abortedLastRun": False,
        "chatType": chat_type,
        "deliveryContext": {
            "channel": channel,
            "to": f"{channel}:{s.rng.randrange(10**9)}",
            "accountId": "default",
        },
        "lastChannel": channel,
        "origin": {"label": s.text(1, 3), "provider": channel, "surface": channel},
        "sessionFile": f"{session_id}.jsonl",
        "modelProvider": "anthropic",
        "model": "claude-sonnet-4-5",
        "inputTokens": s.rng.randrange(1000, 150000),
        "outputTokens": s.rng.randrange(100, 9000),
        "contextTokens": 200000,
    }
    value.update(extra)
    return value


def damaged(lines: list[bytes]) -> bytes:
    """Two records glued on one line (concurrent appends) and a torn last line."""
    glued = [*lines[:5], lines[5] + lines[6], *lines[7:-1]]
    cut = len(lines[-1]) // 2
    while lines[-1][cut] >= 0x80:  # tear between characters: the text stays valid UTF-8
        cut -= 1
    torn = lines[-1][:cut]
    return b"".join(line + b"\n" for line in glued) + torn


def main_agent(s: Sample) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    index: dict[str, Any] = {}

    # The main session: branches, a label, compaction with a checkpoint copy, session name.
    sid = s.uuid()
    t = Transcript(s, sid)
    t.add("model_change", provider="anthropic", modelId="claude-sonnet-4-5")
    t.add("thinking_level_change", thinkingLevel="medium")
    t.turns(3)
    retried = t.ids[-4]  # the last user turn: answered twice (a branch)
    t.assistant(tool=False)
    t.assistant(tool=False)
    t.add("label", targetId=retried, label="checkpoint-1")
    t.add("session_info", name="Refactor the importer")
    t.user(parent=retried)
    t.assistant(tool=False)
    before, leaf_before, first_kept = t.file(), t.leaf, t.ids[-6]
    checkpoint = s.uuid()
    t.add(
        "compaction",
        summary=s.text(8, 14),
        firstKeptEntryId=first_kept,
        tokensBefore=150000,
        details={"readFiles": ["a.ts"], "modifiedFiles": []},
    )
    t.turns(2)
    t.add("custom", customType="ext", data={"count": 42, "ratio": 0.30000000000000004})
    t.add("custom_message", customType="note", content=s.text(), display=True, details={"n": 2.0})
    files[f"{sid}.jsonl"] = t.file()
    files[f"{sid}.checkpoint.{checkpoint}.jsonl"] = before
    blob = f"# Skills\n\n{s.text(10, 20)}\n".encode()
    digest = hashlib.sha256(blob).hexdigest()
    files[f"skills-prompts/sha256/{digest[:2]}/{digest}.txt"] = blob
    index["agent:main:main"] = entry(
        s,
        sid,
        channel="webchat",
        chat_type="direct",
        compactionCount=1,
        skillsSnapshot={
            "prompt": s.text(),
            "promptSha256": digest,
            "skills": [{"name": "weather"}, {"name": "github", "requiredEnv": []}],
            "version": BASE_MS,
        },
        label=s.text(1, 3),
        estimatedCostUsd=0.000009,
        displayName=None,
        compactionCheckpoints=[
            {
                "checkpointId": s.uuid(),
                "sessionKey": "agent:main:main",
                "sessionId": sid,
                "createdAt": s.clock,
                "reason": "auto-threshold",
                "tokensBefore": 150000,
                "tokensAfter": 20000,
                "summary": s.text(),
                "firstKeptEntryId": first_kept,
                "preCompaction": {
                    "sessionId": sid,
                    "sessionFile": f"{sid}.checkpoint.{checkpoint}.jsonl",
                    "leafId": leaf_before,
                },
                "postCompaction": {"sessionId": sid},
            }
        ],
    )

    # An integer-like key (JavaScript lists it first) with floats JavaScript re-spells.
    sid = s.uuid()
    t = Transcript(s, sid)
    t.turns(2)
    files[f"{sid}.jsonl"] = t.file()
    index["7"] = entry(
        s,
        sid,
        channel="telegram",
        chat_type="direct",
        cliSessionIds={"9": "x", "b": "y", "1": "z"},
        unknownFutureField={"nested": [1, 2.5, 1e21, -0.0, {"10": True, "a": None}]},
    )

    # A forum topic: its transcript is `<sessionId>-topic-<encodeURIComponent(topic)>.jsonl`.
    sid, topic = s.uuid(), "thread/42 ü"
    t = Transcript(s, sid)
    t.turns(2)
    topic_file = f"{sid}-topic-{quote(topic, safe=_URI_COMPONENT_SAFE)}.jsonl"
    files[topic_file] = t.file()
    index["agent:main:telegram:group:-1001234567890:topic:42"] = entry(
        s, sid, channel="telegram", chat_type="group", sessionFile=topic_file
    )

    # A channel session whose transcript was damaged by concurrent appends and a crash.
    sid = s.uuid()
    t = Transcript(s, sid)
    t.turns(3)
    files[f"{sid}.jsonl"] = damaged(t.lines())
    index["agent:main:discord:channel:1122334455"] = entry(
        s, sid, channel="discord", chat_type="channel"
    )

    # A cron session reset once: the old transcript is kept as a `.reset.` archive.
    old, sid = s.uuid(), s.uuid()
    t = Transcript(s, old)
    t.turns(2)
    files[f"{old}.jsonl.reset.{archive_stamp(s.tick())}"] = t.file()
    t = Transcript(s, sid)
    t.turns(1)
    files[f"{sid}.jsonl"] = t.file()
    index["cron:daily-digest"] = entry(
        s, sid, channel="webchat", chat_type="direct", sessionStartedAt=s.clock
    )

    # A sub-agent forked from the main session (pi's `<time>_<id>.jsonl` name, parentSession).
    parent = index["agent:main:main"]["sessionId"]
    sid = s.uuid()
    t = Transcript(s, sid, parent_session=f"{parent}.jsonl")
    t.turns(1)
    fork_file = f"{archive_stamp(s.clock).replace('.', '-')}_{sid}.jsonl"
    files[fork_file] = t.file()
    index[f"agent:main:subagent:{s.uuid()}"] = entry(
        s,
        sid,
        channel="webchat",
        chat_type="direct",
        sessionFile=fork_file,
        spawnedBy="agent:main:main",
    )

    # A hook session that never got a transcript, and a WhatsApp chat.
    index[f"hook:{s.uuid()}"] = entry(s, s.uuid(), channel="webchat", chat_type="direct")
    sid = s.uuid()
    t = Transcript(s, sid)
    t.turns(2)
    files[f"{sid}.jsonl"] = t.file()
    index["agent:main:whatsapp:direct:+4915112345678"] = entry(
        s, sid, channel="whatsapp", chat_type="direct"
    )

    # A backup someone made of an older index (kept as an opaque file).
    older = dict(list(index.items())[:3])
    files[f"sessions.json.bak.{BASE_MS}"] = jsjson.dumps(older, indent=2).encode("utf-8")
    files["sessions.json"] = jsjson.dumps(index, indent=2).encode("utf-8")
    return files


def ops_agent(s: Sample) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    index: dict[str, Any] = {}

    sid = s.uuid()
    files[f"{sid}.jsonl"] = v1_transcript(s, sid)
    index["agent:ops:main"] = entry(s, sid, channel="webchat", chat_type="direct")

    # Abandoning a branch leaves a branch_summary as a child of the branch point.
    sid = s.uuid()
    t = Transcript(s, sid)
    t.turns(2)
    fork_point = t.ids[3]
    t.add("branch_summary", parent=fork_point, fromId=fork_point, summary=s.text(6, 10))
    t.turns(1)
    files[f"{sid}.jsonl"] = t.file()
    index["agent:ops:slack:channel:c0ops"] = entry(
        s, sid, channel="slack", chat_type="channel", label="ops alerts"
    )

    sid = s.uuid()
    t = Transcript(s, sid)
    t.turns(1)
    files[f"{sid}.jsonl"] = t.file()
    index["agent:ops:cron:nightly"] = entry(
        s, sid, channel="webchat", chat_type="direct", status="done", archivedAt=None
    )

    sid = s.uuid()
    t = Transcript(s, sid)
    t.turns(1)
    t.add("model_change", provider="openai", modelId="gpt-5.1")
    t.turns(1)
    files[f"{sid}.jsonl"] = t.file()
    index["global"] = entry(s, sid, channel="webchat", chat_type="direct")

    files["sessions.json"] = jsjson.dumps(index, indent=2).encode("utf-8")
    return files


def generate(seed: int = DEFAULT_SEED) -> dict[str, bytes]:
    """Every file of the state directory: relative posix path -> bytes."""
    s = Sample(seed)
    files: dict[str, bytes] = {}
    for agent, build in (("main", main_agent), ("ops", ops_agent)):
        for name, data in build(s).items():
            files[f"agents/{agent}/sessions/{name}"] = data
    return dict(sorted(files.items()))


def write(out: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


_NODE_CHECK = r"""
const fs = require('fs');
let bad = [];
for (const file of JSON.parse(fs.readFileSync(0, 'utf8'))) {
  const text = fs.readFileSync(file, 'utf8');
  if (file.endsWith('sessions.json') || file.includes('sessions.json.bak')) {
    if (JSON.stringify(JSON.parse(text), null, 2) !== text) bad.push(file);
    continue;
  }
  if (!file.includes('.jsonl')) continue;
  text.split('\n').forEach((line, i) => {
    let value;
    try { value = JSON.parse(line); } catch { return; }  // damaged lines stay as they are
    if (JSON.stringify(value) !== line) bad.push(`${file}:${i + 1}`);
  });
}
process.stdout.write(JSON.stringify(bad));
"""


def verify_with_node(out: Path, files: dict[str, bytes]) -> list[str]:
    """Files (or file:line) whose bytes JSON.stringify would not reproduce."""
    import json

    done = subprocess.run(
        ["node", "-e", _NODE_CHECK],
        input=json.dumps([str(out / r) for r in files]),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return list(json.loads(done.stdout))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory to write the state directory into")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--force", action="store_true", help="replace OUT if it is not empty")
    parser.add_argument(
        "--verify-node",
        action="store_true",
        help="check every JSON text against Node's JSON.stringify",
    )
    args = parser.parse_args()
    out: Path = args.out
    if out.exists() and any(out.iterdir()):
        if not args.force:
            print(f"{out} is not empty; pass --force to replace it", file=sys.stderr)
            return 2
        shutil.rmtree(out)
    files = generate(args.seed)
    write(out, files)
    size = sum(len(d) for d in files.values())
    print(f"wrote {len(files)} files ({size:,} bytes) to {out}")
    if args.verify_node:
        if shutil.which("node") is None:
            print("node is not installed: skipped the JSON.stringify check", file=sys.stderr)
        elif bad := verify_with_node(out, files):
            print(f"JSON.stringify disagrees with: {', '.join(bad)}", file=sys.stderr)
            return 1
        else:
            print("node: JSON.stringify reproduces every JSON text")
    return 0


if __name__ == "__main__":
    sys.exit(main())
