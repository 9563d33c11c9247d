"""Transcript routes, the turn, and the event streams of a real `store-sql serve`, serving a
SQLite file and then a PostgreSQL database (the same requests, the same answers)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from conftest import BACKENDS
from serving import EventStream, RunningServer, served_backend, session_path, transcript_path

from store_sql import Store, export_transcript

AGENT = "main"


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with served_backend(request, tmp_path_factory) as running:
        yield running


def message(role: str, text: str, key: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {"role": role, "content": text}
    if key is not None:
        body["idempotencyKey"] = key
    return {"type": "message", "message": body}


def new_session(server: RunningServer, session_id: str, key: str | None = None) -> str:
    created = server.request("POST", transcript_path(AGENT, session_id), {"cwd": "/work"})
    assert created.status == 201, created.body
    if key is not None:
        server.request("PATCH", session_path(AGENT, key), {"sessionId": session_id, "updatedAt": 1})
    return transcript_path(AGENT, session_id)


def exported(db: str | Path, session_id: str) -> bytes:
    async def read() -> bytes:
        async with await Store.open(db) as store:
            return await export_transcript(store, AGENT, session_id)

    return asyncio.run(read())


def test_append_read_and_retry(server: RunningServer) -> None:
    base = new_session(server, "t1")
    appended = server.request(
        "POST",
        base + "/entries",
        {"entries": [message("user", "hi", "k1"), message("assistant", "yo")]},
    )
    assert appended.status == 200, appended.body
    first, second = appended.json()
    assert first["existed"] is False
    assert second["parentId"] == first["id"]
    retry = server.request("POST", base + "/entries", {"entries": [message("user", "hi", "k1")]})
    assert retry.json() == [{**first, "existed": True}]
    recent = server.request("GET", base + "/recent", query={"limit": 1}).json()
    assert [e["id"] for e in recent["entries"]] == [second["id"]]
    path = server.request("GET", base + "/path").json()["entries"]
    assert [e["message"]["content"] for e in path] == ["hi", "yo"]
    one = server.request("GET", base + f"/entries/{first['id']}")
    assert orjson.loads(one.body)["message"]["idempotencyKey"] == "k1"
    kids = server.request("GET", base + f"/entries/{first['id']}/children").json()["entries"]
    assert [k["id"] for k in kids] == [second["id"]]
    tree = server.request("GET", base + "/tree").json()
    assert tree["leafId"] == second["id"]
    assert [(n["id"], n["parentId"]) for n in tree["nodes"]] == [
        (first["id"], None),
        (second["id"], first["id"]),
    ]
    context = server.request("GET", base + "/context").json()
    assert [m["role"] for m in context["messages"]] == ["user", "assistant"]
    counts = server.request("GET", base + "/counts").json()
    assert counts["entries"] == 2
    # branch from the first entry, then a new root
    branch = server.request(
        "POST", base + "/entries", {"entries": [message("user", "other")], "parentId": first["id"]}
    )
    assert branch.json()[0]["parentId"] == first["id"]
    assert server.request("GET", base + "/entries/nope").status == 404
    assert server.request("GET", transcript_path(AGENT, "none") + "/recent").status == 404
    bad = server.request("POST", base + "/entries", {"entries": [{"type": "x", "id": "mine"}]})
    assert bad.status == 400


def test_jsonl_is_byte_exact(server: RunningServer) -> None:
    base = new_session(server, "t2")
    odd = {"type": "custom", "customType": "x", "data": {"n": 1e21, "s": "é\u2028", "f": 0.1}}
    server.request("POST", base + "/entries", {"entries": [odd, message("user", "line\nbreak")]})
    served = server.request("GET", f"/v1/agents/{AGENT}/transcripts/t2.jsonl")
    assert served.status == 200
    assert served.headers["content-type"].startswith("application/x-ndjson")
    assert served.body == exported(server.location, "t2")
    assert b'"n":1e+21' in served.body


def test_changes_resume_from_cursor(server: RunningServer) -> None:
    base = new_session(server, "t3")
    start = server.request("GET", base + "/changes").json()
    assert start["replaced"] is False
    assert start["lines"][0]["kind"] == "header"
    server.request("POST", base + "/entries", {"entries": [message("user", "a")]})
    after = server.request("GET", base + "/changes", query={"cursor": start["cursor"]}).json()
    assert [line["value"]["message"]["content"] for line in after["lines"]] == ["a"]
    assert server.request("GET", base + "/changes", query={"cursor": "x.y"}).status == 400


def test_turn_route(server: RunningServer) -> None:
    key = "agent:main:turn"
    new_session(server, "t4", key)
    turn = session_path(AGENT, key) + "/turn"
    done = server.request(
        "POST",
        turn,
        {
            "entries": [message("user", "q", "tk1"), message("assistant", "a")],
            "updatedAt": 77,
            "fields": {"model": "m1"},
            "expectSessionId": "t4",
        },
    )
    assert done.status == 200, done.body
    body = done.json()
    assert body["sessionId"] == "t4"
    assert body["entry"] == {"sessionId": "t4", "updatedAt": 77, "model": "m1"}
    assert done.headers["etag"] == f'"{body["version"]}"'
    assert [a["existed"] for a in body["appended"]] == [False, False]
    conflict = server.request(
        "POST", turn, {"entries": [message("user", "z")], "expectSessionId": "old"}
    )
    assert conflict.status == 409
    assert len(server.request("GET", transcript_path(AGENT, "t4") + "/path").json()["entries"]) == 2


def test_transcript_events_resume_without_loss_or_duplicates(server: RunningServer) -> None:
    base = new_session(server, "t5")
    with EventStream(server, base + "/events") as stream:
        assert stream.status == 200
        server.request(
            "POST", base + "/entries", {"entries": [message("user", "1"), message("user", "2")]}
        )
        one, two = stream.next_event(), stream.next_event()
        assert one["event"] == "entry"
        assert [orjson.loads(e["data"])["message"]["content"] for e in (one, two)] == ["1", "2"]
    # disconnected: two more appends, then a reconnect from the first event's id
    server.request("POST", base + "/entries", {"entries": [message("user", "3")]})
    server.request("POST", base + "/entries", {"entries": [message("user", "4")]})
    with EventStream(server, base + "/events", {"Last-Event-ID": one["id"]}) as stream:
        got = [orjson.loads(stream.next_event()["data"])["message"]["content"] for _ in range(3)]
        assert got == ["2", "3", "4"]


def test_transcript_events_say_replaced_and_gone(server: RunningServer) -> None:
    key = "agent:main:events-reset"
    base = new_session(server, "t6", key)
    server.request("POST", base + "/entries", {"entries": [message("user", "before")]})
    with EventStream(server, base + "/events", {}) as stream:
        reset = server.request("POST", session_path(AGENT, key) + "/reset", {})
        assert reset.status == 200, reset.body
        assert stream.next_event()["event"] == "gone"
    migrated = server.request("POST", base + "/migrate")
    assert migrated.status in (400, 404)


def test_session_events(server: RunningServer) -> None:
    events = f"/v1/agents/{AGENT}/sessions/events"
    with EventStream(server, events) as stream:
        server.request("PATCH", session_path(AGENT, "ev1"), {"sessionId": "e", "updatedAt": 3})
        upsert = stream.next_event()
        assert upsert["event"] == "upsert"
        data = orjson.loads(upsert["data"])
        assert data["key"] == "ev1"
        assert data["entry"] == {"sessionId": "e", "updatedAt": 3}
        server.request("DELETE", session_path(AGENT, "ev1"))
        deleted = stream.next_event()
        assert (deleted["event"], orjson.loads(deleted["data"])) == ("delete", {"key": "ev1"})
    server.request("PATCH", session_path(AGENT, "ev2"), {"sessionId": "e2", "updatedAt": 4})
    with EventStream(server, events, {"Last-Event-ID": deleted["id"]}) as stream:
        assert orjson.loads(stream.next_event()["data"])["key"] == "ev2"
    with EventStream(server, events, {"Last-Event-ID": "other-run.5"}) as stream:
        assert stream.next_event()["event"] == "resync"


def test_a_slow_session_subscriber_is_told_to_resync(server: RunningServer) -> None:
    events = f"/v1/agents/{AGENT}/sessions/events"
    pad = "x" * 8192
    with EventStream(server, events) as stream:
        # The subscriber reads nothing while 1,600 changes of 8 KB go by: more than the
        # ring (1,024) and than the socket buffers hold.
        for batch in range(16):
            ops = [
                {
                    "op": "put",
                    "key": f"slow-{n}",
                    "entry": {"sessionId": "s", "updatedAt": batch, "pad": pad},
                }
                for n in range(100)
            ]
            assert (
                server.request("POST", f"/v1/agents/{AGENT}/sessions:batch", {"ops": ops}).status
                == 200
            )
        seen: list[str] = []
        while "resync" not in seen:
            seen.append(stream.next_event()["event"])
            assert len(seen) <= 1700, "no resync event"
        assert set(seen[:-1]) == {"upsert"}
        # after the resync the stream follows again
        server.request(
            "PATCH", session_path(AGENT, "after-resync"), {"sessionId": "a", "updatedAt": 1}
        )
        while True:
            event = stream.next_event()
            if event["event"] == "upsert" and orjson.loads(event["data"])["key"] == "after-resync":
                break


def test_names_holding_nul_are_not_found(server: RunningServer) -> None:
    """PostgreSQL text cannot hold NUL, SQLite's can: both answer 404 in the error shape."""
    base = new_session(server, "t-nul")
    answers = [
        server.request("GET", transcript_path(AGENT, "a\x00b") + "/recent"),
        server.request("GET", base + "/entries/" + "e%00"),
        server.request(
            "POST",
            transcript_path(AGENT, "a\x00b") + "/entries",
            {"entries": [message("user", "x")]},
        ),
        server.request(
            "POST", base + "/entries", {"entries": [message("user", "x")], "parentId": "e\x00"}
        ),
    ]
    assert [a.status for a in answers] == [404, 404, 404, 404], [a.body for a in answers]
    assert all(a.json()["error"]["code"] == "NOT_FOUND" for a in answers)
