"""Hypothesis against a real server: bodies, headers and paths of any shape get only
documented answers (2xx/304 or a documented 4xx with the error shape), never a 5xx."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from conftest import BACKENDS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving import RunningServer, served_backend

from store_sql.service import remote

LONG = os.environ.get("STORE_SQL_LONG_TESTS") == "1"
EXAMPLES = 2500 if LONG else 200
STATUS_OF = {
    "INVALID": {400, 405},
    "UNAUTHORIZED": {401},
    "NOT_FOUND": {404},
    "CONFLICT": {409},
    "TOO_LARGE": {413},
}

_server: RunningServer | None = None
_templates: list[tuple[str, str, dict[str, Any]]] = []


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    global _server
    with served_backend(request, tmp_path_factory, extra=("--max-body", "65536")) as running:
        running.request("POST", "/v1/agents/main/transcripts/s1", {"cwd": "/w"})
        running.request("PATCH", "/v1/agents/main/sessions/k1", {"sessionId": "s1", "updatedAt": 1})
        document = running.request("GET", "/openapi.json").json()
        _templates.clear()
        for template, methods in document["paths"].items():
            for method, spec in methods.items():
                if not template.endswith("/purge"):
                    _templates.append((method.upper(), template, spec))
        _server = running
        yield running
        _server = None


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    ["entries", "parentId", "patch", "expect", "entry", "ops", "op", "key", "updatedAt",
     "sessionId", "cwd", "type", "message", "fields", "expectSessionId", "policy", "path",
     "confirm", "snapshot"]
)  # fmt: skip
shaped = st.dictionaries(field_names | st.text(max_size=6), json_values, max_size=5)
entries_like = st.fixed_dictionaries(
    {
        "entries": st.lists(
            st.dictionaries(st.sampled_from(["type", "message", "id", "x"]), json_values),
            max_size=3,
        )
    }
)
bodies = st.one_of(
    st.none(),
    st.binary(max_size=200),
    json_values.map(_dumps),
    shaped.map(_dumps),
    entries_like.map(_dumps),
    st.just(b"{" * 3000),
    st.just(b'{"n": 123456789012345678901234567890, "s": "\\ud800"}'),
)
segments = st.one_of(
    st.sampled_from(["main", "k1", "s1", "agent:main:main", "..", ".", "%zz", "%2F", "a%00b"]),
    st.text(min_size=1, max_size=12).map(lambda t: quote(t, safe="")),
)
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
headers = st.dictionaries(
    st.sampled_from(
        ["If-Match", "If-None-Match", "Last-Event-ID", "Content-Type", "Content-Length", "X-Other"]
    ),
    header_text,
    max_size=3,
)


def _path(template: str, values: list[str]) -> str:
    it = iter(values)
    return re.sub(r"\{\w+\}", lambda _: next(it, "x") or "x", template)


def _send(
    method: str, path: str, body: bytes | None, extra: dict[str, str], token: bool
) -> tuple[int, bytes, str]:
    assert _server is not None
    sent = dict(extra)
    if token:
        sent["Authorization"] = f"Bearer {_server.token}"
    conn = remote.connection(_server.record.address, 30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in sent.items():
            conn.putheader(name, value)
        if body is not None and "Content-Length" not in sent:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        kind = response.getheader("content-type") or ""
        data = b"" if kind.startswith("text/event-stream") else response.read()
        return response.status, data, kind
    except (ConnectionError, OSError):
        return 0, b"", ""  # the server closed a request it could not parse: not an answer
    finally:
        conn.close()


def _check(status: int, data: bytes, kind: str, allowed: set[str] | None) -> None:
    if status == 0:
        return
    if not data and status >= 400 and kind.startswith("application/json"):
        return  # a HEAD answer: the status and headers of the GET, without the body
    assert status < 500, (status, data[:300])
    if status >= 400 and kind.startswith("application/json"):
        error = orjson.loads(data)["error"]
        assert status in STATUS_OF[error["code"]], (status, error)
    elif status >= 400:
        # uvicorn itself refuses what is not HTTP (400 before the app sees it)
        assert status == 400, (status, data[:300])
    if allowed is not None and status not in (304, 404, 405, 401) and status >= 200:
        assert str(status) in allowed, (status, sorted(allowed), data[:300])


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    pick=st.integers(min_value=0, max_value=10_000),
    values=st.lists(segments, min_size=4, max_size=4),
    body=bodies,
    extra=headers,
    token=st.booleans(),
    query=st.dictionaries(
        st.sampled_from(["limit", "cursor", "transcriptId", "maxBytes", "q", "total", "archive"]),
        header_text,
        max_size=2,
    ),
)
def test_documented_routes_with_any_input(
    server: RunningServer,
    pick: int,
    values: list[str],
    body: bytes | None,
    extra: dict[str, str],
    token: bool,
    query: dict[str, str],
) -> None:
    method, template, spec = _templates[pick % len(_templates)]
    path = _path(template, values)
    if query:
        path += "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
    if "Content-Length" in extra:
        extra = {k: v for k, v in extra.items() if k != "Content-Length"}
    status, data, kind = _send(method, path, body, extra, token)
    if not token and template != "/v1/health":
        assert status in (0, 401), (method, path, status, data[:200])
    _check(status, data, kind, set(spec["responses"]))


@settings(
    max_examples=EXAMPLES // 2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
    parts=st.lists(segments, min_size=0, max_size=7),
    body=bodies,
)
def test_any_path(server: RunningServer, method: str, parts: list[str], body: bytes | None) -> None:
    path = "/" + "/".join(parts)
    status, data, kind = _send(method, path, body, {}, True)
    _check(status, data, kind, None)


def test_bodies_over_the_limit_are_too_large(server: RunningServer) -> None:
    big = b'{"entries": [{"type": "x", "pad": "' + b"a" * 70_000 + b'"}]}'
    status, data, _ = _send("POST", "/v1/agents/main/transcripts/s1/entries", big, {}, True)
    assert status == 413
    assert orjson.loads(data)["error"]["code"] == "TOO_LARGE"
