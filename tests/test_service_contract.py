"""Walk /openapi.json: no operation answers without the token, and with it each answers
only what the document says it may."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from conftest import BACKENDS
from serving import RunningServer, served_backend

from store_sql.service import remote

SAMPLE_PARAMS = {
    "agent": "main",
    "key": "agent:main:main",
    "sessionId": "s-contract",
    "entryId": "e1",
    "checkpointId": "c1",
}


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with served_backend(request, tmp_path_factory) as running:
        running.request("POST", "/v1/agents/main/transcripts/s-contract", {"cwd": "/w"})
        running.request(
            "PATCH",
            "/v1/agents/main/sessions/agent:main:main",
            {"sessionId": "s-contract", "updatedAt": 1},
        )
        yield running


def operations(server: RunningServer) -> list[tuple[str, str, dict[str, Any]]]:
    document = server.request("GET", "/openapi.json").json()
    found = []
    for template, methods in document["paths"].items():
        path = re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PARAMS[m.group(1)], template)
        for method, spec in methods.items():
            found.append((method.upper(), path, spec))
    return found


def send(
    server: RunningServer, method: str, path: str, headers: dict[str, str], body: bytes | None
) -> tuple[int, dict[str, str], bytes]:
    """One request on its own connection; event streams are closed after their headers."""
    conn = remote.connection(server.record.address, 30)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        kind = response.getheader("content-type") or ""
        data = b"" if kind.startswith("text/event-stream") else response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def test_the_document_lists_every_route(server: RunningServer) -> None:
    ops = operations(server)
    assert len(ops) >= 40
    paths = {path for _, path, _ in ops}
    for needed in (
        "/v1/health",
        "/metrics",
        "/v1/agents/main/sessions:batch",
        "/v1/agents/main/transcripts/s-contract.jsonl",
        "/v1/agents/main/transcripts/s-contract/events",
        "/v1/agents/main/sessions/events",
        "/v1/agents/main/sessions/agent:main:main/turn",
    ):
        assert needed in paths


@pytest.mark.parametrize(
    "authorization", [None, "Bearer not-the-token", "Basic {token}", "Bearer {token}x", "Bearer"]
)
def test_no_operation_answers_without_the_token(
    server: RunningServer, authorization: str | None
) -> None:
    for method, path, spec in operations(server):
        headers = (
            {}
            if authorization is None
            else {"Authorization": authorization.format(token=server.token)}
        )
        status, answered, body = send(
            server, method, path, headers, b"{}" if method != "GET" else None
        )
        if path == "/v1/health":
            assert status == 200
            assert spec.get("security") == []
            continue
        assert status == 401, (method, path, status, body)
        assert orjson.loads(body)["error"]["code"] == "UNAUTHORIZED"
        assert "401" in spec["responses"]
        assert answered["www-authenticate"].startswith("Bearer")


def test_with_the_token_every_answer_is_documented(server: RunningServer) -> None:
    auth = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    for method, path, spec in operations(server):
        if path.endswith("/purge"):
            continue  # would empty the agent the other operations use
        for body in (None, b"{}", b"[]", b"not json"):
            if method == "GET" and body is not None:
                continue
            status, _, data = send(server, method, path, auth, body)
            assert str(status) in spec["responses"], (method, path, body, status, data[:300])
            if status >= 400:
                error = orjson.loads(data)["error"]
                assert set(error) == {"code", "message"}
                assert "Traceback" not in error["message"]
