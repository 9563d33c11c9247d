"""Realistic data for the benchmarks: session entries and transcripts, built fast.

Everything is seeded, so two runs measure the same bytes. Transcripts are produced as the
exact JSONL lines *and* as `transcripts.LineRow`s, so one fixture feeds both the store (one
bulk `store.write`, not 100,000 awaits) and the file-based baselines (the same bytes on disk).
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from store_sql.formats import jsjson
from store_sql.transcripts import rows as tx

AGENT = "main"
BASE_MS = 1_770_000_000_000  # 2026-02-02, like the corpus

_WORDS = (
    "the", "gateway", "appends", "a", "line", "to", "transcript", "while", "model", "streams",
    "tokens;", "read", "file,", "run", "tests,", "fix", "import,", "naïve", "café", "Ünïcödé",
    "日本語", "🦞", "tool", "call", "returned", "an", "error", "so", "retry", "with", "smaller",
    "diff", "and", "explain", "change",
)  # fmt: skip


def words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(count))


# Building 100,000 entries word by word takes seconds; cutting texts out of one long seeded
# text keeps the sizes varied and the build fast.
_TEXT = words(random.Random(1), 4000)


def snippet(rng: random.Random, count: int) -> str:
    """About `count` words of text (a slice of a fixed seeded text)."""
    length = count * 7
    start = rng.randrange(len(_TEXT) - length)
    return _TEXT[start : start + length]


def iso(ms: int) -> str:
    """Date.prototype.toISOString of an epoch-ms time."""
    seconds, millis = divmod(ms, 1000)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    # Civil date from days since 1970-01-01 (Howard Hinnant's algorithm, no datetime cost).
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (month <= 2)
    return f"{year:04d}-{month:02d}-{day:02d}T{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}Z"


def uuid_like(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


# --- session index ---------------------------------------------------------------------------


def session_entry(rng: random.Random, n: int) -> dict[str, Any]:
    """An entry shaped like the gateway's (FORMATS.md §2), ~1.5 KB of 2-space JSON."""
    session_id = uuid_like(rng)
    channel = rng.choice(("telegram", "discord", "slack", "whatsapp", "webchat"))
    entry: dict[str, Any] = {
        "sessionId": session_id,
        "updatedAt": BASE_MS + n * 1000 + rng.randrange(1000),
        "systemSent": True,
        "abortedLastRun": False,
        "chatType": rng.choice(("direct", "group", "channel")),
        "deliveryContext": {
            "channel": channel,
            "to": f"{channel}:{rng.randrange(10**9)}",
            "accountId": "default",
        },
        "lastChannel": channel,
        "origin": {"label": snippet(rng, 4), "provider": channel, "surface": channel},
        "sessionFile": f"{session_id}.jsonl",
        "compactionCount": rng.randrange(4),
        "modelProvider": "anthropic",
        "model": "claude-sonnet-4-5",
        "inputTokens": rng.randrange(200_000),
        "outputTokens": rng.randrange(20_000),
        "totalTokens": rng.randrange(220_000),
        "contextTokens": 200000,
        "skillsSnapshot": {
            "prompt": snippet(rng, 60),
            "skills": [{"name": name} for name in ("weather", "github", "browser", "notes")],
            "version": BASE_MS,
        },
    }
    if n % 3 == 0:
        entry["label"] = snippet(rng, 3)
    return entry


def session_index(count: int, seed: int = 7) -> dict[str, dict[str, Any]]:
    """`count` entries keyed as the gateway keys them (`agent:main:<channel>:<id>`)."""
    rng = random.Random(seed)
    index: dict[str, dict[str, Any]] = {}
    for n in range(count):
        entry = session_entry(rng, n)
        index[f"agent:{AGENT}:{entry['lastChannel']}:direct:{n}"] = entry
    return index


def usage_patch(rng: random.Random, updated_at: int) -> dict[str, Any]:
    """What the gateway patches after every turn: timestamps and token counters."""
    return {
        "updatedAt": updated_at,
        "inputTokens": rng.randrange(200_000),
        "outputTokens": rng.randrange(20_000),
        "totalTokens": rng.randrange(220_000),
    }


# --- transcripts -----------------------------------------------------------------------------


def message_fields(rng: random.Random, n: int, ts_ms: int) -> dict[str, Any]:
    """A `message` entry's fields (no id/parentId/timestamp): user, assistant or tool result."""
    turn = n % 4
    if turn == 0:
        message: dict[str, Any] = {
            "role": "user",
            "content": snippet(rng, rng.randrange(5, 40)),
            "timestamp": ts_ms,
            "idempotencyKey": f"chat:{uuid_like(rng)}",
        }
    elif turn == 2:
        message = {
            "role": "toolResult",
            "toolCallId": f"toolu_{rng.getrandbits(48):012x}",
            "toolName": "bash",
            "content": [{"type": "text", "text": snippet(rng, rng.randrange(10, 200))}],
            "isError": False,
            "timestamp": ts_ms,
        }
    else:
        message = {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": snippet(rng, rng.randrange(5, 30))},
                {"type": "text", "text": snippet(rng, rng.randrange(5, 60))},
                {
                    "type": "toolCall",
                    "id": f"toolu_{rng.getrandbits(48):012x}",
                    "name": "bash",
                    "arguments": {"command": "ls -la"},
                },
            ],
            "api": "anthropic-messages",
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "usage": {
                "input": rng.randrange(5000),
                "output": rng.randrange(2000),
                "cacheRead": 0,
                "cacheWrite": 1684,
                "totalTokens": rng.randrange(7000),
                "cost": {"input": 0.0135, "output": 0.002865, "total": 0.016365},
            },
            "stopReason": "toolUse",
            "timestamp": ts_ms,
        }
    return {"type": "message", "message": message}


