"""Every route of a real `store-sql serve`, called once with a request that succeeds: each
JSON answer the service writes itself is camelCase, and the data users stored keeps its own
keys.

The stored data here deliberately holds snake_case keys (a session entry's `team_name`, a
transcript entry's `tool_call_id`), so the walk has something to tell apart: it skips the
places where an answer carries stored data (a session entry, a transcript line, a
checkpoint record, pi's context messages) and checks those keys came back unchanged. The
walk covers the OpenAPI document: an operation added without a call here fails the test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import BACKENDS
from hypothesis import given
from hypothesis import strategies as st
from serving import EventStream, RunningServer, served_backend, session_path, transcript_path

from store_sql.service.wire import camel, camel_keys, snake, snake_keys

AGENT = "main"
KEY = "agent:main:envelopes"
OTHER = "agent:main:envelopes-other"
SID = "5e55-envelopes"
OTHER_SID = "5e55-envelopes-other"
V1_SID = "5e55-envelopes-v1"

SNAKE: re.Pattern[str] = re.compile(r"[a-z0-9]_[a-z0-9]")

DATA_KEYS = {"team_name", "tool_call_id"}
"""Keys of the stored data: they must come back as stored."""

ANY = "*"
DATA: dict[str, tuple[tuple[str, ...], ...]] = {
    # Where each operation's answer holds stored data (a path of members; ANY: every item).
    "get_session": ((),),
    "put_session": ((),),
    "patch_session": ((),),
    "touch_session": ((),),
    "sessions_json": ((),),
    "batch_sessions": (("results", ANY, "entry"),),
    "turn": (("entry",),),
    "reset": (("entry",),),
    "recent": (("entries", ANY),),
    "active_path": (("entries", ANY),),
    "children": (("entries", ANY),),
    "entry": ((),),
    "changes": (("lines", ANY, "value"),),
    "context": (("messages",), ("model",)),
    "list_checkpoints": (("checkpoints", ANY),),
    "get_checkpoint": ((),),
    "persist": (("checkpoint",), ("entry",)),
    "branch": (("checkpoint",), ("entry",)),
    "restore": (("checkpoint",), ("entry",)),
    "upsert": (("entry",),),
}


def snake_case_keys(
    value: Any, skip: tuple[tuple[str, ...], ...], at: tuple[str, ...] = ()
) -> list:
    """Keys holding `_` outside the skipped places, with where they are."""
    if any(_covers(place, at) for place in skip):
        return []
    found: list[tuple[tuple[str, ...], str]] = []
    if isinstance(value, dict):
        for name, item in value.items():
            if SNAKE.search(name):
                found.append((at, name))
            found += snake_case_keys(item, skip, (*at, name))
    elif isinstance(value, list):
        for item in value:
            found += snake_case_keys(item, skip, (*at, ANY))
    return found


def _covers(place: tuple[str, ...], at: tuple[str, ...]) -> bool:
    return len(place) == len(at) and all(p in (ANY, a) for p, a in zip(place, at, strict=True))


def all_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value).union(*(all_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(all_keys(v) for v in value))
    return set()


class Walk:
    """Calls operations, checks each JSON answer, notes which operations answered."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.answered: set[str] = set()
        self.data_seen: set[str] = set()

    def call(self, op: str, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        answer = self.server.request(method, path, body, **kwargs)
        assert 200 <= answer.status < 300, (op, method, path, answer.status, answer.body[:300])
        self.answered.add(op)
        if not answer.headers.get("content-type", "").startswith("application/json"):
            return answer.body
        value = orjson.loads(answer.body)
        self.check(op, value)
        return value

    def check(self, op: str, value: Any) -> None:
        found = snake_case_keys(value, DATA.get(op, ()))
        assert found == [], f"{op} answers snake_case keys: {found}"
        self.data_seen |= all_keys(value) & DATA_KEYS


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with served_backend(request, tmp_path_factory) as running:
        yield running


def _v1_transcript(folder: Path) -> Path:
    """A transcript of pi's first format (no ids, no version), for migrate."""
    folder.mkdir(parents=True)
    path = folder / f"{V1_SID}.jsonl"
    lines = [
        {"type": "session", "id": V1_SID, "timestamp": "2026-02-10T08:00:00.000Z", "cwd": "/w"},
        {
            "type": "message",
            "timestamp": "2026-02-10T08:00:01.000Z",
            "message": {"role": "user", "content": "old format"},
        },
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_every_answer_of_the_service_is_camel_case(server: RunningServer, tmp_path: Path) -> None:
    w = Walk(server)
    a = f"/v1/agents/{AGENT}"
    s, t = session_path(AGENT, KEY), transcript_path(AGENT, SID)
    tool = {"type": "message", "message": {"role": "toolResult", "tool_call_id": "c1"}}
    user = {"type": "message", "message": {"role": "user", "content": "hello walker"}}

    w.call("health", "GET", "/v1/health")
    w.call("metrics", "GET", "/metrics")
    w.call("openapi", "GET", "/openapi.json")
    w.call("create_transcript", "POST", t, {"cwd": "/w"})
    w.call("put_session", "PUT", s, {"sessionId": SID, "updatedAt": 1, "team_name": "a"})
    w.call("patch_session", "PATCH", s, {"label": "walked"})
    w.call("get_session", "GET", s)
    w.call("touch_session", "POST", s + "/touch", {"updatedAt": 2})
    w.call("list_agents", "GET", "/v1/agents")
    w.call("list_sessions", "GET", a + "/sessions", query={"total": "true"})
    w.call("sessions_json", "GET", a + "/sessions.json")
    w.call("batch_sessions", "POST", a + "/sessions:batch", {"ops": [{"op": "touch", "key": KEY}]})
    appended = w.call("append_entries", "POST", t + "/entries", {"entries": [user, tool]})
    first = appended[0]["id"]
    turn = {"entries": [user], "fields": {"model": "m"}, "expectSessionId": SID}
    w.call("turn", "POST", s + "/turn", turn)
    w.call("list_transcripts", "GET", a + "/transcripts")
    w.call("transcript_info", "GET", t)
    w.call("recent", "GET", t + "/recent")
    w.call("active_path", "GET", t + "/path")
    w.call("tree", "GET", t + "/tree")
    w.call("context", "GET", t + "/context")
    w.call("entry", "GET", f"{t}/entries/{first}")
    w.call("children", "GET", f"{t}/entries/{first}/children")
    w.call("changes", "GET", t + "/changes")
    w.call("counts", "GET", t + "/counts")
    w.call("jsonl_file", "GET", t + ".jsonl")

    with EventStream(server, t + "/events?from=start") as stream:
        assert server.request("GET", "/v1/health").status == 200
        for _ in range(4):
            event = stream.next_event()
            w.check("entry", orjson.loads(event["data"]))
        w.answered.add("transcript_events")
    with EventStream(server, a + "/sessions/events") as stream:
        w.call("patch_session", "PATCH", s, {"label": "evented"})
        event = stream.next_event()
        assert event["event"] == "upsert"
        w.check("upsert", orjson.loads(event["data"]))
        w.answered.add("session_events")

    snapshot = w.call("capture", "POST", t + "/capture")
    compaction = {"type": "compaction", "summary": "so far", "firstKeptEntryId": first}
    w.call("append_entries", "POST", t + "/entries", {"entries": [compaction]})
    persisted = w.call(
        "persist", "POST", s + "/checkpoints", {"reason": "manual", "snapshot": snapshot}
    )
    checkpoint = persisted["checkpoint"]["checkpointId"]
    c = f"{s}/checkpoints/{checkpoint}"
    w.call("list_checkpoints", "GET", s + "/checkpoints")
    w.call("get_checkpoint", "GET", c)
    w.call("snapshot_file", "GET", c + ".jsonl")
    w.call("branch", "POST", c + "/branch", {"newKey": OTHER})
    w.call("restore", "POST", c + "/restore", {})
    w.call("reset", "POST", session_path(AGENT, OTHER) + "/reset", {})
    w.call("delete_session", "DELETE", session_path(AGENT, OTHER), {"archive": True})

    v1 = _v1_transcript(tmp_path / "v1" / "sessions")
    w.call("run_import", "POST", "/v1/import", {"path": str(v1), "agent": AGENT})
    w.call("migrate_transcript", "POST", transcript_path(AGENT, V1_SID) + "/migrate")
    w.call("plan", "POST", a + "/maintenance/plan", {})
    w.call("cleanup", "POST", a + "/maintenance/cleanup", {"dryRun": True})
    w.call("cleanup_all", "POST", "/v1/maintenance/cleanup", {"dryRun": True})
    w.call("reclaim", "POST", "/v1/maintenance/reclaim")
    w.call("search", "GET", "/v1/search", query={"q": "walker"})
    w.call("stats", "GET", "/v1/stats")
    w.call("run_export", "POST", a + "/export", {"out": str(tmp_path / "out")})
    w.call("put_session", "PUT", session_path("gone", "k"), {"sessionId": "g", "updatedAt": 1})
    w.call("purge", "POST", "/v1/agents/gone/purge", {"confirm": "gone"})

    document = server.request("GET", "/openapi.json").json()
    every = {
        spec["operationId"] for methods in document["paths"].values() for spec in methods.values()
    }
    assert every - w.answered == set()
    assert w.data_seen == DATA_KEYS


def test_search_answers_camel_case(server: RunningServer) -> None:
    t = transcript_path(AGENT, "5e55-search")
    server.request("POST", t, {"cwd": "/w"})
    entry = {"type": "message", "message": {"role": "user", "content": "quokka sighting"}}
    server.request("POST", t + "/entries", {"entries": [entry]})
    found = server.request("GET", "/v1/search", query={"q": "quokka"}).json()
    assert set(found) >= {"hits", "more", "mode", "notice", "unsearched"}
    (hit,) = found["hits"]
    assert hit["agentId"] == AGENT
    assert hit["sessionId"] == "5e55-search"
    assert hit["transcriptKind"] == "live"
    assert "[quokka]" in hit["snippet"]
    document = server.request("GET", "/openapi.json").json()
    answer = document["paths"]["/v1/search"]["get"]["responses"]["200"]["content"]
    assert answer["application/json"]["schema"]["$ref"].endswith("/SearchAnswer")
    schemas = document["components"]["schemas"]
    assert set(schemas["SearchAnswer"]["properties"]) == set(found)
    assert set(schemas["SearchHitAnswer"]["properties"]) == set(hit)


@given(st.lists(st.from_regex(r"[a-z][a-z0-9]*", fullmatch=True), min_size=1, max_size=4))
def test_field_names_go_to_camel_case_and_back(parts: list[str]) -> None:
    name = "_".join(parts)
    assert snake(camel(name)) == name
    value = {name: [{name: 1}], "transcripts_by_kind": {"live_x": 2}}
    wired = camel_keys(value)
    assert snake_keys(wired) == value
    assert wired["transcriptsByKind"] == {"live_x": 2}
