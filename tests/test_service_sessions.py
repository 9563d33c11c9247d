"""The session-index routes of a real `store-sql serve`, over real HTTP, serving a SQLite
file and then a PostgreSQL database (the same requests, the same answers)."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from serving import RunningServer, session_path

from store_sql.service import discovery

AGENT = "main"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    db = tmp_path_factory.mktemp("svc") / "store.sqlite"
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_module_url")
    with RunningServer(db, url=url) as running:
        yield running


def error_code(answer: object) -> str:
    return str(orjson.loads(answer.body)["error"]["code"])  # type: ignore[attr-defined]


def test_files_are_private_and_health_needs_no_token(server: RunningServer) -> None:
    if server.url is not None:
        pytest.skip("a server on PostgreSQL has no database file to put files beside")
    for path in (server.db.with_name("store.sqlite.token"), discovery.serve_file(server.db)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    answer = server.request("GET", "/v1/health", auth=False)
    assert answer.status == 200
    assert answer.json()["ok"] is True


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic abc", "Bearer "])
def test_token_is_required(server: RunningServer, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    answer = server.request("GET", "/v1/agents", auth=False, headers=headers)
    assert answer.status == 401
    assert error_code(answer) == "UNAUTHORIZED"
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_unknown_path_and_method(server: RunningServer) -> None:
    assert server.request("GET", "/v1/nothing").status == 404
    assert server.request("GET", "/v1/nothing", auth=False).status == 401
    answer = server.request("POST", "/v1/agents")
    assert answer.status == 405
    assert error_code(answer) == "INVALID"


def test_patch_get_put_delete_with_etags(server: RunningServer) -> None:
    key = "agent:main:etags"
    path = session_path(AGENT, key)
    created = server.request("PATCH", path, {"sessionId": "s1", "updatedAt": 10, "label": "a"})
    assert created.status == 200
    assert orjson.loads(created.body) == {"sessionId": "s1", "updatedAt": 10, "label": "a"}
    tag = created.headers["etag"]
    got = server.request("GET", path)
    assert got.body == created.body
    assert got.headers["etag"] == tag
    assert server.request("GET", path, headers={"If-None-Match": tag}).status == 304
    # compare-and-swap on the version
    changed = server.request("PATCH", path, {"label": None}, headers={"If-Match": tag})
    assert changed.status == 200
    assert orjson.loads(changed.body) == {"sessionId": "s1", "updatedAt": 10}
    stale = server.request("PATCH", path, {"label": "b"}, headers={"If-Match": tag})
    assert stale.status == 409
    assert error_code(stale) == "CONFLICT"
    assert orjson.loads(server.request("GET", path).body) == {"sessionId": "s1", "updatedAt": 10}
    # expect in the body
    wrong = {"patch": {"label": "c"}, "expect": {"sessionId": "other"}}
    assert server.request("PATCH", path, wrong).status == 409
    right = {"patch": {"label": "c"}, "expect": {"sessionId": "s1", "updatedAt": 10}}
    assert orjson.loads(server.request("PATCH", path, right).body)["label"] == "c"
    # put replaces whole; If-None-Match: * creates once only
    put = server.request("PUT", path, {"sessionId": "s2", "updatedAt": 11})
    assert orjson.loads(put.body) == {"sessionId": "s2", "updatedAt": 11}
    again = server.request(
        "PUT", path, {"sessionId": "s3", "updatedAt": 1}, headers={"If-None-Match": "*"}
    )
    assert again.status == 409
    # delete with a guard
    assert server.request("DELETE", path, {"expect": {"sessionId": "s1"}}).status == 409
    deleted = server.request("DELETE", path, {"expect": {"sessionId": "s2"}})
    assert deleted.json() == {"key": key, "deleted": True, "archived": []}
    assert server.request("GET", path).status == 404
    assert error_code(server.request("GET", path)) == "NOT_FOUND"


def test_keys_with_slashes_and_unicode_are_one_segment(server: RunningServer) -> None:
    key = "agent:main:telegram/group:é 100%"
    path = session_path(AGENT, key)
    assert "%2F" in path
    assert server.request("PATCH", path, {"sessionId": "x", "updatedAt": 5}).status == 200
    listed = server.request("GET", f"/v1/agents/{AGENT}/sessions").json()
    assert key in [s["key"] for s in listed["sessions"]]


def test_touch_sets_updated_at(server: RunningServer) -> None:
    path = session_path(AGENT, "agent:main:touch")
    server.request("PATCH", path, {"sessionId": "t", "updatedAt": 1, "n": 1.5})
    touched = server.request("POST", path + "/touch", {"updatedAt": 1234})
    assert touched.status == 200
    assert orjson.loads(touched.body) == {"sessionId": "t", "updatedAt": 1234, "n": 1.5}
    now = server.request("POST", path + "/touch")
    assert orjson.loads(now.body)["updatedAt"] > 1_700_000_000_000
    guarded = server.request("POST", path + "/touch", {"expect": {"updatedAt": 1}})
    assert guarded.status == 409
    missing = server.request("POST", session_path(AGENT, "agent:main:none") + "/touch")
    assert missing.status == 404


def test_batch_is_all_or_nothing(server: RunningServer) -> None:
    batch = f"/v1/agents/{AGENT}/sessions:batch"
    ops = [
        {"op": "put", "key": "b1", "entry": {"sessionId": "b1", "updatedAt": 1}},
        {"op": "patch", "key": "b2", "patch": {"sessionId": "b2", "updatedAt": 2}},
    ]
    done = server.request("POST", batch, {"ops": ops})
    assert done.status == 200
    results = done.json()["results"]
    assert [r["key"] for r in results] == ["b1", "b2"]
    assert results[1]["entry"] == {"sessionId": "b2", "updatedAt": 2}
    failing = [
        {"op": "patch", "key": "b1", "patch": {"label": "x"}},
        {"op": "delete", "key": "b2", "expect": {"sessionId": "not-b2"}},
    ]
    refused = server.request("POST", batch, {"ops": failing})
    assert refused.status == 409
    assert "label" not in server.request("GET", session_path(AGENT, "b1")).json()
    assert server.request("GET", session_path(AGENT, "b2")).status == 200
    bad = server.request("POST", batch, {"ops": [{"op": "explode", "key": "b1"}]})
    assert bad.status == 400


def test_list_filters_and_sessions_json(server: RunningServer, tmp_path: Path) -> None:
    for i in range(5):
        server.request(
            "PATCH",
            session_path("lister", f"k{i}"),
            {"sessionId": f"s{i}", "updatedAt": 100 + i, "label": "odd" if i % 2 else "even"},
        )
    base = "/v1/agents/lister/sessions"
    listed = server.request("GET", base, query={"limit": 2, "total": "true"}).json()
    assert [s["key"] for s in listed["sessions"]] == ["k4", "k3"]
    assert listed["total"] == 5
    odd = server.request("GET", base, query={"label": "odd", "updatedAfter": 101}).json()
    assert [s["key"] for s in odd["sessions"]] == ["k3"]
    assert server.request("GET", base, query={"limit": "many"}).status == 400
    rendered = server.request("GET", "/v1/agents/lister/sessions.json")
    assert list(orjson.loads(rendered.body)) == ["k0", "k1", "k2", "k3", "k4"]
    assert rendered.body.startswith(b'{\n  "k0": {\n    "sessionId": "s0"')


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{", "INVALID"),
        (b"[1]", "INVALID"),
        (b"\xff\xfe", "INVALID"),
        (b'{"sessionId": 5, "updatedAt": 1}', "INVALID"),
        (b"", "INVALID"),
    ],
)
def test_bad_bodies_are_invalid(server: RunningServer, body: bytes, code: str) -> None:
    answer = server.request("PATCH", session_path(AGENT, "agent:main:bad"), raw=body)
    assert answer.status == 400, answer.body
    assert error_code(answer) == code
    assert b"Traceback" not in answer.body


def test_bad_agent_id_is_invalid(server: RunningServer) -> None:
    answer = server.request("GET", "/v1/agents/BAD..ID/sessions")
    assert answer.status == 400
    assert error_code(answer) == "INVALID"