@dataclass(frozen=True, slots=True)
class TranscriptFixture:
    """A transcript as JSONL lines (header first) and as rows for `transcripts.insert_lines`.

    Shared between the modules of a run (see `build_transcript`): treat it as read-only."""

    session_id: str
    header: dict[str, Any]
    lines: list[bytes]
    rows: list[tx.LineRow]
    """Entry rows only (positions 1..n); the header row is written by `create`."""
    leaf_id: str

    def file_bytes(self) -> bytes:
        return b"\n".join(self.lines) + b"\n"


def build_transcript(
    session_id: str, parents: Sequence[int | None], *, seed: int
) -> TranscriptFixture:
    """Entries `0..n-1` where entry i's parent is entry `parents[i]` (None: a root).

    Entry i is line i+1 (the header is line 0). The entries are
    built once per run for the same (parents, seed): modules asking for the
    same 100,000-entry conversation share it (only the header names the session)."""
    header = tx.header_value(
        session_id, cwd="/home/u/project", timestamp=iso(BASE_MS), parent_session=None
    )
    key = (tuple(parents), seed)
    if key not in _BUILT:
        _BUILT[key] = _build_entries(parents, seed)
    lines, rows, leaf_id = _BUILT[key]
    return TranscriptFixture(
        session_id, header, [jsjson.dumps(header).encode("utf-8"), *lines], rows, leaf_id
    )


_BUILT: dict[tuple[Any, ...], tuple[list[bytes], list[tx.LineRow], str]] = {}


def _build_entries(
    parents: Sequence[int | None], seed: int
) -> tuple[list[bytes], list[tx.LineRow], str]:
    rng = random.Random(seed)
    lines: list[bytes] = []
    rows: list[tx.LineRow] = []
    ids: list[str] = []
    taken: set[str] = set()
    for i, parent in enumerate(parents):
        entry_id = f"{rng.getrandbits(32):08x}"
        while entry_id in taken:
            entry_id = f"{rng.getrandbits(32):08x}"
        taken.add(entry_id)
        ids.append(entry_id)
        ts_ms = BASE_MS + i * 1500
        fields = message_fields(rng, i, ts_ms)
        parent_id = None if parent is None else ids[parent]
        value = {
            "type": fields["type"],
            "id": entry_id,
            "parentId": parent_id,
            "timestamp": iso(ts_ms),
            "message": fields["message"],
        }
        # orjson's bytes equal JSON.stringify's for these values (no all-digit keys, no
        # float it spells differently), and jsjson's exactness check would triple the build.
        raw = orjson.dumps(value)
        lines.append(raw)
        message = value["message"]
        rows.append(
            tx.LineRow(
                pos=i + 1,
                line=raw.decode("utf-8"),
                kind="entry",
                entry_id=entry_id,
                parent_id=parent_id,
                parent_pos=None if parent is None else parent + 1,
                type="message",
                role=message["role"],
                timestamp=value["timestamp"],
                idempotency_key=message.get("idempotencyKey"),
                byte_size=len(raw),
                damage=None,
            )
        )
    return lines, rows, ids[-1]


def chain_with_side_branches(count: int, every: int = 1000, side: int = 3) -> list[int | None]:
    """A conversation of `count` entries: one chain, except that after every `every`
    entries a short abandoned branch of `side` entries hangs off the chain (a retried turn),
    so the active path is not simply file order."""
    parents: list[int | None] = []
    tip: int | None = None
    while len(parents) < count:
        parents.append(tip)
        tip = len(parents) - 1
        if every and len(parents) % every == 0:
            side_parent = tip
            for _ in range(min(side, count - len(parents) - 1)):
                parents.append(side_parent)
                side_parent = len(parents) - 1
    return parents


def forked_branch(trunk: int, abandoned: int, active: int) -> list[int | None]:
    """A trunk, then an abandoned branch, then the active branch, both off the trunk's tip:
    the active path holds `trunk + active` entries out of `trunk + abandoned + active`."""
    parents: list[int | None] = [None if i == 0 else i - 1 for i in range(trunk)]
    for length in (abandoned, active):
        parent: int | None = trunk - 1 if trunk else None
        for _ in range(length):
            parents.append(parent)
            parent = len(parents) - 1
    return parents


async def load_transcript(store: Any, fixture: TranscriptFixture) -> int:
    """Create the live transcript of `fixture.session_id` and bulk-insert its entries in one
    write, marked as indexed without being indexed: a benchmark that searches none of it
    should not time its reads or appends beside a 100,000-line index catch-up (the
    indexer's own speed is `transcripts.index_catch_up`)."""
    info = await store.transcripts.create(
        AGENT, fixture.session_id, cwd=fixture.header["cwd"], timestamp=fixture.header["timestamp"]
    )
    tid: int = info.transcript_id

    def insert(conn: sqlite3.Connection) -> None:
        tx.insert_lines(conn, tid, fixture.rows, ends_with_newline=True)
        conn.execute(
            "UPDATE search_index_state SET indexed_upto = "
            "(SELECT max(line_pk) FROM transcript_lines)"
        )

    await store.write(insert)
    return tid


def write_file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def plain_connection(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection set up like the store's writer (WAL, synchronous=NORMAL),
    in autocommit mode: the baseline the issues compare against."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA cache_size = -16384")
    return conn
